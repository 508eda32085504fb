"""The recipe (cleanfeed.stream.recipe): typed options to the chain, shared by `cleanfeed run` and the web app."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cleanfeed.errors import PromptError, PropertyError
from cleanfeed.prompts.shapes import Box, Point
from cleanfeed.stream import recipe
from cleanfeed.stream.cli import run as run_cli
from cleanfeed.stream.recipe import ElementSpec, RunOptions, chain

ROOT = Path(__file__).resolve().parents[2]

# `cleanfeed run ARGS --print-pipeline` as it printed before the recipe left the argparse module
BEFORE = {
    "in.mp4 -o out.mp4 --box 10,20,30,40 --moving":
        "filesrc location=in.mp4 ! segment frame=0 box=10,20,30,40 ! track ! dilate pixels=8 ! inpaint window=5 ! "
        "filesink location=out.mp4 codec=h264 crf=20 preset=veryfast",
    "in.mp4 -o out.mkv --point 5,6 --point 7,8,0 --frame 3 --codec ffv1 --crf 10":
        "filesrc location=in.mp4 ! segment frame=3 points=5,6,1;7,8,0 ! track ! dilate pixels=8 ! inpaint window=5 ! "
        "filesink location=out.mkv codec=ffv1 crf=10 preset=veryfast",
    "in.mp4 -o out.mp4 --masks m --save-masks s":
        "filesrc location=in.mp4 ! loadmask location=m ! savemask location=s ! inpaint window=5 ! "
        "filesink location=out.mp4 codec=h264 crf=20 preset=veryfast",
    "in.mp4 -o - --prompts p.json --classical --window 3":
        "filesrc location=in.mp4 ! segment frame=0 engine=classical prompts_file=p.json ! track engine=classical ! "
        "dilate pixels=8 ! inpaint window=3 engine=classical ! stdoutsink",
    "in.mp4 -o out.mp4 --mask mask.png --sam s.pth --deaot d.pth --e2fgvi e.pth --models M --device cpu "
    "--precision fp16 --backend onnxruntime":
        "filesrc location=in.mp4 ! segment frame=0 engine=sam checkpoint=s.pth models=M device=cpu precision=fp16 "
        "backend=onnxruntime mask_file=mask.png ! track engine=deaot checkpoint=d.pth models=M device=cpu "
        "precision=fp16 backend=onnxruntime ! dilate pixels=8 ! inpaint window=5 engine=e2fgvi checkpoint=e.pth "
        "models=M device=cpu precision=fp16 backend=onnxruntime ! filesink location=out.mp4 codec=h264 crf=20 "
        "preset=veryfast",
    "in.mp4 -o out.mp4 --box 1,2,3,4 --live --max-latency 500 --fallback blur --reconnect-timeout 5 "
    "--inpaint-mode offline --region full --preset slow --dilate 0":
        "filesrc location=in.mp4 reconnect_timeout=5.0 ! segment frame=0 box=1,2,3,4 ! track ! inpaint window=5 "
        "mode=offline region=full fallback=blur ! filesink location=out.mp4 codec=h264 crf=20 preset=slow "
        "tune=zerolatency",
    # a live output without --preset encodes at the live preset (issue 20; before it: veryfast)
    "rtsp://x/y -o out.ts --box 1,2,3,4 --live --codec hevc":
        "filesrc location=rtsp://x/y ! segment frame=0 box=1,2,3,4 ! track ! dilate pixels=8 ! inpaint window=5 ! "
        "filesink location=out.ts codec=hevc crf=20 preset=superfast tune=zerolatency",
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cleanfeed")
    run_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.mark.parametrize("args", list(BEFORE))
def test_the_cli_options_give_the_chain_run_gave(args: str) -> None:
    options = run_cli.options(parse(["run", *shlex.split(args)]))
    assert run_cli.launch_line(chain(options)) == BEFORE[args]


def test_options_typed_in_code_give_the_same_chain_as_the_command_line() -> None:
    typed = RunOptions(input="in.mp4", output="out.mkv", points=(Point(5, 6), Point(7, 8, False)), frame=3,
                       codec="ffv1", crf=10)
    assert run_cli.launch_line(chain(typed)) == BEFORE["in.mp4 -o out.mkv --point 5,6 --point 7,8,0 --frame 3 --codec ffv1 --crf 10"]
    specs = chain(RunOptions(input="in.mp4", output="out.mp4", box=Box(10, 20, 30, 40), moving=True))
    assert all(isinstance(s, ElementSpec) for s in specs)
    assert [s.factory for s in specs] == ["filesrc", "segment", "track", "dilate", "inpaint", "filesink"]
    assert specs[1].props == {"frame": 0, "box": (10, 20, 30, 40)}


def test_a_box_alone_is_first_searched_for_a_screen_fixed_bug() -> None:
    specs = chain(RunOptions(input="in.mp4", output="out.mp4", box=Box(10, 20, 30, 40)))
    assert [s.factory for s in specs] == ["filesrc", "logo", "segment", "track", "dilate", "inpaint", "filesink"]
    assert specs[1].props == {"box": (10, 20, 30, 40), "absent": "pass", "learn": 100}
    for no_search in (dict(moving=True), dict(live=True), dict(sam="s.pth"), dict(deaot="d.pth"), dict(frame=3),
                      dict(points=(Point(5, 6),))):
        factories = [s.factory for s in chain(RunOptions(input="in.mp4", output="o.mp4", box=Box(10, 20, 30, 40),
                                                         **no_search))]
        assert "logo" not in factories and "segment" in factories, no_search


def test_a_screen_fixed_bug_is_learnt_by_the_logo_element_not_tracked() -> None:
    static = chain(RunOptions(input="in.mp4", output="out.mp4", box=Box(10, 20, 30, 40), static=True))
    assert [s.factory for s in static] == ["filesrc", "logo", "inpaint", "filesink"]  # an estimated mask: no dilation
    assert static[1].props == {"box": (10, 20, 30, 40), "learn": 100}
    live = chain(RunOptions(input="in.mp4", output="out.mp4", box=Box(10, 20, 30, 40), static=True, live=True))
    assert live[1].props == {"box": (10, 20, 30, 40)}, "a live run keeps the one-second lookahead"
    saved = chain(RunOptions(input="in.mp4", output="out.mp4", logo_matte="bug.npz", dilate=2))
    assert [(s.factory, s.props) for s in saved[1:3]] == [("logo", {"file": "bug.npz"}), ("dilate", {"pixels": 2})]


def test_a_live_output_encodes_at_the_live_preset_unless_one_is_chosen() -> None:
    """A sink cannot shed: a live run's encoder defaults to zerolatency and a preset that keeps up
    (recipe.LIVE_PRESET); a preset the user names is kept, live or not; files keep veryfast."""
    def sink(**options: object) -> ElementSpec:
        return chain(RunOptions(input="in.mp4", box=Box(1, 2, 3, 4), moving=True, **options))[-1]  # type: ignore[arg-type]

    assert recipe.LIVE_PRESET == "superfast" and recipe.FILE_PRESET == "veryfast"
    live = sink(output="out.ts", live=True)
    assert (live.props["preset"], live.props["tune"]) == ("superfast", "zerolatency")
    assert sink(output="out.ts", live=True, preset="medium").props["preset"] == "medium"
    assert sink(output="out.ts", live=True, preset="veryfast").props["preset"] == "veryfast"
    file = sink(output="out.mp4")
    assert file.props["preset"] == "veryfast" and "tune" not in file.props
    assert sink(output="-", live=True) == ElementSpec("stdoutsink", {"preset": "superfast"})
    assert sink(output="-", preset="slow") == ElementSpec("stdoutsink", {"preset": "slow"})
    assert sink(output="-") == ElementSpec("stdoutsink", {})
    # the command line: --preset is given or not, and written back only when given
    assert run_cli.options(parse(["run", "in.mp4", "-o", "o.ts", "--box", "1,2,3,4", "--live"])).preset is None
    explicit = run_cli.options(parse(["run", "in.mp4", "-o", "o.ts", "--box", "1,2,3,4", "--live", "--preset", "veryfast"]))
    written = run_cli.argv(explicit)
    assert written[written.index("--preset") + 1] == "veryfast"


def test_per_stage_engines_override_the_chain_s_choice() -> None:
    options = RunOptions(input="in.mp4", output="o.mp4", prompts="p.json", classical=True, inpaint_engine="telea")
    specs = dict(chain(options))
    assert specs["segment"]["engine"] == specs["track"]["engine"] == "classical"
    assert specs["inpaint"]["engine"] == "telea"
    assert "engine" not in dict(chain(RunOptions(input="i", output="o", prompts="p", segment_engine="auto")))["segment"]


@pytest.mark.parametrize(("options", "error", "text"), [
    (dict(box=Box(1, 2, 3, 4), masks="m"), PromptError, "--masks replaces segmenting and tracking"),
    ({}, PromptError, "nothing to remove: give --box, --point, --mask, --prompts, --logo or --masks"),
    (dict(box=Box(1, 2, 3, 4), max_latency=100.0), PropertyError, "--max-latency needs --live"),
    (dict(box=Box(1, 2, 3, 4), live=True, max_latency=0.0), PropertyError, "--max-latency must be > 0 ms, got 0"),
    (dict(box=Box(1, 2, 3, 4), classical=True, deaot="d.pth"), PromptError, "--classical and --deaot contradict"),
    (dict(box=Box(1, 2, 3, 4), reconnect_timeout=-1.0), PropertyError, "--reconnect-timeout must be >= 0 s, got -1"),
    (dict(static=True, points=(Point(5, 6),)), PromptError, "--static removes the screen-fixed bug in --box"),
    (dict(box=Box(1, 2, 3, 4), static=True, frame=4), PromptError, "give it with --box alone"),
    (dict(box=Box(1, 2, 3, 4), logo_matte="bug.npz"), PromptError, "--logo-matte says where the bug is"),
    (dict(box=Box(1, 2, 3, 4), static=True, moving=True), PromptError, "--moving says the box's object moves"),
])
def test_contradictions_are_refused_in_the_recipe(options: dict, error: type, text: str) -> None:
    with pytest.raises(error, match=text.replace("+", r"\+")):
        chain(RunOptions(input="in.mp4", output="out.mp4", **options))


@pytest.mark.parametrize("args", [*BEFORE, "in.mp4 -o out.mp4 --box=-5,2,30,40 --point=-1,3,0"])
def test_the_command_line_written_for_options_parses_back_to_them(args: str) -> None:
    options = run_cli.options(parse(["run", *shlex.split(args)]))
    written = run_cli.argv(options)
    assert written[:4] == ["run", options.input, "-o", options.output]
    assert run_cli.options(parse(written)) == options


def test_options_survive_the_job_file() -> None:
    options = RunOptions(input="in.mp4", output="o.mp4", box=Box(1, 2, 3, 4), points=(Point(1.5, 2, False),),
                         live=True, max_latency=40.0, track_engine="classical")
    assert RunOptions.from_json(json.loads(json.dumps(options.to_json()))) == options


def test_every_option_has_a_docstring() -> None:
    text = (ROOT / "stream" / "recipe.py").read_text(encoding="utf-8")
    for name in RunOptions.__dataclass_fields__:
        line = next(i for i, each in enumerate(text.splitlines()) if each.startswith(f"    {name}:"))
        assert text.splitlines()[line + 1].strip().startswith('"""'), name


