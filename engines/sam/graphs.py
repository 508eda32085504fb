"""The two graphs every backend runs for SAM: the image encoder, and the prompt encoder + mask decoder.

Both wrap the package's own modules (the weights are shared, not copied). They take and return
tensors only, with no Python control flow on their values, so one definition serves eager torch,
torch.compile, CUDA graphs, ONNX export and TensorRT. The prompt graph follows the package's
path exactly for every prompt kind (``SamPredictor.predict`` -> ``PromptEncoder`` ->
``MaskDecoder.predict_masks``), with the choices the package makes in Python turned into inputs:

- prompts are one point list: positive (1) and negative (0) points, then a box as two corner
  points labelled 2 (top-left) and 3 (bottom-right); the package pads a points-only prompt with
  one point labelled -1, and the caller does the same here (``prompt_points`` in transforms);
- ``has_mask_input`` picks the embedded mask (``mask_downscaling``) or ``no_mask_embed``;
- all four masks come out (0: single-mask output, 1..3: multimask), so choosing between them,
  upsampling and cropping happen outside the graph and no image size is frozen into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from cleanfeed.engines.runners.base import TensorSpec
from cleanfeed.engines.sam.variants import EMBEDDING_SIZE, IMAGE_SIZE, MASK_SIZE

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

DECODER_PROFILES: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    "point_coords": ((1, 1, 2), (1, 4, 2), (1, 34, 2)),
    "point_labels": ((1, 1), (1, 4), (1, 34)),
}
"""TensorRT min/opt/max shapes for the dynamic number of points (up to 32 clicks + a box)."""


class ImageEncoderGraph(nn.Module):
    """The ViT image encoder: a normalised, zero-padded 1024x1024 RGB image to its 64x64 embedding."""

    INPUTS = (TensorSpec("image", (1, 3, IMAGE_SIZE, IMAGE_SIZE)),)
    OUTPUTS = (TensorSpec("image_embeddings", (1, 256, EMBEDDING_SIZE, EMBEDDING_SIZE)),)

    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.image_encoder = sam.image_encoder

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor]:
        """image: 1x3x1024x1024 float32, ``(rgb - PIXEL_MEAN) / PIXEL_STD``, zero below/right of the resized frame."""
        return (self.image_encoder(image),)


class PromptDecoderGraph(nn.Module):
    """Prompt encoder + mask decoder: one object's prompt on an image embedding to four low-res mask logits."""

    INPUTS = (
        TensorSpec("image_embeddings", (1, 256, EMBEDDING_SIZE, EMBEDDING_SIZE)),
        TensorSpec("point_coords", (1, "num_points", 2)),
        TensorSpec("point_labels", (1, "num_points")),
        TensorSpec("mask_input", (1, 1, MASK_SIZE, MASK_SIZE)),
        TensorSpec("has_mask_input", (1,)),
    )
    OUTPUTS = (
        TensorSpec("low_res_logits", (1, 4, MASK_SIZE, MASK_SIZE)),
        TensorSpec("iou_predictions", (1, 4)),
    )

    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.prompt_encoder = sam.prompt_encoder
        self.mask_decoder = sam.mask_decoder

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Shapes as in INPUTS/OUTPUTS.

        point_coords: xy pixels in the resized (long side 1024) input frame; point_labels: float,
        1 object, 0 background, 2 box top-left, 3 box bottom-right, -1 padding. mask_input: low-res
        logits of an earlier prediction (read only when has_mask_input is 1). Returns low-res logits
        (256x256, covering the padded 1024x1024 input) and the predicted IoU of each of the 4 masks.
        """
        sparse = self._embed_points(point_coords, point_labels)
        dense = self._embed_mask(mask_input, has_mask_input)
        return self.mask_decoder.predict_masks(
            image_embeddings=image_embeddings,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """PromptEncoder._embed_points/_embed_boxes for all points at once, selecting by label instead of indexing."""
        encoder = self.prompt_encoder
        height, width = encoder.input_image_size
        scale = coords.new_tensor([width, height])
        embedding = encoder.pe_layer._pe_encoding((coords + 0.5) / scale)  # shift to the pixel centre, as the package
        labels = labels.unsqueeze(-1)
        embedding = torch.where(labels == -1, encoder.not_a_point_embed.weight, embedding)
        for label, table in enumerate(encoder.point_embeddings):
            embedding = torch.where(labels == label, embedding + table.weight, embedding)
        return embedding

    def _embed_mask(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        encoder = self.prompt_encoder
        embedded = encoder.mask_downscaling(mask_input)
        no_mask = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return torch.where(has_mask_input.reshape(-1, 1, 1, 1) != 0, embedded, no_mask)
