"""SamSegmenter against segment-anything's own SamPredictor, for every prompt kind, on the tiny SAM."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cleanfeed.engines.runners import Runner, RunnerConfig, get_runner
from cleanfeed.engines.sam.graphs import ImageEncoderGraph, PromptDecoderGraph
from cleanfeed.engines.sam.predictor import SamMask, SamPrompt, SamSegmenter, mask_to_logits, open_segmenter
from cleanfeed.errors import BackendError, CheckpointError, PromptError

HEIGHT, WIDTH = 180, 320
POINTS = np.array([[100.0, 60.0], [250.0, 120.0], [30.5, 170.25]])
LABELS = np.array([1, 0, 1])
BOX = (40.0, 30.0, 260.0, 150.0)


class Counting:
    """A runner that counts its calls (SamSegmenter uses only ``__call__``, ``config``, ``device`` and ``close``)."""

    def __init__(self, runner: Runner, backend: str | None = None) -> None:
        self.runner = runner
        self.config = runner.config if backend is None else dataclasses.replace(runner.config, backend=backend)
        self.device = runner.device
        self.calls = 0

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        return self.runner(**inputs)

    def close(self) -> None:
        self.runner.close()


def _segmenter(sam: Any) -> SamSegmenter:
    """Our segmenter on the torch runner, over the very modules of ``sam`` (nothing copied)."""
    config = RunnerConfig()
    encoder = get_runner(
        config, module=ImageEncoderGraph(sam), inputs=ImageEncoderGraph.INPUTS, outputs=ImageEncoderGraph.OUTPUTS
    )
    decoder = get_runner(
        config, module=PromptDecoderGraph(sam), inputs=PromptDecoderGraph.INPUTS, outputs=PromptDecoderGraph.OUTPUTS
    )
    return SamSegmenter(Counting(encoder), Counting(decoder))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def image(make_image: Any) -> np.ndarray:
    return make_image(HEIGHT, WIDTH, seed=7)


@pytest.fixture(scope="module")
def segmenter(tiny_sam: Any, image: np.ndarray) -> SamSegmenter:
    segmenter = _segmenter(tiny_sam)
    segmenter.set_image(image)
    return segmenter


@pytest.fixture(scope="module")
def reference(tiny_sam: Any, image: np.ndarray, package_reference: Any) -> Any:
    predictor = package_reference.SamPredictor(tiny_sam)
    predictor.set_image(image)
    return predictor


def _previous_logits(reference: Any) -> np.ndarray:
    _, scores, logits = reference.predict(point_coords=POINTS[:1], point_labels=LABELS[:1], multimask_output=True)
    return logits[int(np.argmax(scores))]


def _prompt(kind: str, mask_logits: np.ndarray) -> tuple[SamPrompt, dict[str, Any]]:
    """Our prompt and the package's predict() arguments for one prompt kind."""
    box = np.array(BOX)
    kinds = {
        "points": (SamPrompt(POINTS, LABELS), {"point_coords": POINTS, "point_labels": LABELS}),
        "one click": (SamPrompt(POINTS[:1], LABELS[:1]), {"point_coords": POINTS[:1], "point_labels": LABELS[:1]}),
        "box": (SamPrompt(box=BOX), {"box": box}),
        "box and points": (
            SamPrompt(POINTS, LABELS, BOX),
            {"point_coords": POINTS, "point_labels": LABELS, "box": box},
        ),
        "points and mask": (
            SamPrompt(POINTS, LABELS, mask_logits=mask_logits),
            {"point_coords": POINTS, "point_labels": LABELS, "mask_input": mask_logits[None]},
        ),
        "mask only": (SamPrompt(mask_logits=mask_logits), {"mask_input": mask_logits[None]}),
    }
    return kinds[kind]


def _agreement(ours: SamMask, masks: np.ndarray, scores: np.ndarray, logits: np.ndarray, index: int) -> float:
    assert ours.mask.shape == (HEIGHT, WIDTH) and ours.mask.dtype == bool
    assert ours.logits.shape == (256, 256) and ours.logits.dtype == np.float32
    assert np.abs(ours.logits - logits[index]).max() <= 1e-4
    assert ours.score == pytest.approx(float(scores[index]), abs=1e-5)
    return float((ours.mask == masks[index]).mean())


