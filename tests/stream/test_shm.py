"""Shared-memory slots: mapping, allocation with credits, blocking, copies, no leftovers."""

from __future__ import annotations

import errno
import os
import threading
import time
from fractions import Fraction

import numpy as np
import pytest
import zmq

from cleanfeed.errors import MediaError, WireError
from cleanfeed.stream.buffers import Caps, VideoFrame
from cleanfeed.stream.links.sockets import CreditReturns, CreditSender
from cleanfeed.stream.picture import Picture
from cleanfeed.stream.pipeline import Pipeline
from cleanfeed.stream.ports import Aborted, StopRequested, ThreadControl
from cleanfeed.stream.shm import PREFIX, SHM_DIR, ShmSlots, SlotAllocator, SlotLayout, SlotPool, segment_path
from tests.stream import fake_elements  # noqa: F401  (registers the t_* elements)
from tests.stream.fake_elements import CountSource

CAPS = Caps(64, 48, Fraction(30), Fraction(1, 90_000))


@pytest.fixture
def name() -> str:
    value = f"{PREFIX}test-{os.getpid()}-{time.monotonic_ns()}"
    yield value
    if segment_path(value).exists():
        segment_path(value).unlink()
        pytest.fail(f"test left {value} behind")


def _ours() -> set[str]:
    return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(f"{PREFIX}{os.getpid()}-")}


def test_layout_sizes_are_aligned() -> None:
    lay = SlotLayout("yuv420p", 64, 48)
    assert lay.picture_bytes == 64 * 48 * 3 // 2
    assert lay.mask_offset % 64 == 0 and lay.mask_offset >= lay.picture_bytes
    assert lay.slot_bytes % 64 == 0 and lay.slot_bytes >= lay.mask_offset + 64 * 48
    assert lay.fits(Picture.empty("yuv420p", 64, 48)) and not lay.fits(Picture.empty("rgb24", 64, 48))


def test_two_mappings_of_one_segment_share_every_slot(name: str) -> None:
    lay = SlotLayout("rgb24", 64, 48)
    owner = SlotPool.create(name, lay, 3)
    other = SlotPool.from_info(owner.info())
    try:
        for slot in range(3):
            pic, mask = owner.views(slot)
            pic[...] = slot + 1
            mask[...] = 10 + slot
        for slot in range(3):
            pic, mask = other.views(slot)
            assert pic.shape == (48, 64, 3) and mask.shape == (48, 64)
            assert (pic == slot + 1).all() and (mask == 10 + slot).all()
        with pytest.raises(WireError, match=r"^shared-memory slot must be in 0..2, got 3$"):
            other.views(3)
    finally:
        owner.unlink()
        assert not segment_path(name).exists()
        pic, _ = other.views(0)  # mappings outlive the name
        assert (pic == 1).all()
        del pic
        other.close()
        owner.close()


def test_attach_refuses_a_segment_of_the_wrong_size(name: str) -> None:
    pool = SlotPool.create(name, SlotLayout("yuv420p", 64, 48), 2)
    try:
        with pytest.raises(WireError, match=rf"^shared memory {name} must be \d+ bytes for 3 slots, got \d+$"):
            SlotPool.attach(name, SlotLayout("yuv420p", 64, 48), 3)
    finally:
        pool.unlink()
        pool.close()


