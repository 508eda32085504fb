"""The JSON prompt file: what to remove, for `cleanfeed run --prompts FILE` and the GUI's download.

One format, read and written only here::

    {"version": 1,
     "objects": [
       {"id": 1, "frame": 0,  "box": [410, 96, 470, 150]},
       {"id": 1, "frame": 90, "points": [[440, 120, 1], [500, 130, 0]]},
       {"id": 2, "frame": 0,  "mask": "masks/bug.png"}
     ]}

Each entry is one object prompted on one frame (``cleanfeed.prompts.shapes.ObjectPrompt``). An id may
appear on several frames: each later entry is a new reference for that object there (a
correction), and tracking restarts from it. Points are ``[x, y, label]`` with label 1 (on the
object) or 0 (off it); a mask path is taken relative to the prompt file's folder. Other keys
(``"video"``, ``"note"``) are kept for people and ignored by cleanfeed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cleanfeed.errors import PromptError
from cleanfeed.prompts.shapes import ObjectPrompt

VERSION = 1


def prompts_from_json(data: Any, where: str, base: Path | None = None) -> list[ObjectPrompt]:
    """Prompts from a parsed prompt file; ``where`` names it in errors, ``base`` anchors relative mask paths."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        version = data.get("version") if isinstance(data, dict) else None
        raise PromptError(f"prompts file {where!r} must have \"version\": {VERSION}, got {version!r}")
    objects = data.get("objects")
    if not isinstance(objects, list) or not objects:
        raise PromptError(f"prompts file {where!r} must list at least one object under \"objects\", got {objects!r}")
    prompts = []
    for item in objects:
        if not isinstance(item, dict):
            raise PromptError(f"prompts file {where!r}: each object must be a JSON object, got {item!r}")
        prompt = ObjectPrompt.from_dict(item)
        if prompt.mask is not None and base is not None and not Path(prompt.mask).is_absolute():
            prompt = ObjectPrompt(prompt.obj_id, prompt.frame, prompt.box, prompt.points,
                                  str(base / prompt.mask), prompt.extra)
        prompts.append(prompt)
    return prompts


def load_prompts(path: str | os.PathLike[str]) -> list[ObjectPrompt]:
    """Reads a prompt file (see the module doc); PromptError names the file and what is wrong."""
    file = Path(path)
    if not file.is_file():
        raise PromptError(f"prompts file {str(path)!r} does not exist")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PromptError(f"prompts file {str(path)!r} must be JSON, got an unreadable file ({err})") from None
    return prompts_from_json(data, str(path), file.parent)


def prompts_to_json(prompts: Iterable[ObjectPrompt], base: Path | None = None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The file's contents, entries ordered by frame then id; mask paths inside ``base`` become relative."""
    objects = []
    for p in sorted(prompts, key=lambda q: (q.frame, q.obj_id)):
        entry = p.to_dict()
        if p.mask is not None and base is not None:
            mask = Path(p.mask)
            if mask.is_absolute() and mask.resolve().is_relative_to(base.resolve()):
                entry["mask"] = mask.resolve().relative_to(base.resolve()).as_posix()
        objects.append(entry)
    return {"version": VERSION, **(extra or {}), "objects": objects}


def save_prompts(path: str | os.PathLike[str], prompts: Iterable[ObjectPrompt],
                 extra: dict[str, Any] | None = None) -> Path:
    """Writes a prompt file that :func:`load_prompts` reads back to the same prompts; returns its path."""
    file = Path(path)
    data = prompts_to_json(prompts, file.parent, extra)
    if not data["objects"]:
        raise PromptError("a prompt file must hold at least one object, got none")
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return file
