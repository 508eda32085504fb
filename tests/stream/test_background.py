"""The engine-call thread that keeps punctual elements free: order, drops, the end, errors."""

from __future__ import annotations

import threading
import time

import pytest

from cleanfeed.errors import ElementError
from cleanfeed.stream.background import Background


def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_calls_run_in_order_and_droppable_ones_can_be_dropped_before_they_start() -> None:
    gate, ran = threading.Event(), []

    def call(i: int):  # type: ignore[no-untyped-def]
        def run() -> list[int]:
            if i == 0:
                gate.wait(10)
            ran.append(i)
            return [i * 10]
        return run

    worker = Background("track", "DeAOT frame")
    worker.submit(call(0))
    _until(lambda: worker.backlog == 1 and worker._inbox.empty())  # call 0 is under way
    for i in range(1, 6):
        worker.submit(call(i), droppable=i != 3)
    assert worker.backlog == 6
    assert worker.drop_queued() == 4 and worker.backlog == 2  # 3 is kept: not droppable
    gate.set()
    assert list(worker.finish(lambda: [99])) == [0, 30, 99]
    assert ran == [0, 3] and worker.done and worker.backlog == 0
    worker.close()


def test_ready_hands_over_answers_without_waiting() -> None:
    worker = Background("inpaint", "window")
    assert worker.ready() == []
    worker.submit(lambda: [1, 2])
    worker.submit(lambda: [])
    worker.submit(lambda: [3])
    got: list[int] = []
    _until(lambda: bool(got.extend(worker.ready())) or got == [1, 2, 3])
    worker.request_finish()
    _until(lambda: worker.ready() == [] and worker.done)
    worker.close()


def test_an_exception_in_a_call_is_the_elements_error_on_the_next_look() -> None:
    worker = Background("track", "DeAOT frame")

    def boom() -> list[int]:
        raise RuntimeError("CUDA out of memory")

    worker.submit(boom)
    with pytest.raises(ElementError, match=r"^track: DeAOT frame failed: RuntimeError: CUDA out of memory$"):
        _until(lambda: worker.ready() is None)
    assert worker.done
    worker.close()


def test_busy_seconds_count_the_time_inside_calls() -> None:
    worker = Background("inpaint", "window")
    worker.submit(lambda: time.sleep(0.05) or [])
    list(worker.finish())
    assert 0.05 <= worker.busy_s < 5
    worker.close()
