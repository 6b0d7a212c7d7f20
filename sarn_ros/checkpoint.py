"""One-file checkpoints (state_dict + architecture + metadata) and model loading.

Format (a plain dict, loadable with ``torch.load(..., weights_only=True)``)::

    {"format": "sarn_ros.checkpoint/1", "arch": "RecurrentSARN" | "SARN",
     "config": {...dataclass fields...}, "state_dict": {...}, "meta": {...}}

``meta`` holds free-form provenance: training data summary, steps, metrics, version.
"""

from __future__ import annotations

import contextlib
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .archs import SARN, RecurrentSARN, RecurrentSARNConfig, SARNConfig
from .archs.modules import DEFORM_IMPLS
from .weights_path import PACKAGED as PACKAGED
from .weights_path import CheckpointError as CheckpointError
from .weights_path import resolve_weights as resolve_weights

FORMAT = "sarn_ros.checkpoint/1"
ARCHS: dict[str, tuple[type[nn.Module], type]] = {
    "SARN": (SARN, SARNConfig),
    "RecurrentSARN": (RecurrentSARN, RecurrentSARNConfig),
}
DEFAULT_WEIGHTS = "sarn_recurrent"


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an error's message (else its type), for one-line errors:
    rcl, topic-name and torch errors span several lines (a caret under the bad character)."""
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)


def checkpoint_dict(model: nn.Module, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint of ``model`` as a dict (fp32 tensors on CPU)."""
    arch = type(model).__name__
    if arch not in ARCHS:
        raise ValueError(f"not a SARN model: {arch}")
    return {
        "format": FORMAT,
        "arch": arch,
        "config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().float().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` atomically (temp file + rename), so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(checkpoint_dict(model, meta), tmp)
    tmp.replace(path)
    return path


def torch_load_error(exc: BaseException) -> str:
    """What torch.load's error says in one line: its first, without the advice miniz adds to
    a cut-short zip, or what an empty message (EOFError) means."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return "the file ends early"
    return lines[0].split(" This is an internal miniz error")[0].rstrip(".")


NOT_TORCH = "neither a zip nor a pickle of protocol 2 or later, which torch.save writes"


def first_bytes(path: Path) -> bytes:
    """The first two bytes of ``path`` (b'' where unreadable): what it is, where torch.load
    says only "KeyError: 101"."""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        return f.read(2)
    return b""


def onnx_inside(path: Path) -> bool:
    """Whether ``path`` starts as an ONNX graph does (ir_version, its first field), whatever its
    name: an exported graph saved as .pth, which torch.load reads as "KeyError: 8"."""
    return first_bytes(path)[:1] == b"\x08"


CUT_SHORT = "cut short: its zip has no end"


def cut_short(path: Path) -> bool:
    """Whether ``path`` opens as a zip (which torch.save writes) and has no end: torch 2.14
    says only "[Errno 22] Invalid argument" for it (:data:`CUT_SHORT`)."""
    return first_bytes(path) == b"PK" and not zipfile.is_zipfile(path)


def not_torch_file(first: bytes) -> bool:
    """Whether a file starting with ``first`` is none torch.save writes (:data:`NOT_TORCH`)."""
    return bool(first) and first[:1] != b"\x80" and first != b"PK"


def damaged_member(path: Path) -> str | None:
    """The first member of the zip archive ``path`` whose CRC-32 does not match its bytes, else
    None. torch.load checks no checksum: a weights file with 100 bytes flipped by a bad copy
    or disk loaded without a word and deblurred to 11 dB below its input."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError, zlib.error):
        return None  # not a zip (or not one zipfile reads): torch.load names the fault


def read_checkpoint(weights: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint dict; raises CheckpointError with a one-line reason."""
    path = resolve_weights(weights)
    if path.suffix.lower() == ".onnx":  # torch's own words: "Unsupported operand 8"
        raise CheckpointError(
            f"{path} is an ONNX graph (sarn export): it runs as the weights of the node, the "
            "sarn tools and StreamDeblurrer, not as PyTorch weights (load_model, --init)"
        )
    if onnx_inside(path):  # named otherwise: renamed, it runs, but never as --init
        raise CheckpointError(
            f"cannot read {path}: it looks like an ONNX graph (sarn export); name it "
            f"{path.stem}.onnx to run it in the node, the sarn tools and StreamDeblurrer (not "
            "as PyTorch weights: load_model, --init)"
        )
    if (member := damaged_member(path)) is not None:
        raise CheckpointError(
            f"cannot read {path}: it is damaged ({member} does not match its checksum): copy "
            "or download it again"
        )
    try:
        with warnings.catch_warnings():
            # torch's own lines ahead of the one a refusal says (a plain pickle's "Detected
            # pickle protocol", "ComplexHalf support is experimental"; torch < 2.2's
            # TypedStorage in every weights_only load): the file is judged below
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file at all, foreign objects
        # torch's weights-only text opens with advice to load with weights_only=False; the
        # reason is further in: "Unsupported global: GLOBAL <class>" ("Unsupported class
        # <class>" before torch 2.4; "unsupported GLOBAL os.system whose module ... is
        # blocked" for code) or "Unsupported operand"
        text = str(exc)
        foreign = re.search(
            r"(?:Unsupported (?:global: GLOBAL|class)|unsupported GLOBAL) (\S+)", text
        )
        if foreign:
            raise CheckpointError(
                f"cannot read {path}: it holds objects other than tensors and plain values "
                f"({foreign.group(1)}), which sarn_ros does not load: weights run no code"
            ) from None
        first = first_bytes(path)  # unreadable: torch's words
        if not_torch_file(first):
            raise CheckpointError(
                f"cannot read {path}: not a PyTorch weights file ({NOT_TORCH})"
            ) from None
        if cut_short(path):
            raise CheckpointError(
                f"cannot read {path}: it is {CUT_SHORT} (a copy or download stopped part-way?): "
                "copy or download it again"
            ) from None
        reason = re.search(r"Unsupported \w+ \S+", text)
        line = reason.group(0) if reason else torch_load_error(exc)
        raise CheckpointError(
            f"cannot read {path}: not a readable PyTorch weights file ({type(exc).__name__}: "
            f"{line})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or ckpt.get("arch") not in ARCHS:
        if isinstance(ckpt, dict) and {"opt", "step", "model"} <= ckpt.keys():
            raise CheckpointError(
                f"{path} is a `sarn train` resume state, not weights: use best.pth or "
                f"latest.pth beside it (or `sarn train --run-dir {path.parent} --export X.pth`)"
            )
        raise CheckpointError(
            f"{path} is not a sarn_ros checkpoint (expected format {FORMAT}){foreign_hint(ckpt)}"
        )
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path} has no model config or state_dict")
    return ckpt


def foreign_hint(ckpt: Any) -> str:
    """What a weights file sarn_ros does not read is, where that can be told: one of another
    sarn_ros (a newer format, another network), or a bare state_dict (BasicSR's
    ``params``/``params_ema``, Lightning's ``state_dict``, or tensors alone) and how to make
    it one sarn_ros reads."""
    if not isinstance(ckpt, dict):
        return ""
    if str(ckpt.get("format", "")).startswith("sarn_ros."):
        made = f"format {ckpt['format']}, network {ckpt.get('arch')}"
        return f": written by another sarn_ros ({made}; this one reads {', '.join(ARCHS)})"
    inner = next((ckpt[k] for k in ("params_ema", "params", "state_dict") if k in ckpt), ckpt)
    if not isinstance(inner, dict) or not inner:
        return ""
    if not all(isinstance(v, torch.Tensor) for v in inner.values()):
        return ""
    wrapped = next((p for p in WRAPPERS if all(str(k).startswith(p) for k in inner)), None)
    strip = (
        f" (its keys start with {wrapped!r}, a {WRAPPERS[wrapped]}'s: strip that first)"
        if wrapped
        else ""
    )
    return (
        f": it looks like a bare state_dict{strip}; load it into SARN or RecurrentSARN with "
        "the config it was trained with and write it with sarn_ros.checkpoint.save_checkpoint"
    )


def build_model(ckpt: dict[str, Any], deform_impl: str | None = None) -> nn.Module:
    """Instantiate the architecture in ``ckpt`` and load its weights (strict, finite, floats:
    a NaN, or an int tensor rounded by load_state_dict, would deblur wrongly without an
    error)."""
    model_cls, cfg_cls = ARCHS[ckpt["arch"]]
    if deform_impl is not None and deform_impl not in DEFORM_IMPLS:  # the caller's, not the file's
        raise ValueError(f"deform impl must be one of {DEFORM_IMPLS}, got {deform_impl!r}")
    try:
        cfg = cfg_cls(**ckpt["config"])
        if deform_impl is not None:
            cfg.deform_impl = deform_impl
        model = model_cls(cfg)
    except (TypeError, ValueError, RuntimeError) as exc:  # a newer sarn_ros's, or hand-edited
        raise CheckpointError(f"config does not fit {ckpt['arch']}: {first_line(exc)}") from None
    if why := unsound(ckpt["state_dict"]):  # before load_state_dict casts them
        raise CheckpointError(f"weights of {ckpt['arch']} {why}")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        why = misfit(model.state_dict(), ckpt["state_dict"]) or first_line(exc)
        raise CheckpointError(f"weights do not fit {ckpt['arch']}: {why}") from None
    return model


def tensors_said(keys: list[str]) -> str:
    return f"{len(keys)} tensor{'s' * (len(keys) != 1)}"


def unsound(given: dict[str, Any]) -> str:
    """Tensors that load without an error and deblur wrongly: not floating point (rounded
    into the model's floats: up to 0.4 off), or holding NaN or inf (black frames)."""
    tensors = {k: v for k, v in given.items() if isinstance(v, torch.Tensor)}
    cast = [k for k, v in tensors.items() if not v.is_floating_point()]
    if cast:
        return f"hold {tensors_said(cast)} not of floats ({cast[0]}: {tensors[cast[0]].dtype})"
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    if bad:
        return (
            f"hold NaN or inf in {tensors_said(bad)} ({bad[0]}): the training that wrote them "
            "diverged"
        )
    return ""


def misfit(own: dict[str, torch.Tensor], given: dict[str, Any]) -> str:
    """Why ``given`` does not load into a model whose state_dict is ``own``, in one line:
    torch's message gives a line per key (hundreds for a config that does not fit), and its
    first line alone only says that loading failed."""
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    resized = [
        k for k in own if k in given and tuple(getattr(given[k], "shape", ())) != own[k].shape
    ]
    parts = []
    for what, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = ", ..." if len(keys) > 3 else ""
            parts.append(f"{len(keys)} {what} ({', '.join(keys[:3])}{more})")
    if resized:
        k = resized[0]
        shape = tuple(getattr(given[k], "shape", ()))
        parts.append(
            f"{len(resized)} of another shape ({k}: {list(shape)} in the file, "
            f"{list(own[k].shape)} in the model)"
        )
    for prefix, wrapper in WRAPPERS.items():  # the model's own keys under a wrapper's name
        if missing and all(prefix + k in given for k in missing):
            parts.append(
                f"the file's keys start with {prefix!r}, as a {wrapper}'s state_dict does: "
                "save the wrapped model's own"
            )
    return "; ".join(parts)


WRAPPERS = {"module.": "DataParallel or DDP wrapper", "_orig_mod.": "torch.compile wrapper"}


def load_model(
    weights: str | Path = DEFAULT_WEIGHTS,
    device: str | torch.device = "cpu",
    deform_impl: str | None = None,
) -> nn.Module:
    """A ready model (eval mode, on ``device``) from a checkpoint path or packaged name.

    The checkpoint's metadata is attached as ``model.meta``.
    """
    ckpt = read_checkpoint(weights)
    try:
        model = build_model(ckpt, deform_impl)
    except CheckpointError as exc:  # which file: the node and the tools print one line
        raise CheckpointError(f"{resolve_weights(weights)}: {exc}") from None
    model = model.to(device).eval()
    model.meta = ckpt.get("meta", {})
    return model
