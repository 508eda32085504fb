"""Our E2FGVI-HQ offline mode against goldens made by upstream's test.py (tests/engines/e2fgvi/goldens/README.md).

Same seeded weights by parameter name, same synthetic clip and masks, test.py's procedure end to
end: each window's model output within 1e-4 of upstream's, and the final uint8 frames equal
(a value may differ by 1 only where upstream's float lay within 0.02 of a truncation step).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from e2fgvi_weights import golden_clip, load_layout, seeded_state_dict  # noqa: E402

from cleanfeed.engines.e2fgvi.model import InpaintGenerator  # noqa: E402
from cleanfeed.engines.e2fgvi.offline import inpaint_offline  # noqa: E402
from cleanfeed.engines.e2fgvi.windows import offline_windows  # noqa: E402

GOLDEN = Path(__file__).parent / "goldens" / "e2fgvi_hq_20f.npz"


def test_offline_mode_matches_upstreams_test_py() -> None:
    golden = np.load(GOLDEN)
    frames, masks = golden_clip(int(golden["frames"]), int(golden["height"]), int(golden["width"]))
    model = InpaintGenerator().eval()
    model.load_state_dict(seeded_state_dict(load_layout("e2fgvi_hq"), int(golden["seed"])), strict=True)

    windows = offline_windows(len(frames), int(golden["neighbor_stride"]), int(golden["ref_length"]), int(golden["num_ref"]))
    for k, window in enumerate(windows):
        listed = [i for i in golden["window_frames"][k].tolist() if i >= 0]
        assert list(window.frames) == listed and len(window.neighbors) == int(golden["window_local"][k])

    stride = int(golden["raw_stride"])
    raw: dict[int, np.ndarray] = {}
    out = inpaint_offline(model, list(frames), list(masks), on_window=lambda c, o: raw.setdefault(c, o))
    for k, center in enumerate(w.center for w in windows):
        key = f"raw_w{k}"
        if key in golden.files:
            diff = np.abs(raw[center][:, :, ::stride, ::stride] - golden[key]).max()
            assert diff < 1e-4, f"window {k}: {diff}"

    dilated = golden["dilated"]
    ours = np.stack(out)
    np.testing.assert_array_equal(ours[~dilated], frames[~dilated])  # untouched pixels are the input's
    theirs = golden["final_masked"]
    differ = ours[dilated] != theirs
    near = golden["near_step"][dilated]
    assert not (differ & ~near).any()
    assert (np.abs(ours[dilated].astype(int) - theirs.astype(int)) <= 1).all()
