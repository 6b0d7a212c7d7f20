"""scripts/gpu_kit.py: what travels to a lent GPU and the sets rebuilt there must be the
recipe's (scales and blur of the original sources, whatever the packed size)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_kit.py"


def kit_module():
    spec = importlib.util.spec_from_file_location("gpu_kit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_then_build_keeps_the_original_scales_and_blur(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    large = tmp_path / "Big"
    large.mkdir()
    for i in range(2):
        img = cv2.resize(rng.integers(0, 255, (12, 16, 3), np.uint8), (160, 120))
        cv2.imwrite(str(large / f"img_{i}.png"), img)
    kit, out = tmp_path / "kit", tmp_path / "ts"
    pack = [sys.executable, str(SCRIPT), "pack", "--out", str(kit), "--large-stills", str(large)]
    subprocess.run(pack, check=True, capture_output=True)
    recipe = json.loads((kit / "recipe.json").read_text())
    assert recipe["folders"] == [{"path": "large/Big", "packed_scale": 0.75, "scales": [0.5, 0.75]}]
    packed = sorted((kit / "large" / "Big").iterdir())
    assert [p.name for p in packed] == ["img_0.webp", "img_1.webp"]
    assert cv2.imread(str(packed[0])).shape == (90, 120, 3)

    # the original's x0.5 and x0.75 are the packed x0.667 and x1, with 0.75 of the blur
    (job,) = kit_module().build_jobs(kit, out, tmp_path / "runs", [12.0], [1.0])
    assert job[job.index("--scales") + 1 : job.index("--blur-px")] == ["0.666667", "1.0"]
    assert job[job.index("--blur-px") + 1] == "9"

    build = [sys.executable, str(SCRIPT), "build", "--kit", str(kit), "--out", str(out)]
    done = subprocess.run(
        [*build, "--blur-px", "12", "--linear-light", "1", "--jobs", "1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    names = sorted(p.name for p in out.rglob("*.npz"))
    assert len(names) == 4 and sum("_x1_" in n for n in names) == 2, names
    (described,) = out.rglob("trainset.json")
    assert described.parent == out / "b12_ll1" / "Big"
    (blur,) = json.loads(described.read_text())["synthetic_blur"]
    assert blur["blur_px"] == 9.0 and blur["linear_light"] == 1.0


def run_pack(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    """`gpu_kit.py pack` in-process: a subprocess would import torch and OpenCV again."""
    monkeypatch.setattr(sys, "argv", ["gpu_kit.py", "pack", *argv])
    try:
        return kit_module().main()
    except SystemExit as e:  # argparse's usage errors
        return e.code


def stills(folder: Path, n: int = 1) -> str:
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"img_{i}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    return str(folder)


def test_pack_again_replaces_the_previous_pack_wholly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit, first, second = tmp_path / "kit", tmp_path / "First", tmp_path / "Second"
    first_pack = ["--stills", stills(first, 2), "--val", stills(second)]
    assert run_pack(monkeypatch, "--out", str(kit), *first_pack) == 0
    assert (kit / "val" / "img_0.webp").is_file()
    # nothing of the first pack stays: a stale val/ would be validated on silently
    assert run_pack(monkeypatch, "--out", str(kit), "--stills", str(second)) == 0
    assert sorted(str(p.relative_to(kit)) for p in kit.rglob("*")) == [
        "recipe.json",
        "stills",
        "stills/Second",
        "stills/Second/img_0.webp",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["First", "Second", "kit"]


def test_pack_refuses_a_folder_that_is_not_a_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("keep me\n")
    assert run_pack(monkeypatch, "--out", str(out), "--stills", stills(tmp_path / "S")) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert str(out) in line
    assert [p.name for p in out.iterdir()] == ["todo.txt"]


def test_pack_rejects_duplicate_and_same_named_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kit, city, other = tmp_path / "kit", stills(tmp_path / "city"), stills(tmp_path / "b" / "city")
    for argv in (["--videos", city, "--stills", city], ["--videos", city, "--large-stills", other]):
        assert run_pack(monkeypatch, "--out", str(kit), *argv) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert argv[1] in line and argv[3] in line, line
    assert not kit.exists()


def test_pack_without_sources_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = tmp_path / "kit"
    assert run_pack(monkeypatch, "--out", str(kit)) == 2
    assert run_pack(monkeypatch, "--out", str(kit), "--val", stills(tmp_path / "V")) == 2
    err = capsys.readouterr().err
    assert err.count("usage: ") == 2 and "Traceback" not in err
    assert not kit.exists()


def test_large_folders_of_stills_pack_in_parts_and_videos_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`build` runs one job per packed folder: a 100-still folder was one job, the build's
    long pole on 16 cores, so stills go in parts; a video stays one sequence."""
    kit = tmp_path / "kit"
    argv = ["--out", str(kit), "--part-size", "2", "--videos", stills(tmp_path / "V", 3)]
    argv += ["--stills", stills(tmp_path / "S", 5), "--large-stills", stills(tmp_path / "L", 2)]
    assert run_pack(monkeypatch, *argv) == 0
    folders = json.loads((kit / "recipe.json").read_text())["folders"]
    paths = [f["path"] for f in folders]
    assert paths == ["videos/V", "stills/S_part1", "stills/S_part2", "stills/S_part3", "large/L"]
    counts = [len(list((kit / p).iterdir())) for p in paths]
    assert counts == [3, 2, 2, 1, 2]
    names = sorted(p.name for p in kit.glob("stills/*/*.webp"))
    assert names == [f"img_{i}.webp" for i in range(5)]


