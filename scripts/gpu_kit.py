"""Carry the training sources to a lent GPU machine and rebuild the training sets there.

A lent machine takes at most 64 MiB of working tree and lends 15 minutes in all, while the
built sets are 10 GB: so the sharp sources travel, compressed, and the sets are rebuilt there,
one `sarn train --steps 0` per source folder and blur setting, in parallel (weights/README,
ninth and nineteenth sections).

Here, into a git-ignored folder that `run` carries:

    .venv/bin/python scripts/gpu_kit.py pack --out .gpukit \\
        --videos $S/Vid4/city $S/Vid4/foliage $S/Vid4/walk \\
        --stills $S/CSet5 $S/CSet14 $S/CBSD68 --large-stills $X/CUrban100 $X/CSun_Hays80 \\
        --val $S/Vid4/calendar

Real blurred/sharp sequences (``--train-pairs``, e.g. `scripts/highspeed_pairs.py` output) travel
too, are built once (no synthetic blur) and, with ``build --real-copies K``, drawn K times as
often: a few real sequences beside two thousand synthetic ones would otherwise be rare.

There (16 cores: about 2 minutes), then train with ``--trainset .gputs``:

    python scripts/gpu_kit.py build --kit .gpukit --out .gputs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runs from a bare checkout: the lent machine installs nothing

from sarn_ros.data.datasets import (  # noqa: E402
    find_pair_dirs,
    list_images,
    pair_files,
    read_rgb,
    resize_by,
)
from sarn_ros.image_files import imwrite  # noqa: E402
from sarn_ros.tools.options import (  # noqa: E402
    STOP_SIGNALS,
    Stopped,
    how_stopped,
    ranged,
    stops_as_interrupts,
    stops_held,
)

RECIPE = "recipe.json"
# build's exit code where some sets were built and some failed: gpu_run.sh trains on those;
# not 1, which a traceback gives too
PARTIAL = 3
CARRY_MIB = 64  # the working tree a lent machine's run takes, the carried kit in it
# all that `pack` writes at the top
PACKED = {"videos", "stills", "large", "pairs", "val", "val_pairs", RECIPE}


def _write_webp(
    images: list[Path], out: Path, scale: float, quality: int, limit: int | None
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for path in images[:limit]:
        rgb = resize_by(read_rgb(path), scale)
        try:  # WebP holds at most 16383 px a side; or the disk is full
            imwrite(out / f"{path.stem}.webp", rgb[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, quality])
        except OSError as exc:
            raise OSError(f"cannot pack {path}: {exc}") from None


def _packed_name(sequence: str) -> str:
    """The folder a pair sequence is packed as (a nested ``a/b`` as ``a_b``)."""
    return sequence.replace("/", "_")


def _one_name_each(images: list[Path]) -> str | None:
    """Why ``images`` would lose a frame as WebP: two of one stem (a.png, a.jpg) pack as one."""
    stems: dict[str, Path] = {}
    for path in images:
        if path.stem in stems:
            return f"{stems[path.stem]} and {path} would both pack as {path.stem}.webp"
        stems[path.stem] = path
    return None


def _source_refusal(d: str, out: Path) -> str | None:
    """Why the source folder ``d`` cannot travel: missing, or inside --out, which a pack
    replaces (a source in the earlier pack was deleted with it)."""
    if not Path(d).is_dir():
        return f"no such folder: {d}"
    if Path(d).resolve().is_relative_to(out.resolve()):
        return f"{d} is inside --out {out}, which the pack replaces"
    return None


def _pack_refusal(args: argparse.Namespace) -> str | None:
    """Why `pack` would lose, mix or fail on data, found before anything is written: `build`
    names each set and run by its packed folder's name alone, pairs are packed by sequence
    name, and a pack replaces its --out wholly (so nothing stale is carried or validated on).
    A folder without images, or pairs that do not pair, failed only at `build` on the lent
    machine."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file"
    names = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if names and (RECIPE not in names or not names <= PACKED):
        return f"--out {out} is not an earlier pack: give a new or empty folder"
    sources = [*args.videos, *args.stills, *args.large_stills, *args.train_pairs]
    sources += [*args.val_pairs, *([args.val] if args.val else [])]
    for d in sources:
        if why := _source_refusal(d, out):
            return why
    trained = [*args.videos, *args.stills, *args.large_stills, *args.train_pairs]
    given: dict[Path, str] = {}  # one folder under two names was packed twice, drawn twice
    for d in trained:
        if (real := Path(d).resolve()) in given:
            return f"{given[real]} and {d}: the same folder"
        given[real] = d
    held = [("--val", args.val)] if args.val else []
    for flag, d in [*held, *(("--val-pairs", d) for d in args.val_pairs)]:
        real = Path(d).resolve()
        if any(real.is_relative_to(t) or t.is_relative_to(real) for t in given):
            return f"{flag} {d} is trained on too: held out, it must be a folder of its own"
    seen: dict[str, str] = {}
    for d, size in [(d, None) for d in args.videos] + [
        (d, args.part_size) for d in [*args.stills, *args.large_stills]
    ]:
        parts = _parts(Path(d), size)
        if not parts[0][1]:
            return f"no images in {d} (folders in it are not read: give them)"
        for name, images in parts:
            if name in seen:
                same = Path(d).resolve() == Path(seen[name]).resolve()
                return f"{seen[name]} and {d}: the same folder{'' if same else ' name'} ({name})"
            seen[name] = d
            if why := _one_name_each(images):
                return why
    val = list_images(Path(args.val))[: args.val_frames] if args.val else []
    if args.val and not val:
        return f"no images in --val {args.val}"
    if why := _one_name_each(val):
        return why
    for flag, roots in (("--train-pairs", args.train_pairs), ("--val-pairs", args.val_pairs)):
        packed: dict[str, str] = {}
        for root in roots:
            found = find_pair_dirs(Path(root))
            if not found:
                return f"{flag} {root}: no blurred/sharp sequences (layouts of sarn train --data)"
            if root in args.train_pairs and Path(root).name in seen:
                return f"{seen[Path(root).name]} and {root}: the same folder name"
            seen.setdefault(Path(root).name, root)
            for name, blur, sharp in found:
                try:
                    pair_files(name, blur, sharp)
                except ValueError as exc:
                    return f"{flag} {root}: {exc}"
                key = _packed_name(name)
                if key in packed:
                    return f"{flag}: {packed[key]} and {root} both hold a sequence {key}"
                packed[key] = root
    return None