def test_embeddings_equal_the_package(segmenter: SamSegmenter, reference: Any) -> None:
    assert segmenter.image_size == (HEIGHT, WIDTH)
    assert torch.equal(segmenter._embeddings, reference.features)


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("kind", ["points", "one click", "box", "box and points", "points and mask", "mask only"])
def test_prompt_kinds_equal_the_package(kind: str, multimask: bool, segmenter: SamSegmenter, reference: Any) -> None:
    ours_prompt, package_args = _prompt(kind, _previous_logits(reference))
    ours = segmenter.predict(ours_prompt, multimask=multimask)
    masks, scores, logits = reference.predict(**package_args, multimask_output=multimask)
    index = int(np.argmax(scores)) if multimask else 0  # the package returns outputs 1..3 or output 0
    assert ours.index == (index + 1 if multimask else 0)
    agreement = _agreement(ours, masks, scores, logits, index)
    assert agreement >= 0.9999, f"{kind}: masks agree on {agreement:.6f} of the pixels"


@pytest.mark.parametrize("kind", ["points", "box"])
def test_refine_is_sam_tracks_second_pass(kind: str, segmenter: SamSegmenter, reference: Any) -> None:
    ours_prompt, package_args = _prompt(kind, np.zeros((256, 256), np.float32))
    ours = segmenter.predict(ours_prompt, multimask=True, refine=True)
    _, scores, logits = reference.predict(**package_args, multimask_output=True)
    best = logits[int(np.argmax(scores))]
    masks, scores, logits = reference.predict(**package_args, mask_input=best[None], multimask_output=True)
    index = int(np.argmax(scores))
    assert ours.index == index + 1
    assert _agreement(ours, masks, scores, logits, index) >= 0.9999


def test_several_objects_share_one_encoding(tiny_sam: Any, image: np.ndarray) -> None:
    segmenter = _segmenter(tiny_sam)
    segmenter.set_image(image)
    prompts = [SamPrompt(POINTS[:1], LABELS[:1]), SamPrompt(box=BOX), SamPrompt(POINTS, LABELS, BOX)]
    results = [segmenter.predict(p) for p in prompts]
    results.append(segmenter.predict(prompts[0], refine=True))
    assert segmenter.encoder.calls == 1  # type: ignore[attr-defined]
    assert segmenter.decoder.calls == 5  # type: ignore[attr-defined]
    assert not np.array_equal(results[0].mask, results[1].mask)
    again = segmenter.predict(prompts[1])
    assert np.array_equal(again.mask, results[1].mask) and again.score == results[1].score


def test_predict_before_set_image(tiny_sam: Any) -> None:
    segmenter = _segmenter(tiny_sam)
    with pytest.raises(RuntimeError, match=r"^SamSegmenter.predict must come after set_image, got no image$"):
        segmenter.predict(SamPrompt(box=BOX))


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        (SamPrompt(), r"^SAM prompt must have a point, a box or a mask, got none$"),
        (
            SamPrompt(POINTS, np.array([1, 2, 1])),
            r"^SAM labels must be 1 \(object\) or 0 \(not object\), got \[1, 2\]$",
        ),
        (SamPrompt(POINTS, LABELS[:2]), r"^SAM labels must be one per point \(3\), got shape \(2,\)$"),
        (SamPrompt(POINTS[:, :1], LABELS), r"^SAM points must be an \(N, 2\) array of x, y, got shape \(3, 1\)$"),
        (SamPrompt(box=(10, 10, 5, 20)), r"^SAM box must have x1 > x0 and y1 > y0, got \(10, 10, 5, 20\)$"),
        (SamPrompt(mask_logits=np.zeros((64, 64))), r"^SAM mask logits must be 256x256, got shape \(64, 64\)$"),
    ],
)
def test_bad_prompts(prompt: SamPrompt, message: str, segmenter: SamSegmenter) -> None:
    with pytest.raises(PromptError, match=message):
        segmenter.predict(prompt)


