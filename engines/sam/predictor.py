"""Segmenting objects in a frame with SAM from a user's prompt: points, a box, a previous mask.

The predictor pattern of segment-anything's ``SamPredictor``: ``set_image`` runs the image
encoder once, then ``predict`` runs the (cheap) prompt decoder once per object, or twice with
``refine``. The two graphs run on any backend through runners; everything around them
(resizing, prompt scaling, mask choice, upsampling) is here and in ``transforms``, equal to the
package's own steps.

Mask choice: with ``multimask`` the decoder's three candidate masks (outputs 1..3) compete and the
one with the highest predicted IoU wins (ties: the first), else the single-mask output 0 is taken,
as ``SamPredictor.predict(multimask_output=...)`` slices them. ``refine`` is SAM-Track's two-pass
prompt (Segment-and-Track-Anything ``tool/segmentor.py``: ``segment_with_click`` and
``segment_with_box``): the same prompt again, with the winning mask's low-res logits as mask
input, and the same multimask flag in both passes (SAM-Track passes its flag to both passes of
a click, and uses multimask for both passes of a box).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cleanfeed.engines.runners.base import Runner, RunnerConfig
from cleanfeed.engines.sam.graphs import DECODER_PROFILES, ImageEncoderGraph, PromptDecoderGraph
from cleanfeed.engines.sam.transforms import BilinearResizer, mask_to_logits, preprocess, prompt_points, upscale_logits
from cleanfeed.engines.sam.variants import MASK_SIZE
from cleanfeed.errors import BackendError, PromptError

__all__ = ["SamMask", "SamPrompt", "SamSegmenter", "mask_to_logits", "open_segmenter"]

ONNX_FILES = ("image_encoder.onnx", "prompt_decoder.onnx")


@dataclass(frozen=True)
class SamPrompt:
    """One object's prompt, in pixels of the full frame.

    points: (N, 2) float xy; labels: (N,) int, 1 object / 0 not object; box: (x0, y0, x1, y1);
    mask_logits: (256, 256) float32 low-res logits (a previous ``SamMask.logits``, or ``mask_to_logits``).
    At least one of them must be given.
    """

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    box: tuple[float, float, float, float] | None = None
    mask_logits: np.ndarray | None = None

    def check(self) -> None:
        """PromptError for a prompt SAM cannot take."""
        points, labels = np.asarray(self.points), np.asarray(self.labels)
        if points.ndim != 2 or points.shape[1] != 2:
            raise PromptError(f"SAM points must be an (N, 2) array of x, y, got shape {points.shape}")
        if labels.shape != (len(points),):
            raise PromptError(f"SAM labels must be one per point ({len(points)}), got shape {labels.shape}")
        if not np.isin(labels, (0, 1)).all():
            raise PromptError(f"SAM labels must be 1 (object) or 0 (not object), got {sorted(set(labels.tolist()))}")
        if not np.isfinite(points).all():
            raise PromptError("SAM points must be finite numbers, got NaN or infinity")
        if self.box is not None:
            x0, y0, x1, y1 = (float(v) for v in self.box)
            if not (x1 > x0 and y1 > y0):
                raise PromptError(f"SAM box must have x1 > x0 and y1 > y0, got {tuple(self.box)}")
        if self.mask_logits is not None and np.shape(self.mask_logits) != (MASK_SIZE, MASK_SIZE):
            raise PromptError(
                f"SAM mask logits must be {MASK_SIZE}x{MASK_SIZE}, got shape {np.shape(self.mask_logits)}"
            )
        if not len(points) and self.box is None and self.mask_logits is None:
            raise PromptError("SAM prompt must have a point, a box or a mask, got none")


@dataclass(frozen=True)
class SamMask:
    """One object's mask: mask (H, W) bool of the frame; score: SAM's predicted IoU of it;
    logits: its (256, 256) float32 low-res logits (feed them back as ``SamPrompt.mask_logits``);
    index: which decoder output it is (0 single-mask, 1..3 multimask)."""

    mask: np.ndarray
    score: float
    logits: np.ndarray
    index: int


class SamSegmenter:
    """SAM on one frame at a time: ``set_image`` encodes it, then ``predict`` segments each object."""

    def __init__(self, encoder: Runner, decoder: Runner) -> None:
        self.encoder = encoder
        self.decoder = decoder
        self._resizer = BilinearResizer()
        self._embeddings: torch.Tensor | None = None
        self._original_size: tuple[int, int] | None = None
        self._input_size: tuple[int, int] | None = None
        self._no_mask = torch.zeros(1, 1, MASK_SIZE, MASK_SIZE, device=decoder.device)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(h, w) of the frame set last, or None."""
        return self._original_size

    def set_image(self, rgb: np.ndarray) -> None:
        """Encodes a HxWx3 uint8 RGB frame; every ``predict`` until the next ``set_image`` segments it."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
            raise ValueError(f"SAM image must be HxWx3 uint8 RGB, got {rgb.dtype} array of shape {rgb.shape}")
        self.reset_image()
        if not (rgb.flags.c_contiguous and rgb.flags.writeable):  # torch.from_numpy wants an owned-like array
            rgb = np.array(rgb, order="C")
        frame = torch.from_numpy(rgb).to(self.encoder.device)
        image, input_size = preprocess(frame, self._resizer)
        self._embeddings = self.encoder(image=image)["image_embeddings"]
        self._original_size = (int(rgb.shape[0]), int(rgb.shape[1]))
        self._input_size = input_size

    def reset_image(self) -> None:
        self._embeddings = None
        self._original_size = None
        self._input_size = None

    def predict(self, prompt: SamPrompt, multimask: bool = True, refine: bool = False) -> SamMask:
        """The object's mask on the frame set last; see the module docstring for multimask and refine."""
        if self._embeddings is None or self._original_size is None or self._input_size is None:
            raise RuntimeError("SamSegmenter.predict must come after set_image, got no image")
        prompt.check()
        coords, labels = prompt_points(prompt.points, prompt.labels, prompt.box, self._original_size)
        if coords.shape[1] == 0 and self.decoder.config.backend == "tensorrt":
            # the engine's optimization profile starts at one point (DECODER_PROFILES)
            raise PromptError("SAM on TensorRT needs a point or a box with a mask prompt, got a mask alone")
        point_coords, point_labels = torch.from_numpy(coords), torch.from_numpy(labels)
        mask_input = None if prompt.mask_logits is None else torch.as_tensor(prompt.mask_logits, dtype=torch.float32)
        low_res, scores, index = self._decode(point_coords, point_labels, mask_input, multimask)
        if refine:
            low_res, scores, index = self._decode(point_coords, point_labels, low_res[0, index], multimask)
        best = low_res[:, index : index + 1]
        mask = upscale_logits(best, self._input_size, self._original_size)[0, 0] > 0
        return SamMask(
            mask=mask.cpu().numpy(),
            score=float(scores[index]),
            logits=best[0, 0].to(torch.float32).cpu().numpy(),
            index=index,
        )

    def _decode(
        self, coords: torch.Tensor, labels: torch.Tensor, mask_input: torch.Tensor | None, multimask: bool
    ) -> tuple[torch.Tensor, np.ndarray, int]:
        """One decoder pass: (1x4x256x256 low-res logits, the 4 predicted IoUs, the chosen output)."""
        has_mask = torch.ones(1) if mask_input is not None else torch.zeros(1)
        mask = mask_input.reshape(1, 1, MASK_SIZE, MASK_SIZE) if mask_input is not None else self._no_mask
        out = self.decoder(
            image_embeddings=self._embeddings,
            point_coords=coords,
            point_labels=labels,
            mask_input=mask,
            has_mask_input=has_mask,
        )
        scores = out["iou_predictions"][0].to(torch.float32).cpu().numpy()
        index = 1 + int(np.argmax(scores[1:])) if multimask else 0
        return out["low_res_logits"], scores, index

    def close(self) -> None:
        self.reset_image()
        self.encoder.close()
        self.decoder.close()