def siblings(out: Path) -> tuple[Path, Path]:
    """A pack's hidden siblings of --out: the new pack written, then the old one swapped out
    (.gpukit: .gpukit.new, .gpukit.old)."""
    hidden = out.name if out.name.startswith(".") else f".{out.name}"
    return out.with_name(f"{hidden}.new"), out.with_name(f"{hidden}.old")


def pack(args: argparse.Namespace) -> int:
    """Into a sibling of --out, then swapped in: an earlier pack there goes wholly, and one
    that fails half-way leaves the earlier pack as it was."""
    out = Path(os.path.abspath(args.out))
    new, old = siblings(out)
    for d in (new, old):  # a killed pack's
        shutil.rmtree(d, ignore_errors=True)
    swapped = False
    with stops_as_interrupts():  # `timeout`, a closed terminal: as a Ctrl-C, new removed
        try:
            new.mkdir(parents=True)
            if _pack_into(args, new):  # over --budget-mib: not worth the earlier one
                return 1
            with stops_held():  # a stop between lost --out
                if out.exists():
                    out.rename(old)
                try:
                    new.rename(out)
                except OSError:  # both renames or neither
                    if old.exists():
                        old.rename(out)
                    raise
                swapped = True
            shutil.rmtree(old, ignore_errors=True)
        except (OSError, ValueError) as exc:  # a disk full, an unreadable image
            print(f"gpu_kit.py pack: error: {exc} (--out left as it was)", file=sys.stderr)
            return 1
        except KeyboardInterrupt as stop:
            said, code = how_stopped(stop)
            kept = "--out holds the new pack" if swapped else "--out left as it was"
            print(f"gpu_kit.py pack: {said} ({kept})", file=sys.stderr)
            return code
        finally:
            shutil.rmtree(new, ignore_errors=True)
            if swapped:  # the rest of the earlier pack, where a stop cut its removal short
                shutil.rmtree(old, ignore_errors=True)
    return 0


def _parts(folder: Path, size: int | None) -> list[tuple[str, list[Path]]]:
    """A folder of stills in parts of at most ``size`` (a video whole): `build` runs one job
    per folder, so one large folder was the long pole of the whole build on 16 cores."""
    images = list_images(folder)
    if size is None or len(images) <= size:
        return [(folder.name, images)]
    chunks = [images[i : i + size] for i in range(0, len(images), size)]
    return [(f"{folder.name}_part{k}", c) for k, c in enumerate(chunks, 1)]


