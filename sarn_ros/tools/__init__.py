"""Command-line tools (`sarn <subcommand>`), all built on the streaming engine."""
