"""The recipe: the usual chain (segment, track, dilate, inpaint) for a set of typed options.

:class:`RunOptions` says what to remove from which input, with which engines, into which
output; :func:`chain` turns it into the element specs (factory and properties) that a
:class:`~cleanfeed.stream.pipeline.Pipeline` is built from, and :func:`pipeline` builds it.
`cleanfeed run` (cleanfeed.stream.cli.run) fills the options from its command line and the
web app (cleanfeed.stream.gui) from its panels: both run the same chain, and neither goes
through the other's argument parsing. An invalid combination is refused here, in the words of
`cleanfeed run`'s options, which are the documented spelling of these fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from cleanfeed.errors import PromptError, PropertyError
from cleanfeed.prompts.shapes import Box, Point

MODELS = ("sam", "deaot", "e2fgvi")
"""The checkpoint fields, one per neural stage: segment, track, inpaint."""
MODEL_DEFAULTS = (("device", "auto"), ("precision", "fp32"), ("backend", "torch"))
"""Model settings passed to each model stage only where they differ from the elements' own default."""
FILE_LEARN = 100
"""Frames the logo element looks ahead in a run that is not live: a moving scene's matte is learnt
from more backgrounds (measured on a 60 % bug over moving grass: 20 dB from 25 frames, 37 from
100); a live run keeps the element's own 25 (one second)."""
TRACKED_DILATE = 8
"""Mask growth when the masks are segmented and tracked here (--masks given: 0, used as they are)."""
LIVE_PRESET = "superfast"
"""The x264/x265 preset of a live run's output when the user names none. A sink cannot shed, so the
encoder's cost is the floor of the chain's: x264 zerolatency on this project's 2-core CPU took
17-21 ms of CPU a frame at 720p and 40-48 ms at 1080p at veryfast (1080p: more than a core at 25
fps), 12-14 and 25-30 ms at superfast, for about 20 % more bits than veryfast at the same crf
(ultrafast: 7-9 and 18-21 ms, but more than twice the bits and no deblocking). Measured on a
shared machine: bench/results/2026-12-07-live-shed2-cpu.md."""
FILE_PRESET = "veryfast"
"""The preset of a run that is not live (a file written as fast as the chain goes)."""
LOGO_INPAINT = {"flow_side": 128, "spatial_px": 2048}
"""Classical inpaint settings when the only masks are logofind's: on the logo bench (bench/logofind.py,
2026-12-07) they made the inpaint stage 1.3-1.4x faster for 0.1 dB less PSNR over the logo's pixels."""


class ElementSpec(NamedTuple):
    """One element of the chain: its factory name and the properties it is created with."""

    factory: str
    props: dict[str, Any]


