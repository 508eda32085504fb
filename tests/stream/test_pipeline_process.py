"""Pipelines with one process per element: the same contract as threads, plus processes."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import sys
import textwrap
import time

import pytest

from cleanfeed.errors import ElementError
from cleanfeed.stream.element import Filter
from cleanfeed.stream.elements.fakesink import FakeSink
from cleanfeed.stream.pipeline import Pipeline
from cleanfeed.stream.shm import PREFIX, SHM_DIR
from tests.stream.fake_elements import CountSource, RecordSink, expected_crcs
from tests.stream.runtime_checks import SCENARIOS, alive, element_processes


@pytest.fixture(autouse=True)
def no_leftovers():
    shm_before = {p.name for p in SHM_DIR.iterdir() if p.name.startswith(PREFIX)}
    yield
    assert element_processes(os.getpid()) == []
    assert multiprocessing.active_children() == []
    shm_after = {p.name for p in SHM_DIR.iterdir() if p.name.startswith(f"{PREFIX}{os.getpid()}-")}
    assert shm_after <= shm_before


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario_in_processes(scenario, tmp_path) -> None:
    scenario("process", tmp_path)


def test_every_element_runs_in_its_own_process(tmp_path) -> None:
    out = tmp_path / "rec.json"
    report = Pipeline.from_launch(f"t_countsrc frames=5 ! identity ! t_recordsink location={out}").run()
    assert report.mode == "process"
    pid = json.loads(out.read_text())["pid"]
    assert pid != os.getpid() and not alive(pid)


def test_elements_run_in_processes_named_for_them_with_the_callers_environment_of_now(tmp_path, monkeypatch) -> None:
    """They are forked from a fork server started by an earlier run: the environment must
    still be this run's, as with a freshly spawned process."""
    out = tmp_path / "rec.json"
    Pipeline.from_launch(f"t_countsrc frames=2 ! t_recordsink location={out}").run(mode="process")
    monkeypatch.setenv("CLEANFEED_TEST_ENV", "set after the first run")
    Pipeline.from_launch(f"t_countsrc frames=2 ! t_recordsink location={out}").run(mode="process")
    rec = json.loads(out.read_text())
    assert rec["env"] == "set after the first run"
    assert rec["comm"] == "cf:t_recordsink"


def test_classes_a_child_cannot_import_are_refused_before_spawning() -> None:
    class Hidden(Filter):
        factory = "t_hidden"

    with pytest.raises(ElementError, match=r"^t_hidden: class .*Hidden must be defined at module level to run in its own process"):
        Pipeline([CountSource(), Hidden(), FakeSink()]).run(mode="process")


def test_a_plugin_element_is_loaded_in_the_child_from_its_file(tmp_path) -> None:
    """Element modules that are not on the child's sys.path still load (by file)."""
    plugin = tmp_path / "cf_plugin_invert.py"
    plugin.write_text(textwrap.dedent('''
        from cleanfeed.stream.element import Filter

        class PluginInvert(Filter):
            factory = "t_plugin_invert"

            def process(self, frame):
                frame.picture.data[...] = 255 - frame.picture.data
                return [frame]
    '''))
    spec = importlib.util.spec_from_file_location("cf_plugin_invert", plugin)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cf_plugin_invert"] = module
    try:
        spec.loader.exec_module(module)
        out = tmp_path / "rec.json"
        Pipeline([CountSource(frames=4), module.PluginInvert(), RecordSink(location=str(out))]).run(mode="process")
    finally:
        del sys.modules["cf_plugin_invert"]
    assert json.loads(out.read_text())["crcs"] == expected_crcs(4, invert=True)


def test_a_callback_that_raises_still_leaves_nothing_running(tmp_path) -> None:
    def progress(p):
        raise KeyError("callback broke")

    start = time.monotonic()
    with pytest.raises(KeyError):
        Pipeline.from_launch("t_countsrc frames=0 delay_ms=5 ! identity ! fakesink").run(progress=progress, stats_every_s=0.05)
    assert time.monotonic() - start < 8
