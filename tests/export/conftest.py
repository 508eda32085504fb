"""Export test fixtures: a tiny SAM checkpoint with random weights, and one fp32 export of it.

The tiny SAM is tests/tiny_models.py's. Exporting it takes ~8 s on this CPU, so the fp32 export is
made once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import save_tiny_sam


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam.pth")


@pytest.fixture(scope="session")
def tiny_spec(tiny_checkpoint: Path):
    from cleanfeed.export.sam import sam_spec

    return sam_spec(tiny_checkpoint)


@pytest.fixture(scope="session")
def fp32_export(tiny_spec, tmp_path_factory: pytest.TempPathFactory):
    """(export directory, manifest) of the tiny SAM in fp32, 2 parity samples, fixed seed."""
    from cleanfeed.export.model_export import export_model

    out = tmp_path_factory.mktemp("export") / "sam-fp32"
    lines: list[str] = []
    manifest = export_model(tiny_spec, out, "fp32", samples=2, seed=1234, progress=lines.append)
    return out, manifest, lines
