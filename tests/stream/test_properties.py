"""Property tables: parsing from text, type/range/choice checks, and the element base that uses them."""

from fractions import Fraction
from typing import ClassVar

import pytest

from cleanfeed.errors import PropertyError
from cleanfeed.stream.element import Filter
from cleanfeed.stream.properties import Property


class Sample(Filter):
    factory: ClassVar[str] = "sample"
    properties: ClassVar[tuple[Property, ...]] = (
        Property.int("window", "frames", 5, 0, 30),
        Property.float("gain", "", 1.0, 0.0),
        Property.bool("live", "", False),
        Property.enum("precision", "", ("fp32", "fp16"), "fp32"),
        Property.box("box", ""),
        Property.fraction("rate", "", Fraction(25)),
        Property.string("location", ""),
    )


def test_text_values_are_parsed_and_defaults_filled():
    el = Sample(window="7", gain="0.5", live="yes", precision="fp16", box="1,2,3,4", rate="30000/1001")
    assert (el.window, el.gain, el.live, el.precision) == (7, 0.5, True, "fp16")
    assert el.box == (1, 2, 3, 4)
    assert el.rate == Fraction(30000, 1001)
    assert el.location is None
    assert Sample().window == 5


def test_python_values_are_accepted():
    el = Sample(window=3, gain=2, box=[0, 0, 10, 10], location="x.mp4")
    assert el.gain == 2.0 and isinstance(el.gain, float)
    assert el.box == (0, 0, 10, 10)


def test_dashes_are_underscores():
    class Dashed(Filter):
        factory: ClassVar[str] = "dashed"
        properties: ClassVar[tuple[Property, ...]] = (Property.int("max_long_term", "", 4),)

    assert Dashed(**{"max-long-term": "9"}).max_long_term == 9


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"window": "x"}, "sample property window must be an integer, got 'x'"),
        ({"window": "31"}, "sample property window must be <= 30, got 31"),
        ({"window": -1}, "sample property window must be >= 0, got -1"),
        ({"window": True}, "must be an integer"),
        ({"live": "maybe"}, "must be true or false, got 'maybe'"),
        ({"precision": "int8"}, "must be one of fp32, fp16, got 'int8'"),
        ({"box": "1,2,3"}, "must be X0,Y0,X1,Y1 in pixels"),
        ({"box": "10,10,5,20"}, "with X1>X0>=0 and Y1>Y0>=0, got 10,10,5,20"),
        ({"rate": "1/0"}, "must be a number or N/D"),
        ({"nonsense": 1}, "sample has no property 'nonsense' \\(properties: box, gain, live, location, precision, rate, window\\)"),
    ],
)
def test_bad_values_name_the_rule(props, message):
    with pytest.raises(PropertyError, match=message):
        Sample(**props)


def test_describe_range():
    assert Sample.properties[0].describe_range() == "0 .. 30"
    assert Sample.properties[3].describe_range() == "fp32 | fp16"
    assert Sample.properties[6].describe_range() == ""
