"""SAM's input and output geometry, as torch ops on any device, equal to what segment-anything does.

segment-anything resizes a frame so its long side is 1024 (``ResizeLongestSide``: scale
1024/max(h, w), each side rounded by ``int(x * scale + 0.5)``) through torchvision's resize of a
PIL image, which is Pillow's antialiased bilinear filter on uint8 (``Resample.c``: a triangle
filter stretched by the downscale factor, weights in 22-bit fixed point, a horizontal pass, a
rounding to uint8, then a vertical pass). ``BilinearResizer`` computes those very weights and
applies them as gathers, so the resized frame equals Pillow's; then the package normalises with
its pixel mean/std and pads bottom/right with zeros to 1024x1024. Prompts are scaled into the
resized frame by the same factors; mask logits come back as the package's ``postprocess_masks``
makes them (256 -> 1024 bilinear, crop to the resized frame, bilinear to the frame's size).

Arrays: frames HxWx3 uint8 RGB; points (N, 2) float xy pixels of the frame; boxes x0, y0, x1, y1
pixels; low-res logits Bx4x256x256 float32 covering the padded 1024x1024 input.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from cleanfeed.engines.sam.variants import IMAGE_SIZE, MASK_SIZE, PIXEL_MEAN, PIXEL_STD

_PRECISION_BITS = 22
"""Pillow's fixed-point precision for 8-bit resampling (32 - 8 - 2)."""

POINT_LABEL_PAD = -1
POINT_LABEL_BOX_TOP_LEFT = 2
POINT_LABEL_BOX_BOTTOM_RIGHT = 3


