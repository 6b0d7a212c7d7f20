"""Dataset loaders on tiny fixture folders in each accepted layout, the .npz training set and
the random clip sampler."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sarn_ros.data.blur_synth import BlurParams
from sarn_ros.data.datasets import (
    ClipSampler,
    Sequence,
    blurred_sides,
    find_pair_dirs,
    list_images,
    listed,
    load_sequences,
    no_pairs_error,
    pair_files,
    read_pair,
    resize_by,
    save_sequence,
    synthesize_folder,
    unpaired_dirs,
)
from sarn_ros.tools.train import build_trainset, gather, hash_seed

H, W = 40, 56


def load_pairs(root: Path, scale: float = 1.0, max_frames: int | None = None) -> list[Sequence]:
    """Every sequence under ``root`` read, as `sarn eval --pairs` and --val-pairs read them."""
    if not (found := find_pair_dirs(root)):
        raise no_pairs_error(root)
    return [read_pair(*seq, scale, max_frames) for seq in found]


def frame(value: int, seed: int = 0) -> np.ndarray:
    """An RGB frame whose mean encodes ``value``, so frame order can be checked after loading."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), value, np.int32) + rng.integers(-3, 4, (H, W, 3))
    img[..., 1] = 255 - img[..., 0]  # channel order survives the BGR <-> RGB round trip
    return np.clip(img, 0, 255).astype(np.uint8)


