"""The two SAM graphs against the package's own prompt encoder + mask decoder path, prompt kind by prompt kind."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

from cleanfeed.engines.sam.graphs import DECODER_PROFILES, ImageEncoderGraph, PromptDecoderGraph

POINTS = torch.tensor([[[100.0, 200.0], [612.5, 300.25], [900.0, 40.0]]])
LABELS = torch.tensor([[1, 0, 1]])
BOX = torch.tensor([[50.0, 60.0, 700.0, 500.0]])
PAD_POINT = torch.zeros(1, 1, 2)


def _prompts(mask: torch.Tensor) -> dict[str, tuple[Any, ...]]:
    """name -> (package points, boxes, masks; our coords, labels) for each prompt kind."""
    with_pad = torch.cat([POINTS, PAD_POINT], 1)
    pad_labels = torch.tensor([[1.0, 0.0, 1.0, -1.0]])
    return {
        "points": ((POINTS, LABELS), None, None, with_pad, pad_labels),
        "negative point": (
            (POINTS[:, 1:2], LABELS[:, 1:2]),
            None,
            None,
            torch.cat([POINTS[:, 1:2], PAD_POINT], 1),
            torch.tensor([[0.0, -1.0]]),
        ),
        "box": (None, BOX, None, BOX.reshape(1, 2, 2), torch.tensor([[2.0, 3.0]])),
        "box and points": (
            (POINTS, LABELS),
            BOX,
            None,
            torch.cat([POINTS, BOX.reshape(1, 2, 2)], 1),
            torch.tensor([[1.0, 0.0, 1.0, 2.0, 3.0]]),
        ),
        "points and mask": ((POINTS, LABELS), None, mask, with_pad, pad_labels),
        "box and mask": (None, BOX, mask, BOX.reshape(1, 2, 2), torch.tensor([[2.0, 3.0]])),
        "mask only": (None, None, mask, torch.zeros(1, 0, 2), torch.zeros(1, 0)),
    }


@pytest.fixture(scope="module")
def embeddings(tiny_sam: Any) -> torch.Tensor:
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return tiny_sam.image_encoder(image)


PROMPT_KINDS = ["points", "negative point", "box", "box and points", "points and mask", "box and mask", "mask only"]


@pytest.mark.parametrize("kind", PROMPT_KINDS)
def test_decoder_graph_equals_package(kind: str, tiny_sam: Any, embeddings: torch.Tensor) -> None:
    mask = torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(5)) * 4
    points, boxes, masks, coords, labels = _prompts(mask)[kind]
    graph = PromptDecoderGraph(tiny_sam)
    has_mask = torch.tensor([1.0 if masks is not None else 0.0])
    mask_input = masks if masks is not None else torch.zeros(1, 1, 256, 256)
    with torch.no_grad():
        low_res, iou = graph(embeddings, coords, labels, mask_input, has_mask)
        sparse, dense = tiny_sam.prompt_encoder(points=points, boxes=boxes, masks=masks)
        for multimask, outputs in ((True, slice(1, 4)), (False, slice(0, 1))):
            ref_low, ref_iou = tiny_sam.mask_decoder(
                image_embeddings=embeddings,
                image_pe=tiny_sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
            assert low_res[:, outputs].shape == ref_low.shape
            logits_diff = (low_res[:, outputs] - ref_low).abs().max().item()
            iou_diff = (iou[:, outputs] - ref_iou).abs().max().item()
            assert logits_diff <= 1e-5 and iou_diff <= 1e-5, f"{kind}: logits {logits_diff:.2e}, iou {iou_diff:.2e}"
    assert low_res.shape == (1, 4, 256, 256) and iou.shape == (1, 4)


def test_mask_input_is_ignored_without_has_mask_input(tiny_sam: Any, embeddings: torch.Tensor) -> None:
    graph = PromptDecoderGraph(tiny_sam)
    coords, labels = torch.cat([POINTS, PAD_POINT], 1), torch.tensor([[1.0, 0.0, 1.0, -1.0]])
    with torch.no_grad():
        a = graph(embeddings, coords, labels, torch.zeros(1, 1, 256, 256), torch.zeros(1))
        b = graph(embeddings, coords, labels, torch.full((1, 1, 256, 256), 9.0), torch.zeros(1))
        c = graph(embeddings, coords, labels, torch.full((1, 1, 256, 256), 9.0), torch.ones(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_encoder_graph_is_the_package_encoder(tiny_sam: Any) -> None:
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(4))
    graph = ImageEncoderGraph(tiny_sam)
    with torch.no_grad():
        (ours,) = graph(image)
        reference = tiny_sam.image_encoder(image)
    assert ours.shape == (1, 256, 64, 64) == ImageEncoderGraph.OUTPUTS[0].shape
    assert torch.equal(ours, reference)


def test_specs_follow_the_forward_signatures() -> None:
    for graph in (ImageEncoderGraph, PromptDecoderGraph):
        names = list(inspect.signature(graph.forward).parameters)[1:]
        assert names == [spec.name for spec in graph.INPUTS]
    dynamic = {spec.name for spec in PromptDecoderGraph.INPUTS if any(isinstance(a, str) for a in spec.shape)}
    assert set(DECODER_PROFILES) == dynamic == {"point_coords", "point_labels"}
