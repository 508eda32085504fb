"""The engine choices the settings panel offers, read from the elements themselves.

Each stage offers auto, classical, and its neural engine when that engine's code can run here
(torch importable), labelled with the checkpoint ``auto`` would load or why there is none. The
inpaint choices are the `inpaint` element's own ``engine`` tokens, so a new engine appears
without touching the app.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from cleanfeed.errors import CleanfeedError
from cleanfeed.stream import registry


@dataclass(frozen=True)
class StageChoices:
    """(label, token) pairs for a dropdown, and a line saying what auto would pick."""

    stage: str
    options: list[tuple[str, str]]
    note: str


def _torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def _element_engines(factory: str) -> list[str]:
    try:
        prop = next(p for p in registry.lookup(factory).properties if p.name == "engine")
    except (CleanfeedError, StopIteration):
        return ["auto"]
    return list(prop.choices or ("auto",))


def stage_choices(models: str | None) -> list[StageChoices]:
    """Segment, track and inpaint choices for the models folder ``models``."""
    from cleanfeed.stream.adapters.segment_sam import choose as choose_sam
    from cleanfeed.stream.adapters.track_deaot import choose as choose_deaot

    out = []
    for stage, neural, choose in (("segment", "sam", choose_sam), ("track", "deaot", choose_deaot)):
        choice, why = choose("auto", None, "auto", models)
        options = [("auto", "auto"), ("classical", "classical")]
        if _torch() and choice is not None:
            options.append((f"{neural} ({choice.checkpoint.name})", neural))
        note = f"{stage}: auto = {why}" if choice is not None else f"{stage}: auto = classical ({why})"
        out.append(StageChoices(stage, options, note))
    engines = _element_engines("inpaint")
    out.append(StageChoices("inpaint", [(e, e) for e in engines], f"inpaint: {', '.join(engines)}"))
    return out
