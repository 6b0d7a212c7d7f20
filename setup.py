"""ament_python build for sarn_ros: works under `colcon build` and plain `pip install`."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "sarn_ros"
SAMPLE = [f"{PACKAGE}.sample", f"{PACKAGE}.sample.blur", f"{PACKAGE}.sample.sharp"]  # data

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={name: ["*"] for name in SAMPLE},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml", "LICENSE"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/weights", glob("weights/*.pth") + glob("weights/*.md")),
    ],
    python_requires=">=3.10",
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},  # so `colcon test` runs pytest, not unittest
    zip_safe=False,  # the sample is read from its files
    maintainer="sarn_ros maintainers",
    maintainer_email="maintainers@sarn-ros.invalid",
    description="Real-time recurrent SARN motion deblurring node for ROS 2 camera streams.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sarn_deblur_node = sarn_ros.ros.entry:main",
            "sarn = sarn_ros.tools.cli:main",
        ],
    },
)
