"""`cleanfeed check VIDEO --logo IMAGE`: did the logo air? Lists every frame that shows it.

Independent of how the video was made: it decodes the pixels (a file, a pipe or a live URL,
through the same source element as a run) and looks for the logo on every frame with the
classical finder. Exit 1 when any frame shows a logo, 0 when none does, so a script or a
monitor can act on the answer; errors keep their own codes (2 a bad reference, 3 a bad input).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from cleanfeed.engines.detect.finder import Detection
from cleanfeed.errors import MediaError
from cleanfeed.stream.buffers import VideoFrame
from cleanfeed.stream.logos import Sighting, load_finder, look, sighting

log = logging.getLogger("cleanfeed.check")

FOUND = 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="list every frame of a video on which a logo is visible (exit 1 if any)",
                       description="Scan VIDEO for the logo(s) and list every frame (index, time) that shows one. "
                                   "Exit 1 if any frame does, 0 if none.")
    p.add_argument("input", metavar="VIDEO", help="file, image sequence, rtsp:// or http(s):// URL, or - for stdin")
    p.add_argument("--logo", action="append", required=True, metavar="IMAGE",
                   help="reference image of the logo: a PNG with alpha, or a tight crop; repeatable")
    p.add_argument("--json", metavar="FILE", help="also write the frames found (and the scan's figures) as JSON")
    p.add_argument("--quiet", action="store_true", help="only the summary line, not one line per frame")
    p.set_defaults(func=main)


def scan(location: str, logos: list[str]) -> tuple[list[Sighting], int, float]:
    """The sightings in ``location``, the frames scanned and the finder's mean milliseconds per frame."""
    from cleanfeed.stream.elements.filesrc import FileSrc

    source = FileSrc(location=location, audio=False, reconnect=False)
    caps = source.open()
    try:
        finder = load_finder(logos, caps.width, caps.height)
        found: list[Sighting] = []
        frames, busy = 0, 0.0
        previous: list[Detection] = []
        for item in source.read():
            if not isinstance(item, VideoFrame):
                continue
            start = time.perf_counter()
            previous = look(finder, item.image, previous)
            seen = sighting(item, previous)
            busy += time.perf_counter() - start
            frames += 1
            if seen is not None:
                found.append(seen)
    finally:
        source.close()
    return found, frames, 1000 * busy / max(frames, 1)


def _ranges(frames: list[int]) -> str:
    spans: list[list[int]] = []
    for f in frames:
        if spans and f == spans[-1][1] + 1:
            spans[-1][1] = f
        else:
            spans.append([f, f])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def main(args: argparse.Namespace) -> int:
    found, frames, ms = scan(args.input, args.logo)
    if not args.quiet:
        for s in found:
            when = "?" if s.time_s is None else f"{s.time_s:.3f}s"
            print(f"frame {s.frame} t={when} {', '.join(s.logos)} " + " ".join(",".join(map(str, b)) for b in s.boxes))
    if found:
        print(f"logo visible on {len(found)} of {frames} frames: {_ranges([s.frame for s in found])}")
    else:
        print(f"logo visible on none of {frames} frames")
        log.warning("check: no frame of %s shows %s", args.input, ", ".join(args.logo))
    if args.json:
        doc = {"input": args.input, "logos": args.logo, "frames_scanned": frames, "frames_visible": len(found),
               "detector_ms_per_frame": round(ms, 2), "frames": [s.to_json() for s in found]}
        try:
            Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        except OSError as err:
            raise MediaError(f"--json {args.json} must be writable, got {err.strerror or err}") from None
    sys.stdout.flush()
    return FOUND if found else 0
