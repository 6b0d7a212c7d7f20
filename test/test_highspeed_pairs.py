"""scripts/highspeed_pairs.py: real blur from a high-frame-rate recording must be the
recording's frames averaged over each exposure, paired with the mid-exposure frame, in a
layout `sarn eval --pairs` reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from sarn_ros.data.datasets import find_pair_dirs, read_pair

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "highspeed_pairs.py"


def recording(folder: Path, n: int) -> list[np.ndarray]:
    """A bright bar moving 3 px per frame over a textured background."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    background = rng.integers(0, 120, (24, 64, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        f = background.copy()
        f[:, 3 * i : 3 * i + 3] = 250
        cv2.imwrite(str(folder / f"{i + 1:06d}.png"), f[..., ::-1])
        frames.append(f)
    return frames


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True
    )


def test_each_exposure_averages_its_window_and_keeps_the_middle_frame(tmp_path: Path) -> None:
    frames = recording(tmp_path / "fast", 17)
    result = run(tmp_path / "fast", tmp_path / "out", "--window", 5, "--stride", 6)
    assert result.returncode == 0, result.stderr
    [(name, blur_dir, sharp_dir)] = find_pair_dirs(tmp_path / "out")
    seq = read_pair(name, blur_dir, sharp_dir)
    assert name == "fast" and len(seq.blurred) == 3  # starts 0, 6, 12; 18 would run past
    for k, start in enumerate((0, 6, 12)):
        window = np.stack(frames[start : start + 5]).astype(np.float64)
        assert np.abs(seq.blurred[k] - np.rint(window.mean(0))).max() == 0
        assert np.array_equal(seq.sharp[k], frames[start + 2])
        assert np.array_equal(seq.blurred[k] != frames[start + 2], window.std(0) > 0)


def test_a_linked_recording_is_named_by_its_link(tmp_path: Path) -> None:
    """A link to a card's folder (`GOPR0477 -> DCIM/100GOPRO`) was named by its target."""
    recording(tmp_path / "100GOPRO", 5)
    (tmp_path / "GOPR0477").symlink_to(tmp_path / "100GOPRO")
    result = run(tmp_path / "GOPR0477", tmp_path / "out", "--window", 5, "--stride", 5)
    assert result.returncode == 0, result.stderr
    assert [name for name, *_ in find_pair_dirs(tmp_path / "out")] == ["GOPR0477"]


def test_linear_light_brightens_a_passing_highlight(tmp_path: Path) -> None:
    """A sensor integrates light: a bar lit for 1 of 5 sub-frames averages to 20 % of its
    linear intensity, which sRGB encodes far above 20 % of the 8-bit value."""
    recording(tmp_path / "fast", 5)
    for extra in ([], ["--linear-light"]):
        out = tmp_path / ("lin" if extra else "gamma")
        assert run(tmp_path / "fast", out, "--window", 5, "--stride", 5, *extra).returncode == 0
    gamma = cv2.imread(str(tmp_path / "gamma" / "fast" / "blur" / "000001.png"))
    lin = cv2.imread(str(tmp_path / "lin" / "fast" / "blur" / "000001.png"))
    # column 13: lit in frame 4 only (background below 120 in the others)
    assert lin[:, 13].mean() > gamma[:, 13].mean() + 30


def test_impossible_settings_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    recording(tmp_path / "fast", 9)
    for window, stride, message in (
        (4, 8, "a positive odd number"),
        (-1, 8, "a positive odd number"),
        (1, 1, "blurs nothing"),
        (7, 5, "overlap"),
        (11, 11, "fewer"),
    ):
        result = run(tmp_path / "fast", tmp_path / "out", "--window", window, "--stride", stride)
        assert result.returncode == 2 and message in result.stderr
        assert result.stderr.startswith("highspeed_pairs.py: error: ")
    assert not (tmp_path / "out").exists()


def test_an_earlier_runs_sequence_is_refused_not_mixed_in(tmp_path: Path) -> None:
    """A second run into the same OUT wrote its pairs over the first's and left the rest:
    five pairs from two runs, read as one sequence going back in time."""
    recording(tmp_path / "fast", 17)
    assert run(tmp_path / "fast", tmp_path / "out", "--window", 3, "--stride", 3).returncode == 0
    before = sorted(p.name for p in (tmp_path / "out" / "fast" / "blur").iterdir())
    result = run(tmp_path / "fast", tmp_path / "out", "--window", 5, "--stride", 8)
    assert result.returncode != 0 and "--name" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "fast" / "blur").iterdir()) == before
    assert run(tmp_path / "fast", tmp_path / "out", "--window", 5, "--name", "w5").returncode == 0
    assert len(list((tmp_path / "out" / "w5" / "sharp").iterdir())) == 2


def test_a_frame_of_another_size_is_named_and_leaves_no_sequence(tmp_path: Path) -> None:
    recording(tmp_path / "fast", 12)
    odd = tmp_path / "fast" / "000008.png"
    cv2.imwrite(str(odd), np.zeros((20, 64, 3), np.uint8))
    result = run(tmp_path / "fast", tmp_path / "out", "--window", 3, "--stride", 3)
    assert result.returncode != 0
    assert f"{odd} is 64x20, the frames before it 64x24" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []  # no half sequence, no .partial


def test_outputs_it_cannot_make_or_readers_would_skip_are_errors(tmp_path: Path) -> None:
    """A hidden --name was written where `sarn eval --pairs` finds nothing; a name too long
    for its .partial folder, or an OUT under a file, ended in a traceback; a non-UTF-8 name
    crashed the process (SIGSEGV in cv2.imwrite)."""
    recording(tmp_path / "fast", 6)
    (tmp_path / "file").write_text("")
    cases = [
        (["--name", ".hidden"], tmp_path / "out", "give a plain folder name"),
        (["--name", "a/b"], tmp_path / "out", "give a plain folder name"),
        (["--name", "n" * 250], tmp_path / "out", "File name too long"),
        ([], tmp_path / "file" / "sub", "Not a directory"),
    ]
    for extra, out, words in cases:
        result = run(tmp_path / "fast", out, "--window", 3, "--stride", 3, *extra)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    odd = tmp_path / "out" / "b\udcff"
    args = [tmp_path / "fast", tmp_path / "out", "--window", "3", "--stride", "3"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--name", "b\udcff"], capture_output=True
    )
    assert result.returncode == 0, result.stderr
    assert len(list((odd / "sharp").iterdir())) == 2


def test_sigterm_leaves_no_partial_sequence(tmp_path: Path) -> None:
    """`timeout`'s SIGTERM (as Ctrl-C) ended it by the default action: the hidden partial
    sequence stayed, with the frames written so far."""
    import signal
    import time

    src = tmp_path / "fast"
    src.mkdir()
    frame = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    for i in range(400):
        cv2.imwrite(str(src / f"{i:06d}.png"), frame)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), src, out, "--window", "3", "--stride", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = out / ".fast.partial" / "sharp"
    deadline = time.monotonic() + 120
    while not (partial.is_dir() and any(partial.iterdir())) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().endswith("stopped by SIGTERM: no sequence written")
    assert list(out.iterdir()) == []
