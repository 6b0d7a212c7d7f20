"""scripts/gpu_kit.py: what travels to a lent GPU and the sets rebuilt there must be the
recipe's (scales and blur of the original sources, whatever the packed size)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

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
