"""E2FGVI-HQ on a CUDA GPU: the GPU paints what the CPU paints, and fp16 autocast stays within 2 levels
(of 255) of fp32 on 99.9% of masked pixel values (the issue's bar).

These run wherever torch sees a CUDA device (the lent H100, any NVIDIA machine) and skip elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from e2fgvi_weights import golden_clip, load_layout, seeded_state_dict  # noqa: E402

from cleanfeed.engines.e2fgvi.model import InpaintGenerator  # noqa: E402
from cleanfeed.engines.e2fgvi.offline import inpaint_offline  # noqa: E402
from cleanfeed.engines.e2fgvi.windows import dilate_mask  # noqa: E402

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU: torch sees none on this machine (these run on the lent H100 or any NVIDIA machine)",
)


def paint(device: str, precision: str = "fp32", frames: int = 12) -> tuple[np.ndarray, np.ndarray]:
    model = InpaintGenerator().eval().to(device)
    model.load_state_dict(seeded_state_dict(load_layout("e2fgvi_hq")), strict=True)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)

    def run(x: torch.Tensor, local: int) -> tuple[torch.Tensor, object]:
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            out, flows = model(x, local)
        return out.float(), flows

    rgb, masks = golden_clip(frames, 240, 432)
    out = inpaint_offline(run, list(rgb), list(masks), device=device)
    holes = np.stack([dilate_mask(m) for m in masks]).astype(bool)
    return np.stack(out), holes


def test_gpu_paints_what_the_cpu_paints() -> None:
    cpu, holes = paint("cpu", frames=6)
    gpu, _ = paint("cuda", frames=6)
    diff = np.abs(cpu.astype(int) - gpu.astype(int))[holes]
    assert (diff <= 1).mean() > 0.999  # TF32 off by default for matmuls; convolutions may differ slightly


def test_fp16_stays_within_two_levels() -> None:
    full, holes = paint("cuda")
    low, _ = paint("cuda", "fp16")
    within = (np.abs(full.astype(int) - low.astype(int)) <= 2)[holes]
    assert within.mean() >= 0.999, within.mean()