def test_create_without_room_is_a_media_error_and_leaves_nothing(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(MediaError, match=r"^shared memory must have room for 8 slots of .* MB in .*, got No space left on device; enlarge it"):
        SlotPool.create(name, SlotLayout("yuv420p", 1920, 1080), 8)
    assert not segment_path(name).exists()


def test_allocator_blocks_when_empty_until_a_credit_returns(name: str) -> None:
    pool = SlotPool.create(name, SlotLayout("yuv420p", 64, 48), 2)
    returned: list[int] = []
    polls = []

    def returns(timeout: float) -> list[int]:
        polls.append(timeout)
        time.sleep(timeout)
        out, returned[:] = list(returned), []
        return out

    alloc = SlotAllocator(pool, returns, lambda: None)
    try:
        first, second = alloc.acquire(), alloc.acquire()
        assert {first, second} == {0, 1} and alloc.free == 0
        alloc.give_back(first)  # still pending (not sent): a stray credit must not free it
        assert alloc.free == 0
        assert alloc.claim(first) and alloc.claim(second) and not alloc.claim(second)
        threading.Timer(0.2, lambda: returned.append(first)).start()
        start = time.monotonic()
        assert alloc.acquire() == first
        assert time.monotonic() - start >= 0.15 and len(polls) >= 2
        assert alloc.wait_s >= 0.15
        alloc.claim(first)
        alloc.give_back(first)
        alloc.give_back(first)  # a duplicate credit does not make two free slots
        alloc.give_back(99)  # nor does an unknown one
        assert alloc.free == 1
    finally:
        pool.unlink()
        pool.close()


def test_allocator_gives_up_when_interrupted(name: str) -> None:
    pool = SlotPool.create(name, SlotLayout("yuv420p", 64, 48), 1)
    control = ThreadControl()

    def interrupt() -> None:
        if control.stopping:
            raise StopRequested()

    alloc = SlotAllocator(pool, lambda t: time.sleep(t) or [], interrupt)
    try:
        alloc.acquire()
        threading.Timer(0.1, control.request_stop).start()
        with pytest.raises(StopRequested):
            alloc.acquire()
    finally:
        pool.unlink()
        pool.close()


def test_allocate_zeroes_the_slot_and_falls_back_to_the_heap_for_other_sizes(name: str) -> None:
    pool = SlotPool.create(name, SlotLayout("yuv420p", 64, 48), 2)
    alloc = SlotAllocator(pool, lambda t: [], lambda: None)
    try:
        pool.views(0)[0][...] = 9
        pool.views(0)[1][...] = 9
        picture, mask, slot = alloc.allocate(CAPS)
        assert slot == 0 and not picture.data.any() and not mask.any()
        _, _, none = alloc.allocate(CAPS.with_(width=32))
        assert none is None
    finally:
        pool.unlink()
        pool.close()


def test_credits_travel_over_zeromq(tmp_path) -> None:
    ctx = zmq.Context()
    endpoint = f"ipc://{tmp_path}/credits"
    returns = CreditReturns(ctx, endpoint)
    sender = CreditSender(ctx, endpoint)
    try:
        for slot in (3, 1, 2):
            sender(slot)
        got: list[int] = []
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            got += returns(0.1)
        assert got == [3, 1, 2]
        assert returns(0.01) == []
    finally:
        sender.close()
        returns.close()
        ctx.term()


def test_runner_slots_place_copies_replaced_pixels_into_the_incoming_slot(tmp_path, name: str) -> None:
    """A filter that returns new arrays: they are copied into the slot its input came in."""
    ctx = zmq.Context()
    control = ThreadControl()
    source = ShmSlots(ctx, control, name=name, count=4, credits=f"ipc://{tmp_path}/credits")
    src = CountSource(width=64, height=48)
    caps = src.open()
    source.prepare_source(caps, src)
    middle = ShmSlots(ctx, control)
    sink = ShmSlots(ctx, control, unlink_on_attach=True)
    try:
        assert source.info is not None and source.info["credits"].endswith("/credits")
        middle.attach(source.info)
        sink.attach(source.info)
        assert not segment_path(name).exists()  # the sink, last to attach, unlinked the name

        frame = src.new_frame(caps, 0, 0, caps.time_base)
        frame.picture.data[...] = 77
        source.place(frame)
        assert frame.slot is not None
        slot = frame.slot

        pic, mask = middle.resolve(slot)
        incoming = VideoFrame(0, 0, caps.time_base, Picture("yuv420p", 64, 48, pic), mask, slot=slot)
        middle.hold(incoming)
        replaced = incoming.copy()
        replaced.picture.data[...] = 200
        replaced.mask = np.full((48, 64), 5, np.uint8)
        middle.place(replaced)
        assert replaced.slot == slot
        pic, mask = sink.resolve(slot)
        assert (pic == 200).all() and (mask == 5).all()

        odd = VideoFrame.new(1, 0, caps.time_base, Picture.empty("rgb24", 64, 48))
        middle.hold(VideoFrame(1, 0, caps.time_base, Picture("yuv420p", 64, 48, pic), mask, slot=2))
        middle.place(odd)  # does not fit the pool: travels inline, its slot goes home
        assert odd.slot is None

        sink.release(replaced)  # the credit goes home: all 4 slots can be allocated again
        threading.Timer(5, control.request_abort).start()  # a missing credit fails, not hangs
        got = [src.new_frame(caps, seq, 0, caps.time_base).slot for seq in range(4)]
        assert sorted(got) == [0, 1, 2, 3]
    finally:
        for slots in (sink, middle, source):
            slots.close()
        ctx.term()


def test_source_slots_copy_heap_frames_in_and_honour_abort(tmp_path, name: str) -> None:
    ctx = zmq.Context()
    control = ThreadControl()
    slots = ShmSlots(ctx, control, name=name, count=1, credits=f"ipc://{tmp_path}/credits")
    src = CountSource()
    caps = src.open()
    slots.prepare_source(caps, src)
    try:
        heap = VideoFrame.new(0, 0, caps.time_base, Picture("yuv420p", 64, 48, np.full((72, 64), 33, np.uint8)))
        slots.place(heap)
        assert heap.slot == 0 and (slots.resolve(0)[0] == 33).all()
        threading.Timer(0.1, control.request_abort).start()
        with pytest.raises(Aborted):
            src.new_frame(caps, 1, 0, caps.time_base)  # no free slot: waits, then gives up
    finally:
        slots.close()
        segment_path(name).unlink()
        ctx.term()


@pytest.mark.parametrize("line", [
    "t_countsrc frames=12 ! t_lookahead depth=2 ! t_recordsink",
    "t_countsrc frames=12 ! t_fail at=4 ! t_recordsink",
    "t_countsrc fail_open=true ! identity ! t_recordsink",
])
def test_process_runs_leave_nothing_in_dev_shm(line: str) -> None:
    before = _ours()
    try:
        Pipeline.from_launch(line).run(mode="process")
    except Exception:
        pass
    assert _ours() == before
