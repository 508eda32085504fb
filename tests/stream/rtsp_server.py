"""A tiny RTSP server for the live tests: serves one H.264 Matroska file on 127.0.0.1.

Run with Debian's /usr/bin/python3 (it has python3-gi and GstRtspServer; the project's Python
does not): ``/usr/bin/python3 rtsp_server.py --port 8554 --file clip.mkv``. Mount point /clip;
every client gets its own session playing the file from the start, at real time. Prints
``ready`` once it listens, then ``sent`` for each video frame handed to the RTP payloader (so a
test knows what was served), and serves until killed; with ``--once`` it exits by itself half a
second after its first session has sent the whole file (a clean end, nothing cut in flight).
``--audio`` serves the file's AAC track too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def _sent(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
    print("sent", flush=True)
    return Gst.PadProbeReturn.OK


def _count_frames(factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
    pay = media.get_element().get_by_name("pay0")
    pay.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, _sent)


def _quit_after_eos(loop: GLib.MainLoop, server: GstRtspServer.RTSPServer) -> Callable[..., None]:
    def on_eos(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if info.get_event().type == Gst.EventType.EOS:
            print("eos", flush=True)
            server.get_mount_points().remove_factory("/clip")  # no second session
            GLib.timeout_add(500, loop.quit)
        return Gst.PadProbeReturn.OK

    def configure(factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        pay = media.get_element().get_by_name("pay0")
        pay.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_eos)

    return configure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True, help="an H.264 .mkv file")
    parser.add_argument("--once", action="store_true", help="exit after the first session has sent the file")
    parser.add_argument("--audio", action="store_true", help="also serve the file's AAC track")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    audio = " d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97" if args.audio else ""
    factory.set_launch(
        f"( filesrc location={args.file} ! matroskademux name=d d.video_0 ! queue ! h264parse "
        f"! rtph264pay name=pay0 pt=96 config-interval=1{audio} )"
    )
    factory.set_shared(False)
    factory.connect("media-configure", _count_frames)
    loop = GLib.MainLoop()
    if args.once:
        factory.connect("media-configure", _quit_after_eos(loop, server))
    server.get_mount_points().add_factory("/clip", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
