"""`cleanfeed inspect [NAME]`: what gst-inspect is to GStreamer."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from cleanfeed.stream import registry
from cleanfeed.stream.element import Element


def add_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help="list the elements, or describe one",
                       description="Without NAME, list every element; with NAME, show its properties.")
    p.add_argument("name", nargs="?", metavar="NAME", help="an element's factory name, e.g. inpaint")
    p.set_defaults(func=main)


def listing() -> str:
    rows = [(name, cls.klass, cls.description.split("\n", 1)[0]) for name, cls in registry.factories().items()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a.ljust(w0)}  {b.ljust(w1)}  {c}" for a, b, c in rows)


def _default(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def describe(cls: type[Element]) -> str:
    out = [f"Factory:      {cls.factory}", f"Klass:        {cls.klass}", f"Role:         {cls.role}"]
    if cls.lookahead is Element.lookahead:
        lookahead = "0 frames"
    else:
        try:
            lookahead = f"{cls().lookahead} frame(s) with default properties"
        except Exception:  # elements that need a property to be built (e.g. a location)
            lookahead = "depends on its properties"
    out.append(f"Lookahead:    {lookahead}")
    out.append("")
    out += textwrap.wrap(cls.description.replace("\n", " "), 92)
    if cls.example:
        out += ["", "Example:", f"  cleanfeed launch \"{cls.example}\""]
    out += ["", "Properties:"]
    if not cls.properties:
        out.append("  (none)")
    for prop in cls.properties:
        out.append(f"  {prop.name:<16} {prop.kind:<8} {prop.blurb}")
        rng = prop.describe_range()
        detail = f"default: {_default(prop.default)}" + (f"   range: {rng}" if rng else "")
        out.append(f"  {'':<16} {'':<8} {detail}")
    return "\n".join(out)


def main(args: argparse.Namespace) -> int:
    print(describe(registry.lookup(args.name)) if args.name else listing())
    return 0
