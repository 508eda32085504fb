"""Bench: an RTSP server killed KILLS times during a live run of `cleanfeed launch`.

Run from the repository root (needs Debian's GStreamer RTSP server packages, see .ci/run):
    python -m cleanfeed.bench.reconnect [KILLS] [SESSION_S]
Starts tests/stream/rtsp_server.py on loopback, runs
    cleanfeed launch --live --stats S "urisrc uri=rtsp://… timeout_s=2 reconnect_timeout=3 ! filesink location=out.ts …"
kills the server every SESSION_S seconds (restarting it 0.5 s later), KILLS times, then for good;
prints the stats (reconnects, repeated, frames) and checks the output's pts with ffprobe.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
sys.path += [str(ROOT / "tests"), str(ROOT / "tests" / "stream")]  # after the root: "stream" is the package
from media import frame_pts  # noqa: E402
from test_live_source import RtspServer, free_port, make_clip  # noqa: E402


def main() -> None:
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    session_s = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    work = Path(tempfile.mkdtemp(prefix="reconnect-"))
    server = RtspServer(make_clip(work / "clip.mkv", frames=int(session_s * 25 * 2)), free_port())
    server.start()
    stats, out = work / "stats.json", work / "out.ts"
    line = (f"urisrc uri={server.url} timeout_s=2 reconnect_timeout=3 ! "
            f"filesink location={out} preset=ultrafast tune=zerolatency")
    started = time.monotonic()
    run = subprocess.Popen([sys.executable, "-m", "cleanfeed.stream.cli.main", "launch", "--live", "--quiet", "--stats", str(stats), line])
    for i in range(kills + 1):
        time.sleep(session_s)
        server.kill()
        if i < kills:
            time.sleep(0.5)
            server.start()
    run.wait(timeout=120)
    wall = time.monotonic() - started
    doc = json.loads(stats.read_text())
    pts = frame_pts(out)
    steps = sorted({b - a for a, b in zip(pts, pts[1:], strict=False)})
    result = {
        "kills": kills, "session_s": session_s, "wall_s": round(wall, 1), "exit_code": run.returncode,
        "reconnects": doc.get("reconnects"), "counters": doc.get("counters"),
        "frames_in": doc.get("frames_in"), "frames_out": doc.get("frames_out"), "dropped": doc.get("dropped"),
        "frames_sent_by_server": server.sent, "output_frames": len(pts), "output_pts_steps": steps,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