def real_pairs(root: Path, *names: str) -> Path:
    """GoPro-layout sequences of 3 frames at 64x40: blurred frame i is 60 + i, sharp 90 + i."""
    for seq in names:
        for side, value in (("blur", 60), ("sharp", 90)):
            folder = root / seq / side
            folder.mkdir(parents=True)
            for i in range(3):
                cv2.imwrite(str(folder / f"{i}.png"), np.full((40, 64, 3), value + i, np.uint8))
    return root


def test_held_out_real_pairs_travel_in_a_layout_sarn_train_validates_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints ranked on synthetic blur rose while real quality fell (weights/README,
    thirty-ninth): real pairs travel too, at the validation scale, as GoPro-layout pairs."""
    from test_datasets import load_pairs

    from sarn_ros.data.datasets import find_pair_dirs

    pairs = real_pairs(tmp_path / "real", "p1", "p2")
    kit = tmp_path / "kit"
    argv = ["--out", str(kit), "--stills", stills(tmp_path / "S"), "--val-pairs", str(pairs)]
    assert run_pack(monkeypatch, *argv, "--val-frames", "2") == 0
    assert [name for name, *_ in find_pair_dirs(kit / "val_pairs")] == ["p1", "p2"]
    seqs = load_pairs(kit / "val_pairs")
    assert [len(s.blurred) for s in seqs] == [2, 2]
    assert seqs[0].blurred[0].shape == (20, 32, 3)  # at the default --val-scale 0.5
    assert abs(float(seqs[0].sharp[1].mean()) - 91) < 1.5
    assert run_pack(monkeypatch, *argv) == 0  # a kit with them packs again over itself


def test_real_training_pairs_are_built_once_without_synthetic_blur_and_linked_k_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few real sequences beside two thousand synthetic ones are rarely drawn: they travel
    as pairs, get no generator blur, and --real-copies links them K times (no disk cost)."""
    pairs = real_pairs(tmp_path / "highspeed", "a", "b")
    kit, out = tmp_path / "kit", tmp_path / "ts"
    assert run_pack(monkeypatch, "--out", str(kit), "--train-pairs", str(pairs)) == 0
    recipe = json.loads((kit / "recipe.json").read_text())
    assert recipe == {"folders": [], "pairs": {"path": "pairs", "scales": [0.5, 1.0]}}
    assert sorted(p.name for p in (kit / "pairs").iterdir()) == ["a", "b"]

    build = [sys.executable, str(SCRIPT), "build", "--kit", str(kit), "--out", str(out)]
    done = subprocess.run(
        [*build, "--real-copies", "3", "--jobs", "1"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 sequences (12 real)" in done.stdout
    copies = {
        k: sorted(p.relative_to(out / "real" / k) for p in (out / "real" / k).rglob("*.npz"))
        for k in ("copy1", "copy2", "copy3")
    }
    assert len(copies["copy1"]) == 4 and copies["copy1"] == copies["copy2"] == copies["copy3"]
    first = out / "real" / "copy1" / copies["copy1"][0]
    assert first.stat().st_nlink == 3
    (described,) = out.rglob("trainset.json")
    desc = json.loads(described.read_text())
    assert desc["synthetic_blur"] == [] and desc["real_pairs"] == [str((kit / "pairs").resolve())]
    with np.load(first) as z:  # the real frames, not a generator's blur of the sharp ones
        assert abs(float(z["blurred"][0].mean()) - 60) < 1.5
        assert abs(float(z["sharp"][0].mean()) - 90) < 1.5


def test_pack_refuses_sources_that_would_fail_mix_or_vanish_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each packed with exit 0 and failed, or trained on a mix, only at `build` on the lent
    machine: a folder of folders (no images), pairs of no layout, two roots' sequences of
    one name merged into one, a part named as another folder, a.png and a.jpg packed as one
    a.webp; a source inside --out was deleted with the earlier pack. A held-out folder also
    trained on, and a folder given twice under two names, packed."""
    kit = tmp_path / "kit"
    stills(tmp_path / "vroot" / "city")
    (tmp_path / "nopairs").mkdir()
    one, two = real_pairs(tmp_path / "r1", "seqA"), real_pairs(tmp_path / "r2", "seqA")
    three = stills(tmp_path / "st", 3)
    other = stills(tmp_path / "other" / "st_part1")
    mixed = stills(tmp_path / "mixed")
    cv2.imwrite(str(tmp_path / "mixed" / "img_0.jpg"), np.zeros((8, 8, 3), np.uint8))
    cases = [
        (["--videos", str(tmp_path / "vroot")], "no images in"),
        (["--stills", three, "--train-pairs", str(tmp_path / "nopairs")], "no blurred/sharp"),
        (["--train-pairs", str(one), str(two)], "both hold a sequence seqA"),
        (["--stills", three, "--val-pairs", str(one), str(two)], "both hold a sequence seqA"),
        (["--stills", three, other, "--part-size", "2"], "the same folder name (st_part1)"),
        (["--stills", mixed], "would both pack as img_0.webp"),
        (["--stills", str(tmp_path / "missing")], "no such folder"),
        # validated on training frames, and one folder under two names drawn twice: packed
        (["--stills", three, "--val", three], f"--val {three} is trained on too"),
        (["--train-pairs", str(one), "--val-pairs", str(one)], "is trained on too"),
        (["--stills", three, str(tmp_path / "link")], f"{three} and {tmp_path / 'link'}: the"),
    ]
    (tmp_path / "link").symlink_to(three)
    for argv, message in cases:
        assert run_pack(monkeypatch, "--out", str(kit), *argv) == 2, argv
        (line,) = capsys.readouterr().err.splitlines()
        assert message in line, (argv, line)
    assert not kit.exists()
    assert run_pack(monkeypatch, "--out", str(kit), "--stills", three) == 0
    inside = str(kit / "stills" / "st")
    assert run_pack(monkeypatch, "--out", str(kit), "--large-stills", inside) == 2
    assert "inside --out" in capsys.readouterr().err
    assert sorted(p.name for p in (kit / "stills" / "st").iterdir()) == [
        f"img_{i}.webp" for i in range(3)
    ]


@pytest.mark.parametrize(
    "option", ["--part-size=0", "--part-size=-1", "--large-scale=0", "--val-frames=0"]
)
def test_pack_refuses_a_number_out_of_range(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    option: str,
) -> None:
    """--part-size -1 dropped every still with exit 0, 0 gave a traceback; --large-scale 0
    packed, then `build` divided by it."""
    argv = ["--out", str(tmp_path / "kit"), "--stills", stills(tmp_path / "S"), option]
    assert run_pack(monkeypatch, *argv) == 2
    err = capsys.readouterr().err
    assert f"argument {option.split('=')[0]}: must be" in err and "Traceback" not in err


def test_pack_ends_in_one_line_on_an_unreadable_image_and_keeps_the_earlier_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kit, good = tmp_path / "kit", stills(tmp_path / "good")
    assert run_pack(monkeypatch, "--out", str(kit), "--stills", good) == 0
    bad = stills(tmp_path / "bad")
    (tmp_path / "bad" / "img_0.png").write_bytes(b"not a png")
    assert run_pack(monkeypatch, "--out", str(kit), "--stills", bad) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("gpu_kit.py pack: error: cannot read image") and "bad" in line
    assert [p.name for p in (kit / "stills").iterdir()] == ["good"]


def test_build_refuses_a_missing_kit_and_an_out_holding_another_builds_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A build with --real-copies 1 into the out of one with 3 kept real/copy2 and copy3,
    still drawn three times as often; another --blur-px's sets stayed in the mix."""
    gpu_kit = kit_module()
    kit, out = tmp_path / "kit", tmp_path / "ts"
    assert (
        run_pack(
            monkeypatch, "--out", str(kit), "--train-pairs", str(real_pairs(tmp_path / "r", "a"))
        )
        == 0
    )
    monkeypatch.setattr(
        sys, "argv", ["gpu_kit.py", "build", "--kit", str(tmp_path / "no"), "--out", str(out)]
    )
    assert gpu_kit.main() == 2
    assert "no pack in --kit" in capsys.readouterr().err
    jobs = gpu_kit.build_jobs(kit, out, tmp_path / "runs", [12.0], [1.0])
    for k in (1, 2, 3):
        (out / "real" / f"copy{k}").mkdir(parents=True)
    (out / "real" / ".copy1.partial").mkdir()
    assert gpu_kit.stale_sets(out, jobs, 3) == []  # the same build again: a resumed command
    assert gpu_kit.stale_sets(out, jobs, 1) == [out / "real" / "copy2", out / "real" / "copy3"]
    (out / "b24_ll1").mkdir()
    assert gpu_kit.stale_sets(out, jobs, 3) == [out / "b24_ll1"]
    monkeypatch.setattr(sys, "argv", ["gpu_kit.py", "build", "--kit", str(kit), "--out", str(out)])
    assert gpu_kit.main() == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "holds sets this build does not make (b24_ll1, real/copy2, real/copy3)" in line


def test_a_failed_synthetic_build_keeps_the_real_copies_and_ctrl_c_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One failed synthetic job left --real-copies 3's real sequences drawn a third as often
    as asked, said only as '(0 real)'; Ctrl-C was pool.map's traceback."""
    gpu_kit = kit_module()
    kit, out = tmp_path / "kit", tmp_path / "ts"
    pairs = real_pairs(tmp_path / "highspeed", "a")
    assert run_pack(monkeypatch, "--out", str(kit), "--train-pairs", str(pairs)) == 0
    jobs = gpu_kit.build_jobs
    failing = ["train", "--no-such-option", "--trainset", str(out / "b12_ll1" / "stills")]
    monkeypatch.setattr(gpu_kit, "build_jobs", lambda *a: [*jobs(*a), failing])
    build = ["gpu_kit.py", "build", "--kit", str(kit), "--out", str(out), "--jobs", "1"]
    monkeypatch.setattr(sys, "argv", [*build, "--real-copies", "3"])
    capsys.readouterr()
    assert gpu_kit.main() == gpu_kit.PARTIAL
    assert "1 of 2 builds, 6 sequences (6 real)" in capsys.readouterr().out
    assert [len(list((out / "real" / f"copy{k}").rglob("*.npz"))) for k in (1, 2, 3)] == [2] * 3

    class Interrupted:  # Ctrl-C while the builds run
        def __init__(self, jobs: int) -> None:
            pass

        def __enter__(self) -> Interrupted:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def map(self, *args: object) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(gpu_kit, "ThreadPoolExecutor", Interrupted)
    assert gpu_kit.main() == 130
    assert capsys.readouterr().err == (
        "gpu_kit.py build: interrupted (the sets built are kept: a build again into --out makes "
        "the rest)\n"
    )


def test_pack_stopped_by_sigterm_keeps_the_earlier_pack_and_leaves_no_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`timeout` or a closed terminal ended the pack at once: its hidden .kit.new stayed."""
    kit = tmp_path / "kit"
    assert run_pack(monkeypatch, "--out", str(kit), "--stills", stills(tmp_path / "a")) == 0
    gpu_kit = kit_module()

    def killed(args: object, new: Path) -> int:
        (new / "half").write_text("x")
        os.kill(os.getpid(), signal.SIGTERM)
        return 0

    monkeypatch.setattr(gpu_kit, "_pack_into", killed)
    monkeypatch.setattr(sys, "argv", ["gpu_kit.py", "pack", "--out", str(kit), "--stills", "x"])
    monkeypatch.setattr(gpu_kit, "_pack_refusal", lambda args: None)
    old = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert gpu_kit.main() == 143
    finally:
        signal.signal(signal.SIGTERM, old)
    assert capsys.readouterr().err == (
        "gpu_kit.py pack: stopped by SIGTERM (--out left as it was)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "kit"]
    assert [p.name for p in (kit / "stills").iterdir()] == ["a"]


@pytest.mark.parametrize("between", ["SIGTERM", "SIGINT", "error", "removal"])
def test_pack_swaps_both_folders_or_neither(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    between: str,
) -> None:
    """A SIGTERM or a Ctrl-C between moving the earlier pack aside and the new one in left
    neither in --out (the earlier one hidden, removed by the next pack) while the line said
    "--out left as it was"; so did a failed second rename. A stop while the earlier pack was
    removed was a traceback."""
    kit = tmp_path / "kit"
    assert run_pack(monkeypatch, "--out", str(kit), "--stills", stills(tmp_path / "a")) == 0
    gpu_kit = kit_module()
    monkeypatch.setattr(
        sys,
        "argv",
        ["gpu_kit.py", "pack", "--out", str(kit), "--stills", str(stills(tmp_path / "b"))],
    )
    rename, rmtree = Path.rename, gpu_kit.shutil.rmtree
    sig = signal.SIGINT if between == "SIGINT" else signal.SIGTERM

    def interrupted(self: Path, target: Path) -> Path:
        if self.name == ".kit.new" and between != "removal":
            if between == "error":
                raise OSError(28, "No space left on device")
            os.kill(os.getpid(), sig)
        return rename(self, target)

    def removing(path: Path, *args: object, **kwargs: object) -> None:
        if Path(path, "stills").exists() and between == "removal" and path.name == ".kit.old":
            (path / "stills").rename(tmp_path / "half_removed")  # half done, then the stop
            os.kill(os.getpid(), sig)
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(Path, "rename", interrupted)
    monkeypatch.setattr(gpu_kit.shutil, "rmtree", removing)
    old = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert gpu_kit.main() == {"SIGINT": 130, "error": 1}.get(between, 143)
    finally:
        signal.signal(signal.SIGTERM, old)
    err = capsys.readouterr().err
    if between == "error":
        assert err.endswith("No space left on device (--out left as it was)\n"), err
        assert [p.name for p in (kit / "stills").iterdir()] == ["a"]
    else:  # held till both are moved: then the stop, the new pack kept
        how = "interrupted" if between == "SIGINT" else "stopped by SIGTERM"
        assert err == f"gpu_kit.py pack: {how} (--out holds the new pack)\n"
        assert [p.name for p in (kit / "stills").iterdir()] == ["b"]
    if between == "removal":
        rmtree(tmp_path / "half_removed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "kit"]


def test_pack_over_its_budget_keeps_the_earlier_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pack over --budget-mib failed (exit 1) but replaced the earlier one all the same."""
    kit = tmp_path / "kit"
    assert run_pack(monkeypatch, "--out", str(kit), "--stills", stills(tmp_path / "a")) == 0
    capsys.readouterr()
    big = ["--out", str(kit), "--stills", stills(tmp_path / "b"), "--budget-mib", "1e-9"]
    assert run_pack(monkeypatch, *big) == 1
    assert capsys.readouterr().err == (
        "gpu_kit.py pack: over --budget-mib 1e-09: lower --quality or --large-scale "
        "(--out left as it was)\n"
    )
    assert [p.name for p in (kit / "stills").iterdir()] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "kit"]
    # the working tree travels beside the kit: a kit under --budget-mib with a tree that
    # had grown was refused only by `run`, on the way to the lent machine
    tree = kit_module().tree_mib()
    assert tree is not None and 0 < tree < 64  # this checkout, as `run` would carry it
    sparse = tmp_path / "tree.bin"
    with open(sparse, "wb") as f:
        f.truncate(64 * 2**20)
    listed = subprocess.CompletedProcess([], 0, stdout=os.fsencode(sparse) + b"\0")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: listed)
    assert run_pack(monkeypatch, "--out", str(kit), "--stills", str(tmp_path / "b")) == 1
    out, err = capsys.readouterr()
    assert "MiB (+64.0 MiB of working tree: 64.0 carried)" in out
    assert err == (
        "gpu_kit.py pack: over the 64 MiB a run carries, with the working tree: lower --quality "
        "or --large-scale (--out left as it was)\n"
    )
    assert [p.name for p in (kit / "stills").iterdir()] == ["a"]
    # a --out that git does not ignore: the earlier pack and the one being written are the
    # kit, counted once on its own (the tree counted them too: twice the real carry)
    listed.stdout = b""
    for mib, name in ((1, "tree.bin"), (2, "kit/x.bin"), (4, ".kit.new/y.bin"), (8, ".kit.old/z")):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        with open(tmp_path / name, "wb") as f:
            f.truncate(mib * 2**20)
        listed.stdout += os.fsencode(tmp_path / name) + b"\0"
    assert kit_module().tree_mib() == 15
    assert kit_module().tree_mib(leave=kit) == 1