def open_segmenter(
    checkpoint: str | Path, model: str | None, config: RunnerConfig, onnx_dir: str | Path | None = None
) -> SamSegmenter:
    """A SamSegmenter for a checkpoint on the backend ``config`` names.

    torch runs the graphs built from the checkpoint (its size read from the file, ``model`` checked
    against it); onnxruntime and tensorrt run ``onnx_dir``'s image_encoder.onnx and
    prompt_decoder.onnx, written by ``cleanfeed export sam``.
    """
    if config.backend == "torch":
        from cleanfeed.engines.runners import get_runner
        from cleanfeed.engines.sam.checkpoint import load_sam

        sam, _ = load_sam(checkpoint, model)
        encoder = get_runner(
            config, module=ImageEncoderGraph(sam), inputs=ImageEncoderGraph.INPUTS, outputs=ImageEncoderGraph.OUTPUTS
        )
        decoder = get_runner(
            config,
            module=PromptDecoderGraph(sam),
            inputs=PromptDecoderGraph.INPUTS,
            outputs=PromptDecoderGraph.OUTPUTS,
        )
        return SamSegmenter(encoder, decoder)
    missing = [name for name in ONNX_FILES if onnx_dir is None or not (Path(onnx_dir) / name).is_file()]
    if missing:
        size = f" --model {model}" if model else ""
        where = f"'{onnx_dir}' lacks {', '.join(missing)}" if onnx_dir is not None else "no export folder was given"
        raise BackendError(
            f"backend {config.backend} must run SAM from an ONNX export, got none ({where}): "
            f"run `cleanfeed export sam{size} --checkpoint {checkpoint} --out DIR` and use that folder"
        )
    from cleanfeed.engines.runners import get_runner

    folder = Path(onnx_dir)  # type: ignore[arg-type]
    encoder = get_runner(
        config,
        onnx_path=folder / ONNX_FILES[0],
        inputs=ImageEncoderGraph.INPUTS,
        outputs=ImageEncoderGraph.OUTPUTS,
    )
    decoder = get_runner(
        config,
        onnx_path=folder / ONNX_FILES[1],
        inputs=PromptDecoderGraph.INPUTS,
        outputs=PromptDecoderGraph.OUTPUTS,
        profiles=DECODER_PROFILES,
    )
    return SamSegmenter(encoder, decoder)