@dataclass(frozen=True)
class RunOptions:
    """Everything `cleanfeed run` builds its chain from (one field per run option of that name)."""

    input: str
    """File, image sequence (frames/%05d.png), rtsp:// or http(s):// URL, or - for stdin."""
    output: str
    """File (.mp4 .mkv .mov .ts), image sequence (out/%05d.png), or - for stdout (mpegts)."""
    box: Box | None = None
    """A box around the object on the prompt frame."""
    points: tuple[Point, ...] = ()
    """Points on the object (positive) or off it, on the prompt frame."""
    mask: str | None = None
    """A mask image on the prompt frame (0 = background; a palette or label image holds several objects)."""
    frame: int = 0
    """The frame the box, points and mask apply to."""
    prompts: str | None = None
    """A JSON prompt file with several objects (cleanfeed.prompts.promptfile)."""
    static: bool = False
    """The box holds a screen-fixed overlay (a channel bug): the ``logo`` element learns its matte from
    the stream, un-blends what is translucent and fills what is opaque; nothing is segmented or tracked."""
    moving: bool = False
    """The box holds an object that moves: segment and track it at once, without first looking for
    a screen-fixed overlay in it (see :func:`chain`)."""
    logo_matte: str | None = None
    """A matte the ``logo`` element saved (``save=FILE``): the same bug removed without learning it again."""
    logo: tuple[str, ...] = ()
    """Reference images of a logo to find and remove wherever it appears (the ``logofind`` element):
    alone, or besides the other prompts (then after segment and track, as objects of its own)."""
    logo_track: bool = False
    """Segment and track each appearance of ``logo`` (its box becomes a prompt with an id of its own) instead
    of masking the logo's exact shape; what ``sam`` or ``deaot`` given with ``logo`` does."""
    masks: str | None = None
    """Per-frame masks made elsewhere (a folder or a video): replaces segmenting and tracking."""
    save_masks: str | None = None
    """Also write each frame's object-id mask into this folder as %05d.png."""
    sam: str | None = None
    """Segment with SAM from this checkpoint."""
    deaot: str | None = None
    """Track with DeAOT from this checkpoint."""
    e2fgvi: str | None = None
    """Inpaint with E2FGVI-HQ from this checkpoint."""
    models: str | None = None
    """Folder searched for official checkpoint names (else the elements' default folder)."""
    classical: bool = False
    """Use the classical engines even when checkpoints are found."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N for the models."""
    precision: str = "fp32"
    """fp32 | fp16 | bf16 for the models."""
    backend: str = "torch"
    """torch | onnxruntime | tensorrt: where the models run."""
    window: int = 5
    """Classical inpaint lookahead in frames."""
    inpaint_mode: str = "stream"
    """E2FGVI: stream (past references) or offline (references from the whole clip)."""
    region: str = "auto"
    """E2FGVI: inpaint a crop around the mask (auto) or always the whole frame (full)."""
    dilate: int | None = None
    """Grow masks by this many pixels before inpainting (None: 8 for tracked masks, 0 for ``masks``)."""
    codec: str = "h264"
    """h264 | hevc | ffv1."""
    crf: int = 20
    """Quality for h264/hevc, 0..51."""
    preset: str | None = None
    """x264/x265 preset; None: :data:`LIVE_PRESET` for a live run, else :data:`FILE_PRESET`."""
    live: bool = False
    """Live output: a file input is read at its frame rate, the encoder uses tune=zerolatency (and
    :data:`LIVE_PRESET` unless ``preset`` names one)."""
    max_latency: float | None = None
    """With ``live``: every frame leaves within this many milliseconds of its arrival."""
    reconnect_timeout: float | None = None
    """Live network input: keep reconnecting for this many seconds after the input is lost."""
    fallback: str = "inpaint"
    """With ``max_latency``: how a late frame's object is covered (inpaint, blur, pixelate)."""
    segment_engine: str = "auto"
    """The segment element's engine where it is not the one chosen above (``auto``: as chosen);
    like the two below, a per-stage choice `cleanfeed run` has no option for (the web app's settings)."""
    track_engine: str = "auto"
    """The track element's engine (``auto``: as chosen above)."""
    inpaint_engine: str = "auto"
    """The inpaint element's engine (``auto``: as chosen above)."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (a box and points as lists); :meth:`from_json` reads them back."""
        data = asdict(self)
        data["box"] = list(self.box.as_tuple()) if self.box is not None else None
        data["points"] = [[p.x, p.y, int(p.positive)] for p in self.points]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("box") is not None:
            values["box"] = Box(*values["box"])
        values["points"] = tuple(Point(float(x), float(y), bool(label)) for x, y, label in values.get("points", ()))
        values["logo"] = tuple(values.get("logo", ()))
        return cls(**values)