@pytest.mark.parametrize("slow_stop", [False, True])
def test_build_stopped_by_sigterm_stops_its_jobs_and_leaves_no_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow_stop: bool
) -> None:
    """A SIGTERM to the build alone (`kill`, systemd) was the default's: it died at once, the
    builds ran on without it, and its gpu_kit_runs_ folder stayed in the temporary folder.
    ``slow_stop``: the first job ends as the stop is taken (its handler made slow); the next
    one, started then, ignored SIGTERM as the handler had set it, and was waited for."""
    kit, out, tmp = tmp_path / "kit", tmp_path / "ts", tmp_path / "tmp"
    assert run_pack(monkeypatch, "--out", str(kit), "--stills", stills(tmp_path / "a")) == 0
    tmp.mkdir()
    fake, pids = tmp_path / "python", tmp_path / "pids"
    first = "sleep 0.3" if slow_stop else "sleep 60"
    fake.write_text(  # a job that builds on, each after the first in the slow case
        f"#!/bin/sh\necho $$ >> {pids}\n"
        f'if [ "$(wc -l < {pids})" = 1 ]; then exec {first}; fi\nexec sleep 60\n'
    )
    fake.chmod(0o755)
    slow = (
        "from sarn_ros.tools import options\n"
        "made = options.Stopped.__init__\n"
        "def slowly(self, signum):\n"
        "    made(self, signum)\n"
        "    time.sleep(1.0)\n"
        "options.Stopped.__init__ = slowly\n"
    )
    driver = (
        "import importlib.util, sys, time\n"
        f"sys.path.insert(0, {str(SCRIPT.parent.parent)!r})\n"
        f"{slow if slow_stop else ''}"
        f"spec = importlib.util.spec_from_file_location('gpu_kit', {str(SCRIPT)!r})\n"
        "m = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        f"sys.executable = {str(fake)!r}\n"
        f"sys.argv = ['gpu_kit.py', 'build', '--kit', {str(kit)!r}, '--out', {str(out)!r}, "
        "'--blur-px', '1', '2', '3', '--jobs', '1']\n"
        "sys.exit(m.main())\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-c", driver], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().endswith("\n")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=50)
    finally:
        proc.kill()  # a build that waited its job out, not left behind
    assert proc.returncode == 143, err
    assert time.monotonic() - started < 30  # the job was stopped, not waited for
    assert err.endswith(
        "gpu_kit.py build: stopped by SIGTERM (the sets built are kept: a build again into "
        "--out makes the rest)\n"
    ), err
    assert list(tmp.iterdir()) == []
    assert len(pids.read_text().split()) == 1  # none started after the stop
    for pid in pids.read_text().split():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def fake_gpu_run(
    tmp_path: Path, built: int, **env: str
) -> tuple[list[str], subprocess.CompletedProcess]:
    """gpu_run.sh with a python that records its calls, builds with exit code ``built`` and
    writes what --export names; run from another folder, $OUT given from there. Returns
    the calls and the run."""
    (tmp_path / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT.with_name("gpu_run.sh"), tmp_path / "scripts")
    calls = tmp_path / "calls"
    fake = tmp_path / "py"
    fake.write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {calls}\n'
        f'[ "$1" = scripts/gpu_kit.py ] && exit {built}\n'
        '[ "$1" = -c ] && exec python3 "$@"\n'
        'while [ $# -gt 1 ]; do [ "$1" = --export ] && touch "$2"; shift; done\n'
        "exit 0\n"
    )
    fake.chmod(0o755)
    (tmp_path / "elsewhere").mkdir()
    done = subprocess.run(
        ["bash", "../scripts/gpu_run.sh"],
        cwd=tmp_path / "elsewhere",
        env={**os.environ, "OUT": "out", "PY": str(fake), "BENCH_END": "0", **env},
        capture_output=True,
        text=True,
    )
    return calls.read_text().splitlines(), done


