"""Pipelines in threads mode, and what Pipeline checks before anything runs."""

from __future__ import annotations

import threading

import pytest

from cleanfeed.errors import LinkError, PipelineSyntaxError, PropertyError, UnknownElementError
from cleanfeed.stream.element import Element
from cleanfeed.stream.elements.fakesink import FakeSink
from cleanfeed.stream.elements.identity import Identity
from cleanfeed.stream.pipeline import Pipeline
from tests.stream.fake_elements import CountSource, RecordSink
from tests.stream.runtime_checks import SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario_in_threads(scenario, tmp_path) -> None:
    scenario("thread", tmp_path)
    assert [t.name for t in threading.enumerate() if t.name.startswith("cleanfeed:")] == []


def test_roles_are_checked_and_bad_links_name_both_ends() -> None:
    with pytest.raises(LinkError, match=r"^cannot link fakesink to identity: fakesink is a sink$"):
        Pipeline([CountSource(), FakeSink(), Identity(), FakeSink()])
    with pytest.raises(LinkError, match=r"^cannot link identity to t_countsrc: t_countsrc is a source$"):
        Pipeline([CountSource(), Identity(), CountSource(), FakeSink()])
    with pytest.raises(LinkError, match=r"^pipeline must start with a source, got identity \(a filter\)$"):
        Pipeline([Identity(), FakeSink()])
    with pytest.raises(LinkError, match=r"^pipeline must end with a sink, got identity \(a filter\)$"):
        Pipeline([CountSource(), Identity()])
    with pytest.raises(LinkError, match=r"^pipeline must have a source and a sink, got t_countsrc$"):
        Pipeline([CountSource()])


def test_duplicate_names_become_unique_like_gstreamer() -> None:
    pipe = Pipeline.from_launch("t_countsrc ! identity ! identity name=identity1 ! identity ! fakesink")
    assert [e.name for e in pipe.elements] == ["t_countsrc", "identity0", "identity1", "identity2", "fakesink"]
    pipe = Pipeline.from_launch("t_countsrc ! identity name=a ! identity ! fakesink")
    assert [e.name for e in pipe.elements] == ["t_countsrc", "a", "identity", "fakesink"]
    assert pipe.describe() == "t_countsrc ! identity name=a ! identity ! fakesink"


def test_lookahead_sums_the_elements() -> None:
    assert Pipeline.from_launch("t_countsrc ! t_lookahead depth=4 ! identity ! t_lookahead depth=2 ! fakesink").lookahead == 6


def test_launch_errors_name_the_column_of_their_token() -> None:
    with pytest.raises(UnknownElementError, match=r"^no element named 'identty'; did you mean 'identity'\? \(column 14\)$"):
        Pipeline.from_launch("t_countsrc ! identty ! fakesink")
    with pytest.raises(PropertyError, match=r"^identity property delay_ms must be >= 0, got -5.0 \(column 23\)$"):
        Pipeline.from_launch("t_countsrc ! identity delay_ms=-5 ! fakesink")
    with pytest.raises(PropertyError, match=r"^identity has no property 'speed' \(properties: delay_ms\) \(column 23\)$"):
        Pipeline.from_launch("t_countsrc ! identity speed=2 ! fakesink")
    with pytest.raises(PropertyError, match=r"^fakesink property sync must be true or false, got 'maybe' \(column 34\)$"):
        Pipeline.from_launch("t_countsrc ! identity ! fakesink sync=maybe")
    with pytest.raises(PipelineSyntaxError):
        Pipeline.from_launch("t_countsrc ! ! fakesink")


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(PropertyError, match=r"^run mode must be one of process, thread, got 'fiber'$"):
        Pipeline.from_launch("t_countsrc ! fakesink").run(mode="fiber")


def test_fakesink_counts_and_sync_paces_by_pts() -> None:
    sink = FakeSink(sync=True)
    report = Pipeline([CountSource(frames=6), sink]).run(mode="thread")
    assert sink.frames == 6
    assert report.wall_s >= 5 / 30 * 0.9  # 6 frames at 30 fps span 5 frame durations


def test_elements_run_in_threads_are_the_pipeline_own_instances() -> None:
    sink = RecordSink()
    Pipeline([CountSource(frames=3), sink]).run(mode="thread")
    assert sink.record["seqs"] == [0, 1, 2] and sink.record["finished"]


def test_an_element_class_must_subclass_a_role() -> None:
    class Odd(Element):
        factory = "t_odd"

    with pytest.raises(LinkError, match=r"^pipeline must end with a sink, got t_odd \(a filter\)$"):
        Pipeline([CountSource(), Odd()])
