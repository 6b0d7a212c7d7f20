"""Package metadata a real ROS 2 install relies on, and the venv entry points."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_package_xml_is_format3_ament_python_with_runtime_deps():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "sarn_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root if e.tag in ("depend", "exec_depend")}
    for key in (
        "rclpy",
        "sensor_msgs",
        "cv_bridge",
        "launch",
        "launch_ros",
        "diagnostic_msgs",
        "python3-numpy",
        "python3-opencv",
        "python3-torch",
    ):
        assert key in deps, key


def test_console_scripts_run():
    for cmd in (["sarn", "--help"], ["sarn_deblur_node", "--help"]):
        result = subprocess.run(
            [str(BIN / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
    assert (
        "deblur"
        in subprocess.run([str(BIN / "sarn"), "--help"], capture_output=True, text=True).stdout
    )


def test_import_is_light_and_public_api_exists():
    code = (
        "import sys; from sarn_ros import SARN, RecurrentSARN, StreamDeblurrer, load_model;"
        "print('rclpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"  # networks, engine, checkpoints: no ROS
