"""DeAOT's memories, bounded: a fixed number of long-term slots that never lose the user's reference.

Upstream keeps every long-term frame it is given (one every ``gap`` frames: a long video grows
without end), and Segment-and-Track-Anything's cap drops the oldest frame first — which is the
user's reference, the only frame whose mask a person drew. Here each sub-engine owns
``capacity`` slots; a slot holds one frame's keys, values and identity values for every layer.
Reference frames are pinned: a new frame evicts the oldest unpinned slot, and only when every
slot is pinned does a new reference evict the oldest reference after the first (a frame the
tracker merely predicted never evicts a reference). The slots are preallocated tensors, so the
memory a tracker uses is fixed from its first frame and the step graph sees static shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cleanfeed.engines.deaot.propagation import Memory


@dataclass
class Slot:
    frame: int
    pinned: bool


@dataclass
class _Engine:
    slots: list[Slot | None]
    first_reference: int | None = None
    last_write: int = 0
    """Frame of the last long-term write (upstream's ``last_mem_step``)."""


@dataclass
class MemoryBank:
    """Long-term slots ``[engines, capacity, T, C]`` and the short-term memory ``[engines, T, C]``, per layer."""

    capacity: int
    layers: int
    long_term: list[Memory] = field(default_factory=list)
    short_term: list[Memory] = field(default_factory=list)
    engines: list[_Engine] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.capacity < 2:
            raise ValueError(f"long-term memory must hold at least 2 frames, got {self.capacity}")

    @property
    def count(self) -> int:
        return len(self.engines)

    def add_engine(self, like: list[Memory]) -> int:
        """A new sub-engine with empty slots, shaped like ``like`` (one frame's ``[1, T, C]`` memory per layer)."""
        index = len(self.engines)
        self.engines.append(_Engine([None] * self.capacity))
        long_new = [Memory(*(t.new_zeros((1, self.capacity, *t.shape[1:])) for t in m)) for m in like]
        short_new = [Memory(*(torch.zeros_like(t) for t in m)) for m in like]
        if index == 0:
            self.long_term, self.short_term = long_new, short_new
        else:
            self.long_term = [Memory(*(torch.cat([a, b]) for a, b in zip(old, new, strict=True))) for old, new in zip(self.long_term, long_new, strict=True)]
            self.short_term = [Memory(*(torch.cat([a, b]) for a, b in zip(old, new, strict=True))) for old, new in zip(self.short_term, short_new, strict=True)]
        return index

    def remember_short(self, engine: int, memory: list[Memory]) -> None:
        """The frame just seen becomes sub-engine ``engine``'s short-term memory."""
        for held, new in zip(self.short_term, memory, strict=True):
            for dst, src in zip(held, new, strict=True):
                dst[engine].copy_(src[0])

    def remember_long(self, engine: int, memory: list[Memory], frame: int, pinned: bool) -> int | None:
        """Stores a frame in a long-term slot; returns the slot, or None when every slot holds a reference and this is not one."""
        state = self.engines[engine]
        slot = self._choose(state, pinned)
        if slot is None:
            return None
        for held, new in zip(self.long_term, memory, strict=True):
            for dst, src in zip(held, new, strict=True):
                dst[engine, slot].copy_(src[0])
        state.slots[slot] = Slot(frame, pinned)
        state.last_write = frame
        if pinned and state.first_reference is None:
            state.first_reference = frame
        return slot

    def due(self, engine: int, frame: int, gap: int) -> bool:
        """Whether ``frame`` is ``gap`` or more frames after the sub-engine's last long-term write."""
        return frame - self.engines[engine].last_write >= gap

    def valid(self, device: torch.device) -> torch.Tensor:
        """``[engines, capacity]`` bool: which slots hold a frame."""
        rows = [[slot is not None for slot in e.slots] for e in self.engines]
        return torch.tensor(rows, dtype=torch.bool, device=device)

    def used(self) -> int:
        """Slots in use from the front: the compact long-term memory a dynamic-shape backend needs to see."""
        return 1 + max(i for e in self.engines for i, s in enumerate(e.slots) if s is not None)

    def frames(self, engine: int) -> list[int]:
        """The frames held in sub-engine ``engine``'s long-term memory, oldest first."""
        return sorted(s.frame for s in self.engines[engine].slots if s is not None)

    def references(self, engine: int) -> list[int]:
        return sorted(s.frame for s in self.engines[engine].slots if s is not None and s.pinned)

    def _choose(self, state: _Engine, pinned: bool) -> int | None:
        slots = state.slots
        for i, slot in enumerate(slots):
            if slot is None:
                return i
        unpinned = [(s.frame, i) for i, s in enumerate(slots) if s is not None and not s.pinned]
        if unpinned:
            return min(unpinned)[1]
        if not pinned:
            return None
        later = [(s.frame, i) for i, s in enumerate(slots) if s is not None and s.frame != state.first_reference]
        return min(later)[1]
