"""Reading model checkpoints safely, and telling which model a checkpoint belongs to.

Every model family (SAM, DeAOT, E2FGVI) reads its weights through here so that the failures a
user can cause read the same everywhere: a path that does not exist, a download that stopped
half way, a file that is not a checkpoint at all, or the weights of another model. Files are
unpickled with ``weights_only=True`` (a checkpoint from the internet must not run code) and
memory-mapped where the format allows it (zip-based ``torch.save`` files), so a 2.5 GB vit_h
checkpoint is not copied into memory twice.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cleanfeed.errors import BackendError, CheckpointError

if TYPE_CHECKING:
    import torch

FAMILIES = ("SAM", "DeAOT", "E2FGVI")
"""The model families ``identify`` recognises; anything else is ``"unknown"``."""

_ZIP_MAGIC = b"PK\x03\x04"
_WRAPPERS = ("state_dict", "model")
"""Keys under which training scripts nest the weights (aot-benchmark's ``load_network`` accepts both)."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The parameter-name -> tensor mapping stored in ``path``, on the CPU.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` (DeAOT's training snapshots) and a
    ``module.`` prefix on every key (weights saved from DataParallel). SAM and E2FGVI release
    plain state dicts. Raises CheckpointError for a missing, empty, truncated or foreign file.
    """
    torch = _torch()
    path = Path(path)
    head, is_zip = check_file(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise CheckpointError(
            f"checkpoint must be a PyTorch checkpoint file, got '{path}' ({_why(err, head)})"
        ) from None
    state = _unwrap(data)
    if state is None:
        raise CheckpointError(
            f"checkpoint must hold a state dict (parameter name -> tensor), got '{path}' holding {_kind(data)}"
        )
    return state


def check_file(path: Path) -> tuple[bytes, bool]:
    """What can be told of a checkpoint without PyTorch, in milliseconds (a command checks it
    before any process starts): it exists, is not empty, and a zip-based ``torch.save`` file
    has its end (a download that stopped half way). Returns its first bytes and whether it is a zip."""
    if not path.exists():
        raise CheckpointError(f"checkpoint must be an existing file, got '{path}' (not found)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint must be a file, got '{path}' (not a regular file)")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(64)
    if size == 0:
        raise CheckpointError(f"checkpoint must be a PyTorch checkpoint file, got '{path}' (empty file)")
    is_zip = zipfile.is_zipfile(path)
    if head.startswith(_ZIP_MAGIC) and not is_zip:
        raise CheckpointError(
            f"checkpoint must be a complete PyTorch checkpoint file, got '{path}' "
            f"(truncated: a zip archive without its end, {size} bytes; download it again)"
        )
    return head, is_zip


def identify(state_dict: Mapping[str, Any]) -> str:
    """The model family these weights belong to, from their parameter names: one of FAMILIES or ``"unknown"``.

    SAM: ``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*`` (segment_anything/modeling/sam.py).
    DeAOT: ``LSTT.*`` (its DualBranchGPM), ``patch_wise_id_bank.*`` and ``id_norm.*``
    (aot-benchmark networks/models/deaot.py; plain AOT lacks ``id_norm``). E2FGVI(-HQ):
    ``update_spynet.*`` and ``feat_prop_module.*`` (E2FGVI model/e2fgvi_hq.py InpaintGenerator).
    """
    roots = {key.removeprefix("module.").split(".", 1)[0] for key in state_dict}
    if {"image_encoder", "prompt_encoder", "mask_decoder"} <= roots:
        return "SAM"
    if {"LSTT", "patch_wise_id_bank", "id_norm"} <= roots:
        return "DeAOT"
    if {"update_spynet", "feat_prop_module"} <= roots:
        return "E2FGVI"
    return "unknown"


FAMILY_ROOTS: dict[str, str] = {
    "SAM": "image_encoder, prompt_encoder, mask_decoder",
    "DeAOT": "encoder, LSTT, decoder, patch_wise_id_bank, id_norm",
    "E2FGVI": "encoder, update_spynet, feat_prop_module, transformer, decoder",
}
"""Where each family's tensors live, as error messages name them."""


def require_family(state: Mapping[str, Any], family: str, source: str, detail: str | None = None) -> None:
    """CheckpointError unless ``state`` holds ``family``'s weights: another family's are named, anything else described.

    ``detail`` narrows what was expected (``vit_b``; ``vit_b, vit_l or vit_h``) in the message.
    """
    found = identify(state)
    if found == family:
        return
    if found == "unknown":
        wanted = f"{family} {detail}" if detail else family
        raise CheckpointError(
            f"{source} is not {_article(family)} {family} checkpoint: it holds {describe_keys(state)}, "
            f"expected {wanted} (tensors under {FAMILY_ROOTS[family]})"
        )
    narrowed = f" ({detail})" if detail else ""
    raise CheckpointError(f"{source} is {_article(found)} {found} checkpoint, expected {_article(family)} {family} checkpoint{narrowed}")


def _article(word: str) -> str:
    return "an" if word[0] in "AEIOU" else "a"


def describe_keys(state_dict: Mapping[str, Any], limit: int = 4) -> str:
    """A short account of what a state dict holds, for error messages: ``3 tensors under a, b``."""
    roots = sorted({key.split(".", 1)[0] for key in state_dict})
    shown = ", ".join(roots[:limit]) + (", ..." if len(roots) > limit else "")
    return f"{len(state_dict)} tensors under {shown or 'nothing'}"


def check_layout(expected: Mapping[str, Any], state: Mapping[str, Any], layout: str, source: str) -> None:
    """Names every way ``state`` departs from ``expected`` (names and shapes) before ``load_state_dict`` would fail on it.

    ``layout`` says what was expected in the error's words (``the SAM vit_b layout (...)``).
    """
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = [
        f"{len(items)} {what} (e.g. {items[0]})"
        for what, items in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
        if items
    ]
    if problems:
        raise CheckpointError(f"{source} must match {layout}, got tensors " + ", ".join(problems))


def checkpoint_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a checkpoint file; remembered per (path, size, mtime) since hashing 2.5 GB takes seconds."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise CheckpointError(f"checkpoint must be an existing file, got '{path}' (not found)") from None
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 23):
            digest.update(chunk)
    return digest.hexdigest()


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise BackendError(
            "reading a checkpoint needs torch, which is not installed: pip install cleanfeed[torch]"
        ) from None
    return torch


def _unwrap(data: Any) -> dict[str, torch.Tensor] | None:
    torch = _torch()
    if not isinstance(data, Mapping):
        return None
    if not _all_tensors(data, torch):
        for key in _WRAPPERS:
            inner = data.get(key)
            if isinstance(inner, Mapping) and inner and _all_tensors(inner, torch):
                data = inner
                break
        else:
            return None
    state = dict(data)
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _all_tensors(data: Mapping[Any, Any], torch: Any) -> bool:
    return bool(data) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items())


def _why(err: Exception, head: bytes) -> str:
    text = str(err)
    global_name = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if global_name:
        return f"it holds a Python object ({global_name.group(1)}), not only tensors; refusing to unpickle it"
    if isinstance(err, EOFError) or any(s in text for s in ("Ran out of input", "unexpected EOF", "truncated")):
        return "truncated; download it again"
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return f"not a checkpoint: a text file starting {head[:24].decode('ascii')!r}"
    return f"not a checkpoint: binary data torch cannot read, starting {head[:8].hex(' ')}"


def _kind(data: Any) -> str:
    if isinstance(data, Mapping):
        return f"a mapping of {len(data)} entries that are not all tensors"
    return f"a {type(data).__name__}"
