"""The fleet file: a bad key or value is one line naming the feed and the key, before anything
starts and without Ray; a batch expands to one feed per file; no Ray, one line saying how to get it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cleanfeed.stream.cli.main import main
from cleanfeed.stream.fleet.spec import FleetSpecError, load, parse

GOOD = '[[feeds]]\nname = "cam"\ninput = "in.mp4"\noutput = "out.mp4"\nbox = [10, 10, 50, 40]\n'


def _fleet(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    code = main(["fleet", str(path)])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(("text", "said"), [
    (GOOD + "colour = 'red'\n", "feed 'cam': unknown key 'colour'"),
    (GOOD + "win = 5\n", "feed 'cam': unknown key 'win'"),  # no prefix matching of run's --window
    (GOOD + "window = 'wide'\n", "feed 'cam': window: invalid int value: 'wide'"),
    (GOOD + "window = 99\n", "feed 'cam': window must be <= 30, got 99"),
    (GOOD + "codec = 'vp7'\n", "feed 'cam': "),
    (GOOD + "cpus = -1\n", "feed 'cam': cpus must be a number >= 0, got -1"),
    (GOOD + "stats = 'x.json'\n", "feed 'cam': key 'stats' is the fleet's to set"),
    (GOOD.replace("box = [10, 10, 50, 40]", "box = [50, 10, 10, 40]"), "feed 'cam': "),
    (GOOD.replace('name = "cam"\n', ""), "feed #1: name is missing"),
    ("[fleet]\nretries = 2\n" + GOOD, "[fleet]: unknown key 'retries'"),
    ("[fleet]\nconcurrency = 0\n" + GOOD, "[fleet]: concurrency must be an integer >= 1, got 0"),
    (GOOD + GOOD, "feed 'cam': name must be unique"),
    (GOOD + "[[feeds]]\nname = 'b'\ninputs = 'nothing/*.mp4'\noutput = '{stem}.mp4'\nbox = '1,1,5,5'\n",
     "feed 'b': inputs 'nothing/*.mp4' matches no file"),
    ("[[feeds]\n", "not valid TOML"),
    (GOOD + "split = 'inpain'\n", "feed 'cam': split must name one of the feed's elements after its source "
                                   "(logo, segment, track, dilate, inpaint, filesink), got 'inpain'"),
    (GOOD + "split = 'filesrc'\n", "feed 'cam': split must name one of the feed's elements after its source"),
    (GOOD + "split = 2\n", "feed 'cam': split must be the name of the element the second part starts with"),
    (GOOD + "decode_cpus = 2\n", "feed 'cam': decode_cpus is for a split feed's first part: give split too"),
    (GOOD + "split = 'inpaint'\ndecode_cpus = -1\n", "feed 'cam': decode_cpus must be a number >= 0, got -1"),
])
def test_a_bad_fleet_file_is_one_line_naming_the_feed_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               text: str, said: str) -> None:
    code, err = _fleet(tmp_path, text, capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"cleanfeed: error: {tmp_path / 'fleet.toml'}: "), err
    assert said in err


def test_a_batch_expands_to_one_feed_per_file_with_its_stem(tmp_path: Path) -> None:
    (tmp_path / "archive").mkdir()
    for stem in ("b", "a"):
        (tmp_path / "archive" / f"{stem}.mp4").write_bytes(b"")
    doc = {"fleet": {"concurrency": 2},
           "feeds": [{"inputs": "archive/*.mp4", "output": "clean/{stem}.mp4", "box": "1,2,3,4", "point": [[5, 6], "7,8,0"],
                      "live": False, "max_latency": 120.0}]}
    spec = parse(doc, tmp_path)
    assert [(f.name, f.input, f.output) for f in spec.feeds] == [("a", "archive/a.mp4", "clean/a.mp4"),
                                                                 ("b", "archive/b.mp4", "clean/b.mp4")]
    assert spec.feeds[0].run_args() == ["run", "archive/a.mp4", "-o", "clean/a.mp4", "--box=1,2,3,4",
                                        "--point=5,6", "--point=7,8,0", "--max-latency=120"]
    assert spec.concurrency == 2 and spec.local("clean/a.mp4") == tmp_path / "clean" / "a.mp4"


def test_a_split_feed_is_two_launch_parts_cut_before_the_split_element(tmp_path: Path) -> None:
    from cleanfeed.stream.cli.fleet import _run_parser, plan
    from cleanfeed.stream.fleet.split import Split, link
    from cleanfeed.stream.launch import parse as parse_launch

    (tmp_path / "fleet.toml").write_text(GOOD + "split = 'segment'\nlive = true\nmax_latency = 900\ngpus = 1\n")
    spec = load(tmp_path / "fleet.toml")
    assert (spec.feeds[0].split, spec.feeds[0].decode_cpus, spec.feeds[0].gpus) == ("segment", 1.0, 1.0)
    parts = plan(spec.feeds[0], spec, _run_parser())
    assert isinstance(parts, Split)
    assert parts.decode == ("launch", "filesrc location=in.mp4", "--mode", "process", "--max-restarts=3", "--live")
    assert parts.models[1].startswith("segment ") and parts.models[1].endswith("tune=zerolatency")
    assert parts.models[2:] == ("--mode", "process", "--max-restarts=3", "--latency=900")
    sending, receiving = link("tcp://10.0.0.7:5555")
    assert "secret" not in repr(sending) and sending.secret not in repr(sending)
    send = sending.args(parts.decode, tmp_path / "a")
    receive = receiving.args(parts.models, tmp_path / "b")
    assert [e.factory for e in parse_launch(send[1])] == ["filesrc", "zmqsink"]
    assert [e.factory for e in parse_launch(receive[1])][:2] == ["zmqsrc", "segment"]
    assert sending.secret not in " ".join(send + receive)  # keys are in files, never on a command line
    for path in [*(tmp_path / "a").rglob("*"), *(tmp_path / "b").rglob("*")]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_parsing_needs_no_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    (tmp_path / "fleet.toml").write_text(GOOD + "colour = 1\n")
    assert load(tmp_path / "fleet.toml").feeds[0].options["colour"] == 1
    (tmp_path / "fleet.toml").write_text("[fleet]\nmax_restarts = -1\n" + GOOD)
    with pytest.raises(FleetSpecError, match="max_restarts must be an integer >= 0"):
        load(tmp_path / "fleet.toml")


def test_without_ray_the_command_says_how_to_install_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    code, err = _fleet(tmp_path, GOOD, capsys)
    assert code == 2
    assert err == "cleanfeed: error: cleanfeed fleet needs Ray: pip install 'cleanfeed[fleet]'"


def test_the_readme_fleet_file_passes_the_checks(tmp_path: Path) -> None:
    from cleanfeed.stream.cli.fleet import _run_parser, run_args

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    text = readme.split("## Fleet", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "a.mp4").write_bytes(b"")
    (tmp_path / "fleet.toml").write_text(text)
    spec = load(tmp_path / "fleet.toml")
    assert [f.name for f in spec.feeds] == ["cam1", "a", "sponsor"] and spec.feeds[0].live and not spec.feeds[1].live
    assert (spec.max_restarts, spec.concurrency, spec.feeds[0].gpus, spec.feeds[0].cpus) == (3, 4, 0.5, 2.0)
    parser = _run_parser()
    assert run_args(spec.feeds[1], spec, parser) == ["run", "archive/a.mp4", "-o", "clean/a.mp4", "--box=10,10,90,60"]
    assert run_args(spec.feeds[0], spec, parser)[-2:] == ["--box=1139,19,1246,86", "--live"]
    # a list of strings is the flag repeated; the logo files are the feed's node's to find
    assert run_args(spec.feeds[2], spec, parser)[-2:] == ["--logo=brand.png", "--logo=brand-small.png"]


def test_the_readme_split_feed_passes_the_checks(tmp_path: Path) -> None:
    from cleanfeed.stream.cli.fleet import _run_parser, plan
    from cleanfeed.stream.fleet.split import Split

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    text = readme.split("### A feed split across nodes", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "fleet.toml").write_text(text)
    spec = load(tmp_path / "fleet.toml")
    feed = spec.feeds[0]
    assert (feed.split, feed.gpus, feed.cpus, feed.decode_cpus) == ("segment", 1.0, 1.0, 1.0)
    parts = plan(feed, spec, _run_parser())
    assert isinstance(parts, Split) and parts.decode[1] == "filesrc location=rtsp://10.0.0.6/stream"
    assert parts.models[1].startswith("segment ") and "checkpoint=models/sam_vit_b.pth" in parts.models[1]
