"""The child-process spec survives its trip to the child, and both crews answer the restart
part of the crew protocol."""

from __future__ import annotations

from dataclasses import replace

from cleanfeed.stream.crews.child import ChildSpec, ElementSpec
from cleanfeed.stream.crews.threads import ThreadCrew
from cleanfeed.stream.live import LivePlan
from cleanfeed.stream.pipeline import Pipeline


def _spec() -> ChildSpec:
    return ChildSpec(
        element=ElementSpec("identity", "cleanfeed.stream.elements.identity", "Identity", None, {"delay_ms": 5}),
        index=1, inlet="ipc:///tmp/x/link0", in_link="src -> identity", outlet="ipc:///tmp/x/link1",
        out_link="identity -> sink", stats="ipc:///tmp/x/stats", control="/tmp/x/control", shm=None, slots=12,
        credits=None, every=0.5, parent=1, env={"A": "1"}, log_level=20,
        live=LivePlan(live=True, budget_ms=250.0, label="--max-latency", after_frames=3), keep=16,
    )


def test_a_child_spec_comes_back_as_it_left() -> None:
    spec = _spec()
    assert ChildSpec.from_blob(spec.to_blob()) == spec
    restarted = replace(spec, resume=40, peers=(11, 12), reseed="/tmp/x/last1.npz")
    assert ChildSpec.from_blob(restarted.to_blob()) == restarted
    assert ChildSpec.from_blob(replace(spec, live=None).to_blob()).live is None


def test_threads_answer_the_restart_protocol_with_no() -> None:
    pipe = Pipeline.from_launch("testsrc frames=1 ! identity ! fakesink")
    crew = ThreadCrew(pipe.elements)
    assert crew.max_restarts == 0
    assert crew.restartable("identity") == "threads cannot die one by one"
    assert crew.advance_restarts() == []