def chain(options: RunOptions) -> list[ElementSpec]:
    """The element specs for ``options``: source; segment and track (after logofind emit=prompts when the
    logo is tracked), or logo (a screen-fixed bug), or loadmask; logofind (--logo, masking); savemask,
    dilate, inpaint, sink. A contradiction or a value out of range is a
    PromptError/PropertyError."""
    o = options
    _refuse_contradictions(o)
    seg, track, inpaint = _model_stages(o)
    specs = [_source(o)]
    fixed = o.static or o.logo_matte is not None
    tracks_logos = _tracks_logos(o)
    if o.masks:
        specs.append(ElementSpec("loadmask", {"location": o.masks}))
    elif fixed:  # exact matte, no tracking; inpaint fills only what the logo element hands on
        props = {"file": o.logo_matte} if o.logo_matte else _prompt_props(o)
        if not o.logo_matte and not o.live:
            props["learn"] = FILE_LEARN
        specs.append(ElementSpec("logo", props))
    elif _has_prompt(o) or tracks_logos:
        if _looks_for_overlay(o):
            # a box alone is most often a channel bug: the logo element removes it when the box holds
            # a screen-fixed overlay (exact matte, un-blended, nothing tracked), else passes the
            # frames on untouched and segment and track remove what moves in the box
            specs.append(ElementSpec("logo", {**_prompt_props(o), "absent": "pass", "learn": FILE_LEARN}))
        if tracks_logos:  # its detections are box prompts: segment masks them, track adds or restarts them
            specs.append(ElementSpec("logofind", {"logo": ";".join(o.logo), "emit": "prompts"}))
            seg["detections"] = True
        seg |= _prompt_props(o)
        specs += [ElementSpec("segment", seg), ElementSpec("track", track)]
    if o.logo and not tracks_logos:  # after the other masks: its objects take only pixels no other object holds
        specs.append(ElementSpec("logofind", {"logo": ";".join(o.logo)}))
    if o.save_masks:
        specs.append(ElementSpec("savemask", {"location": o.save_masks}))
    # masks given or estimated are exact; tracked ones are grown for their uncertainty
    # logofind's masks are the reference's exact shape carried by its homography (grown by 3 px), not a
    # tracked guess: growing them 8 px more only enlarges the hole (the logo bench: recall 1.000 and no
    # frame aired either way, PSNR over the logo's pixels 1 dB higher without)
    logo_only = bool(o.logo) and not (o.masks or fixed or _has_prompt(o) or tracks_logos)
    dilate = o.dilate if o.dilate is not None else (0 if o.masks or fixed or logo_only else TRACKED_DILATE)
    if dilate:
        specs.append(ElementSpec("dilate", {"pixels": dilate}))
    if logo_only and "checkpoint" not in inpaint:
        inpaint = {**LOGO_INPAINT, **inpaint}
    specs += [ElementSpec("inpaint", inpaint), _sink(o)]
    chosen = {"segment": o.segment_engine, "track": o.track_engine, "inpaint": o.inpaint_engine}
    for spec in specs:
        if chosen.get(spec.factory, "auto") != "auto":
            spec.props["engine"] = chosen[spec.factory]
    return specs


def _looks_for_overlay(o: RunOptions) -> bool:
    """Whether a box-only run first looks for a screen-fixed overlay in the box. Not for live runs:
    learning the matte holds the first second of frames, which a latency budget cannot wait for
    (``--static`` asks for it there); not with a SAM or DeAOT checkpoint, which the user gave to
    segment and track; not with ``--moving``."""
    return (o.box is not None and not (o.points or o.mask or o.prompts or o.frame or o.moving or o.live
                                       or o.sam or o.deaot))


def _tracks_logos(o: RunOptions) -> bool:
    """Whether the logo's appearances are segmented and tracked (--logo-track, or --logo with a SAM or
    DeAOT checkpoint: the user asked for those models) rather than masked by their exact shape, which
    stays the default for --logo: it needs no model and is exact."""
    return bool(o.logo) and (o.logo_track or bool(o.sam or o.deaot)) and not (o.masks or o.static or o.logo_matte)


def _has_prompt(o: RunOptions) -> bool:
    """Whether something is there for segment and track to follow (a logo finds itself)."""
    return bool(o.box or o.points or o.mask or o.prompts)


