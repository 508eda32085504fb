"""Fuzzing launch strings (hypothesis): the parser and the pipeline builder either succeed or
raise a CleanfeedError with a one-line message, whatever the text."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanfeed.errors import CleanfeedError
from cleanfeed.stream import registry
from cleanfeed.stream.launch import parse
from cleanfeed.stream.pipeline import Pipeline

# elements whose construction writes files (savemask makes its folder) or loads a model stay out
SKIP = {"savemask", "segment_sam", "track_deaot"}
FACTORIES = sorted(f for f in registry.factories() if f not in SKIP and not f.startswith("t_"))  # t_*: other tests' fakes
VALUES = ["0", "-1", "1", "2.5", "1e400", "nan", "inf", "-inf", "true", "false", "yes", "", "x", "1,2,3,4", "4,3,2,1",
          "-5,0,10,10", "1/0", "30/1", "0x10", "tcp://127.0.0.1:1", "tcp://0.0.0.0:1", "ipc://", "/nonexistent/file",
          "'quoted value'", '"a b"', "a=b", "!"]
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _one_line(err: Exception) -> None:
    text = str(err)
    assert text and "\n" not in text, repr(text)


@SETTINGS
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_any_text_parses_or_is_a_syntax_error(text: str) -> None:
    try:
        specs = parse(text)
    except CleanfeedError as err:
        _one_line(err)
        return
    assert specs and all(spec.factory for spec in specs)


@st.composite
def launch_lines(draw: st.DrawFn) -> str:
    """Mostly well-formed lines of real factories with real or made-up properties and odd values."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        factory = draw(st.sampled_from(FACTORIES + ["nosuch", "identity"]))
        table = [p.name for p in registry.lookup(factory).properties] if factory != "nosuch" else []
        props = []
        for key in draw(st.lists(st.sampled_from(table + ["bogus", "name"]) if table else st.just("bogus"), max_size=3, unique=True)):
            value = draw(st.one_of(st.sampled_from(VALUES), st.text(max_size=12)))
            quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            props.append(f"{key}={quoted}")
        parts.append(" ".join([factory, *props]))
    return " ! ".join(parts)


@SETTINGS
@given(launch_lines())
def test_any_line_of_real_elements_builds_or_says_why(line: str) -> None:
    try:
        pipeline = Pipeline.from_launch(line)
    except CleanfeedError as err:
        _one_line(err)
        return
    assert pipeline.describe()


def test_the_fuzzed_factories_are_there() -> None:
    assert {"identity", "fakesink", "zmqsink", "zmqsrc"} <= set(FACTORIES)
