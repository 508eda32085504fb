"""The one place where timestamps change time base.

Buffers carry ``pts`` as an integer count of ``time_base`` (a ``Fraction`` of a second),
exactly as the container gave them, so an output can keep the input's timestamps.
"""

from __future__ import annotations

from fractions import Fraction


def rescale(value: int, src: Fraction, dst: Fraction) -> int:
    """Converts ``value`` ticks of ``src`` into ticks of ``dst``, rounding half away from zero."""
    if src == dst:
        return value
    exact = Fraction(value) * src / dst
    whole = int(exact)
    rest = exact - whole
    if abs(rest) >= Fraction(1, 2):
        whole += 1 if exact > 0 else -1
    return whole


def seconds(value: int, time_base: Fraction) -> float:
    return float(value * time_base)


def as_fraction(value: object) -> Fraction:
    """Accepts a Fraction, an int, a float, a 'num/den' string or a (num, den) pair."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return Fraction(int(value[0]), int(value[1]))
    if isinstance(value, float):
        return Fraction(value).limit_denominator(1_000_000)
    return Fraction(value)  # type: ignore[arg-type]