def write(folder: Path, names: list[str], values: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, v in zip(names, values, strict=True):
        cv2.imwrite(str(folder / name), frame(v)[..., ::-1])


def seq_values(frames: list[np.ndarray]) -> list[int]:
    return [round(float(f[..., 0].mean())) for f in frames]


@pytest.mark.parametrize(
    ("layout", "blur", "sharp", "names"),
    [
        ("GOPRO_Large/train", "{seq}/blur", "{seq}/sharp", ["seq_a", "seq_b"]),
        ("quantitative_datasets", "{seq}/input", "{seq}/GT", ["seq_a", "seq_b"]),
        ("BSD_2ms16ms/train", "{seq}/Blur/RGB", "{seq}/Sharp/RGB", ["seq_a", "seq_b"]),
        ("RealBlur-J", "{seq}/blur", "{seq}/gt", ["seq_a", "seq_b"]),
        ("REDS/train", "train_blur/{seq}", "train_sharp/{seq}", ["train_seq_a", "train_seq_b"]),
        ("REDS/val", "val_blur_jpeg/{seq}", "val_sharp/{seq}", ["val_seq_a", "val_seq_b"]),
    ],
)
def test_pair_layouts(tmp_path: Path, layout: str, blur: str, sharp: str, names: list) -> None:
    """Each benchmark's own folder layout, as downloaded, is found without restructuring."""
    root = tmp_path / layout
    files = ["00000009.png", "00000010.png", "00000011.png"]  # sorted as numbers, not text
    for seq, base in (("seq_a", 20), ("seq_b", 120)):
        write(root / blur.format(seq=seq), files, [base, base + 10, base + 20])
        write(root / sharp.format(seq=seq), files, [base + 1, base + 11, base + 21])
        if layout.startswith("BSD"):  # BSD's 16-bit raw frames beside the RGB ones
            write(root / seq / "Blur" / "RAW", files, [0, 0, 0])
    seqs = load_pairs(root)
    assert [s.name for s in seqs] == names
    assert seq_values(seqs[0].blurred) == [20, 30, 40]
    assert seq_values(seqs[1].sharp) == [121, 131, 141]
    assert seqs[0].blurred[0].shape == (H, W, 3)
    assert seqs[0].blurred[0][..., 1].mean() > 200  # RGB, not BGR
    if not layout.startswith("REDS"):  # the sequence folder itself is accepted as root too
        assert len(load_pairs(root / "seq_b")) == 1


def test_reds_prefers_plain_blur_and_skips_unpaired_sequences(tmp_path: Path) -> None:
    root = tmp_path / "REDS" / "train"
    write(root / "train_blur" / "000", ["0.png"], [10])
    write(root / "train_blur_jpeg" / "000", ["0.png"], [90])
    write(root / "train_sharp" / "000", ["0.png"], [11])
    write(root / "train_blur" / "001", ["0.png"], [30])  # no sharp 001
    write(root / "test_blur" / "000", ["0.png"], [50])  # REDS' test split has no sharp frames
    (seq,) = load_pairs(root)
    assert (seq.name, seq_values(seq.blurred)) == ("train_000", [10])


def test_every_layout_in_a_folder_is_read_once(tmp_path: Path, monkeypatch) -> None:
    """REDS trees beside a GoPro-style sequence were dropped unsaid (and train named the two
    trees as partnerless sides); a link to the folder itself read a sequence twice; BSD's
    RGB/ was found only so spelt; a folder given as '.' was named '' in notes."""
    from sarn_ros.recordings import pairs_left_out

    root = tmp_path / "mixed"
    write(root / "seq" / "blur", ["0.png"], [10])
    write(root / "seq" / "sharp", ["0.png"], [11])
    write(root / "train_blur" / "000", ["0.png"], [20])
    write(root / "train_sharp" / "000", ["0.png"], [21])
    write(root / "bsd" / "Blur" / "rgb", ["0.png"], [30])
    write(root / "bsd" / "Sharp" / "rgb", ["0.png"], [31])
    (root / "again").symlink_to(".")
    seqs = load_pairs(root)
    assert [(q.name, seq_values(q.blurred)) for q in seqs] == [
        ("bsd", [30]),
        ("seq", [10]),
        ("train_000", [20]),
    ]
    assert pairs_left_out(root) == ([], [])
    # a split one level further down is named as left out, not dropped unsaid
    write(root / "test" / "GOPR0410" / "blur", ["0.png"], [40])
    write(root / "test" / "GOPR0410" / "sharp", ["0.png"], [41])
    assert pairs_left_out(root) == ([root / "test"], [])
    monkeypatch.chdir(root)
    assert listed([Path(".")], Path(".")) == "mixed"  # Path('.').name is ''


def test_natural_frame_order(tmp_path: Path) -> None:
    write(tmp_path, ["Frame 10.png", "Frame 9.png", "Frame 100.png"], [10, 9, 100])
    (tmp_path / "._Frame 9.png").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble
    assert [p.name for p in list_images(tmp_path)] == [
        "Frame 9.png",
        "Frame 10.png",
        "Frame 100.png",
    ]


def test_decimal_stamps_sort_by_value(tmp_path: Path) -> None:
    """Frames saved from a bag under their stamp in seconds: '.05' sorted after '.1' (as 5
    after 1), so the recurrent state and the ORB pairs saw frames 0, 2, 4, 1, 3, 5."""
    names = [f"1692000000.{t}.png" for t in ("0", "05", "1", "15", "2", "25")]
    write(tmp_path, names[::-1], list(range(6)))
    assert [p.name for p in list_images(tmp_path)] == names


def test_names_equal_as_numbers_sort_by_name_not_directory_order(
    tmp_path: Path, monkeypatch
) -> None:
    """'f1' and 'f01' are one number: they kept the order iterdir gave, another on another
    filesystem (here reversed, as some return it)."""
    write(tmp_path, ["f01.png", "f1.png", "f2.png"], [1, 2, 3])
    listed = sorted(Path.iterdir(tmp_path))
    for order in (listed, listed[::-1]):
        monkeypatch.setattr(Path, "iterdir", lambda self, o=order: iter(o))
        assert [p.name for p in list_images(tmp_path)] == ["f01.png", "f1.png", "f2.png"]


def test_mismatched_pairs_and_empty_roots_are_errors(tmp_path: Path) -> None:
    write(tmp_path / "s" / "blur", ["1.png", "2.png"], [10, 20])
    write(tmp_path / "s" / "sharp", ["1.png"], [10])
    with pytest.raises(
        ValueError, match=r"2 blurred vs 1 sharp frames \(.*\); only blurred: 2\.png$"
    ):
        load_pairs(tmp_path)
    write(tmp_path / "s" / "sharp", ["3.png", "4.png", "5.png", "6.png", "7.png"], [0] * 5)
    with pytest.raises(
        ValueError, match=r"; only blurred: 2\.png; only sharp: 3\.png, 4\.png, 5\.png, \.\.\.$"
    ):
        load_pairs(tmp_path)  # the frame missing on a side named, not only counted
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no blurred/sharp sequence"):
        load_pairs(tmp_path / "empty")
    assert find_pair_dirs(tmp_path / "empty") == []


def test_scale_downsizes_frames(tmp_path: Path) -> None:
    write(tmp_path / "s" / "blur", ["1.png"], [50])
    write(tmp_path / "s" / "sharp", ["1.png"], [60])
    (seq,) = load_pairs(tmp_path, scale=0.5)
    assert seq.blurred[0].shape == (H // 2, W // 2, 3)


def test_sharp_video_folder_becomes_one_blurred_sequence(tmp_path: Path) -> None:
    write(tmp_path / "video", [f"{i:03d}.png" for i in range(4)], [100, 102, 104, 106])
    seqs = list(synthesize_folder(tmp_path / "video", seed=0, params=BlurParams(blur_px=4.0)))
    assert len(seqs) == 1 and len(seqs[0].blurred) == len(seqs[0].sharp) == 4


def test_folder_of_stills_gives_one_camera_move_per_still(tmp_path: Path) -> None:
    write(tmp_path / "stills", ["a.png", "b.png", "c.png"], [20, 130, 240])
    seqs = list(
        synthesize_folder(
            tmp_path / "stills", seed=0, params=BlurParams(blur_px=4.0), still_frames=3
        )
    )
    assert [s.name for s in seqs] == ["a", "b", "c"]
    assert all(len(s.blurred) == 3 for s in seqs)
    assert seq_values(seqs[2].sharp)[0] > seq_values(seqs[0].sharp)[0]


def test_gather_uses_pairs_as_they_are_and_synthesises_sharp_folders(tmp_path: Path) -> None:
    write(tmp_path / "pairs" / "s" / "blur", ["1.png", "2.png"], [10, 20])
    write(tmp_path / "pairs" / "s" / "sharp", ["1.png", "2.png"], [11, 21])
    write(tmp_path / "sharp" / "clip1", [f"{i}.png" for i in range(3)], [90, 91, 92])
    write(tmp_path / "sharp" / "clip2", [f"{i}.png" for i in range(3)], [150, 151, 152])
    seqs = gather([tmp_path / "pairs", tmp_path / "sharp"], BlurParams(blur_px=3.0), [1.0], 2, 4)
    names = [s.name for s in seqs]
    assert names[0] == "s_x1" and seq_values(seqs[0].sharp) == [11, 21]
    assert len(names) == 1 + 2 * 2  # two sharp clips, two blur draws each
    assert len(set(names)) == len(names)
    synthetic = [np.stack(s.blurred) for s in seqs[1:]]
    for i, a in enumerate(synthetic):  # every clip and every variant draws its own blur
        for b in synthetic[i + 1 :]:
            assert not np.array_equal(a, b)
    again = gather([tmp_path / "sharp"], BlurParams(blur_px=3.0), [1.0], 2, 4)
    assert all(
        np.array_equal(a, np.stack(b.blurred)) for a, b in zip(synthetic, again, strict=True)
    )


def test_same_named_sources_draw_their_own_blur_and_the_first_keeps_its_seed(
    tmp_path: Path,
) -> None:
    """``--data day1/sharp day2/sharp`` (or two cam.mp4): the seed was hashed from the name
    alone, so both drew the same blur, and identical content made identical training pairs."""
    frames = [f"{i}.png" for i in range(3)]
    for day in ("day1", "day2"):
        write(tmp_path / day / "sharp", frames, [90, 91, 92])
        video = cv2.VideoWriter(
            str(tmp_path / day / "cam.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H)
        )
        for v in (90, 91, 92):
            video.write(frame(v)[..., ::-1])
        video.release()
    params = (BlurParams(blur_px=3.0), [1.0], 1, 4)
    for src in ("sharp", "cam.avi"):
        first, second = (tmp_path / day / src for day in ("day1", "day2"))
        both = gather([first, second], *params)
        assert len(both) == 2
        assert not np.array_equal(np.stack(both[0].blurred), np.stack(both[1].blurred))
        alone = gather([first], *params)
        assert np.array_equal(np.stack(alone[0].blurred), np.stack(both[0].blurred))
        if src == "sharp":  # the seed of sets built before: hashed from the name alone
            seed = hash_seed(first.name, 1.0, 0)
            made = next(iter(synthesize_folder(first, seed, params[0], 1.0, still_frames=4)))
            assert np.array_equal(np.stack(made.blurred), np.stack(alone[0].blurred))
        (again,) = gather([first, first], *params)  # one folder given twice: read once
        assert np.array_equal(np.stack(again.blurred), np.stack(alone[0].blurred))


def test_trainset_keeps_every_scale_and_same_named_sequences(tmp_path: Path) -> None:
    """BSD_1ms8ms and BSD_2ms16ms both number their sequences 000...; pairs at two scales
    share a folder name: the written set must keep them all, as training in RAM does."""
    for root, v in (("bsd_a", 10), ("bsd_b", 50)):
        write(tmp_path / root / "000" / "blur", ["1.png", "2.png"], [v, v + 10])
        write(tmp_path / root / "000" / "sharp", ["1.png", "2.png"], [v + 1, v + 11])
    sources = ([tmp_path / "bsd_a", tmp_path / "bsd_b"], BlurParams(), [1.0, 0.5], 1, 3)
    built = build_trainset(*sources, tmp_path / "ts")
    assert len(built) == len(gather(*sources)) == 4
    assert sorted(s.name for s in built) == ["000_x0.5", "000_x0.5_2", "000_x1", "000_x1_2"]
    assert sorted((s.sharp.shape[1], seq_values(s.sharp)[0]) for s in built) == [
        (20, 11),
        (20, 51),
        (40, 11),
        (40, 51),
    ]


def test_build_trainset_writes_what_gather_makes_and_maps_it_back(tmp_path: Path) -> None:
    write(tmp_path / "pairs" / "s" / "blur", ["1.png", "2.png"], [10, 20])
    write(tmp_path / "pairs" / "s" / "sharp", ["1.png", "2.png"], [11, 21])
    write(tmp_path / "sharp" / "clip", [f"{i}.png" for i in range(3)], [90, 91, 92])
    sources = ([tmp_path / "pairs", tmp_path / "sharp"], BlurParams(blur_px=3.0), [1.0], 2, 4)
    built = build_trainset(*sources, tmp_path / "ts")
    in_ram = gather(*sources)
    assert len(list((tmp_path / "ts").glob("*.npz"))) == len(in_ram) == 3
    by_name = {s.name: s for s in built}
    for s in in_ram:  # same seeds, same frames
        assert isinstance(by_name[s.name].blurred, np.memmap)
        assert np.array_equal(by_name[s.name].blurred, np.stack(s.blurred))
        assert np.array_equal(by_name[s.name].sharp, np.stack(s.sharp))
    assert not (tmp_path / ".ts.partial").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no training images"):
        build_trainset([tmp_path / "empty"], *sources[1:], tmp_path / "ts2")
    assert not (tmp_path / "ts2").exists() and not (tmp_path / ".ts2.partial").exists()


def test_a_trainset_given_as_a_link_is_built_at_its_target(tmp_path: Path) -> None:
    """A --trainset link to a bigger disk's folder: the set was built beside the link, then
    renamed onto it ("Not a directory") and left hidden there, each rerun building it anew."""
    write(tmp_path / "sharp" / "clip", [f"{i}.png" for i in range(3)], [90, 91, 92])
    (tmp_path / "disk" / "set").mkdir(parents=True)
    (tmp_path / "ts").symlink_to(tmp_path / "disk" / "set")
    built = build_trainset([tmp_path / "sharp"], BlurParams(), [1.0], 1, 3, tmp_path / "ts")
    assert len(built) == 1 and (tmp_path / "ts").is_symlink()
    assert [p.name for p in (tmp_path / "disk" / "set").glob("*.npz")] == [f"{built[0].name}.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "sharp", "ts"]
    assert [p.name for p in (tmp_path / "disk").iterdir()] == ["set"]


def test_a_set_another_build_finished_meanwhile_is_not_built_again(tmp_path: Path) -> None:
    """Two commands that found no set each built it: the second, after its whole build,
    failed on the rename and left its copy hidden beside the set."""
    write(tmp_path / "sharp" / "clip", [f"{i}.png" for i in range(3)], [90, 91, 92])
    sources = ([tmp_path / "sharp"], BlurParams(), [1.0], 1, 3)
    build_trainset(*sources, tmp_path / "ts")  # the other command's, done while this one read
    made = (tmp_path / "ts" / "trainset.json").stat().st_mtime_ns
    with pytest.raises(ValueError, match="was built by another sarn train meanwhile: give it"):
        build_trainset(*sources, tmp_path / "ts")
    assert not (tmp_path / ".ts.partial").exists()
    assert (tmp_path / "ts" / "trainset.json").stat().st_mtime_ns == made
    (tmp_path / "link").symlink_to(tmp_path / "ts")  # named as given, not as resolved
    with pytest.raises(ValueError, match=f"^--trainset {tmp_path / 'link'} was built by another"):
        build_trainset(*sources, tmp_path / "link")
    (tmp_path / "notes").mkdir()  # filled after the command looked: the rename fails
    (tmp_path / "notes" / "mine.txt").write_text("mine")
    said = f"--trainset {tmp_path / 'notes'}: the built set could not be put there (Directory"
    with pytest.raises(ValueError, match=f"^{re.escape(said)} not empty\\); it is removed"):
        build_trainset(*sources, tmp_path / "notes")
    assert not (tmp_path / ".notes.partial").exists()
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["mine.txt"]


def test_trainset_round_trip_is_memory_mapped(tmp_path: Path) -> None:
    seqs = [Sequence("x", [frame(10), frame(20)], [frame(11), frame(21)])]
    save_sequence(seqs[0], tmp_path / "ts")
    (back,) = load_sequences(tmp_path / "ts")
    assert back.name == "x"
    # read from disk on access, not copied into RAM, and read-only
    assert isinstance(back.blurred, np.memmap) and isinstance(back.sharp, np.memmap)
    assert not back.sharp.flags.writeable
    assert all(np.array_equal(a, b) for a, b in zip(back.sharp, seqs[0].sharp, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(back.blurred, seqs[0].blurred, strict=True))
    (copied,) = load_sequences(tmp_path / "ts", mmap=False)
    assert not isinstance(copied.sharp, np.memmap)
    assert np.array_equal(copied.sharp, back.sharp)


def test_compressed_trainset_files_are_read_not_mapped(tmp_path: Path) -> None:
    (tmp_path / "ts").mkdir()
    blurred, sharp = np.stack([frame(10), frame(20)]), np.stack([frame(11), frame(21)])
    np.savez_compressed(tmp_path / "ts" / "z.npz", blurred=blurred, sharp=sharp)
    (back,) = load_sequences(tmp_path / "ts")
    assert not isinstance(back.blurred, np.memmap)
    assert np.array_equal(back.blurred, blurred) and np.array_equal(back.sharp, sharp)


def test_clip_sampler_on_memory_mapped_sequences_matches_in_memory(tmp_path: Path) -> None:
    frames = [frame(30 * i, seed=i) for i in range(6)]
    sharps = [frame(30 * i + 1, seed=i + 10) for i in range(6)]
    save_sequence(Sequence("s", frames, sharps), tmp_path / "ts")
    mapped = ClipSampler(load_sequences(tmp_path / "ts"), clip_len=3, crop=32, max_stride=2)
    in_ram = ClipSampler([Sequence("s", frames, sharps)], clip_len=3, crop=32, max_stride=2)
    for a, b in zip(
        mapped.sample(np.random.default_rng(3), 4),
        in_ram.sample(np.random.default_rng(3), 4),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_clip_sampler_shapes_range_and_paired_augmentation() -> None:
    # blurred == sharp, so any crop/flip/reversal applied to one but not the other shows up
    frames = [frame(30 * i, seed=i) for i in range(6)]
    sampler = ClipSampler([Sequence("s", frames, frames)], clip_len=3, crop=32)
    rng = np.random.default_rng(0)
    for _ in range(10):
        b, s = sampler.sample(rng, batch=2)
        assert b.shape == s.shape == (2, 3, 3, 32, 32)
        assert b.dtype.is_floating_point and float(b.min()) >= 0.0 and float(b.max()) <= 1.0
        assert np.array_equal(b.numpy(), s.numpy())
        # consecutive frames of a clip stay consecutive (forwards or backwards)
        means = b[0, :, 0].mean(dim=(1, 2)).mul(255).round().tolist()
        steps = np.diff(means)
        assert np.all(np.abs(np.abs(steps) - 30) <= 2)


def test_look_ahead_frames_follow_the_clip_without_ground_truth() -> None:
    """``extra`` blurred frames come after the supervised ones, in the clip's own direction
    (a reversed clip's look-ahead lies before it in the source), with no ground truth."""
    frames = [frame(30 * i, seed=i) for i in range(7)]
    sampler = ClipSampler([Sequence("s", frames, frames)], clip_len=3, crop=32, lookahead=2)
    rng = np.random.default_rng(2)
    directions = set()
    for extra in (0, 1, 2) * 6:
        b, s = sampler.sample(rng, batch=2, extra=extra)
        assert b.shape == (2, 3 + extra, 3, 32, 32) and s.shape == (2, 3, 3, 32, 32)
        assert np.array_equal(b[:, :3].numpy(), s.numpy())
        steps = np.diff(b[0, :, 0].mean(dim=(1, 2)).mul(255).round().numpy())
        assert np.all(np.abs(np.abs(steps) - 30) <= 2) and len(set(np.sign(steps))) == 1
        directions.add(int(np.sign(steps[0])))
    assert directions == {-1, 1}
    with pytest.raises(ValueError, match=r"extra must be 0\.\.2"):
        sampler.sample(rng, batch=1, extra=3)
    with pytest.raises(ValueError, match="no sequence has 5 frames"):  # clip + look-ahead
        ClipSampler([Sequence("s", frames[:4], frames[:4])], clip_len=3, crop=32, lookahead=2)


def test_clip_sampler_rejects_too_short_or_small_sequences() -> None:
    frames = [frame(10)] * 2
    with pytest.raises(ValueError, match="no sequence has 3 frames"):
        ClipSampler([Sequence("s", frames, frames)], clip_len=3, crop=16)
    with pytest.raises(ValueError):
        ClipSampler([Sequence("s", frames, frames)], clip_len=2, crop=H + 1)
    with pytest.raises(ValueError, match=f"no sequence has 1 frame of at least {H + 1}x"):
        ClipSampler([Sequence("s", frames, frames)], clip_len=1, crop=H + 1)


def test_clip_sampler_strides_through_sequences_with_room() -> None:
    # 7 frames: a 3-frame clip fits strides 1, 2 and 3; a 5-frame sequence only 1 and 2
    long_ = [frame(30 * i, seed=i) for i in range(7)]
    short = [frame(30 * i, seed=i) for i in range(5)]
    seen: dict[int, set[int]] = {7: set(), 5: set()}
    for seq in (long_, short):
        sampler = ClipSampler([Sequence("s", seq, seq)], clip_len=3, crop=32, max_stride=3)
        rng = np.random.default_rng(1)
        for _ in range(60):
            b, s = sampler.sample(rng, batch=1)
            assert np.array_equal(b.numpy(), s.numpy())
            means = b[0, :, 0].mean(dim=(1, 2)).mul(255).round().tolist()
            steps = np.abs(np.diff(means))
            assert abs(steps[0] - steps[1]) <= 2  # one stride within a clip
            seen[len(seq)].add(round(steps[0] / 30))
    assert seen == {7: {1, 2, 3}, 5: {1, 2}}


def test_a_dataset_root_given_for_its_split_names_the_splits(tmp_path: Path) -> None:
    root = tmp_path / "GOPRO_Large"
    for split in ("train", "test"):
        write(root / split / "GOPR0001" / "blur", ["0.png"], [10])
        write(root / split / "GOPR0001" / "sharp", ["0.png"], [11])
    (root / "notes").mkdir()
    with pytest.raises(ValueError, match=r"sub-folders test, train have some: pass one\)$"):
        load_pairs(root)
    params = BlurParams(blur_px=4.0)
    with pytest.raises(ValueError, match=r"^no training images found in .*GOPRO_Large \(its"):
        gather([root], params, [1.0], 1, 3)
    assert len(load_pairs(root / "train")) == 1


def test_one_side_given_or_one_side_only_says_where_the_pairs_are(
    tmp_path: Path, monkeypatch
) -> None:
    """`--pairs <seq>/blur` (or REDS' `train_blur/000`) and a split whose sequences have one
    side only were "no blurred/sharp sequence found" with no word of where they are."""
    seq = tmp_path / "GOPRO_Large" / "train" / "GOPR0001"
    write(seq / "blur", ["0.png"], [10])
    write(seq / "sharp", ["0.png"], [11])
    reds = tmp_path / "REDS" / "train"
    write(reds / "train_blur" / "000", ["0.png"], [10])
    write(reds / "train_sharp" / "000", ["0.png"], [11])
    for given, where in (
        (seq / "blur", seq),
        (seq / "sharp", seq),
        (reds / "train_blur", reds),
        (reds / "train_blur" / "000", reds),
    ):
        with pytest.raises(
            ValueError, match=re.escape(f"(one side of a pair layout: pass {where})")
        ):
            load_pairs(given)
    half = tmp_path / "half"
    write(half / "a" / "sharp", ["0.png"], [11])
    write(half / "b" / "blur", ["0.png"], [10])
    with pytest.raises(ValueError, match=r"under .*half \(a, b: one side only\)$"):
        load_pairs(half)
    # a side whose sequence has no other side: not "pass" a folder that would leave it out
    with pytest.raises(ValueError, match=re.escape(f"and {half / 'b'} holds no sequence with")):
        load_pairs(half / "b" / "blur")
    # `.` in a side, as a shell in it gives it
    monkeypatch.chdir(seq / "blur")
    with pytest.raises(ValueError, match=re.escape(f"(one side of a pair layout: pass {seq})")):
        load_pairs(Path("."))


def test_a_sequence_named_like_a_side_is_a_sequence_not_a_tree(tmp_path: Path) -> None:
    """`blur/{blur,sharp}/` beside `other/{blur,sharp}/`: both scored, and the first was also
    taken for a REDS-style `blur/<seq>/` tree, its sides named as sequences with one side only."""
    for name in ("blur", "other"):
        write(tmp_path / "runs" / name / "blur", ["0.png"], [10])
        write(tmp_path / "runs" / name / "sharp", ["0.png"], [11])
    assert sorted(n for n, *_ in find_pair_dirs(tmp_path / "runs")) == ["blur", "other"]
    assert unpaired_dirs(tmp_path / "runs") == []
    # beside a sharp/ tree, blur/ is a tree, also of sequences named blur and sharp
    for side, value in (("blur", 10), ("sharp", 11)):
        for seq in ("000", "blur", "sharp"):
            write(tmp_path / "tree" / side / seq, ["0.png"], [value])
    assert "000" in [n.split("_")[-1] for n, *_ in find_pair_dirs(tmp_path / "tree")]


def test_a_jpeg_cut_short_is_unreadable_not_half_grey(tmp_path: Path) -> None:
    """OpenCV decodes a truncated JPEG with its lower part grey (a libjpeg warning only): a
    half-downloaded benchmark scored the grey, and a folder deblurred it as a frame."""
    from sarn_ros.data.datasets import read_frame, read_rgb

    rng = np.random.default_rng(0)
    whole = tmp_path / "whole.jpg"
    cv2.imwrite(str(whole), rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    data = whole.read_bytes()
    cut = tmp_path / "cut.JPG"
    cut.write_bytes(data[: len(data) // 3])
    assert cv2.imread(str(cut)) is not None  # what OpenCV alone makes of it
    assert read_rgb(whole).shape == (120, 160, 3) and read_frame(whole) is not None
    assert read_frame(cut) is None
    with pytest.raises(ValueError, match="cannot read image"):
        read_rgb(cut)
    padded = tmp_path / "padded.jpg"  # bytes after the end marker, as some cameras write
    padded.write_bytes(data + bytes(100))
    assert read_frame(padded) is not None


def test_a_whole_jpeg_with_data_after_it_or_named_wrongly_is_read(tmp_path: Path) -> None:
    """Only the last KiB was searched for the end marker: a phone photo with data appended (a
    Motion Photo's video, Samsung's trailer) and a PNG named .jpg, both of which OpenCV reads
    whole, were refused as cut short. A cut file is still found behind an EXIF thumbnail's
    own end marker."""
    from sarn_ros.data.datasets import read_frame, read_rgb

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
    trailer = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes().replace(b"\xff\xd9", b"..")
    motion = tmp_path / "PXL_0001.MP.jpg"
    motion.write_bytes(jpeg + trailer)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.array_equal(read_rgb(motion), decoded)
    assert read_frame(motion) is not None
    misnamed = tmp_path / "download.jpg"
    misnamed.write_bytes(cv2.imencode(".png", img)[1].tobytes())
    assert np.array_equal(read_rgb(misnamed), img[..., ::-1])
    # cut early in its scan, a thumbnail's end marker (in APP1, before the main image's
    # headers) was within the last KiB, and the image was read half grey
    thumb = cv2.imencode(".jpg", img[::8, ::8])[1].tobytes()
    app1 = b"\xff\xe1" + (len(thumb) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + thumb
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpeg[:2] + app1 + jpeg[2 : jpeg.index(b"\xff\xda") + 200])
    assert read_frame(cut) is None


def test_a_png_file_with_a_chunk_longer_than_itself_is_unreadable_without_2_gb(
    tmp_path: Path,
) -> None:
    """OpenCV's PNG reader allocates what a chunk states: this 49-byte file in a folder took
    2 GB in ``sarn deblur``, ``sarn eval`` and training, whatever its name."""
    bomb = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x08\x00\x00\x00\x08\x08\x00\x00\x00"
        b"\x00\xe1d\xe1W\x7f\xff\xff\xfftEXt" + bytes(8)
    )
    (tmp_path / "bomb.png").write_bytes(bomb)
    (tmp_path / "bomb.jpg").write_bytes(bomb)
    good = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "good.png"), good)
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from sarn_ros.data.datasets import read_frame\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for name in ('bomb.png', 'bomb.jpg', 'good.png'):\n"
        "    img = read_frame(Path(sys.argv[1]) / name)\n"
        "    print(name, None if img is None else img.shape)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    lines = out.stdout.split("\n")
    assert lines[:3] == ["bomb.png None", "bomb.jpg None", "good.png (48, 64, 3)"], out
    assert int(lines[3]) < 100, out.stdout


def test_a_fifo_a_device_or_a_folder_named_as_an_image_is_skipped_not_waited_on(
    tmp_path: Path,
) -> None:
    """A FIFO named frame.png blocked reading for good, a link to /dev/zero named .jpg was read
    without end: each is no image, skipped as an unreadable one."""
    from sarn_ros.data.datasets import read_frame, read_rgb

    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sarn_ros.data.datasets import read_frame\n"
        "for name in sys.argv[2:]:\n"
        "    print(name, read_frame(Path(sys.argv[1]) / name))\n"
    )
    names = ["fifo.png", "zero.jpg", "folder.png", "loop.png"]
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), *names],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.split("\n")[:4] == [f"{n} None" for n in names], out
    with pytest.raises(ValueError, match="cannot read image"):
        read_rgb(tmp_path / "folder.png")
    assert read_frame(tmp_path / "missing.png") is None


def test_a_training_set_file_that_is_no_sequence_is_one_error_line(tmp_path: Path) -> None:
    """A FIFO named .npz blocked `sarn train --trainset` for good and a link to /dev/zero
    filled the memory (zipfile reads to the end); a file that is no zip was a traceback."""
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"a\.npz is no sequence of a training set \("):
        load_sequences(junk)
    code = (
        "import sys\n"
        "from sarn_ros.data.datasets import load_sequences\n"
        "try:\n"
        "    load_sequences(sys.argv[1])\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    for name, make in (
        ("pipe", lambda p: os.mkfifo(p)),
        ("zero", lambda p: p.symlink_to("/dev/zero")),
    ):
        (tmp_path / name).mkdir()
        make(tmp_path / name / "a.npz")
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.stdout.endswith("a.npz is not a regular file: no sequence of a training set\n")


def test_a_sequence_of_several_frame_sizes_is_refused_by_name(tmp_path: Path) -> None:
    """A pair folder of unrelated stills loads as one sequence of mixed sizes (which `sarn
    eval` takes frame by frame); training crops a clip at one place in every frame and a
    training set stacks them, which failed with numpy's bare 'all input arrays must have the
    same shape', at a random step or after the build, naming nothing."""
    big, small = frame(50), frame(90)[:32]
    write(tmp_path / "stills" / "blur", ["a.png", "b.png", "c.png"], [40, 50, 60])
    cv2.imwrite(str(tmp_path / "stills" / "blur" / "b.png"), small)
    write(tmp_path / "stills" / "sharp", ["a.png", "b.png", "c.png"], [41, 51, 61])
    cv2.imwrite(str(tmp_path / "stills" / "sharp" / "b.png"), small)
    (seq,) = load_pairs(tmp_path / "stills")
    assert [f.shape[:2] for f in seq.blurred] == [(H, W), (32, W), (H, W)]
    message = rf"^stills: frames of several sizes \({W}x32, {W}x{H}\)"
    with pytest.raises(ValueError, match=message):
        ClipSampler([seq], clip_len=2, crop=32)
    with pytest.raises(ValueError, match=message):
        save_sequence(seq, tmp_path / "ts")
    assert not (tmp_path / "ts").exists()
    even = Sequence("even", [big, big], [big, big])
    assert len(ClipSampler([even], clip_len=2, crop=32).seqs) == 1


def test_a_folder_given_as_dot_is_named_after_itself(tmp_path: Path, monkeypatch) -> None:
    """`sarn train --data .` inside a sequence: '.' has the name '', which named the sequence
    (and its training-set file '.npz', a hidden file) after nothing."""
    write(tmp_path / "seq_a" / "blur", ["1.png", "2.png"], [10, 20])
    write(tmp_path / "seq_a" / "sharp", ["1.png", "2.png"], [11, 21])
    write(tmp_path / "video", [f"{i:03d}.png" for i in range(4)], [100, 102, 104, 106])
    monkeypatch.chdir(tmp_path / "seq_a")
    assert [s.name for s in load_pairs(Path("."))] == ["seq_a"]
    monkeypatch.chdir(tmp_path / "video")
    (seq,) = synthesize_folder(Path("."), seed=0, params=BlurParams(blur_px=4.0))
    assert seq.name == "video"


def test_read_frame_turns_a_photo_upright_like_read_rgb(tmp_path: Path) -> None:
    """A portrait phone photo is stored sideways with EXIF orientation 6: `sarn deblur` and
    `sarn eval --no-gt` (read_frame) read it sideways while training (read_rgb) and viewers
    turn it upright. Depth and colour stay as stored; alpha is dropped."""
    Image = pytest.importorskip("PIL.Image")  # only to write the EXIF tag (torchvision's)
    from sarn_ros.data.datasets import read_frame, read_rgb

    stored = frame(90)[:30]  # 30 high, 56 wide, stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to view
    Image.fromarray(stored).save(tmp_path / "portrait.jpg", exif=exif, quality=95)
    upright = read_rgb(tmp_path / "portrait.jpg")
    assert upright.shape == (56, 30, 3)
    assert np.array_equal(read_frame(tmp_path / "portrait.jpg"), upright)
    deep = (np.arange(4 * 6 * 3, dtype=np.uint16).reshape(4, 6, 3) * 900).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    assert np.array_equal(read_frame(tmp_path / "deep.png"), deep)
    grey = deep[..., 0]
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    assert np.array_equal(read_frame(tmp_path / "grey.png"), grey)
    rgba = np.dstack([frame(40)[:4, :6], np.full((4, 6), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert np.array_equal(read_frame(tmp_path / "rgba.png"), rgba[..., :3])


def test_folders_named_apart_pair_their_frames_by_order(tmp_path: Path) -> None:
    """RealBlur and the like name the two folders' frames apart (blur_1, gt_1): they share no
    name, so they are matched by natural order, checked by count only."""
    write(tmp_path / "scene" / "blur", ["blur_1.png", "blur_2.png", "blur_10.png"], [10, 20, 30])
    write(tmp_path / "scene" / "gt", ["gt_1.png", "gt_2.png", "gt_10.png"], [11, 21, 31])
    (seq,) = load_pairs(tmp_path)
    assert seq.name == "scene"
    assert seq_values(seq.blurred) == [10, 20, 30]
    assert seq_values(seq.sharp) == [11, 21, 31]


def test_max_frames_below_three_of_a_video_folder_is_still_a_video(tmp_path: Path) -> None:
    """A video's first 1 or 2 frames are still a video: decided on 3 frames at least."""
    write(tmp_path / "video", [f"{i:03d}.png" for i in range(5)], [100, 102, 104, 106, 108])
    params = BlurParams(blur_px=4.0)
    seqs = list(synthesize_folder(tmp_path / "video", seed=0, params=params, max_frames=2))
    assert [s.name for s in seqs] == ["video"]
    assert len(seqs[0].blurred) == len(seqs[0].sharp) == 2


def panning_texture(folder: Path, step: int, n: int = 5) -> None:
    """Frames of a camera panning ``step`` px a frame over a scene with coarse shapes and fine
    detail (a 10 fps camera's folder: farther apart than a 30 fps video's frames)."""
    rng = np.random.default_rng(0)
    scene = np.zeros((260, 340, 3), np.float32)
    for sigma, amp in ((20.0, 3.0), (0.7, 2.0)):
        noise = cv2.GaussianBlur(rng.standard_normal(scene.shape).astype(np.float32), (0, 0), sigma)
        scene += amp * noise / noise.std()
    scene = np.clip(scene * 22 + 128, 0, 255).astype(np.uint8)
    folder.mkdir(parents=True)
    for k in range(n):
        cv2.imwrite(str(folder / f"{k:03d}.png"), scene[10:250, step * k : step * k + 320])


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_a_folder_of_frames_farther_apart_is_a_video_at_every_scale(
    tmp_path: Path, scale: float
) -> None:
    """The video-or-stills decision compared plain-resized thumbnails, which alias fine detail:
    such a folder was 5 stills at x1 and one video at x0.5 of the same --scales build."""
    panning_texture(tmp_path / "cam", step=3)
    params = BlurParams(blur_px=4.0)
    seqs = list(synthesize_folder(tmp_path / "cam", seed=0, params=params, scale=scale))
    assert [(s.name, len(s.blurred)) for s in seqs] == [("cam", 5)]


def test_a_video_folder_with_one_frame_of_another_size_is_cut_there(tmp_path: Path) -> None:
    """One odd frame turned a whole video folder into stills (one synthetic camera move per
    frame); now the runs of one size on either side stay videos and the odd frame is a still."""
    panning_texture(tmp_path / "cam", step=2, n=8)
    odd = tmp_path / "cam" / "004.png"
    cv2.imwrite(str(odd), cv2.resize(cv2.imread(str(odd)), (160, 120)))
    params = BlurParams(blur_px=4.0)
    seqs = list(synthesize_folder(tmp_path / "cam", seed=0, params=params, still_frames=3))
    assert [(s.name, len(s.blurred)) for s in seqs] == [("cam#1", 4), ("004", 3), ("cam#2", 3)]
    assert seqs[1].sharp[0].shape[1] < 160 < seqs[0].sharp[0].shape[1]  # the odd frame's
    limited = synthesize_folder(tmp_path / "cam", seed=0, params=params, max_frames=6)
    assert [(s.name, len(s.blurred)) for s in limited] == [("cam#1", 4), ("004", 6), ("cam#2", 1)]


def test_frames_named_alike_pair_by_name_whatever_the_padding_or_extension(
    tmp_path: Path,
) -> None:
    """1.png and 01.png, or 2.jpg and 2.png, name one frame: they were refused as a frame
    missing on each side, and sorted order paired them by accident, not by name."""
    write(tmp_path / "s" / "blur", ["1.png", "2.jpg", "10.png"], [10, 20, 30])
    write(tmp_path / "s" / "sharp", ["01.png", "02.png", "10.png"], [11, 21, 31])
    (seq,) = load_pairs(tmp_path)
    assert seq_values(seq.blurred) == [10, 20, 30]
    assert seq_values(seq.sharp) == [11, 21, 31]


def test_two_files_naming_one_frame_are_refused(tmp_path: Path) -> None:
    """1.png beside 1.jpg: the name sets looked equal, so three blurred frames were paired in
    order with three sharp ones of other names."""
    write(tmp_path / "s" / "blur", ["1.png", "1.jpg", "2.png"], [10, 11, 20])
    write(tmp_path / "s" / "sharp", ["1.png", "2.jpg", "2.png"], [10, 20, 21])
    blur = tmp_path / "s" / "blur"
    with pytest.raises(ValueError, match="name the same frame") as err:
        pair_files("s", blur, tmp_path / "s" / "sharp")
    assert str(blur / "1.jpg") in str(err.value) and str(blur / "1.png") in str(err.value)
    # with the counts apart: named as such, not as "4 blurred vs 3 sharp frames"
    write(tmp_path / "t" / "blur", ["001.png", "1.jpg", "002.png", "003.png"], [10, 11, 20, 30])
    write(tmp_path / "t" / "sharp", ["001.png", "002.png", "003.png"], [10, 20, 30])
    with pytest.raises(ValueError, match=r"1\.jpg and .*001\.png name the same frame"):
        pair_files("t", tmp_path / "t" / "blur", tmp_path / "t" / "sharp")


def test_sequences_with_one_side_only_are_named(tmp_path: Path) -> None:
    """find_pair_dirs leaves them out; unpaired_dirs names them, in GoPro's layout and REDS'
    (whose one-sided sequences sit in one tree and not the other), and no hidden folder."""
    gopro = tmp_path / "GOPRO_Large" / "test"
    write(gopro / "a" / "blur", ["1.png"], [10])
    write(gopro / "a" / "sharp", ["1.png"], [10])
    write(gopro / "b" / "blur", ["1.png"], [10])
    write(gopro / ".b.partial" / "blur", ["1.png"], [10])
    assert [d.name for d in unpaired_dirs(gopro)] == ["b"]
    assert [name for name, *_ in find_pair_dirs(gopro)] == ["a"]
    reds = tmp_path / "REDS" / "val"
    for tree, seqs in (("val_blur", ["000", "001"]), ("val_sharp", ["000", "002"])):
        for seq in seqs:
            write(reds / tree / seq, ["00000000.png"], [10])
    lone = [d.relative_to(reds).as_posix() for d in unpaired_dirs(reds)]
    assert lone == ["val_blur/001", "val_sharp/002"]
    assert unpaired_dirs(gopro / "a") == []


def realblur_scene(root: Path, blur_ids: list[int], gt_ids: list[int]) -> Path:
    """RealBlur's naming: blur/blur_N.png beside gt/gt_N.png, each frame its number's value."""
    for side, ids in (("blur", blur_ids), ("gt", gt_ids)):
        (root / side).mkdir(parents=True)
        for i in ids:
            cv2.imwrite(str(root / side / f"{side}_{i}.png"), np.full((4, 4, 3), i, np.uint8))
    return root


def test_folders_named_apart_pair_by_number_and_a_gap_on_each_side_is_an_error(tmp_path):
    """blur_{1,2,4,5} beside gt_{1,2,3,4}: paired in order, frames 3 and 4 got the wrong
    ground truth without a word; the numbers pair them, and a gap on each side is named."""
    scene = realblur_scene(tmp_path / "gap", [1, 2, 4, 5], [1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"blur_5\.png and .*gt_3\.png"):
        pair_files("gap", scene / "blur", scene / "gt")
    scene = realblur_scene(tmp_path / "ok", [1, 2, 10, 9], [9, 1, 10, 2])
    blurs, sharps = pair_files("ok", scene / "blur", scene / "gt")
    assert [p.stem for p in blurs] == ["blur_1", "blur_2", "blur_9", "blur_10"]
    assert [p.stem for p in sharps] == ["gt_1", "gt_2", "gt_9", "gt_10"]
    # the blurred side's own order is kept and the sharp side follows its numbers
    scene = tmp_path / "order"
    for side, names in (("blur", ["a_2", "b_1"]), ("gt", ["gt_1", "gt_2"])):
        (scene / side).mkdir(parents=True)
        for name in names:
            cv2.imwrite(str(scene / side / f"{name}.png"), np.zeros((4, 4, 3), np.uint8))
    blurs, sharps = pair_files("order", scene / "blur", scene / "gt")
    assert [(b.stem, s.stem) for b, s in zip(blurs, sharps, strict=True)] == [
        ("a_2", "gt_2"),
        ("b_1", "gt_1"),
    ]
    # a stray file without a number, or a number twice, on sides that share numbers: sorted
    # order paired cover.png with blur_1 and every later frame one off, without a word
    scene = realblur_scene(tmp_path / "stray", [1, 2, 3], [1, 2])
    cv2.imwrite(str(scene / "gt" / "cover.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"^stray: .*cover\.png has no number in its name"):
        pair_files("stray", scene / "blur", scene / "gt")
    scene = realblur_scene(tmp_path / "twice", [1, 2, 3], [1, 2])
    cv2.imwrite(str(scene / "gt" / "gt_2.jpg"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"gt_2\.(png|jpg) and .*gt_2\.(png|jpg) carry the same"):
        pair_files("twice", scene / "blur", scene / "gt")
    # numbered apart (no number in common): in sorted order, as before
    scene = realblur_scene(tmp_path / "apart", [1, 2], [11, 12])
    blurs, sharps = pair_files("apart", scene / "blur", scene / "gt")
    assert [p.stem for p in sharps] == ["gt_11", "gt_12"]


def test_blurred_sides_of_pair_layouts_are_named(tmp_path):
    """Given as sharp material, their blurred frames would be the training targets."""
    names = [
        "seq/blur",
        "seq/Input",
        "seq/blur_gamma",
        "REDS/train_blur",
        "REDS/val_blur_jpeg",
        "REDS/train_blur/000",
        "REDS/train_sharp/000",
        "seq/sharp",
        "seq/gt",
        "my_stills",
    ]
    for n in names:
        (tmp_path / n).mkdir(parents=True)
    found = blurred_sides([tmp_path / n for n in names] + [tmp_path / "missing" / "blur"])
    assert [f.relative_to(tmp_path).as_posix() for f in found] == names[:6]


def test_training_on_a_blurred_side_says_so(tmp_path, capsys):
    seq = tmp_path / "GOPR0372_07_00"
    write(seq / "blur", ["1.png", "2.png", "3.png"], [60, 70, 80])
    gather([seq / "blur"], BlurParams(blur_px=2.0), [1.0], 1, 2)
    out = capsys.readouterr().out
    assert f"note: {seq / 'blur'}: named as the blurred side of a pair layout" in out
    write(tmp_path / "stills", ["1.png", "2.png", "3.png"], [60, 70, 80])
    gather([tmp_path / "stills"], BlurParams(blur_px=2.0), [1.0], 1, 2)
    assert "blurred side" not in capsys.readouterr().out
    write(seq / "sharp", ["1.png", "2.png", "3.png"], [61, 71, 81])  # now a pair: read as one
    assert len(gather([seq], BlurParams(blur_px=2.0), [1.0], 1, 2)) == 1
    assert "blurred side" not in capsys.readouterr().out


def test_notes_on_what_is_left_out_come_from_the_first_process_only(tmp_path, capsys, monkeypatch):
    """Under torchrun every process gathers the data: one note, not one per GPU."""
    write(tmp_path / "stills" / "deeper", ["1.png", "2.png"], [60, 70])
    write(tmp_path / "stills", ["1.png", "2.png"], [60, 70])
    for rank, noted in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        gather([tmp_path / "stills"], BlurParams(blur_px=2.0), [1.0], 1, 2)
        assert ("not used: deeper" in capsys.readouterr().out) == noted


def test_downscaling_averages_areas_and_rounds_odd_sides_as_the_node_does():
    """Area averaging keeps the sharp targets free of aliasing, and an odd side rounds as the
    node's resize does (35 px at x0.5: 18, not 17), so frames and camera_info agree."""
    checker = np.zeros((2, 2, 3), np.uint8)
    checker[0, 0] = checker[1, 1] = 255
    assert resize_by(checker, 0.5).tolist() == [[[128, 128, 128]]]
    assert resize_by(np.zeros((36, 35, 3), np.uint8), 0.5).shape == (18, 18, 3)


def test_gopro_pairs_read_blur_not_blur_gamma(tmp_path: Path) -> None:
    """GoPro_Large has both: benchmarks use blur/ (made in linear light); blur_gamma/ would
    change every figure without a word."""
    seq = tmp_path / "GOPRO_Large" / "test" / "GOPR0384_11_00"
    for side, value in (("blur", 20), ("blur_gamma", 90), ("sharp", 21)):
        write(seq / side, ["000001.png"], [value])
    (pairs,) = load_pairs(tmp_path / "GOPRO_Large" / "test")
    assert seq_values(pairs.blurred) == [20] and seq_values(pairs.sharp) == [21]


def test_each_still_of_a_folder_gets_its_own_camera_move(tmp_path: Path) -> None:
    still = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    (tmp_path / "stills").mkdir()
    for name in ("s0.png", "s1.png"):
        cv2.imwrite(str(tmp_path / "stills" / name), still)
    a, b = synthesize_folder(tmp_path / "stills", seed=1, params=BlurParams(blur_px=6.0))
    assert not np.array_equal(np.stack(a.blurred), np.stack(b.blurred))


def test_hidden_folders_and_files_are_no_sharp_material(tmp_path: Path) -> None:
    """A file manager's ``.thumbnails/`` was trained on and scored as a clip, and one macOS
    ``._cover.jpg`` made a folder of clips a folder of images, none of them read."""
    from sarn_ros.offline import InputError, kind_of
    from sarn_ros.recordings import synthetic_sequences
    from sarn_ros.tools.train import iter_gather

    names = [f"{i:04d}.png" for i in range(3)]
    for clip in ("clipA", ".thumbnails"):
        write(tmp_path / "d" / clip, names, [40, 80, 120])
    (tmp_path / "d" / "._cover.jpg").write_bytes(b"\0\5\26\7AppleDouble")
    with pytest.raises(InputError, match=r"it holds the image folders clipA \(give one\)"):
        kind_of(tmp_path / "d")
    params = BlurParams(blur_px=2.0, object_prob=0.0, jpeg_quality=None)
    seqs = synthetic_sequences(tmp_path / "d", seed=1, params=params)
    assert {s.name.split("/")[0] for s in seqs} == {"clipA"}
    trained = iter_gather([tmp_path / "d"], params, [1.0], variants=1, still_frames=3)
    assert {s.name.split("_")[0] for s in trained} == {"clipA"}


@pytest.mark.parametrize(
    ("blur", "sharp", "names"),
    [
        ("office_blur", "office_sharp", ["office"]),  # a REDS-named pair holding its frames
        ("blur/seq", "sharp/seq", ["seq"]),  # sides holding sequences
        ("Blur/seq/RGB", "Sharp/seq/RGB", ["seq"]),  # ... as BSD keeps its frames
    ],
)
def test_more_pair_layouts_are_read_as_pairs(tmp_path, blur, sharp, names):
    """Each was trained on as sharp material, blurred side included (the blurred frames as
    targets), and scored as no pair at all."""
    files = ["1.png", "2.png"]
    write(tmp_path / blur, files, [30, 40])
    write(tmp_path / sharp, files, [31, 41])
    seqs = load_pairs(tmp_path)
    assert [s.name for s in seqs] == names
    assert seq_values(seqs[0].blurred) == [30, 40] and seq_values(seqs[0].sharp) == [31, 41]


def test_an_empty_side_is_an_error_and_blur_gamma_stands_in_for_an_empty_blur(tmp_path):
    """An empty blur/ beside blur_gamma/ was '0 blurred vs 3 sharp frames'. An empty sharp/
    stays a side: left out, its blurred frames were trained on as sharp material."""
    files = ["1.png", "2.png", "3.png"]
    write(tmp_path / "good" / "blur", files, [30, 40, 50])
    write(tmp_path / "good" / "sharp", files, [31, 41, 51])
    write(tmp_path / "half" / "blur", files, [30, 40, 50])
    (tmp_path / "half" / "sharp").mkdir()
    (tmp_path / "gamma" / "blur").mkdir(parents=True)
    write(tmp_path / "gamma" / "blur_gamma", files, [60, 70, 80])
    write(tmp_path / "gamma" / "sharp", files, [61, 71, 81])
    assert [n for n, _, _ in find_pair_dirs(tmp_path)] == ["gamma", "good", "half"]
    assert seq_values(load_pairs(tmp_path / "gamma")[0].blurred) == [60, 70, 80]
    with pytest.raises(ValueError, match="half: 3 blurred vs 0 sharp frames"):
        load_pairs(tmp_path / "half")
    with pytest.raises(ValueError, match="3 blurred vs 0 sharp frames"):
        gather([tmp_path / "half"], BlurParams(blur_px=2.0), [1.0], 1, 2)


def test_an_unreadable_side_is_an_error_not_the_next_side_read(tmp_path, monkeypatch):
    """blur/RGB/ that could not be listed (its mode; root reads it all, so told here) was
    taken for empty: blur_gamma/ was read in its place, unsaid."""
    files = ["1.png", "2.png"]
    write(tmp_path / "seq" / "blur" / "RGB", files, [30, 40])
    write(tmp_path / "seq" / "blur_gamma", files, [60, 70])
    write(tmp_path / "seq" / "sharp", files, [31, 41])
    assert seq_values(load_pairs(tmp_path / "seq")[0].blurred) == [30, 40]
    scandir, closed = os.scandir, tmp_path / "seq" / "blur" / "RGB"

    def refused(path="."):
        if Path(path) == closed:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refused)
    with pytest.raises(PermissionError, match="Permission denied"):
        load_pairs(tmp_path / "seq")


def test_a_given_folder_with_an_unknown_sharp_side_is_told_to_name_it(tmp_path, capsys):
    """The note told the user to give the folder holding both sides: the one given."""
    write(tmp_path / "scene" / "blur", ["1.png", "2.png", "3.png"], [60, 70, 80])
    write(tmp_path / "scene" / "clean", ["1.png", "2.png", "3.png"], [61, 71, 81])
    gather([tmp_path / "scene"], BlurParams(blur_px=2.0), [1.0], 1, 2)
    out = capsys.readouterr().out
    assert f"note: {tmp_path / 'scene' / 'blur'}: named as the blurred side" in out
    assert "name the sharp side beside it sharp/ or gt/ (any case)" in out
    assert "give the folder that holds both" not in out


def test_sides_that_hold_no_frames_are_not_taken_for_trees(tmp_path, capsys):
    """A BSD sequence with empty RGB/ folders was read as two: its Bayer RAW/ frames as RGB,
    and RGB/; a REDS tree given alone was told to name a sharp/ inside it."""
    seq = tmp_path / "train" / "000"
    for side in ("Blur", "Sharp"):
        write(seq / side / "RAW", ["1.png", "2.png"], [10, 20])
        (seq / side / "RGB").mkdir()
    assert [(n, b.name) for n, b, _ in find_pair_dirs(seq)] == [("000", "RGB")]
    assert [(n, b.name) for n, b, _ in find_pair_dirs(tmp_path / "train")] == [("000", "RGB")]
    reds = tmp_path / "REDS" / "train"
    write(reds / "train_blur" / "000", ["1.png", "2.png", "3.png"], [60, 70, 80])
    write(reds / "train_sharp" / "000", ["1.png", "2.png", "3.png"], [61, 71, 81])
    gather([reds / "train_blur"], BlurParams(blur_px=2.0), [1.0], 1, 2)
    assert "give the folder that holds both sides" in capsys.readouterr().out


def test_an_image_written_over_keeps_its_mode(tmp_path: Path) -> None:
    """Written beside and renamed onto an earlier image, the new one took the umask's 0644
    (and, as root, root's ownership) where the old was the user's 0600."""
    from sarn_ros.image_files import imwrite

    path = tmp_path / "0.png"
    path.write_bytes(b"an earlier output")
    path.chmod(0o600)
    imwrite(path, frame(50))
    assert path.stat().st_mode & 0o777 == 0o600 and seq_values([cv2.imread(str(path))]) == [50]


def test_a_video_written_over_where_modes_cannot_be_set_is_still_written(
    tmp_path: Path, monkeypatch
) -> None:
    """A chmod refused (a vfat stick) as the video was renamed over the old one left its
    hidden part file and the old video: the whole run's output lost for its mode."""
    from sarn_ros import image_files
    from sarn_ros.offline import FrameSink

    video = tmp_path / "v.mp4"
    video.write_bytes(b"an earlier output")

    def refused(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(image_files.os, "chmod", refused)
    with FrameSink(video, 10) as sink:
        for v in (10, 20, 30):
            sink.write(frame(v), f"{v}.png")
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    assert int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_a_bsd_side_without_its_rgb_folder_is_no_tree_of_raw_frames(tmp_path: Path) -> None:
    """Blur/RAW beside Sharp/RAW (BSD's Bayer frames, RGB/ not copied) was read as a
    sequence named RAW, its mosaics as RGB frames."""
    seq = tmp_path / "000"
    for side in ("Blur", "Sharp"):
        write(seq / side / "RAW", ["1.png", "2.png"], [10, 20])
    assert [(n, b.name) for n, b, _ in find_pair_dirs(seq)] == [("000", "Blur")]
    with pytest.raises(ValueError, match="no readable frames"):
        load_pairs(seq)


def test_an_image_in_a_folder_not_writable_is_written_in_place() -> None:
    """Written beside and renamed onto, an image the user may write failed in a folder they
    may not (a shared results folder): cv2.imwrite writes it in place. As root (whom no mode
    stops), written from a child process turned nobody."""
    from sarn_ros.image_files import imwrite

    base = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own folder is closed to nobody
    folder = base / "ro"
    try:
        base.chmod(0o755)
        folder.mkdir()
        (folder / "a.png").write_bytes(b"an earlier output")
        (folder / "a.png").chmod(0o666)
        (folder / "b.png").symlink_to(folder / "a.png")
        folder.chmod(0o555)
        sticky = base / "sticky"  # another's file (root's) where renaming onto it is refused
        sticky.mkdir()
        (sticky / "d.png").write_bytes(b"an earlier output")
        (sticky / "d.png").chmod(0o666)
        sticky.chmod(0o1777)

        def write_all() -> str:
            img = np.full((4, 4, 3), 50, np.uint8)
            names = (folder / "a.png", folder / "b.png", folder / "c.png", sticky / "d.png")
            said = []
            for path in names:
                try:
                    imwrite(path, img)
                    said.append("written")
                except OSError as exc:
                    said.append(str(exc).rsplit(": ", 1)[-1].replace(" ", "_"))
            return " ".join(said)

        if os.geteuid() == 0:
            read, write = os.pipe()
            if (pid := os.fork()) == 0:  # pragma: no cover - the child
                try:  # never back into pytest, whatever is raised
                    os.setgid(65534)
                    os.setuid(65534)
                    os.write(write, write_all().encode())
                finally:
                    os._exit(0)
            os.close(write)
            os.waitpid(pid, 0)
            with os.fdopen(read) as f:
                out = f.read()
        else:
            out = write_all()
        # the file written; a link is not written through, nor a new file made
        assert out.split() == ["written", "Permission_denied", "Permission_denied", "written"]
        written = [cv2.imread(str(p)) for p in (folder / "a.png", sticky / "d.png")]
        assert seq_values(written) == [50, 50]
        assert sorted(os.listdir(folder)) == ["a.png", "b.png"] and os.listdir(sticky) == ["d.png"]
    finally:
        if folder.exists():
            folder.chmod(0o755)
        shutil.rmtree(base)


def test_an_image_written_to_a_device_is_written_to_it_not_replaced(tmp_path: Path) -> None:
    """Written beside and renamed onto, a device node there (/dev/null as an output) was
    replaced by a regular file; as cv2.imwrite does, it is written to. Root makes a null
    device of its own here; a folder stays an error."""
    import stat

    from sarn_ros.image_files import imwrite

    if os.geteuid() != 0:
        pytest.skip("only root makes a device node")
    null = tmp_path / "null.png"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    imwrite(null, frame(50))
    assert stat.S_ISCHR(null.stat().st_mode)
    pipe, got = tmp_path / "pipe.png", []  # a pipe, read as it is written
    os.mkfifo(pipe)
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    imwrite(pipe, frame(50))
    reader.join(10)
    assert seq_values([cv2.imdecode(np.frombuffer(got[0], np.uint8), cv2.IMREAD_COLOR)]) == [50]
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OSError, match=r"cannot write .*dir\.png: Is a directory$"):
        imwrite(tmp_path / "dir.png", frame(50))
    assert (tmp_path / "dir.png").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.png", "null.png", "pipe.png"]