def _refuse_contradictions(o: RunOptions) -> None:
    has_prompt = _has_prompt(o) or bool(o.logo_matte)
    if o.masks and has_prompt:
        raise PromptError("--masks replaces segmenting and tracking: give it without --box/--point/--mask/--prompts")
    if not o.masks and not has_prompt and not o.logo:
        raise PromptError("nothing to remove: give --box, --point, --mask, --prompts, --logo or --masks")
    if o.logo_track and not o.logo:
        raise PromptError("--logo-track segments and tracks the logo that --logo names: give it with --logo")
    if o.logo_track and (o.masks or o.static or o.logo_matte):
        raise PromptError("--logo-track segments and tracks: give it without --masks/--static/--logo-matte, "
                          "which replace segmenting and tracking")
    for path in o.logo:
        if ";" in path:
            raise PromptError(f"--logo must name one image per option, got {path!r} (a ; separates files)")
    if o.logo_matte and (o.box or o.points or o.mask or o.prompts):
        raise PromptError("--logo-matte says where the bug is: give it without --box/--point/--mask/--prompts")
    if o.static and (o.box is None or o.points or o.mask or o.prompts or o.frame or o.sam or o.deaot):
        raise PromptError("--static removes the screen-fixed bug in --box, learnt from the first frames: give it "
                          "with --box alone (not with --point/--mask/--prompts/--frame/--sam/--deaot)")
    if o.moving and (o.static or o.logo_matte):
        raise PromptError("--moving says the box's object moves, --static and --logo-matte that it is a screen-fixed "
                          "bug: give one")
    if o.max_latency is not None and not o.live:
        raise PropertyError("--max-latency needs --live (a budget per frame only means something for a live output)")
    if o.max_latency is not None and o.max_latency <= 0:
        raise PropertyError(f"--max-latency must be > 0 ms, got {o.max_latency:g}")
    if o.reconnect_timeout is not None and o.reconnect_timeout < 0:
        raise PropertyError(f"--reconnect-timeout must be >= 0 s, got {o.reconnect_timeout:g}")
    for flag in MODELS:
        if o.classical and getattr(o, flag):
            raise PromptError(f"--classical and --{flag} contradict each other: give one")


def _model_stages(o: RunOptions) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The segment, track and inpaint properties that choose their engines and how they run."""
    seg: dict[str, Any] = {"frame": o.frame}
    track: dict[str, Any] = {}
    inpaint: dict[str, Any] = {"window": o.window}
    for flag, props in zip(MODELS, (seg, track, inpaint), strict=True):
        if o.classical:
            props["engine"] = "classical"
            continue
        if getattr(o, flag):
            props |= {"engine": flag, "checkpoint": getattr(o, flag)}
        if o.models:
            props["models"] = o.models
        for key, default in MODEL_DEFAULTS:
            if getattr(o, key) != default:
                props[key] = getattr(o, key)
    if o.inpaint_mode != "stream":
        inpaint["mode"] = o.inpaint_mode
    if o.region != "auto":
        inpaint["region"] = o.region
    if o.max_latency is not None and o.fallback != "inpaint":
        inpaint["fallback"] = o.fallback
    return seg, track, inpaint


def _prompt_props(o: RunOptions) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if o.box:
        props["box"] = o.box.as_tuple()
    if o.points:
        props["points"] = ";".join(map(str, o.points))
    if o.mask:
        props["mask_file"] = o.mask
    if o.prompts:
        props["prompts_file"] = o.prompts
    return props


def _source(o: RunOptions) -> ElementSpec:
    source: dict[str, Any] = {"location": o.input}
    if o.reconnect_timeout is not None:
        source["reconnect_timeout"] = o.reconnect_timeout
    return ElementSpec("filesrc", source)


def _sink(o: RunOptions) -> ElementSpec:
    """The output; a live one encodes as a live encoder should (tune=zerolatency and
    :data:`LIVE_PRESET`) unless the user chose the preset."""
    preset = o.preset or (LIVE_PRESET if o.live else FILE_PRESET)
    if o.output == "-":  # tune=zerolatency by default
        return ElementSpec("stdoutsink", {"preset": preset} if o.preset or o.live else {})
    sink: dict[str, Any] = {"location": o.output, "codec": o.codec, "crf": o.crf, "preset": preset}
    if o.live and o.codec in ("h264", "hevc"):
        sink["tune"] = "zerolatency"
    return ElementSpec("filesink", sink)


def elements(specs: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
    """The elements for ``specs`` (cleanfeed.stream.registry.create: a bad property is a PropertyError)."""
    from cleanfeed.stream import registry

    return [registry.create(factory, dict(props)) for factory, props in specs]


def pipeline(options: RunOptions, created: list[Any], max_restarts: int = 0, latency_label: str = "max_latency") -> Any:
    """The pipeline of ``created`` (the elements of ``chain(options)``) with the options' live
    settings; ``max_restarts`` is how a run is carried out, not part of the recipe, and
    ``latency_label`` how the caller names the budget in its messages (``--max-latency``)."""
    from cleanfeed.stream.pipeline import Pipeline

    return Pipeline(created, latency_ms=options.max_latency, live=options.live, max_restarts=max_restarts,
                    latency_label=latency_label)
