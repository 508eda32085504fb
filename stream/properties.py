"""Typed, documented element properties: the table `cleanfeed inspect` prints and `launch` checks.

A property is declared once on the element class; values arrive either as text from a launch
string (``crf=18``) or as Python values from the CLI, and are checked the same way. Errors
read "<element> property <name> must be <rule>, got <value>".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from cleanfeed.errors import PropertyError


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


def _parse_ints(count: int | None) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        parts = [p for p in text.replace(" ", "").split(",") if p != ""]
        if count is not None and len(parts) != count:
            raise ValueError(f"{count} comma-separated integers")
        return tuple(int(round(float(p))) for p in parts)

    return parse


@dataclass(frozen=True)
class Property:
    """One property: ``kind`` is what inspect shows ("int", "float", "bool", "string",
    "enum", "box", "ints", "fraction"); ``default`` is a parsed value."""

    name: str
    kind: str
    blurb: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    parser: Callable[[str], Any] | None = None
    rule: str = ""

    # -- constructors, one per kind --------------------------------------------------------
    @classmethod
    def int(cls, name: str, blurb: str, default: int | None, minimum: int | None = None, maximum: int | None = None) -> Property:
        return cls(name, "int", blurb, default, minimum, maximum, parser=lambda t: int(t, 0), rule="an integer")

    @classmethod
    def float(cls, name: str, blurb: str, default: float | None, minimum: float | None = None, maximum: float | None = None) -> Property:
        return cls(name, "float", blurb, default, minimum, maximum, parser=float, rule="a number")

    @classmethod
    def bool(cls, name: str, blurb: str, default: bool) -> Property:
        return cls(name, "bool", blurb, default, parser=_parse_bool, rule="true or false")

    @classmethod
    def string(cls, name: str, blurb: str, default: str | None = None) -> Property:
        return cls(name, "string", blurb, default, parser=str, rule="a string")

    @classmethod
    def enum(cls, name: str, blurb: str, choices: tuple[str, ...], default: str) -> Property:
        return cls(name, "enum", blurb, default, choices=choices, parser=str, rule="one of " + ", ".join(choices))

    @classmethod
    def box(cls, name: str, blurb: str, default: tuple[int, int, int, int] | None = None) -> Property:
        return cls(name, "box", blurb, default, parser=_parse_ints(4), rule="X0,Y0,X1,Y1 in pixels")

    @classmethod
    def ints(cls, name: str, blurb: str, default: tuple[int, ...] | None = None) -> Property:
        return cls(name, "ints", blurb, default, parser=_parse_ints(None), rule="comma-separated integers")

    @classmethod
    def fraction(cls, name: str, blurb: str, default: Fraction | None = None) -> Property:
        return cls(name, "fraction", blurb, default, minimum=0, parser=lambda t: Fraction(t.strip()), rule="a number or N/D")

    # -- checking ---------------------------------------------------------------------------
    def coerce(self, value: Any, owner: str = "") -> Any:
        """Parses text and checks type, range and choices; raises PropertyError naming ``owner``."""
        where = f"{owner} property {self.name}" if owner else f"property {self.name}"

        def refuse(rule: str) -> PropertyError:
            return PropertyError(f"{where} {rule}", element=owner, prop=self.name, rule=rule)

        if value is None:
            return None
        try:
            if isinstance(value, str) and self.kind != "string":
                value = self.parser(value) if self.parser else value
            elif self.kind == "int" and not isinstance(value, bool) and isinstance(value, (int, float)) and int(value) == value:
                value = int(value)
            elif self.kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = float(value)
            elif self.kind in ("box", "ints") and isinstance(value, (tuple, list)):
                value = tuple(int(v) for v in value)
            elif self.kind == "fraction" and isinstance(value, (int, float, Fraction)):
                value = Fraction(value)
        except (ValueError, TypeError, ZeroDivisionError):
            raise refuse(f"must be {self.rule}, got {value!r}") from None
        expected: dict[str, tuple[type, ...]] = {
            "int": (int,), "float": (float,), "bool": (bool,), "string": (str,), "enum": (str,),
            "box": (tuple,), "ints": (tuple,), "fraction": (Fraction,),
        }
        if self.kind in expected and (
            not isinstance(value, expected[self.kind]) or (self.kind == "int" and isinstance(value, bool))
        ):
            raise refuse(f"must be {self.rule}, got {value!r}")
        if self.choices and value not in self.choices:
            raise refuse(f"must be one of {', '.join(self.choices)}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise refuse(f"must be >= {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise refuse(f"must be <= {self.maximum:g}, got {value!r}")
        if self.kind == "box":
            x0, y0, x1, y1 = value
            if x1 <= x0 or y1 <= y0 or min(value) < 0:
                raise refuse(f"must be X0,Y0,X1,Y1 with X1>X0>=0 and Y1>Y0>=0, got {','.join(map(str, value))}")
        return value

    def describe_range(self) -> str:
        if self.choices:
            return " | ".join(self.choices)
        if self.minimum is not None or self.maximum is not None:
            lo = "-inf" if self.minimum is None else f"{self.minimum:g}"
            hi = "inf" if self.maximum is None else f"{self.maximum:g}"
            return f"{lo} .. {hi}"
        return ""


def normalize_name(name: str) -> str:
    """Properties may be written with dashes (GStreamer style) or underscores."""
    return name.strip().replace("-", "_")
