"""Where checkpoints are looked for: the models folder, searched by the official file names.

Nothing is ever downloaded: the user puts the released files in one folder (``--models DIR``,
``$CLEANFEED_MODELS``, else ``~/.cache/cleanfeed/models``) and engines find them by the names
their authors published, so the same folder serves SAM, DeAOT and E2FGVI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

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
