"""Package metadata a real ROS 2 install relies on, and the venv entry points."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

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
        "rcl_interfaces",  # the node's parameter descriptors
        "sensor_msgs",
        "cv_bridge",
        "launch",
        "launch_ros",
        "ros2launch",  # `ros2 launch` itself, for the launch files
        "diagnostic_msgs",
        "std_srvs",  # the node's ~/reset service
        "rosgraph_msgs",  # the node hears /clock (a player gone silent)
        "python3-numpy",
        "python3-opencv",
        "python3-torch",
    ):
        assert key in deps, key


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # catkin_pkg's pyparsing calls
def test_rosdep_asks_for_python3_torch_only_where_the_distribution_has_a_usable_one():
    """Humble's Ubuntu has torch 1.8 and Jazzy's and Kilted's none, though rosdep maps the key
    to an apt package there: `rosdep install` failed (or installed 1.8) unless told to skip it."""
    from catkin_pkg.package import parse_package

    def deps(distro: str) -> set[str]:
        package = parse_package(str(REPO / "package.xml"))
        package.evaluate_conditions({"ROS_DISTRO": distro, "ROS_VERSION": "2"})
        return {d.name for d in package.exec_depends if d.evaluated_condition}

    for distro in ("humble", "jazzy", "kilted"):
        assert "python3-torch" not in deps(distro) and "rclpy" in deps(distro), distro
    assert "python3-torch" in deps("lyrical")  # later ones: Ubuntu 25.04 on ship a recent torch


def installed_script(name: str) -> Path:
    """The console script as installed: beside the interpreter (venv, pip) or, under ``colcon
    test``, in the package's lib/sarn_ros of the ament prefix path."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for path in [BIN / name, *(Path(p) / "lib" / "sarn_ros" / name for p in prefixes)]:
        if path.exists():
            return path
    pytest.fail(f"no installed {name} beside {sys.executable} or in {prefixes}")


