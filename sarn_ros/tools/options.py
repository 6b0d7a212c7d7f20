"""Command-line pieces the ``sarn`` subcommands share: the help layout, number ranges, the
bag options, output paths checked before the work."""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import logging
import math
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..ros.image_conversion import DEBAYER

DEBAYER_DEFAULT = "vng"  # the node's debayer default


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` names each option's default, as a user needs to know what a bare command
    does; not where the default means "not given" (None, off, an empty list) or where the help
    text already says it in words."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == []
        if unset or "default" in text:
            return text
        if isinstance(action.default, list):  # nargs: as typed, space-separated
            return f"{text} (default: {' '.join(map(str, action.default))})"
        return super()._get_help_string(action)


class Gathered(argparse.Action):
    """A list option given more than once gathers every value (``--data a --data b`` is
    ``a b``), as the user meant: argparse's own store kept only the last, without a word.
    Given at all, it replaces its default rather than adding to it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        so_far = getattr(namespace, self.dest, None)
        kept = [] if so_far is None or so_far is self.default else so_far
        setattr(namespace, self.dest, [*kept, *values])


class Given(argparse.Action):
    """Store, noting the option as given and whether at its default (:func:`spelled`): the
    default spelled out is a choice too, said where the input has no use for it (`--fps 30`
    on a video was ignored without a word where `--fps 20` was refused)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = {**getattr(namespace, "given", {}), self.dest: values == self.default}


def spelled(args: argparse.Namespace, dest: str) -> str | None:
    """How option ``dest`` (one stored by :class:`Given`) came: "set" away from its default,
    "default" spelled out at it (a script passing every option), None not given."""
    given = getattr(args, "given", {})
    if dest not in given:
        return None
    return "default" if given[dest] else "set"


def split_idle(idle: dict[str, tuple[str | None, bool]]) -> tuple[list[str], list[str]]:
    """Of ``idle`` (flag: how it came, whether this run has no use for it), the flags set in
    vain, to refuse (they used to be ignored without a word), and those spelled out at their
    default in vain, to note: a script passing every option is no error."""
    refused = [flag for flag, (how, vain) in idle.items() if vain and how == "set"]
    noted = [flag for flag, (how, vain) in idle.items() if vain and how == "default"]
    return refused, noted


def once_each(values: list[Any], where: Callable[[Any], Path] | None = None) -> list[Any]:
    """``values`` in order without repeats, an existing path's spellings (`a`, `./a`, its
    absolute path) counting as one; ``where`` gives the path a value stands for (a packaged
    weights name its file), raising for none (an unknown name is kept to be refused later)."""
    seen, kept = set(), []
    for v in values:
        try:
            path = Path(v) if where is None else where(v)
        except (TypeError, ValueError, RuntimeError):  # CheckpointError is a RuntimeError
            path = None
        key = path.resolve() if path is not None and path.exists() else v
        if key not in seen:
            seen.add(key)
            kept.append(v)
    return kept


# synthetic blur: past these the camera moves out of the frame within an exposure, and every
# value gives the same figures (--exposure 1e-300 and --blur-px 1e300 alike)
MAX_BLUR_PX = 1000.0
MIN_EXPOSURE = 0.001  # the generator's own floor for the motion between frames


def nonempty(text: str) -> str:
    """An argparse type: text that is not empty, kept as typed (a trailing '/' says folder)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return text


def path_arg(text: str) -> Path:
    """An argparse type: a path that is not empty (``Path("")`` is the working folder:
    ``--save-images ""`` wrote there)."""
    return Path(nonempty(text))


def file_arg(text: str) -> Path:
    """An argparse type: :func:`path_arg` of a file to write; a trailing '/' or '/.' names a
    folder, which a Path drops (`--json out/` wrote a file ``out``)."""
    if text.endswith(("/", os.sep)) or os.path.basename(text) in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} names a folder: name a file")
    return path_arg(text)


def ranged(
    kind: Callable[[str], float],
    low: float | None = None,
    high: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
) -> Callable[[str], float]:
    """An argparse type: ``kind`` of the text, finite, within ``low``/``high`` (inclusive) or
    ``above``/``below`` (exclusive). Out of range is a usage error naming the range, where it
    was a traceback minutes in, NaN weights, or a hang (OpenCV's writer at inf fps)."""

    def num(v: float) -> str:  # whole bounds whole: 4294967295, not 4.29497e+09
        return str(v) if isinstance(v, int) else f"{v:g}"

    opening = f"({num(above)}" if above is not None else "(-inf"
    start = f"[{num(low)}" if low is not None else opening
    closing = f"{num(below)})" if below is not None else "inf)"
    end = f"{num(high)}]" if high is not None else closing
    if low is not None and high is None and below is None:
        wanted = f"at least {num(low)}"
    elif above is not None and high is None and below is None:
        wanted = f"above {num(above)}"
    else:
        wanted = f"in {start}, {end}"

    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            number = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"not {number}: {text!r}") from None
        # inf is above 0: "must be above 0, got inf" misled (1e400 as an int is finite)
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number {wanted}, got {text}")
        inside = (
            (low is None or value >= low)
            and (high is None or value <= high)
            and (above is None or value > above)
            and (below is None or value < below)
        )
        if not inside:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    return check


class BarSafeHandler(logging.Handler):
    """Writes a record as a line of its own above any tqdm bar, named like the tool's lines
    where it is the package's, else by its library's logger (onnxscript's line about its
    version converter read as sarn export's own)."""

    def __init__(self, prog: str) -> None:
        super().__init__(logging.WARNING)
        self.prog = prog

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        ours = record.name.split(".")[0] == "sarn_ros"
        tqdm.write(f"{self.prog if ours else record.name}: {self.format(record)}", file=sys.stderr)


@contextmanager
def warnings_above_bars(prog: str) -> Iterator[None]:
    """The package's warnings during a command (a video's rounded frame rate, a failed
    torch.compile): Python's last-resort handler wrote them onto the end of the progress bar's
    line, without the tool's name. Only where nothing handles them already: a caller's own
    logging set-up (a script, a test's capture) is left as it is."""
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    handler = BarSafeHandler(prog)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP taken as Ctrl-C is: ``timeout``, ``docker stop``, systemd or a closed
    terminal killed the process at once, and left a hidden half-written video behind."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + signum  # the shell's code for a process the signal ended


def how_stopped(stop: KeyboardInterrupt) -> tuple[str, int]:
    """The words and exit code of a stop: Ctrl-C's, or a :class:`Stopped` signal's; of the
    first, where a second came in the clean-up of the first (raised there, it holds the first
    as its context): a Ctrl-C then SIGTERM said "stopped by SIGTERM", exit 143."""
    while isinstance(stop.__context__, KeyboardInterrupt):
        stop = stop.__context__
    if isinstance(stop, Stopped):
        return f"stopped by {stop}", stop.code
    return "interrupted", 130


@contextmanager
def folder_lock(folder: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``folder`` itself (flock on its descriptor: no lock file is
    left in it, and a killed process holds none) while in this block; False where another
    process holds it. A folder that cannot be opened, or a filesystem without locks, counts
    as free: the tool runs as it did before there was a lock."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError:
            pass
        yield True
    finally:
        os.close(fd)


# what `timeout`, `docker stop`, systemd (SIGTERM) and a closed terminal (SIGHUP) send
STOP_SIGNALS = [s for n in ("SIGTERM", "SIGHUP") if (s := getattr(signal, n, None)) is not None]


@contextmanager
def stops_as_interrupts() -> Iterator[None]:
    """Raise :class:`Stopped` on SIGTERM and SIGHUP while in this block, where they would end
    the process (not where ignored, as under ``nohup``); only the main thread can."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        if taken:  # the first is final: a second (a closed terminal sends SIGHUP twice) would
            return  # cut the clean-up short, also one met as the handlers are put back
        taken.append(signum)
        for s in old:  # ignored till restored below; not one already put back
            if signal.getsignal(s) is stop:
                signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    taken: list[int] = []
    old: dict[int, Any] = {}  # filled before each is replaced: a signal in between restores it
    try:
        for s in STOP_SIGNALS:
            if signal.getsignal(s) is signal.SIG_DFL:
                old[s] = signal.SIG_DFL
                signal.signal(s, stop)
        yield
    finally:
        put_back(old)


def put_back(old: dict[int, Any]) -> None:
    """``old``'s signal handlers put back, every one also where one already back raises as
    the next is put (a Ctrl-C meeting Python's own handler): the stand-ins left would
    swallow every later SIGTERM of the run."""
    pending = dict(old)
    try:
        for s, handler in old.items():
            signal.signal(s, handler)
            del pending[s]
    finally:
        for s, handler in pending.items():
            signal.signal(s, handler)


@contextmanager
def stops_held(signals: Sequence[int] | None = None) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP (or ``signals``) held back till the end of this block, then
    delivered to the handler they would have met: one in the middle of writing a --json left
    half a file that did not parse (a Ctrl-C too, and the next run refused the path). Not
    where ignored (nohup, or a stop already taken); only the main thread can."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    old: dict[int, Any] = {}
    try:
        for s in [signal.SIGINT, *STOP_SIGNALS] if signals is None else signals:
            handler = signal.getsignal(s)
            if handler is not signal.SIG_IGN and handler is not None:
                old[s] = handler  # filled before it is replaced: a signal between restores it
                signal.signal(s, lambda signum, _frame: came.append(signum))
        yield
    finally:  # delivered after an error in the block too (a disk full, a Ctrl-C): not lost
        try:
            put_back(old)
        finally:
            if came:
                signal.raise_signal(came[0])


def plural(n: int, word: str) -> str:
    """``1 frame``, ``2 frames``."""
    return f"{n} {word}{'s' * (n != 1)}"


def add_bag_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--topics`` and ``--debayer``: which camera topics of a bag, demosaiced how."""
    p.add_argument(
        "--topics",
        nargs="+",
        action=Gathered,
        help="bag image topics (default: every Image/CompressedImage but depth, one per camera)",
    )
    p.add_argument(
        "--debayer",
        action=Given,
        default=DEBAYER_DEFAULT,
        choices=tuple(DEBAYER),
        help="bags: demosaicing of bayer_* topics, as the node's debayer parameter",
    )


def add_gap_argument(p: argparse.ArgumentParser | argparse._ArgumentGroup, use: str) -> None:
    """``--max-gap-s``: where a bag camera's stamps break off (further apart, or back), as the
    node's ``max_gap_s`` where it restarts the recurrent state; ``use`` says what it does."""
    from ..engine import MAX_GAP_S

    p.add_argument(
        "--max-gap-s",
        action=Given,
        type=ranged(float, 0, 3600),
        default=MAX_GAP_S,
        help=f"bags: {use} where a camera's stamps go back or are further apart than this, as "
        "the node's max_gap_s (0: only where they go back; raise it for a camera slower than "
        "2 fps)",
    )


def forget_empty(folder: Path, top: Path) -> None:
    """Remove the output folder a run made, and its parents up to ``top`` it made with
    it, where nothing was written into them."""
    for made in (folder, *folder.parents):
        try:
            made.rmdir()
        except OSError:  # not empty (written into), or gone
            return
        if made == top:
            return


def made_folder(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that is not there yet (None where it is):
    what :func:`forget_empty` removes if the run that makes it writes nothing."""
    whole = folder.absolute()
    return next((p for p in (*reversed(whole.parents), whole) if not p.exists()), None)


def check_writable(path: Path, flag: str, folder: bool, replaced: bool = False) -> None:
    """Raise ValueError where ``path`` plainly cannot take the output (a folder where the file
    goes or the reverse, a file among its parents, a link to nothing, a name too long, no
    file can be made where it goes), so that is known before the evaluation, not after it.
    A trial file shows write access where permission bits do not: root under /proc, a
    read-only mount. ``replaced``: a file written beside ``path`` and renamed over it, whose
    folder must take a new file even where ``path`` is there and writable."""
    try:
        where = _writable_in(path, flag, folder, replaced)
    except OSError as exc:  # ENAMETOOLONG from a stat: a traceback otherwise
        raise ValueError(f"{flag} {path}: {exc.strerror}") from None
    if where is None:
        return
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:  # ENOENT for a folder that is there: /proc makes no file
        why = "no file can be made there" if exc.errno == errno.ENOENT else exc.strerror
        raise ValueError(f"{flag} {path}: cannot write in {where} ({why})") from None


JSON_CHECK_BYTES = 256 << 20  # an earlier run's results read whole to check them: far less


def check_json_output(path: Path) -> None:
    """:func:`check_writable` for a ``--json`` file, which is replaced whole: an existing file
    that holds no JSON is refused (``--json`` given the weights being measured replaced a
    10 MB graph with 640 bytes of rows, exit 0). An earlier run's results are replaced."""
    from ..image_files import kernel_path  # OpenCV: not imported for every command's parser

    path = kernel_path(path)  # where it is written: `new/../old.json` is ./old.json
    check_writable(path, "--json", folder=False)
    if not path.is_file():
        return
    try:
        with path.open("rb") as f:
            data = f.read(JSON_CHECK_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"--json {path}: {exc.strerror}") from None
    try:
        if len(data) > JSON_CHECK_BYTES:
            raise ValueError("larger than any results file")
        if data.strip():
            json.loads(data.decode("utf-8-sig"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(
            f"--json {path} exists and holds no JSON (weights, an image?): give a new file or "
            "remove it first"
        ) from None


def say_json_kept(prog: str, path: Path | None, why: str) -> None:
    """Say that ``--json`` holds an earlier run's results where this run wrote none: it would
    be read as this run's."""
    from ..image_files import kernel_path

    if path is not None and kernel_path(path).exists():
        print(
            f"{prog}: --json {path} not written ({why}): it is as an earlier run left it",
            file=sys.stderr,
        )


def _writable_in(path: Path, flag: str, folder: bool, replaced: bool = False) -> Path | None:
    """The folder :func:`check_writable` tries a file in; None for a file to overwrite that
    is writable."""
    if path.is_symlink() and not path.exists():  # mkdir and open would fail on it later
        raise ValueError(f"{flag} {path} is a link to nothing (its target is missing or a loop)")
    if path.exists():
        if path.is_dir() != folder:
            kinds = ("file", "folder") if folder else ("folder", "file")
            raise ValueError(f"{flag} {path} is a {kinds[0]}, not a {kinds[1]}")
        if not folder:
            if replaced:  # a rename replaces a read-only file: its folder must take one
                return path.absolute().parent
            if not os.access(path, os.W_OK):
                raise ValueError(f"{flag} {path} is not writable")
            return None
        return path
    for p in path.absolute().parents:  # mkdir -p failed on it with a traceback
        if p.is_symlink() and not p.exists():
            raise ValueError(f"{flag} {path}: {p} is a link to nothing")
    where = next(p for p in path.absolute().parents if p.exists())
    if not where.is_dir():
        raise ValueError(f"{flag} {path}: {where} is a file, not a folder")
    return where


def add_domain_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """--domain-id of a tool that plays a camera (``resources.own_ros_domain``)."""
    parser.add_argument(
        "--domain-id",
        type=ranged(int, 0, 101),  # not choices: its error listed all 102 numbers
        metavar="0..101",
        help=f"ROS_DOMAIN_ID of the {what} (to watch it in rviz, say); default: a random one, "
        "not the environment's, so its camera never reaches a running robot",
    )