def resized_shape(height: int, width: int, long_side: int = IMAGE_SIZE) -> tuple[int, int]:
    """(h, w) of a frame scaled so its long side is ``long_side``, rounded as ResizeLongestSide rounds."""
    scale = long_side * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def scale_coords(coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """xy pixels of the frame (..., 2) to xy pixels of the resized input frame, float64 like the package."""
    height, width = original_size
    new_h, new_w = resized_shape(height, width)
    out = np.array(coords, dtype=np.float64)
    out[..., 0] = out[..., 0] * (new_w / width)
    out[..., 1] = out[..., 1] * (new_h / height)
    return out


def prompt_points(
    points: np.ndarray,
    labels: np.ndarray,
    box: tuple[float, float, float, float] | None,
    original_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """One prompt as the prompt graph's (1, N, 2) float32 coords and (1, N) float32 labels.

    Points come first, then the box as two corners labelled 2 and 3. As the package's prompt
    encoder does, a prompt with points and no box gets one padding point labelled -1; a prompt
    with neither (a mask alone) has no points at all.
    """
    coords = [scale_coords(np.asarray(points, dtype=np.float64).reshape(-1, 2), original_size)]
    kinds = [np.asarray(labels, dtype=np.float64).reshape(-1)]
    if box is not None:
        coords.append(scale_coords(np.asarray(box, dtype=np.float64).reshape(2, 2), original_size))
        kinds.append(np.array([POINT_LABEL_BOX_TOP_LEFT, POINT_LABEL_BOX_BOTTOM_RIGHT], dtype=np.float64))
    elif len(kinds[0]):
        coords.append(np.zeros((1, 2)))
        kinds.append(np.array([POINT_LABEL_PAD], dtype=np.float64))
    xy = np.concatenate(coords).astype(np.float32)[None]
    return xy, np.concatenate(kinds).astype(np.float32)[None]


@functools.lru_cache(maxsize=64)
def bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's antialiased bilinear weights from ``in_size`` to ``out_size`` samples, as gathers.

    Returns (index, weight), both (out_size, taps): input sample and 22-bit fixed-point weight of each
    tap; unused taps have weight 0. Computed in float64 in Pillow's order of operations
    (``precompute_coeffs`` then ``normalize_coeffs_8bpc``), so the integers are Pillow's.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the bilinear (triangle) filter has support 1
    taps = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    inv = 1.0 / filterscale
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size)
    count = xmax - xmin
    weights = np.zeros((out_size, taps))
    total = np.zeros(out_size)
    for t in range(taps):  # tap by tap, so each row's sum accumulates in Pillow's order
        x = np.abs(((t + xmin).astype(np.float64) - center + 0.5) * inv)
        w = np.where((t < count) & (x < 1.0), 1.0 - x, 0.0)
        weights[:, t] = w
        total = total + w
    weights = np.where(total[:, None] != 0.0, weights / np.where(total == 0.0, 1.0, total)[:, None], weights)
    fixed = np.trunc(0.5 + weights * (1 << _PRECISION_BITS)).astype(np.int32)  # weights are >= 0
    index = np.minimum(xmin[:, None] + np.arange(taps)[None, :], in_size - 1)
    return index, fixed


class BilinearResizer:
    """Pillow-exact antialiased bilinear resizing of uint8 images, as torch ops; weights cached per size and device."""

    def __init__(self) -> None:
        self._taps: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """image: HxWxC uint8 (any device); size: (h, w). Returns hxwxC int32 holding 0..255.

        Each pass gathers whole rows along the leading axis (contiguous copies), so the image is
        laid out width-first for the horizontal pass and height-first for the vertical one.
        """
        height, width = size
        out = image.to(torch.int32)
        if width != out.shape[1]:  # Pillow resamples horizontally first, rounding to uint8 in between
            out = self._resample(out.transpose(0, 1).contiguous(), width).transpose(0, 1)
        if height != out.shape[0]:
            out = self._resample(out.contiguous(), height)
        return out

    def _resample(self, image: torch.Tensor, out_size: int) -> torch.Tensor:
        """Resamples axis 0 of ``image`` (int32) to ``out_size`` samples."""
        index, weight = self._device_taps(image.shape[0], out_size, image.device)
        weight = weight.view(out_size, -1, *([1] * (image.dim() - 1)))
        acc = torch.full(
            (out_size, *image.shape[1:]), 1 << (_PRECISION_BITS - 1), dtype=torch.int32, device=image.device
        )
        for t in range(index.shape[1]):
            acc += image.index_select(0, index[:, t]) * weight[:, t]
        return (acc >> _PRECISION_BITS).clamp_(0, 255)

    def _device_taps(self, in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (in_size, out_size, str(device))
        if key not in self._taps:
            index, weight = bilinear_taps(in_size, out_size)
            self._taps[key] = (
                torch.as_tensor(index, dtype=torch.int64, device=device),
                torch.as_tensor(weight, dtype=torch.int32, device=device),
            )
        return self._taps[key]


def preprocess(rgb: torch.Tensor, resizer: BilinearResizer) -> tuple[torch.Tensor, tuple[int, int]]:
    """A HxWx3 uint8 RGB frame (any device) to the encoder's 1x3x1024x1024 float32 input, and the resized (h, w)."""
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    size = resized_shape(height, width)
    resized = resizer(rgb, size).permute(2, 0, 1)
    mean = torch.tensor(PIXEL_MEAN, device=rgb.device).view(-1, 1, 1)
    std = torch.tensor(PIXEL_STD, device=rgb.device).view(-1, 1, 1)
    normalised = (resized.to(torch.float32) - mean) / std
    padded = F.pad(normalised, (0, IMAGE_SIZE - size[1], 0, IMAGE_SIZE - size[0]))
    return padded.unsqueeze(0), size


def upscale_logits(low_res: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]) -> torch.Tensor:
    """BxCx256x256 low-res logits to BxCxHxW logits of the frame; the object is where they are > 0."""
    full = F.interpolate(low_res, (IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    cropped = full[..., : input_size[0], : input_size[1]]
    return F.interpolate(cropped, original_size, mode="bilinear", align_corners=False)


def mask_to_logits(mask: np.ndarray, magnitude: float = 20.0) -> np.ndarray:
    """A binary HxW mask of the frame as 256x256 low-res logits, to use as a mask prompt.

    The mask is resized into the resized input frame, padded like the image, averaged over each
    4x4 cell, and mapped from coverage 0..1 to -magnitude..+magnitude. SAM learnt mask prompts from
    its own logits, so a hand-made mask works best together with points or a box.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be HxW, got shape {mask.shape}")
    size = resized_shape(*mask.shape)
    frame = torch.from_numpy((mask != 0).astype(np.float32))[None, None]
    resized = F.interpolate(frame, size, mode="bilinear", align_corners=False, antialias=True)
    canvas = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)
    canvas[..., : size[0], : size[1]] = resized
    coverage = F.avg_pool2d(canvas, IMAGE_SIZE // MASK_SIZE)[0, 0]
    return ((coverage * 2 - 1) * magnitude).numpy().astype(np.float32)