@pytest.mark.parametrize(("built", "trains"), [(0, True), (3, True), (137, False), (1, False)])
def test_gpu_run_trains_only_after_a_build_that_ended_or_ended_partly(
    tmp_path: Path, built: int, trains: bool
) -> None:
    """A build killed (137: out of memory) or ended by a traceback went on to train on what
    .gputs held, and the command exited 0; some failed jobs (PARTIAL) train on the rest."""
    calls, done = fake_gpu_run(tmp_path, built)
    assert (tmp_path / "elsewhere" / "out" / "env.txt").is_file()
    trained = any(" train " in f" {line} " for line in calls)
    assert trained == trains, calls
    assert (done.returncode == 0) == trains, done.stdout + done.stderr


def test_gpu_run_evaluates_both_candidates_and_ends_its_evals_in_time(tmp_path: Path) -> None:
    """cand_latest.pth came back never evaluated on CUDA, and three 45 s evals after a
    450 s training could run past the command's 600 s."""
    calls, done = fake_gpu_run(tmp_path / "a", 0)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "a" / "elsewhere" / "out"
    evals = [line for line in calls if " eval " in line]
    assert [e.split("--precision ")[1] for e in evals] == ["fp32", "fp16", "bf16"]
    assert all(f"{out}/cand.pth {out}/cand_latest.pth " in e for e in evals), evals
    calls, done = fake_gpu_run(tmp_path / "b", 0, END="5")  # no time left for them
    assert done.returncode == 0 and not [line for line in calls if " eval " in line]
    log = (tmp_path / "b" / "elsewhere" / "out" / "eval_cuda.log").read_text()
    assert log == "== fp32 and after: not run (under 10 s left before END, 5 s)\n"