def test_console_scripts_run():
    for name, expected in (("sarn", "deblur"), ("sarn_deblur_node", "future_frames")):
        result = subprocess.run(
            [str(installed_script(name)), "--help"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout


def test_one_version_everywhere_and_sarn_reports_it():
    """package.xml (rosdep, bloom), setup.py (pip, colcon) and the code give one version, and
    `sarn --version` prints it with the PyTorch a bug report needs."""
    from sarn_ros import __version__

    xml = ET.parse(REPO / "package.xml").getroot().findtext("version")
    setup = re.search(r'version="([^"]+)"', (REPO / "setup.py").read_text()).group(1)
    assert xml == setup == __version__
    result = subprocess.run(
        [str(installed_script("sarn")), "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"sarn_ros {__version__} (PyTorch "), result.stdout


def subcommand_options(argv: list[str]) -> list[argparse.Action]:
    """The options of ``sarn <argv>`` (a subcommand, or bench's model or node)."""
    from sarn_ros.tools import cli

    parser = cli.build_parser(argv)
    for name in argv:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


SUBCOMMANDS = [["demo"], ["deblur"], ["eval"], ["export"], ["train"], ["bench", "model"]]
SUBCOMMANDS += [["bench", "node"]]


@pytest.mark.parametrize("argv", SUBCOMMANDS)
def test_every_option_is_explained_with_its_default(argv, capsys):
    """`sarn X --help` says what each option does and, where one is set, its default."""
    from sarn_ros.tools import cli

    options = subcommand_options(argv)
    assert options and all(a.help for a in options), [a.dest for a in options if not a.help]
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for a in options:
        if a.default is None or a.default is False or a.default == [] or "default" in a.help:
            continue
        shown = " ".join(map(str, a.default)) if isinstance(a.default, list) else a.default
        assert f"(default: {shown})" in text, a.dest


@pytest.mark.parametrize("argv", SUBCOMMANDS)
def test_a_list_option_given_twice_keeps_both(argv):
    """`sarn train --data a --data b` trained on b alone, without a word (argparse's store kept
    the last); given at all, a list option replaces its default rather than adding to it."""
    from sarn_ros.tools.cli import build_parser

    parser = build_parser(argv)
    for name in argv:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    for a in subcommand_options(argv):
        if a.nargs not in ("+", "*"):
            continue
        first, second = (list(a.choices)[-2:] if a.choices else ["0.5", "0.25"])[:2]
        flag = a.option_strings[-1]
        base = ["in"] if argv == ["deblur"] else []
        base += ["-o", "x.onnx"] if argv == ["export"] else []
        base += ["-o", "out"] if argv == ["deblur"] else []
        base += ["--run-dir", "run"] if argv == ["train"] else []
        got = getattr(parser.parse_args([*base, flag, str(first), flag, str(second)]), a.dest)
        want = [a.type(v) if a.type else v for v in (first, second)]
        assert got == want, flag


def test_numbers_are_range_checked_as_they_are_parsed():
    """A bare int or float option let nan, inf or a negative through: OpenCV's writer hung at
    `--fps inf`, `--fft-weight nan` saved NaN weights with exit 0, `--crop 0` was a traceback
    minutes in. --opset has a message of its own (a seed took any whole number: -1 was numpy's
    error, naming no option)."""
    from sarn_ros.tools.options import ranged

    bare = {
        a.dest
        for argv in SUBCOMMANDS
        for a in subcommand_options(argv)
        if a.type in (int, float) and a.choices is None
    }
    assert bare == {"opset"}
    fraction = ranged(float, above=0, high=1)
    assert fraction("1") == 1.0 and fraction("0.25") == 0.25
    for text, reason in (("0", "must be in (0, 1], got 0"), ("nan", "got nan"), ("x", "number")):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(reason)):
            fraction(text)
    with pytest.raises(argparse.ArgumentTypeError, match="not a whole number"):
        ranged(int, 1)("2.5")
    # a whole number too large for a float was math.isfinite's OverflowError, a traceback
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be in \[1, 256\], got 1000"):
        ranged(int, 1, 256)("1" + "0" * 400)
    assert ranged(int, 1)("1" + "0" * 400) == 10**400


def test_import_is_light_and_public_api_exists():
    code = (
        "import sys; from sarn_ros import SARN, RecurrentSARN, StreamDeblurrer, load_model;"
        "print('rclpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"  # networks, engine, checkpoints: no ROS


def test_the_console_scripts_modules_are_those_setup_py_installs():
    """`ros2 run` under /usr/bin/python3 starts the module, a venv the script: the same code."""
    from sarn_ros.resources import SCRIPTS

    text = (REPO / "setup.py").read_text()
    for name, module in SCRIPTS.items():
        assert f'"{name} = {module}:main"' in text, name


def ignoring_sigint() -> None:
    """As a shell starts a background job."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def started_then_stopped(cmd: list[str], sig: int, ignore_sigint: bool = False) -> tuple[int, str]:
    """Run ``cmd`` with import timing on, and send ``sig`` just after the console script's own
    module is in: while PyTorch is still importing. ``ignore_sigint``: started as a shell
    starts a background job."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=ignoring_sigint if ignore_sigint else None,
    )
    lines = []
    for line in proc.stdout:  # "import time: self | cumulative | module", once it is imported
        lines.append(line)
        if line.rstrip().endswith(("| sarn_ros.ros.entry", "| sarn_ros.tools.cli")):
            break
    time.sleep(0.02)  # main() has begun: the imports it starts take over 0.5 s
    proc.send_signal(sig)
    try:
        rest, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # the signal was lost: the process started and runs on
        proc.kill()
        rest = proc.communicate()[0] + "\n(still running 60 s after the signal: killed)"
    return proc.returncode, "".join(lines) + rest


@pytest.mark.parametrize(
    ("sig", "ignored"), [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)]
)
def test_a_stop_while_the_node_imports_pytorch_is_a_clean_exit(sig, ignored, ros_domain):
    """PyTorch takes seconds to import, before rclpy installs its signal handlers: Ctrl-C then
    printed a KeyboardInterrupt traceback, and SIGTERM (`docker stop`, a launch shut down
    early) ended the node with -15, which `ros2 launch` reports as a crash. A node started in
    the background by a shell script (SIGINT ignored) lost a `kill -INT` in that time."""
    from sarn_ros.resources import node_command

    rc, out = started_then_stopped(node_command(), sig, ignore_sigint=ignored)
    assert rc == 0 and "Traceback" not in out, (rc, out[-2000:])


def test_ctrl_c_while_sarn_imports_pytorch_is_one_line():
    rc, out = started_then_stopped([str(installed_script("sarn")), "demo"], signal.SIGINT)
    assert rc == 130 and "Traceback" not in out, (rc, out[-2000:])
    assert out.rstrip().endswith("sarn demo: interrupted"), out[-2000:]


def test_the_node_starts_from_an_interpreter_without_the_script_beside_it(tmp_path, monkeypatch):
    """`ros2 run sarn_ros sarn demo` runs /usr/bin/python3: no sarn_deblur_node next to it."""
    from sarn_ros import resources

    if (BIN / "sarn_deblur_node").exists():  # a venv (not `colcon test`)
        assert resources.node_command() == [str(BIN / "sarn_deblur_node")]
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    cmd = resources.node_command()
    assert cmd == [str(tmp_path / "python3"), "-m", "sarn_ros.ros.entry"]
    cmd[0] = str(BIN / "python")
    result = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "future_frames" in result.stdout


@pytest.mark.parametrize(
    ("distro", "variable"),
    [("humble", 0), ("iron", 0), ("jazzy", 0), ("kilted", 1), ("rolling", 1), ("", 1)],
)
def test_the_node_gives_fast_dds_the_profile_under_the_name_it_reads(
    monkeypatch: pytest.MonkeyPatch, distro: str, variable: int
):
    """Fast DDS 2 (to Jazzy) reads only FASTRTPS_..., Fast DDS 3 (Kilted on, and the wheels of
    a bare venv, where ROS_DISTRO is unset) only FASTDDS_...; a profile of the user's own, under
    either name, is kept, and another RMW gets none."""
    from sarn_ros.resources import DDS_PROFILE_VARIABLES, find_share_file, use_packaged_dds_profile

    def profiles() -> list[str | None]:
        return [os.environ.get(name) for name in DDS_PROFILE_VARIABLES]

    def unset() -> None:
        for name in DDS_PROFILE_VARIABLES:
            monkeypatch.setenv(name, "")  # recorded, so the test's changes are undone
            monkeypatch.delenv(name)

    monkeypatch.setenv("ROS_DISTRO", distro)
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    unset()
    use_packaged_dds_profile()
    expected: list[str | None] = [None, None]
    expected[variable] = str(find_share_file("config/fastdds_shm.xml"))  # share/ or the tree
    assert profiles() == expected
    for mine in DDS_PROFILE_VARIABLES:
        unset()
        monkeypatch.setenv(mine, "/etc/my_dds.xml")
        use_packaged_dds_profile()
        assert profiles() == [
            "/etc/my_dds.xml" if name == mine else None for name in DDS_PROFILE_VARIABLES
        ]
    unset()
    monkeypatch.setenv("RMW_IMPLEMENTATION", "")  # set but empty: the default RMW, Fast DDS
    use_packaged_dds_profile()
    assert profiles() == expected
    unset()
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")
    use_packaged_dds_profile()
    assert profiles() == [None, None]


@pytest.mark.parametrize("choice", ["transports", "cwd2", "cwd3"])
def test_a_transport_choice_of_the_users_own_is_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, choice: str
):
    """FASTDDS_BUILTIN_TRANSPORTS (e.g. LARGE_DATA) and a default profile file in the working
    directory, which Fast DDS loads by itself, are the user's choice as much as a profile
    variable: the packaged profile would override them."""
    from sarn_ros.resources import DDS_PROFILE_VARIABLES, dds_profile_setting

    env = {"ROS_DISTRO": "humble" if choice == "cwd2" else "kilted"}
    variable = DDS_PROFILE_VARIABLES[0 if choice == "cwd2" else 1]
    monkeypatch.chdir(tmp_path)
    assert dds_profile_setting("/p.xml", env) == (variable, "/p.xml")
    if choice == "transports":
        env["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    else:
        name = (
            "DEFAULT_FASTRTPS_PROFILES.xml" if choice == "cwd2" else "DEFAULT_FASTDDS_PROFILES.xml"
        )
        (tmp_path / name).write_text("<dds/>")
    assert dds_profile_setting("/p.xml", env) is None
    if choice != "transports":  # Fast DDS skips the working directory's file when told to
        env["SKIP_DEFAULT_XML_FILE"] = "1"
        assert dds_profile_setting("/p.xml", env) == (variable, "/p.xml")


def test_range_bounds_are_inclusive_or_exclusive_as_named_and_infinity_is_refused():
    """``ranged``: low/high inclusive, above/below exclusive, never inf or nan; the bound
    itself is in range ("at least 1" takes 1)."""
    from sarn_ros.tools.options import ranged

    assert ranged(int, 1)("1") == 1
    assert ranged(float, 0, 1)("0") == 0.0 and ranged(float, 0, 1)("1") == 1.0
    stagger = ranged(float, 0, below=1)
    assert stagger("0") == 0.0
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape("must be in [0, 1), got 1")):
        stagger("1")
    for text in ("inf", "-inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a finite number at least 0"):
            ranged(float, 0)(text)


def test_help_names_no_default_for_an_unset_switch_and_counts_read_as_words(capsys):
    """Where the default means "not given" (off) --help says none; ``plural`` is English."""
    from sarn_ros.tools.options import HelpFormatter, plural

    parser = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
    parser.add_argument("--flag", action="store_true", help="a switch")
    parser.add_argument("--level", type=int, default=3, help="a level")
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a level (default: 3)" in text and "a switch" in text
    assert "default: False" not in text
    assert [plural(n, "frame") for n in (0, 1, 2)] == ["0 frames", "1 frame", "2 frames"]


def test_an_output_path_of_the_wrong_kind_is_named_as_such(tmp_path):
    from sarn_ros.tools.options import check_writable

    (tmp_path / "rows.json").write_text("")
    with pytest.raises(ValueError, match="is a folder, not a file"):
        check_writable(tmp_path, "--json", folder=False)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_writable(tmp_path / "rows.json", "--out", folder=True)
    check_writable(tmp_path / "new" / "rows.json", "--json", folder=False)  # made later
    # a link to nothing failed at mkdir after the model loaded ("[Errno 17] File exists"); a
    # name too long for the filesystem was a traceback (ENAMETOOLONG) in sarn demo
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere" / "deep")
    with pytest.raises(ValueError, match=r"gone is a link to nothing \(its target is missing"):
        check_writable(tmp_path / "gone", "-o", folder=True)
    with pytest.raises(ValueError, match=r"^--out .*a{300}: File name too long$"):
        check_writable(tmp_path / ("a" * 300), "--out", folder=True)


def test_domain_id_takes_every_id_its_help_names(capsys):
    """--domain-id 0..101, as its help says (the ids a Linux host can use)."""
    from sarn_ros.tools.options import add_domain_argument

    parser = argparse.ArgumentParser(prog="x")
    add_domain_argument(parser, "camera")
    assert parser.parse_args(["--domain-id", "0"]).domain_id == 0
    assert parser.parse_args(["--domain-id", "101"]).domain_id == 101
    with pytest.raises(SystemExit):
        parser.parse_args(["--domain-id", "102"])
    err = capsys.readouterr().err  # not argparse's list of all 102 choices
    assert "0..101" in err and "must be in [0, 101], got 102" in err and "choose" not in err


def test_sarn_without_a_command_shows_the_commands_and_succeeds(capsys):
    from sarn_ros.tools import cli

    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sarn") and all(name in out for name in cli.SUBCOMMANDS)


def test_a_subcommand_imports_no_other_subcommand_module():
    """`sarn train --help` stays fast: the other subcommands' modules (and what they import)
    are loaded only when they run."""
    code = (
        "import sys; from sarn_ros.tools import cli; cli.build_parser(['train']); "
        "print(' '.join(m for m in sys.modules if m.startswith('sarn_ros.tools.')))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    from sarn_ros.tools.cli import SUBCOMMANDS

    loaded = run.stdout.split()
    assert "sarn_ros.tools.train" in loaded
    assert not [
        f"sarn_ros.tools.{n}"
        for n in SUBCOMMANDS
        if f"sarn_ros.tools.{n}" in loaded and n != "train"
    ]


@pytest.mark.parametrize("name", ["rosbags", "rosbags.rosbag2"])
def test_a_missing_pip_package_or_part_of_it_is_one_line(monkeypatch, capsys, name):
    """A module of rosbags that cannot be imported (an older rosbags without it) names the
    package to install, as rosbags missing whole does."""
    from sarn_ros.tools import cli, train

    def needs(args):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(train, "run", needs)
    assert cli.main(["train", "--run-dir", "."]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "sarn train: error: reading or writing rosbag2 files needs the Python package rosbags, "
        "not among sarn_ros's ROS dependencies: python3 -m pip install --user rosbags"
    ]


@pytest.mark.parametrize(
    ("code", "prog", "rc"),
    [
        ("from sarn_ros.tools.cli import main; sys.exit(main(['--version']))", "sarn", 2),
        ("from sarn_ros.ros.entry import main; sys.exit(main())", "sarn_deblur_node", 1),
    ],
)
def test_pytorch_not_installed_is_one_line_naming_how_to_install_it(code, prog, rc):
    """`sarn --version` and the node said only ModuleNotFoundError: No module named 'torch',
    in a traceback (torch is the user's to install where rosdep has no key for it)."""
    blocked = f"import sys; sys.modules['torch'] = None; {code}"  # import torch fails
    run = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert run.returncode == rc, run.stderr
    (line,) = run.stderr.splitlines()
    assert line.startswith(f"{prog}: error: PyTorch is not installed here (no module torch)")
    assert "pip install --user torch torchvision" in line


def test_a_broken_pytorch_is_not_said_to_be_missing():
    """torch._C that cannot be imported is an installed torch that is broken: its traceback."""
    from sarn_ros.resources import torch_missing

    assert torch_missing(ModuleNotFoundError(name="torch._C")) is None
    assert torch_missing(ModuleNotFoundError(name="torchaudio")) is None
    assert torch_missing(ModuleNotFoundError(name="torchvision")) is not None


def test_skip_default_xml_file_skips_only_when_set_to_1(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """Fast DDS skips the working directory's default profile only for SKIP_DEFAULT_XML_FILE=1:
    set to anything else, that file is still the user's choice and is kept."""
    from sarn_ros.resources import DDS_PROFILE_VARIABLES, dds_profile_setting

    monkeypatch.chdir(tmp_path)
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text("<dds/>")
    env = {"ROS_DISTRO": "kilted"}
    for value in ("0", "", "yes"):
        assert dds_profile_setting("/p.xml", {**env, "SKIP_DEFAULT_XML_FILE": value}) is None
    skip = {**env, "SKIP_DEFAULT_XML_FILE": "1"}
    assert dds_profile_setting("/p.xml", skip) == (DDS_PROFILE_VARIABLES[1], "/p.xml")


@pytest.mark.parametrize(("distro", "localhost_only"), [("humble", "1"), ("jazzy", None)])
def test_dds_stays_on_this_machine_under_each_distributions_setting(
    monkeypatch: pytest.MonkeyPatch, distro: str, localhost_only: str | None
):
    """Humble has no ROS_AUTOMATIC_DISCOVERY_RANGE: there ROS_LOCALHOST_ONLY keeps the demo's
    camera off the network; later distributions deprecate it, so it is left unset."""
    from sarn_ros.resources import keep_dds_local

    monkeypatch.setenv("ROS_DISTRO", distro)
    for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    keep_dds_local()
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert os.environ.get("ROS_LOCALHOST_ONLY") == localhost_only


def test_a_tool_playing_a_camera_gets_a_domain_of_its_own(monkeypatch: pytest.MonkeyPatch):
    """own_ros_domain (sarn demo, sarn bench node): the given domain, else a random one in
    1..101, never 0 (ROS 2's default: a robot's), on loopback, with the packaged profile."""
    import random

    from sarn_ros import resources

    for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", *resources.DDS_PROFILE_VARIABLES):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("ROS_DOMAIN_ID", "0")
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    monkeypatch.delenv("ROS_DISTRO", raising=False)
    resources.own_ros_domain(42)
    assert os.environ["ROS_DOMAIN_ID"] == "42"
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    profile = str(resources.find_share_file("config/fastdds_shm.xml"))
    assert os.environ[resources.dds_profile_variable()] == profile
    monkeypatch.setattr(resources, "random", random.Random(0))  # reproducible draws
    drawn = set()
    for _ in range(1000):
        resources.own_ros_domain(None)
        drawn.add(int(os.environ["ROS_DOMAIN_ID"]))
    assert min(drawn) >= 1 and max(drawn) <= 101 and len(drawn) > 90
    for users in ("7", " 7"):  # the user's own domain is never drawn (it was 1 run in 101)
        for _ in range(300):
            monkeypatch.setenv("ROS_DOMAIN_ID", users)
            resources.own_ros_domain(None)
            assert os.environ["ROS_DOMAIN_ID"] != "7"


def test_share_files_come_from_the_overlay_first_and_missing_ones_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """An overlay workspace (first in AMENT_PREFIX_PATH) shadows the underlay, as ament does,
    and an installed share/ this interpreter's source tree; a file found nowhere raises
    FileNotFoundError naming where it looked."""
    from sarn_ros import resources

    def prefix(name: str) -> Path:
        root = tmp_path / name
        index = root / "share" / "ament_index" / "resource_index" / "packages"
        index.mkdir(parents=True)
        (index / "sarn_ros").touch()
        (root / "share" / "sarn_ros" / "config").mkdir(parents=True)
        (root / "share" / "sarn_ros" / "config" / "sarn_deblur.yaml").write_text(name)
        return root

    overlay, underlay, venv = prefix("overlay"), prefix("underlay"), prefix("venv")
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(map(str, (overlay, underlay))))
    found = resources.find_share_file("config/sarn_deblur.yaml")
    assert found == overlay / "share" / "sarn_ros" / "config" / "sarn_deblur.yaml"
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    monkeypatch.setattr(sys, "prefix", str(venv))
    assert resources.find_share_file("config/sarn_deblur.yaml").read_text() == "venv"
    with pytest.raises(FileNotFoundError, match=r"config/none\.yaml not found .*venv"):
        resources.find_share_file("config/none.yaml")


def test_every_path_readmes_layout_names_is_there():
    """README's Layout is a user's map of the tree: a moved or renamed file must not stay."""
    layout = (REPO / "README.md").read_text().split("## Layout", 1)[1].split("```")[1]
    lines = [line for line in layout.splitlines()[1:] if line and not line.startswith(" ")]
    # the first word of each entry, and every word of the last line's list of folders
    paths = [line.split()[0] for line in lines] + lines[-1].split()
    assert {"sarn_ros/archs/", "sarn_ros/training/", "CHANGELOG.rst", "test/"} <= set(paths)
    missing = [p for p in paths if not (REPO / p).exists()]
    assert not missing, missing


EMPTY = ": an empty path"
AS_FOLDER = "'out/' names a folder: name a file"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["eval", "--pairs", "x", "--save-images", ""], EMPTY),
        (["eval", "--pairs", "x", "--json", ""], EMPTY),
        (["deblur", "in.mp4", "-o", ""], EMPTY),
        (["train", "--run-dir", ""], EMPTY),
        (["export", "-o", ""], EMPTY),
        (["demo", "--out", ""], EMPTY),
        (["bench", "model", "--json", ""], EMPTY),
        (["eval", "--pairs", "x", "--json", "out/"], AS_FOLDER),
        # a Path drops the '/.' too
        (["eval", "--pairs", "x", "--json", "out/."], "'out/.' names a folder: name a file"),
        (["export", "-o", "out/"], AS_FOLDER),
        (["train", "--run-dir", "r", "--export", "out/"], AS_FOLDER),
        (["bench", "model", "--json", "out/"], AS_FOLDER),
        (["bench", "node", "--json", "out/"], AS_FOLDER),
    ],
)
def test_an_empty_path_or_a_file_named_as_a_folder_is_a_usage_error(
    argv, said, capsys, tmp_path, monkeypatch
):
    """Path("") is the working folder: `sarn eval --save-images ""` wrote its images there;
    `sarn eval --json out/` wrote its results to a file `out`: the '/' was dropped."""
    from sarn_ros.tools import cli

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(said)
    assert list(tmp_path.iterdir()) == []


