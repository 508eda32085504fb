"""The fleet file: which feeds run, with which `cleanfeed run` options, and how they are supervised.

    [fleet]
    max_restarts = 2          # per feed, after its first try (default 3)
    concurrency = 4           # feeds running at once (default: all)

    [[feeds]]
    name = "cam1"
    input = "rtsp://10.0.0.5/stream"
    output = "rec/cam1.ts"
    box = "1139,19,1246,86"   # or [1139, 19, 1246, 86]
    live = true
    cpus = 2                  # what Ray reserves for the feed (default 1)
    gpus = 0.5                # a fraction of a GPU (default 0)

    [[feeds]]                 # split across two nodes: decode on one, from segment on (models,
    name = "cam2"             # encode, output) on a GPU node, joined by a zmq link the fleet
    input = "rtsp://10.0.0.6/stream"   # assigns (endpoint and CurveZMQ keys, see split.py)
    output = "rec/cam2.ts"
    box = "1139,19,1246,86"
    sam = "models/sam_vit_b.pth"
    split = "segment"         # the element the second part starts with
    gpus = 1                  # cpus and gpus: the part from `split` on
    decode_cpus = 1           # the part before it (default 1)

    [[feeds]]                 # a batch: one feed per file, named by its stem
    inputs = "archive/*.mp4"
    output = "clean/{stem}.mp4"
    box = "10,10,90,60"

Every other key of a feed is an option of `cleanfeed run` by its long name (``max_latency`` or
``max-latency``): ``true`` is a flag, a list of numbers is one comma-separated value (a box), a
list of strings or lists is the option repeated (``point``). Whether those options are valid is
the run command's business: this module only turns them into arguments (:meth:`FeedSpec.run_args`)
and the app layer parses them with run's own parser before anything starts.

Relative paths are relative to the fleet file's folder: the feed's process runs there, so an
input, an output, a prompt file or a checkpoint named relatively means the same whoever starts
the fleet from wherever. Parsing needs no Ray, so a bad file is the same one-line error with or
without it.
"""

from __future__ import annotations

import glob
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleanfeed.errors import CleanfeedError
from cleanfeed.stream.media.naming import Kind, kind_of, local_path

DEFAULT_MAX_RESTARTS = 3
FEED_KEYS = ("name", "input", "inputs", "output", "cpus", "gpus", "split", "decode_cpus")
"""The keys a feed table has besides run's options."""
FLEET_KEYS = ("max_restarts", "concurrency")
SET_BY_FLEET = ("stats", "quiet", "metrics_port", "metrics_host", "print_pipeline", "log_level")
"""run options the fleet sets itself (each feed's figures come back through its stats file)."""


class FleetSpecError(CleanfeedError, ValueError):
    """A fleet file that cannot be run as written; the message names the file, the feed and the key."""

    exit_code = 2


@dataclass(frozen=True)
class FeedSpec:
    """One pipeline of the fleet. ``options`` are run's options as the file gave them (key with
    underscores -> TOML value); ``live`` feeds run until the fleet is stopped, file feeds to their end."""

    name: str
    input: str
    output: str
    options: Mapping[str, Any] = field(default_factory=dict)
    cpus: float = 1.0
    gpus: float = 0.0
    split: str | None = None
    """The element the second part starts with (see cleanfeed.stream.fleet.split); None: one part."""
    decode_cpus: float = 1.0
    """What Ray reserves for a split feed's first part; ``cpus`` and ``gpus`` are its second's."""

    @property
    def live(self) -> bool:
        return bool(self.options.get("live")) or kind_of(self.input).network

    def run_args(self) -> list[str]:
        """`cleanfeed run` arguments (without the program name) for this feed."""
        out = ["run", self.input, "-o", self.output]
        for key, value in self.options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                out.append(flag)
            elif value is False:
                continue
            elif isinstance(value, list) and value and all(isinstance(v, (str, list)) for v in value):
                for one in value:
                    out.append(f"{flag}={_text(one)}")
            else:
                out.append(f"{flag}={_text(value)}")
        return out