def _pack_into(args: argparse.Namespace, out: Path) -> int:
    """Sources as WebP: videos and stills at full size, large stills downscaled (their sets are
    built at x0.5 and x0.75 of the original anyway), the validation video at its eval scale."""
    folders = []
    for kind, dirs, scale, quality, scales in (
        ("videos", args.videos, 1.0, args.quality, [0.5, 1.0]),
        ("stills", args.stills, 1.0, args.quality, [0.5, 1.0]),
        ("large", args.large_stills, args.large_scale, args.large_quality, [0.5, 0.75]),
    ):
        for d in map(Path, dirs):
            for name, images in _parts(d, None if kind == "videos" else args.part_size):
                _write_webp(images, out / kind / name, scale, quality, None)
                folders.append({"path": f"{kind}/{name}", "packed_scale": scale, "scales": scales})
    recipe: dict[str, object] = {"folders": folders}
    # real blur: packed whole, built at the recipe's scales
    _pack_pairs(args.train_pairs, out / "pairs", 1.0, args.train_pairs_quality, None)
    if args.train_pairs:
        recipe["pairs"] = {"path": "pairs", "scales": args.train_pairs_scales}
    if args.val:  # lossy too: it ranks checkpoints, `sarn eval` here decides what ships
        val = list_images(Path(args.val))
        _write_webp(val, out / "val", args.val_scale, args.val_quality, args.val_frames)
    val_pairs = out / "val_pairs"  # `sarn train --val-pairs` reads it
    _pack_pairs(args.val_pairs, val_pairs, args.val_scale, args.val_quality, args.val_frames)
    (out / RECIPE).write_text(json.dumps(recipe, indent=1) + "\n")
    mib = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    tree = tree_mib(leave=Path(os.path.abspath(args.out)))  # as pack() names it
    beside = "" if tree is None else f" (+{tree:.1f} MiB of working tree: {mib + tree:.1f} carried)"
    print(f"{args.out}: {len(folders)} source folders, {mib:.1f} MiB{beside}")
    over = [f"--budget-mib {args.budget_mib:g}"] * (mib > args.budget_mib)
    if tree is not None and mib + tree > CARRY_MIB:  # `run` refused it only on the way there
        over.append(f"the {CARRY_MIB} MiB a run carries, with the working tree")
    if over:
        print(
            f"gpu_kit.py pack: over {' and '.join(over)}: lower --quality or --large-scale "
            "(--out left as it was)",
            file=sys.stderr,
        )
        return 1
    return 0


