"""The parts of live deadlines, one at a time: the fallback fills, a frame's due time, the budget
check's numbers, the encoder's measured delay, and E2FGVI's stream path letting frames go early."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from cleanfeed.engines.classical.cover import FALLBACKS, fill
from cleanfeed.errors import PropertyError
from cleanfeed.stream.adapters.base import ModelSettings
from cleanfeed.stream.adapters.inpaint_e2fgvi import E2fgviEngine
from cleanfeed.stream.adapters.inpaint_windows import InlineWindows
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.element import Deadline
from cleanfeed.stream.live import HOP_MARGIN_S, LivePlan, refuse_short_budget
from cleanfeed.stream.media.encode import EncoderSettings, encoder_delay
from cleanfeed.stream.picture import Picture


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    base = np.linspace(40, 200, 64, dtype=np.float32)
    rgb = np.stack([np.add.outer(base, base) / 2, np.tile(base, (64, 1)), np.tile(base[:, None], (1, 64))], -1)
    rgb = np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
    hole = np.zeros((64, 64), bool)
    hole[20:40, 16:44] = True
    return rgb, hole


@pytest.mark.parametrize("how", FALLBACKS)
def test_every_fallback_covers_the_hole_and_nothing_else(how: str) -> None:
    clean, hole = _scene()
    logo = clean.copy()
    logo[hole] = (255, 0, 255)  # a loud magenta logo
    out = fill(logo, hole, how)
    assert out.shape == logo.shape and out.dtype == np.uint8
    assert np.array_equal(out[~hole], logo[~hole])
    magenta = np.all(out[hole] == (255, 0, 255), axis=-1)
    assert not magenta.any()
    if how != "pixelate":  # inpaint and blur use only the pixels around the hole
        assert np.abs(out[hole].astype(int) - clean[hole]).mean() < 40


def test_an_unknown_fallback_is_refused() -> None:
    clean, hole = _scene()
    with pytest.raises(ValueError, match=r"^fallback must be one of inpaint, blur, pixelate, got 'smudge'$"):
        fill(clean, hole, "smudge")


def _frame(seq: int, born: float | None) -> VideoFrame:
    frame = VideoFrame.new(seq, seq, Fraction(1, 25), Picture.empty("yuv420p", 32, 32))
    if born is not None:
        frame.stamps["src"] = born
    return frame


def test_a_frame_is_due_at_birth_plus_budget_less_what_comes_after() -> None:
    plan = LivePlan(budget_ms=500, after_frames=3, after_hops=2)
    deadline = plan.deadline(Fraction(25))
    assert deadline == Deadline(0.5, 3 / 25 + 2 * HOP_MARGIN_S)
    assert deadline.due(_frame(0, 100.0)) == pytest.approx(100.0 + 0.5 - 0.12 - 2 * HOP_MARGIN_S)
    assert deadline.due(_frame(1, None)) == float("inf")
    assert LivePlan(pace=True).deadline(Fraction(25)) is None


def test_the_budget_check_says_the_numbers() -> None:
    refuse_short_budget(640, "--max-latency", Fraction(25), 5, 11, "x264 veryfast")  # exactly enough
    with pytest.raises(PropertyError) as err:
        refuse_short_budget(200, "--max-latency", Fraction(25), 5, 11, "x264 veryfast")
    assert str(err.value) == (
        "--max-latency 200 ms is less than the chain's lookahead 5 frames = 200 ms at 25 fps + x264 veryfast's "
        "11 frames = 440 ms (tune=zerolatency holds none)"
    )
    with pytest.raises(PropertyError, match=r"^latency 99 ms is less than the chain's lookahead 3 frames = 100 ms at 30 fps$"):
        refuse_short_budget(99, "latency", Fraction(30), 3, 0, "")


def test_zerolatency_removes_the_x264_delay_and_veryfast_has_one() -> None:
    assert encoder_delay(EncoderSettings(tune="zerolatency")) == (0, "x264 veryfast tune=zerolatency")
    frames, label = encoder_delay(EncoderSettings(preset="veryfast"))
    assert label == "x264 veryfast" and frames >= 10  # 11 with slice threads, 17 with frame threads (2 cores)
    assert encoder_delay(EncoderSettings(codec="ffv1")) == (0, "")


@dataclass
class _Patch:
    index: int
    box: None = None


class _SlowWindows:
    """Stands in for the E2FGVI sliding inpainter: answers only when asked to."""

    def __init__(self) -> None:
        self.pushed = 0
        self.ready: list[_Patch] = []

    def push(self, rgb: np.ndarray, mask: np.ndarray) -> list[_Patch]:
        self.pushed += 1
        out, self.ready = self.ready, []
        return out

    def finish(self) -> list[_Patch]:
        return [_Patch(i) for i in range(self.pushed)][-2:]


def test_e2fgvi_stream_frames_expire_in_order_and_their_late_answers_are_dropped() -> None:
    engine = E2fgviEngine(None, ModelSettings())  # type: ignore[arg-type]
    windows = _SlowWindows()
    engine._windows = InlineWindows(windows)
    frames = [_frame(i, float(i)) for i in range(4)]
    covered: list[int] = []

    def cover(frame: VideoFrame) -> VideoFrame:
        covered.append(frame.seq)
        frame.meta["degraded"] = True
        return frame

    assert engine.process(frames[0]) == [] and engine.process(frames[1]) == []
    out = engine.expire(lambda f: f.seq < 1, cover)
    assert [f.seq for f in out] == [0] and covered == [0]
    windows.ready = [_Patch(0), _Patch(1)]  # the engine's answer for 0 comes too late: dropped
    assert [f.seq for f in engine.process(frames[2])] == [1]
    assert not frames[1].meta.get("degraded")
    engine.process(frames[3])
    assert [f.seq for f in engine.expire(lambda f: True, cover)] == [2, 3]
    assert list(engine.flush()) == []  # both left already
