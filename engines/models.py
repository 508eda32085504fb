"""Where checkpoints are looked for: the models folder, searched by the official file names.

Nothing is ever downloaded: the user puts the released files in one folder (``--models DIR``,
``$CLEANFEED_MODELS``, else ``~/.cache/cleanfeed/models``) and engines find them by the names
their authors published, so the same folder serves SAM, DeAOT and E2FGVI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cleanfeed.engines.checkpoints import check_file
from cleanfeed.errors import CheckpointError

ENV = "CLEANFEED_MODELS"
DEFAULT = Path("~/.cache/cleanfeed/models")


def models_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """The folder to search: the one given, else ``$CLEANFEED_MODELS``, else the default."""
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get(ENV) or DEFAULT).expanduser()


def find_checkpoint(files: Mapping[str, str], folder: Path, prefer: Sequence[str]) -> tuple[str, Path] | None:
    """The first variant of ``prefer`` whose official file (``files[variant]``) is in ``folder``.

    Returns ``(variant, path)``, or None when the folder holds none of them.
    """
    for variant in prefer:
        path = folder / files[variant]
        if path.is_file():
            return variant, path
    return None


@dataclass(frozen=True)
class Family:
    """A model family's checkpoints: what the official files are called and which one ``auto`` takes.

    Which element runs it and how a user names it on the command line belong to the runtime
    (cleanfeed.stream.adapters), not here."""

    name: str
    """``SAM``, ``DeAOT``, ``E2FGVI``."""
    engine: str
    """Its short name, the token that asks for it (``sam``)."""
    files: Mapping[str, str]
    """Variant -> official file name."""
    prefer: Sequence[str]
    """Variants in the order ``auto`` looks for them."""


@dataclass(frozen=True)
class Choice:
    """The checkpoint a model will load, and why that one."""

    checkpoint: Path
    model: str | None
    """The variant asked for (checked against the file), or None to take the file's own."""
    why: str


def official_names(family: Family, model: str) -> str:
    """The official file names looked for when ``model`` (a variant, or ``auto``) is asked for, in order."""
    prefer = tuple(family.prefer) if model == "auto" else (model,)
    return ", ".join(dict.fromkeys(family.files[v] for v in prefer))


def choose(family: Family, checkpoint: str | None, model: str, models: str | None) -> tuple[Choice | None, str]:
    """The checkpoint to load and the reason in words; None (and why) when the models folder holds none.

    A file given must exist and be a checkpoint; otherwise the models folder is searched by the
    official names. A found file's own contents decide its variant later (a renamed file still
    loads as what it is).
    """
    wanted = None if model == "auto" else model
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointError(
                f"{family.name} checkpoint {str(path)!r} must be a file, got {'a folder' if path.is_dir() else 'nothing there'}"
            )
        check_file(path)
        return Choice(path, wanted, f"checkpoint={path}"), f"{family.name} from {path}"
    folder = models_dir(models)
    found = find_checkpoint(family.files, folder, (wanted,) if wanted else tuple(family.prefer))
    if found is None:
        return None, f"no {family.name} checkpoint in {folder} (looked for {official_names(family, model)})"
    _, path = found
    check_file(path)
    return Choice(path, wanted, f"found {path.name} in {folder}"), f"{family.name}, {path.name} found in {folder}"


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used here ("must be ..., got ..."), or None. A GPU the user named
    and this machine lacks is an error, never a silent run on the CPU; torch is imported only
    when a GPU is named."""
    if device in ("auto", "cpu"):
        return None
    if not re.fullmatch(r"cuda(:\d+)?", device):
        return f"must be auto, cpu, cuda or cuda:N, got {device!r}"
    try:
        import torch
    except ImportError:
        return f"must be a device PyTorch can use, got {device} without PyTorch installed (pip install 'cleanfeed[torch]')"
    if not torch.cuda.is_available():
        return f"must be a CUDA GPU that PyTorch sees, got {device} on a machine where it sees none"
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        return f"must name one of the {torch.cuda.device_count()} CUDA GPU(s) here, got {device}"
    return None


def auto_device(device: str) -> str:
    """``auto`` is the first CUDA device when torch sees one, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