def test_the_web_app_s_run_is_built_from_options_not_a_parsed_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from logo_clip import write_logo_clip

    from cleanfeed.stream.gui import session as session_module
    from cleanfeed.stream.gui.masker import ClassicalMasker

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the app parsed a command line")

    started: list[RunOptions] = []

    class Job:
        def __init__(self, options: RunOptions, *args: object, **kwargs: object) -> None:
            started.append(options)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", refuse)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", refuse)
    monkeypatch.setattr(session_module, "RunJob", Job)
    clip = write_logo_clip(tmp_path / "logo.mp4", width=160, height=96, logo=(100, 20, 140, 52))
    session = session_module.Session(session_module.GuiConfig(tmp_path / "work"), masker=ClassicalMasker())
    session.load(str(clip))
    session.click(120, 36, "positive")
    session.settings.track_engine = "classical"
    run = session.start_run()
    (options,) = started
    assert options.input == str(clip) and options.prompts == str(run.prompts) and options.track_engine == "classical"
    assert run.command == f"cleanfeed run {clip} -o {run.video.name} --prompts prompts.json --dilate 8"
    assert run.launch == "cleanfeed launch " + shlex.quote(run_cli.launch_line(chain(options)))


def test_the_worker_builds_its_pipeline_without_the_cli(tmp_path: Path) -> None:
    """The job file holds RunOptions; the worker builds the recipe's chain from them, importing
    neither the CLI's run module (its parser) nor the CLI's runner."""
    probe = """
import sys
import cleanfeed.stream.gui.worker
import cleanfeed.stream.recipe
assert "cleanfeed.stream.cli.run" not in sys.modules, "worker imports cleanfeed.stream.cli.run"
assert "cleanfeed.stream.cli.execute" not in sys.modules, "worker imports cleanfeed.stream.cli.execute"
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    source = (ROOT / "stream" / "gui" / "worker.py").read_text(encoding="utf-8")
    assert 'RunOptions.from_json(job["options"])' in source
