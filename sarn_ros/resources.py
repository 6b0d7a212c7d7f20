"""Find the package's shared files (weights, config, launch) however it was installed.

A colcon/apt install puts them under ``<prefix>/share/sarn_ros`` and registers the package in
the ament index; ``pip install .`` puts them under ``sys.prefix/share/sarn_ros``; an editable
install (``pip install -e .``, the bare-machine venv) installs no data files, so the source tree
next to the package is used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

PACKAGE = "sarn_ros"
# Fast DDS 2 (ROS 2 up to Jazzy) reads only the first, Fast DDS 3 (Kilted on) the second (and,
# deprecated, the first)
DDS_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
DEFAULT_PROFILE_FILES = ("DEFAULT_FASTRTPS_PROFILES.xml", "DEFAULT_FASTDDS_PROFILES.xml")
FAST_DDS_2_DISTROS = ("foxy", "galactic", "humble", "iron", "jazzy")


def keep_dds_local() -> None:
    """DDS discovery on this machine only: ROS_AUTOMATIC_DISCOVERY_RANGE from Iron on,
    ROS_LOCALHOST_ONLY before it (Humble; deprecated later, so only set there)."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if os.environ.get("ROS_DISTRO", "").lower() in ("foxy", "galactic", "humble"):
        os.environ["ROS_LOCALHOST_ONLY"] = "1"


def dds_profile_variable(env: Mapping[str, str] = os.environ) -> str:
    """The profile variable this ROS 2 distribution's Fast DDS reads (``ROS_DISTRO`` is set by
    every sourced install; the Kilted wheels of a bare venv leave it unset)."""
    fast_dds_2 = env.get("ROS_DISTRO", "").lower() in FAST_DDS_2_DISTROS
    return DDS_PROFILE_VARIABLES[0] if fast_dds_2 else DDS_PROFILE_VARIABLES[1]


def dds_profile_setting(
    profile: Path | str, env: Mapping[str, str] = os.environ
) -> tuple[str, str] | None:
    """(variable, value) that points this distribution's Fast DDS at ``profile``, or None
    where the user chose transports of their own: a profile file (under either variable),
    ``FASTDDS_BUILTIN_TRANSPORTS``, or the default profile file in the working directory. The
    node, the tools and the launch files (on their launch context's environment) all decide
    by this."""
    variable = dds_profile_variable(env)
    if any(env.get(v) for v in DDS_PROFILE_VARIABLES) or env.get("FASTDDS_BUILTIN_TRANSPORTS"):
        return None
    # Fast DDS loads this file from the working directory by itself
    default_file = DEFAULT_PROFILE_FILES[DDS_PROFILE_VARIABLES.index(variable)]
    if env.get("SKIP_DEFAULT_XML_FILE") != "1" and Path(default_file).is_file():
        return None
    return variable, str(profile)


def use_dds_profile(profile: Path | str) -> None:
    """Point Fast DDS at ``profile`` unless the user set a profile file of their own."""
    if (setting := dds_profile_setting(profile)) is not None:
        os.environ[setting[0]] = setting[1]


def use_packaged_dds_profile() -> None:
    """Point Fast DDS at the packaged large shared-memory profile unless the user chose one:
    with the default 512 KiB segment, best-effort 720p images are lost between processes."""
    # unset or empty: ROS 2's default RMW, Fast DDS
    if "fastrtps" not in (os.environ.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp"):
        return
    with contextlib.suppress(FileNotFoundError):
        use_dds_profile(find_share_file("config/fastdds_shm.xml"))


def own_ros_domain(domain_id: int | None) -> None:
    """For the tools that play a camera (demo, node benchmark), whose image_raw must not reach
    a running robot: DDS on this machine only, on ``domain_id`` or a random domain (within
    1-101, which Linux's ephemeral ports leave free, never the user's own), with the packaged
    profile."""
    keep_dds_local()
    if domain_id is None:
        users = os.environ.get("ROS_DOMAIN_ID", "").strip()
        domain_id = random.choice([d for d in range(1, 102) if str(d) != users])
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    use_packaged_dds_profile()


def share_dirs() -> list[Path]:
    """Candidate share directories, most specific first."""
    dirs: list[Path] = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if (
            prefix
            and (
                Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
            ).exists()
        ):
            dirs.append(Path(prefix) / "share" / PACKAGE)
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)
    source = Path(__file__).resolve().parent.parent
    if (source / "package.xml").is_file():  # the source tree (an editable install), not the
        dirs.append(source)  # site-packages an install puts the package in
    return [d for d in dirs if d.is_dir()]


def find_share_file(relative: str) -> Path:
    """Path of ``share/sarn_ros/<relative>``; FileNotFoundError lists where it looked."""
    candidates = share_dirs()
    for d in candidates:
        p = d / relative
        if p.exists():
            return p
    looked = ", ".join(str(d) for d in candidates) or "(no share directory found)"
    raise FileNotFoundError(f"{relative} not found in the sarn_ros share directories: {looked}")


SCRIPTS = {"sarn_deblur_node": "sarn_ros.ros.entry", "sarn": "sarn_ros.tools.cli"}


def script_command(name: str) -> list[str]:
    """How to run console script ``name`` from this interpreter: the script beside the
    interpreter (a venv, pip), else its module (``ros2 run`` and ``colcon test`` use
    /usr/bin/python3, while colcon puts the scripts under install/sarn_ros/lib/sarn_ros)."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else [sys.executable, "-m", SCRIPTS[name]]


def param_string(value: object) -> str:
    """``value`` as a ``-p name:=value`` that rcl reads as a string whatever it looks like:
    it reads the text as YAML, so weights named ``123`` or ``true`` reached the node as an
    integer or a bool, which it refused ("of type 'INTEGER', expecting type 'STRING'")."""
    return "'" + str(value).replace("'", "''") + "'"


def node_command() -> list[str]:
    """How to start sarn_deblur_node from this interpreter (``script_command``)."""
    return script_command("sarn_deblur_node")


def launch_file_module(path: str) -> ModuleType:
    """A launch file as a module, so the launch files share one another's helpers and
    argument tables instead of copying them."""
    spec = importlib.util.spec_from_file_location(Path(path).name.split(".")[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torch_missing(exc: ModuleNotFoundError) -> str | None:
    """One line for a PyTorch that is not installed (None for any other module): the
    traceback said only "No module named 'torch'", from `sarn --version` too. rosdep installs
    it on Kilted and later only (README: PyTorch)."""
    name = exc.name or ""
    if name not in ("torch", "torchvision"):  # torch._C: installed but broken, its traceback
        return None
    return (
        f"PyTorch is not installed here (no module {name}): python3 -m pip install --user "
        "torch torchvision, or apt's python3-torch (Ubuntu 25.04 on), or NVIDIA's wheels on a "
        "Jetson (README: PyTorch)"
    )


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for a node the tools start: SIGTERM (its clean stop) when the tool
    that started it dies, also of SIGKILL, which left the node running orphaned (Linux; None
    elsewhere). prctl is looked up here, in the parent: the child runs only the call. The
    signal follows the *thread* that starts the node: start it from one that lives as long."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl, parent = ctypes.CDLL(None).prctl, os.getpid()

    def in_child() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the tool died before the call: no signal would come
            os._exit(1)

    return in_child
