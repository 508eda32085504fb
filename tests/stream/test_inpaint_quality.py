"""The issue's acceptance numbers: flow-guided inpainting against per-frame Telea, scored on ground truth.

Both sides get the same frames (testsrc, yuv420p) and the same masks, and go through the same
element with only ``method`` changed, so the difference is the method and nothing else.
"""

from __future__ import annotations

import numpy as np
from chain import run_filters

from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.element import Filter
from cleanfeed.stream.registry import create
from cleanfeed.stream.testclip import SyntheticClip, psnr

SIZE = {"width": 320, "height": 180, "frames": 40, "logo_size": 50}


def render(**props: object) -> tuple[Caps, list[VideoFrame]]:
    src = create("testsrc", {**SIZE, **props})
    caps = src.open()
    return caps, [f for f in src.read() if isinstance(f, VideoFrame)]


def run(caps: Caps, frames: list[VideoFrame], elements: list[Filter]) -> list[VideoFrame]:
    return run_filters(caps, frames, elements, copy=True)


def psnr_in_mask(frames: list[VideoFrame], clip: SyntheticClip, grow: int) -> float:
    """Mean PSNR (dB) inside the true logo mask grown by ``grow`` px, against the clean frames."""
    return float(np.mean([psnr(f.picture.rgb(), clip.frame(f.seq).clean, clip.truth_region(f.seq, grow)) for f in frames]))


def compare(logo: str, grow: int = 4) -> tuple[float, float]:
    caps, frames = render(logo=logo, truth_mask=True)
    clip = SyntheticClip(**SIZE, logo=logo)
    ours = run(caps, frames, [create("dilate", {"pixels": grow}), create("inpaint", {"window": 5})])
    telea = run(caps, frames, [create("dilate", {"pixels": grow}), create("inpaint", {"method": "telea"})])
    assert [f.seq for f in ours] == [f.seq for f in telea] == list(range(SIZE["frames"]))
    return psnr_in_mask(ours, clip, grow), psnr_in_mask(telea, clip, grow)


def test_fixed_logo_on_a_pan_beats_telea_by_5_db() -> None:
    ours, telea = compare("fixed")
    print(f"pan + fixed logo, window 5: propagate {ours:.2f} dB, per-frame Telea {telea:.2f} dB")
    assert ours >= telea + 5


def test_scene_logo_is_no_worse_than_telea() -> None:
    ours, telea = compare("scene")
    print(f"pan + scene logo, window 5: propagate {ours:.2f} dB, per-frame Telea {telea:.2f} dB")
    assert ours >= telea - 0.05


def test_whole_chain_from_the_true_box() -> None:
    """segment (true box) ! track ! dilate ! inpaint, as `cleanfeed run --box` builds it."""
    caps, frames = render(logo="fixed")
    clip = SyntheticClip(**SIZE, logo="fixed")
    box = tuple(frames[0].meta["logo_box"])

    def chain(method: str) -> list[VideoFrame]:
        return run(caps, frames, [create("segment", {"box": box}), create("track"), create("dilate", {"pixels": 4}),
                                  create("inpaint", {"method": method})])

    ours, telea = psnr_in_mask(chain("propagate"), clip, 4), psnr_in_mask(chain("telea"), clip, 4)
    print(f"segment ! track ! dilate ! inpaint: propagate {ours:.2f} dB, per-frame Telea {telea:.2f} dB")
    assert ours >= telea + 5