def test_library_warnings_above_the_bar_are_named_by_their_library(monkeypatch, capsys):
    """onnxscript's warning about its version converter came out as "sarn export: The model
    version conversion is not supported ...", as if the tool said it."""
    import logging

    from sarn_ros.tools.options import warnings_above_bars

    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # pytest's capture: none here
    with warnings_above_bars("sarn export"):
        logging.getLogger("sarn_ros.offline").warning("written at 30 fps")
        logging.getLogger("onnxscript.version_converter").warning("not supported")
    assert capsys.readouterr().err.splitlines() == [
        "sarn export: written at 30 fps",
        "onnxscript.version_converter: not supported",
    ]


def test_setup_sh_keeps_a_venv_when_python_is_mistyped_or_too_old(tmp_path: Path) -> None:
    """`PYTHON=python3.99 bash scripts/setup.sh` deleted a working 6 GB .venv, then failed;
    a Python under 3.10 is refused as such, not by a pip resolution error later."""
    for name in ("scripts/setup.sh", "requirements.txt", "setup.py", "setup.cfg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes((REPO / name).read_bytes())
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "kept").write_text("")
    old = tmp_path / "python3.9"  # answers as an old Python would
    old.write_text('#!/bin/sh\ncase "$2" in *print*) echo 3 9;; *) exit 1;; esac\n')
    old.chmod(0o755)
    for python, said in (
        ("python3.99", "sarn_ros: PYTHON=python3.99 does not run"),
        (str(old), f"sarn_ros: {old} is Python 3.9; sarn_ros needs 3.10 or newer"),
    ):
        env = {**os.environ, "PYTHON": python}
        done = subprocess.run(
            ["bash", str(tmp_path / "scripts" / "setup.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1 and done.stderr.startswith(said), done.stderr
        assert (tmp_path / ".venv" / "kept").exists()
