"""The objects the user has prompted, with an undo history: nothing a click does is final.

Each object has an id (1..255, the value written into masks) and, per frame it was prompted
on, a :class:`FramePrompt` (points and at most one box). The book is a value: every change
makes a new mapping and pushes the old one on the undo stack, so undo also brings back a
cleared frame or a deleted object.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cleanfeed.errors import PromptError
from cleanfeed.prompts.shapes import Box, ObjectPrompt, Point

MAX_OBJECTS = 255
UNDO_DEPTH = 200


@dataclass(frozen=True)
class FramePrompt:
    """One object's prompt on one frame (hashable: masks are cached by it)."""

    points: tuple[Point, ...] = ()
    box: Box | None = None

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None


Entries = dict[int, dict[int, FramePrompt]]
"""object id -> frame -> prompt."""


class PromptBook:
    """Objects and their prompts (see the module doc)."""

    def __init__(self) -> None:
        self._entries: Entries = {}
        self._history: list[Entries] = []
        self.current: int | None = None

    # -- reading --------------------------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        return sorted(self._entries)

    def frames_of(self, obj_id: int) -> list[int]:
        return sorted(self._entries.get(obj_id, {}))

    def on_frame(self, frame: int) -> dict[int, FramePrompt]:
        """id -> prompt for every object prompted on ``frame``."""
        return {i: f[frame] for i, f in sorted(self._entries.items()) if frame in f}

    def get(self, obj_id: int, frame: int) -> FramePrompt:
        return self._entries.get(obj_id, {}).get(frame, FramePrompt())

    def prompts(self) -> list[ObjectPrompt]:
        """Every non-empty entry as ObjectPrompts, by frame then id (the prompt file's order)."""
        out = [ObjectPrompt(i, frame, p.box, p.points)
               for i, frames in self._entries.items() for frame, p in frames.items() if not p.empty]
        return sorted(out, key=lambda q: (q.frame, q.obj_id))

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    # -- changing -------------------------------------------------------------------------------
    def _change(self) -> Entries:
        """A copy to modify; the current state goes on the undo stack."""
        self._history.append(self._entries)
        del self._history[:-UNDO_DEPTH]
        return {i: dict(frames) for i, frames in self._entries.items()}

    def new_object(self) -> int:
        """Adds an object with the lowest free id and makes it current."""
        free = next((i for i in range(1, MAX_OBJECTS + 1) if i not in self._entries), None)
        if free is None:
            raise PromptError(f"objects must be at most {MAX_OBJECTS}, got {MAX_OBJECTS} already")
        entries = self._change()
        entries[free] = {}
        self._entries = entries
        self.current = free
        return free

    def select(self, obj_id: int) -> None:
        if obj_id not in self._entries:
            known = ", ".join(map(str, self.ids)) or "none"
            raise PromptError(f"object must be one of {known}, got {obj_id}")
        self.current = obj_id

    def _current(self) -> int:
        return self.current if self.current in self._entries else self.new_object()  # type: ignore[return-value]

    def add_point(self, frame: int, point: Point) -> int:
        """Adds a point for the current object on ``frame`` (creating the object if none); returns its id."""
        obj_id = self._current()
        entries = self._change()
        old = entries[obj_id].get(frame, FramePrompt())
        entries[obj_id][frame] = replace(old, points=old.points + (point,))
        self._entries = entries
        return obj_id

    def set_box(self, frame: int, box: Box) -> int:
        """Sets (replaces) the current object's box on ``frame``; returns its id."""
        if box.x1 <= box.x0 or box.y1 <= box.y0:
            raise PromptError(f"box must have x1 > x0 and y1 > y0, got {box}")
        obj_id = self._current()
        entries = self._change()
        entries[obj_id][frame] = replace(entries[obj_id].get(frame, FramePrompt()), box=box)
        self._entries = entries
        return obj_id

    def clear(self, frame: int) -> bool:
        """Removes the current object's prompt on ``frame``; False when there was none."""
        if self.current is None or frame not in self._entries.get(self.current, {}):
            return False
        entries = self._change()
        del entries[self.current][frame]
        self._entries = entries
        return True

    def delete(self, obj_id: int) -> None:
        """Removes an object with all its prompts (undo brings it back)."""
        if obj_id not in self._entries:
            raise PromptError(f"object {obj_id} does not exist")
        entries = self._change()
        del entries[obj_id]
        self._entries = entries
        if self.current == obj_id:
            self.current = self.ids[-1] if self.ids else None

    def replace_all(self, prompts: list[ObjectPrompt]) -> None:
        """Takes a prompt file's contents (undoable); a mask-only entry is refused (the app draws points and boxes)."""
        entries: Entries = {}
        for p in prompts:
            if p.mask is not None:
                raise PromptError(f"prompt file entries must be points or boxes here, got a mask file for object {p.obj_id}")
            entries.setdefault(p.obj_id, {})[p.frame] = FramePrompt(tuple(p.points), p.box)
        self._change()
        self._entries = entries
        self.current = min(entries) if entries else None

    def undo(self) -> bool:
        """Back one change; False when there is nothing to undo."""
        if not self._history:
            return False
        self._entries = self._history.pop()
        if self.current not in self._entries:
            self.current = self.ids[-1] if self.ids else None
        return True