def tree_mib(leave: Path | None = None) -> float | None:
    """MiB of the working tree that travels beside the kit (tracked and not ignored files, as
    `run` carries them), but for ``leave`` (a pack's --out that git does not ignore: the kit,
    counted on its own) and the pack's own ``.new``/``.old`` siblings; None outside a git
    checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    files = [ROOT / os.fsdecode(name) for name in listed.split(b"\0") if name]
    if leave is not None:
        skip = [d.resolve() for d in (leave, *siblings(leave))]
        files = [f for f in files if not any(f.resolve().is_relative_to(d) for d in skip)]
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


def _pack_pairs(dirs: list[str], out: Path, scale: float, quality: int, frames: int | None) -> None:
    """Real blurred/sharp sequences in GoPro's layout, ``out/<name>/{blur,sharp}``, their
    frames matched as training reads them."""
    for d in dirs:
        for name, blur, sharp in find_pair_dirs(Path(d)):
            files = pair_files(name, blur, sharp, frames)
            for side, images in zip(("blur", "sharp"), files, strict=True):
                _write_webp(images, out / _packed_name(name) / side, scale, quality, None)


def _build_job(run: Path, trainset: Path, data: Path, scales: list, *blur: str) -> list[str]:
    """`sarn train --steps 0`: builds the set only, with a small crop so a copy is kept for
    any training crop."""
    return [
        *("train", "--run-dir", str(run), "--trainset", str(trainset), "--data", str(data)),
        *("--scales", *map(str, scales), *blur),
        *("--steps", "0", "--crop", "16", "--clip-len", "2"),
    ]


def build_jobs(
    kit: Path, out: Path, runs: Path, blur_px: list[float], linear: list[float]
) -> list[list[str]]:
    """One `sarn train --steps 0` per folder, blur length and linear-light share. Scales and
    blur are of the ORIGINAL sources: a folder packed at x0.75 is built at x0.667 and x1 (the
    original's x0.5 and x0.75) with 0.75 of the blur, since --blur-px is per input pixel.
    The large stills are built at x0.5 and x0.75 only, as `mix10` was (memory)."""
    recipe = json.loads((kit / RECIPE).read_text())
    jobs = []
    for f in recipe["folders"]:
        packed = f["packed_scale"]
        scales = sorted(round(s / packed, 6) for s in f["scales"])
        for px in blur_px:
            for ll in linear:
                name = Path(f["path"]).name
                jobs.append(
                    _build_job(
                        runs / f"{name}_b{px:g}_ll{ll:g}",
                        out / f"b{px:g}_ll{ll:g}" / name,
                        kit / f["path"],
                        scales,
                        *("--blur-px", f"{px * packed:g}", "--linear-light", f"{ll:g}"),
                    )
                )
    if pairs := recipe.get("pairs"):  # real blur: built once, no generator settings
        jobs.append(
            _build_job(
                runs / "real_pairs", out / "real" / "copy1", kit / pairs["path"], pairs["scales"]
            )
        )
    return jobs


def copy_real(out: Path, copies: int) -> int:
    """Hard links of the built real set as ``real/copy2``..: the sampler weights sequences by
    their clips, so K copies draw the real sequences K times as often, at no disk cost."""
    base = out / "real" / "copy1"
    files = sorted(base.rglob("*.npz")) if base.is_dir() else []
    for k in range(2, copies + 1):
        for f in files:
            dst = out / "real" / f"copy{k}" / f.relative_to(base)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.unlink(missing_ok=True)  # a build again into the same --out (a resumed command)
            os.link(f, dst)
    return len(files) * max(copies, 1 if files else 0)


def stale_sets(out: Path, jobs: list[list[str]], copies: int) -> list[Path]:
    """What an earlier build left in ``out`` that this one does not make: another --blur-px's
    sets, or real/copy3 after --real-copies 3 then 1, still drawn by the sampler. A build
    again with the same settings (a resumed command) finds none."""
    made = {Path(job[job.index("--trainset") + 1]) for job in jobs}
    if out / "real" / "copy1" in made:
        made |= {out / "real" / f"copy{k}" for k in range(2, copies + 1)}
    parents = {m.parent for m in made}
    found = [p for p in out.iterdir() if p not in parents] if out.is_dir() else []
    found += [p for d in parents if d.is_dir() for p in d.iterdir() if p not in made]
    return sorted(p for p in found if not p.name.startswith("."))  # sarn train's own partials


def build(args: argparse.Namespace) -> int:
    kit, out = Path(args.kit), Path(args.out)
    if not (kit / RECIPE).is_file():
        print(f"gpu_kit.py build: error: no pack in --kit {kit} (no {RECIPE})", file=sys.stderr)
        return 2
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}  # one core per build

    stop = threading.Event()  # no build begun after a Ctrl-C
    lock = threading.Lock()  # a job starts, or the stop reaches it
    running: set[subprocess.Popen[bytes]] = set()
    # the stop's handler ignores SIGTERM and SIGHUP before `stop` is set: a job started in
    # between inherited that, ignored the signal passed on, and the build waited it out
    watched = [s for s in STOP_SIGNALS if signal.getsignal(s) is signal.SIG_DFL]

    def stopping() -> bool:
        return stop.is_set() or any(signal.getsignal(s) is signal.SIG_IGN for s in watched)

    def run(job: list[str]) -> tuple[list[str], int, str]:
        with tempfile.TemporaryFile("w+") as log:
            cmd = [sys.executable, "-m", "sarn_ros.tools.cli", *job]
            with lock:
                if stopping():
                    return job, 130, ""
                # in this process group: a Ctrl-C, `timeout` or a closed terminal reaches it
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                if stopping():  # the stop came as it started: it has made nothing yet
                    proc.kill()
                running.add(proc)
            rc = proc.wait()
            with lock:
                running.discard(proc)
            log.seek(0)
            return job, rc, log.read()[-2000:]

    try:
        with stops_as_interrupts(), tempfile.TemporaryDirectory(prefix="gpu_kit_runs_") as runs:
            jobs = build_jobs(kit, out, Path(runs), args.blur_px, args.linear_light)
            if stale := stale_sets(out, jobs, args.real_copies):
                shown = ", ".join(str(p.relative_to(out)) for p in stale[:4])
                print(
                    f"gpu_kit.py build: error: --out {out} holds sets this build does not make "
                    f"({shown}{', ...' if len(stale) > 4 else ''}): give a new --out",
                    file=sys.stderr,
                )
                return 2
            with ThreadPoolExecutor(args.jobs) as pool:
                try:
                    failed = [(job, log) for job, rc, log in pool.map(run, jobs) if rc != 0]
                except KeyboardInterrupt as interrupt:  # the pool waits for their clean-up
                    with lock:
                        stop.set()
                        if isinstance(interrupt, Stopped):  # `kill` of this process alone
                            for proc in running:  # a second SIGTERM: ignored in clean-up
                                proc.send_signal(interrupt.code - 128)
                    raise
    except KeyboardInterrupt as interrupt:  # was pool.map's traceback
        said, code = how_stopped(interrupt)
        print(
            f"gpu_kit.py build: {said} (the sets built are kept: a build again into --out "
            "makes the rest)",
            file=sys.stderr,
        )
        return code
    for job, log in failed:
        print(f"failed: sarn {' '.join(job)}\n{log}")
    # whatever else failed: one failed synthetic job drew the real pairs a third as often
    real = copy_real(out, args.real_copies)
    n = sum(1 for _ in out.rglob("*.npz"))
    print(f"{out}: {len(jobs) - len(failed)} of {len(jobs)} builds, {n} sequences ({real} real)")
    return PARTIAL if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="here: sources as WebP into a folder to carry")
    a.add_argument("--out", default=".gpukit")
    a.add_argument("--videos", nargs="*", default=[], help="sharp frame folders, one video each")
    a.add_argument("--stills", nargs="*", default=[], help="folders of sharp stills")
    a.add_argument("--large-stills", nargs="*", default=[], help="stills to downscale first")
    scale, quality = ranged(float, above=0, high=1), ranged(int, 1, 101)
    a.add_argument("--large-scale", type=scale, default=0.75)
    a.add_argument(
        "--part-size",
        type=ranged(int, 1),
        default=25,
        help="stills per packed folder (one build job each)",
    )
    a.add_argument("--quality", type=quality, default=94)
    a.add_argument("--large-quality", type=quality, default=90)
    a.add_argument(
        "--train-pairs",
        nargs="*",
        default=[],
        help="real blurred/sharp folders to train on (the layouts of sarn train --data)",
    )
    a.add_argument("--train-pairs-quality", type=quality, default=95)
    a.add_argument(
        "--train-pairs-scales", type=ranged(float, above=0), nargs="+", default=[0.5, 1.0]
    )
    a.add_argument("--val", help="held-out sharp video for --val-sharp")
    a.add_argument(
        "--val-pairs",
        nargs="*",
        default=[],
        help="held-out real blurred/sharp folders: scripts/gpu_run.sh then ranks checkpoints on "
        "them, not on --val's synthetic blur",
    )
    a.add_argument("--val-scale", type=scale, default=0.5)
    a.add_argument("--val-frames", type=ranged(int, 1), default=41)
    a.add_argument("--val-quality", type=quality, default=97, help="WebP quality, 101: lossless")
    a.add_argument("--budget-mib", type=ranged(float, above=0), default=48.0)
    b = sub.add_parser("build", help="there: the training sets from a packed kit")
    b.add_argument("--kit", default=".gpukit")
    b.add_argument("--out", default=".gputs")
    b.add_argument("--blur-px", type=float, nargs="+", default=[12.0, 24.0])
    b.add_argument("--linear-light", type=float, nargs="+", default=[1.0, 0.0])
    b.add_argument(
        "--real-copies",
        type=ranged(int, 1),
        default=1,
        help="draw the real pairs K times as often",
    )
    b.add_argument("--jobs", type=ranged(int, 1), default=max(1, (os.cpu_count() or 2) - 2))
    args = p.parse_args()
    if args.command == "build":
        return build(args)
    if not (args.videos or args.stills or args.large_stills or args.train_pairs):
        a.error("no source folders: give --videos, --stills, --large-stills or --train-pairs")
    if refusal := _pack_refusal(args):
        a.exit(2, f"{a.prog}: error: {refusal}\n")
    return pack(args)


if __name__ == "__main__":
    sys.exit(main())