@dataclass(frozen=True)
class FleetSpec:
    """The feeds to run and how; ``base`` is the folder relative paths are taken from."""

    feeds: tuple[FeedSpec, ...]
    base: Path
    max_restarts: int = DEFAULT_MAX_RESTARTS
    concurrency: int = 0
    """Feeds running at once; 0 is all of them."""
    source: str = ""
    """How errors name the file."""

    def local(self, location: str) -> Path | None:
        """The path a local input or output names (relative to :attr:`base`), None for a URL or a pipe."""
        if kind_of(location) not in (Kind.FILE, Kind.SEQUENCE):
            return None
        path = local_path(location)
        return path if path.is_absolute() else self.base / path


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def load(path: str | Path) -> FleetSpec:
    """The fleet of the TOML file at ``path``; globs expanded (see :func:`parse`)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as err:
        raise FleetSpecError(f"fleet file {str(path)!r} must be readable, got {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise FleetSpecError(f"{path}: not valid TOML: {err}") from None
    return parse(doc, path.resolve().parent, str(path))


def parse(doc: Mapping[str, Any], base: Path, source: str = "fleet file") -> FleetSpec:
    """The fleet ``doc`` describes. A batch table (``inputs``, a glob relative to ``base``)
    becomes one feed per matching file, in sorted order, its ``name`` and ``output`` formatted
    with ``{stem}`` (the file's name without suffix) and ``{name}``."""
    def fail(message: str) -> FleetSpecError:
        return FleetSpecError(f"{source}: {message}")

    unknown = sorted(set(doc) - {"fleet", "feeds"})
    if unknown:
        raise fail(f"unknown table or key {unknown[0]!r} (a fleet file has [fleet] and [[feeds]])")
    settings = doc.get("fleet", {})
    if not isinstance(settings, Mapping):
        raise fail("[fleet] must be a table")
    for key in settings:
        if key not in FLEET_KEYS:
            raise fail(f"[fleet]: unknown key {key!r} (known: {', '.join(FLEET_KEYS)})")
    max_restarts = _int(settings, "max_restarts", DEFAULT_MAX_RESTARTS, 0, fail, "[fleet]")
    concurrency = _int(settings, "concurrency", 0, 1, fail, "[fleet]")
    tables = doc.get("feeds")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, Mapping) for t in tables):
        raise fail("needs at least one [[feeds]] table")
    feeds: list[FeedSpec] = []
    for index, table in enumerate(tables, 1):
        feeds += _feeds(table, index, base, fail)
    seen: set[str] = set()
    for feed in feeds:
        if feed.name in seen:
            raise fail(f"feed {feed.name!r}: name must be unique, it is used twice")
        seen.add(feed.name)
    return FleetSpec(tuple(feeds), base, max_restarts, concurrency, source)


def _int(table: Mapping[str, Any], key: str, default: int, low: int, fail: Any, where: str) -> int:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise fail(f"{where}: {key} must be an integer >= {low}, got {value!r}")
    return value


def _feeds(table: Mapping[str, Any], index: int, base: Path, fail: Any) -> list[FeedSpec]:
    label = repr(table["name"]) if isinstance(table.get("name"), str) else f"#{index}"

    def bad(key: str, rule: str) -> FleetSpecError:
        return fail(f"feed {label}: {key} must be {rule}, got {table.get(key)!r}")

    for key in ("name", "input", "inputs", "output"):
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise bad(key, "a non-empty string")
    if ("input" in table) == ("inputs" in table):
        raise fail(f"feed {label}: give input (one feed) or inputs (a glob: one feed per file), one of them")
    if "output" not in table:
        raise fail(f"feed {label}: output is missing")
    if "inputs" not in table and "name" not in table:
        raise fail(f"feed {label}: name is missing")
    resources: dict[str, Any] = {}
    for key, low, default in (("cpus", 0.0, 1.0), ("gpus", 0.0, 0.0), ("decode_cpus", 0.0, 1.0)):
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            raise bad(key, f"a number >= {low:g}")
        resources[key] = float(value)
    if "split" in table:
        if not isinstance(table["split"], str) or not table["split"].isidentifier():
            raise bad("split", "the name of the element the second part starts with (\"segment\", \"inpaint\", ...)")
        resources["split"] = table["split"]
    elif "decode_cpus" in table:
        raise fail(f"feed {label}: decode_cpus is for a split feed's first part: give split too, or cpus alone")
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key in FEED_KEYS:
            continue
        option = key.replace("-", "_")
        if option in SET_BY_FLEET:
            raise fail(f"feed {label}: key {key!r} is the fleet's to set, not the feed's")
        if option in options:
            raise fail(f"feed {label}: key {key!r} is given twice")
        if isinstance(value, Mapping):
            raise bad(key, "a value, not a table")
        options[option] = value
    for location in ("input", "output"):
        if table.get(location) == "-":
            raise bad(location, "a file or a URL (a fleet has no stdin or stdout to share)")
    if "input" in table:
        name = table["name"]
        return [FeedSpec(name, table["input"], _format(table["output"], fail, label, name=name), options, **resources)]
    pattern = table["inputs"]
    matches = sorted(glob.glob(pattern if Path(pattern).is_absolute() else str(base / pattern)))
    if not matches:
        raise fail(f"feed {label}: inputs {pattern!r} matches no file")
    out = []
    for match in matches:
        rel = Path(match).relative_to(base) if not Path(pattern).is_absolute() else Path(match)
        stem = rel.stem
        name = _format(table.get("name", "{stem}"), fail, label, stem=stem)
        out.append(FeedSpec(name, str(rel), _format(table["output"], fail, label, stem=stem, name=name),
                            options, **resources))
    if len({f.output for f in out}) < len(out):
        raise fail(f"feed {label}: output {table['output']!r} must differ per file (use {{stem}})")
    return out


def _format(template: str, fail: Any, label: str, **values: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as err:
        known = ", ".join("{" + k + "}" for k in values)
        raise fail(f"feed {label}: {template!r} may only use {known}, got {err}") from None


def complete(path: Path) -> bool:
    """Whether a finished output is already at ``path``: the file sink renames its hidden part
    file to the final name only once it finalized a file output, so a file there that decodes
    at least one video frame is taken as done (a batch re-run skips it)."""
    if not path.is_file():
        return False
    import av

    try:
        with av.open(str(path)) as container:
            return next(container.decode(video=0), None) is not None
    except (av.FFmpegError, OSError, ValueError, StopIteration, IndexError):
        return False
