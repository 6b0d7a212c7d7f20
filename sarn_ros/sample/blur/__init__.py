"""Data only: the bundled demo sample (ATTRIBUTION.md). A package, so that every setuptools
version installs its files without a warning."""