def test_bad_image(segmenter: SamSegmenter) -> None:
    with pytest.raises(
        ValueError, match=r"^SAM image must be HxWx3 uint8 RGB, got float32 array of shape \(4, 4, 3\)$"
    ):
        segmenter.set_image(np.zeros((4, 4, 3), np.float32))


def test_user_mask_as_prompt(segmenter: SamSegmenter) -> None:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[40:120, 60:200] = True
    result = segmenter.predict(SamPrompt(POINTS[:1], LABELS[:1], mask_logits=mask_to_logits(mask)))
    assert result.mask.shape == (HEIGHT, WIDTH)


def test_open_segmenter_needs_an_export_for_onnxruntime(tiny_checkpoint: Path, tmp_path: Path) -> None:
    config = RunnerConfig(backend="onnxruntime")
    with pytest.raises(BackendError) as err:
        open_segmenter(tiny_checkpoint, "vit_b", config)
    assert str(err.value) == (
        "backend onnxruntime must run SAM from an ONNX export, got none (no export folder was given): "
        f"run `cleanfeed export sam --model vit_b --checkpoint {tiny_checkpoint} --out DIR` and use that folder"
    )
    (tmp_path / "image_encoder.onnx").write_bytes(b"")
    with pytest.raises(BackendError, match=f"got none \\('{tmp_path}' lacks prompt_decoder.onnx\\)"):
        open_segmenter(tiny_checkpoint, None, config, tmp_path)


def test_open_segmenter_torch_reads_the_checkpoint(
    tiny_checkpoint: Path, image: np.ndarray, segmenter: SamSegmenter
) -> None:
    opened = open_segmenter(tiny_checkpoint, None, RunnerConfig())
    opened.set_image(image)
    prompt = SamPrompt(POINTS, LABELS, BOX)
    ours, expected = opened.predict(prompt), segmenter.predict(prompt)
    assert np.array_equal(ours.mask, expected.mask) and np.array_equal(ours.logits, expected.logits)
    with pytest.raises(CheckpointError, match="is a SAM checkpoint of a custom size"):
        open_segmenter(tiny_checkpoint, "vit_h", RunnerConfig())


def test_open_segmenter_onnxruntime_runs_the_export(
    tiny_checkpoint: Path, image: np.ndarray, segmenter: SamSegmenter, tmp_path: Path
) -> None:
    from cleanfeed.export.model_export import export_model
    from cleanfeed.export.sam import sam_spec

    export_model(sam_spec(tiny_checkpoint), tmp_path, samples=1)
    opened = open_segmenter(tiny_checkpoint, None, RunnerConfig(backend="onnxruntime"), tmp_path)
    opened.set_image(image)
    for prompt in (
        SamPrompt(POINTS, LABELS),
        SamPrompt(box=BOX),
        SamPrompt(mask_logits=segmenter.predict(SamPrompt(box=BOX)).logits),
    ):
        ours, expected = opened.predict(prompt, refine=True), segmenter.predict(prompt, refine=True)
        assert ours.index == expected.index
        assert np.abs(ours.logits - expected.logits).max() < 1e-3
        assert (ours.mask == expected.mask).mean() >= 0.999


def test_mask_alone_is_refused_on_tensorrt(segmenter: SamSegmenter, image: np.ndarray) -> None:
    """The TensorRT engine's profile starts at one point; a mask-only prompt is a clear error, not a shape error."""
    on_trt = SamSegmenter(segmenter.encoder, Counting(segmenter.decoder.runner, backend="tensorrt"))  # type: ignore[attr-defined, arg-type]
    on_trt.set_image(image)
    logits = np.zeros((256, 256), np.float32)
    with pytest.raises(PromptError, match="SAM on TensorRT needs a point or a box with a mask prompt, got a mask alone"):
        on_trt.predict(SamPrompt(mask_logits=logits))
    assert on_trt.predict(SamPrompt(points=POINTS[:1], labels=LABELS[:1], mask_logits=logits)).mask.shape == image.shape[:2]
