"""Synthetic media for tests, written with PyAV, and ffprobe helpers to check outputs independently.

Everything is generated in the test's tmp folder: small frames (160x96 by default), a moving
pattern so encoders have something to do, and a sine tone on the audio track.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

AUDIO_RATE = 48000


def pattern_rgb(index: int, width: int, height: int) -> np.ndarray:
    """HxWx3 uint8 RGB: a gradient that moves with ``index`` plus a bright square, unique per frame."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = (x * 255 // max(1, width - 1) + index * 7) % 256
    rgb[..., 1] = (y * 255 // max(1, height - 1) + index * 3) % 256
    rgb[..., 2] = ((x + y + index * 5) * 2) % 256
    side = max(4, min(width, height) // 6)
    x0 = (index * 4) % max(1, width - side)
    rgb[height // 3 : height // 3 + side, x0 : x0 + side] = (250, 250, 40)
    return rgb


def _tone(start: int, count: int, channels: int) -> np.ndarray:
    t = (np.arange(start, start + count) / AUDIO_RATE).astype(np.float32)
    wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([wave] * channels)


def make_video(
    path: Path | str,
    width: int = 160,
    height: int = 96,
    frames: int = 24,
    rate: int | Fraction = 24,
    audio: bool = True,
    codec: str = "libx264",
    audio_codec: str | None = None,
    pix_fmt: str | None = None,
    faststart: bool = False,
    bframes: bool = True,
) -> Path:
    """Writes a real encoded file: ``codec`` video of ``frames`` frames plus (``audio``) a stereo
    tone of the same duration in ``audio_codec`` (default: AAC, Opus for .webm)."""
    path = Path(path)
    container_options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", container_options=container_options) as out:
        video = out.add_stream(codec, rate=Fraction(rate))
        video.width, video.height = width, height
        video.pix_fmt = pix_fmt or ("bgr0" if codec == "ffv1" else "yuv420p")
        if codec in ("libx264", "libx265"):
            video.codec_context.options = {"preset": "ultrafast", "crf": "18"} | ({} if bframes else {"bf": "0"})
            if not bframes:
                video.codec_context.options["tune"] = "zerolatency"
        if codec == "libx265":
            video.codec_context.options["x265-params"] = "log-level=error"
        sound = None
        if audio:
            sound = out.add_stream(audio_codec or "aac", rate=AUDIO_RATE)
            sound.layout = "stereo"
        samples = int(frames / Fraction(rate) * AUDIO_RATE)
        step = 960 if (audio_codec or "aac") in ("libopus", "opus") else 1024
        sent = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern_rgb(i, width, height), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / Fraction(rate)
            out.mux(video.encode(frame))
            while sound is not None and sent < samples * (i + 1) // frames:
                chunk = av.AudioFrame.from_ndarray(_tone(sent, step, 2), format="fltp", layout="stereo")
                chunk.sample_rate = AUDIO_RATE
                chunk.pts = sent
                chunk.time_base = Fraction(1, AUDIO_RATE)
                out.mux(sound.encode(chunk))
                sent += step
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return path


def make_image_sequence(folder: Path | str, width: int = 161, height: int = 97, frames: int = 6,
                        start: int = 0, pattern: str = "%05d.png") -> tuple[Path, list[np.ndarray]]:
    """PNG frames (odd sizes on purpose: they must stay RGB) and the RGB arrays written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(frames):
        rgb = pattern_rgb(i, width, height)
        _write_png(folder / (pattern % (start + i)), rgb)
        images.append(rgb)
    return folder / pattern, images


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width, stream.height = rgb.shape[1], rgb.shape[0]
        stream.pix_fmt = "rgb24"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))


def read_rgb_frames(path: Path | str) -> list[np.ndarray]:
    """Every frame of the first video stream as RGB (an independent decode for comparisons)."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


# -- ffprobe ------------------------------------------------------------------------------------
def bytes_written(out: Path) -> int:
    """How much of an output a running sink has written: filesink writes into a hidden
    ``.NAME.XXXX.part`` beside NAME and renames it over NAME once finalized."""
    sizes = [p.stat().st_size for p in (out, *out.parent.glob(f".{out.name}.*.part")) if p.exists()]
    return max(sizes, default=0)


def ffprobe(path: Path | str, *args: str) -> dict[str, Any]:
    cmd = ["ffprobe", "-v", "error", "-of", "json", *args, str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"ffprobe failed on {path}: {done.stderr.strip()}")
    return json.loads(done.stdout or "{}")


def streams(path: Path | str) -> list[dict[str, Any]]:
    """ffprobe's stream list (codec_type, codec_name, time_base, avg_frame_rate, start_time, ...)."""
    return ffprobe(path, "-show_streams")["streams"]


def frame_pts(path: Path | str, select: str = "v:0") -> list[int]:
    """Presentation timestamps of every decoded frame of ``select``, in its stream time base."""
    data = ffprobe(path, "-select_streams", select, "-show_entries", "frame=pts")
    return [int(f["pts"]) for f in data.get("frames", []) if "pts" in f]


def frame_count(path: Path | str, select: str = "v:0") -> int:
    data = ffprobe(path, "-select_streams", select, "-count_frames", "-show_entries", "stream=nb_read_frames")
    return int(data["streams"][0]["nb_read_frames"])


def packet_pts(path: Path | str, select: str = "a:0") -> list[int]:
    data = ffprobe(path, "-select_streams", select, "-show_entries", "packet=pts")
    return [int(p["pts"]) for p in data.get("packets", []) if "pts" in p]


def start_seconds(path: Path | str, select: str) -> float:
    """The first packet's pts of ``select`` in seconds, as a player sees it."""
    data = ffprobe(path, "-select_streams", select, "-show_entries", "packet=pts_time", "-read_intervals", "%+#1")
    return float(data["packets"][0]["pts_time"])


# -- driving elements by their methods (as the runner will) ----------------------------------------
def pump(source: Any, sink: Any, limit: int | None = None, finish: bool = True) -> tuple[Any, int, int]:
    """source.open/read/close into sink.start/render/render_packet/finish; returns (caps, frames, packets).

    ``limit`` stops after that many frames (a partial write)."""
    from cleanfeed.stream.buffers import VideoFrame

    caps = source.open()
    sink.start(caps)
    frames = packets = 0
    try:
        for item in source.read():
            if isinstance(item, VideoFrame):
                if limit is not None and frames >= limit:
                    break
                sink.render(item)
                frames += 1
            else:
                sink.render_packet(item)
                packets += 1
    finally:
        source.close()
        if finish:
            sink.finish()
    return caps, frames, packets
