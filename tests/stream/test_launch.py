"""The gst-launch parser: structure, quoting, and errors that point at the token."""

import pytest

from cleanfeed.errors import PipelineSyntaxError
from cleanfeed.stream.launch import ElementSpec, join_argv, parse


def test_parses_elements_and_properties_in_order():
    specs = parse("filesrc location=in.mp4 ! segment box=1,2,30,40 ! filesink location=out.mp4")
    assert [s.factory for s in specs] == ["filesrc", "segment", "filesink"]
    assert specs[1].props == {"box": "1,2,30,40"}
    assert specs[2].column == text_index("filesink")


def text_index(word: str) -> int:
    return "filesrc location=in.mp4 ! segment box=1,2,30,40 ! filesink location=out.mp4".index(word)


def test_quotes_keep_spaces_and_bangs():
    specs = parse('filesrc location="my clip ! 1.mp4" ! filesink location=\'a b.mkv\'')
    assert specs[0].props["location"] == "my clip ! 1.mp4"
    assert specs[1].props["location"] == "a b.mkv"


def test_no_spaces_around_bang():
    assert [s.factory for s in parse("a!b!c")] == ["a", "b", "c"]


def test_property_column_is_recorded():
    specs = parse("testsrc   frames=10")
    assert specs[0].prop_columns["frames"] == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one element"),
        ("a ! ! b", "expected an element before '!' at column 5"),
        ("a !", "must not end with '!'"),
        ("a b", "expected key=value or '!' at column 3, got 'b'"),
        ("x=1 ! a", "expected an element name at column 1"),
        ('a k="oops', "unterminated quote at column 5"),
        ("a k=1 k=2", "property 'k' given twice"),
        ("a$ ! b", "element name must be letters"),
    ],
)
def test_errors_say_where(text, message):
    with pytest.raises(PipelineSyntaxError, match=message.replace("(", r"\(").replace("!", "!")):
        parse(text)


def test_join_argv_requotes_values_with_spaces():
    text = join_argv(["filesrc", "location=my file.mp4", "!", "fakesink"])
    assert parse(text) == [ElementSpec("filesrc", {"location": "my file.mp4"}, 0, {"location": 8}),
                           ElementSpec("fakesink", {}, text.index("fakesink"), {})]
