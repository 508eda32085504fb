"""Make the DeAOT reference data by running UPSTREAM's own code (yoxu515/aot-benchmark @ 601c138).

Why this exists: our port must load the official checkpoints with ``strict=True`` and reproduce
upstream's numbers. Both facts come from upstream itself, never from our port, so this script
imports upstream from a folder given on the command line, builds each model exactly as upstream's
evaluator does, and writes

* ``tests/engines/deaot/data/deaot_layouts.json``: every ``state_dict()`` name and shape per
  variant (parameters and buffers);
* ``tests/engines/deaot/goldens/<case>.npz``: per-frame decoder logits and label maps of
  upstream's ``DeAOTInferEngine`` on a synthetic clip with seeded weights.

It is committed for reproducibility but never run by CI (CI has no upstream checkout)::

    mkdir -p /work/scratch/aot
    git -C <aot-benchmark mirror> archive 601c138 configs dataloaders networks utils \
        | tar -x -C /work/scratch/aot
    python tests/engines/deaot/goldens/make_goldens.py --upstream /work/scratch/aot

Weights and frames are NOT stored: tests regenerate both with ``tests/deaot_weights.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[2]
LAYOUTS_PATH = TESTS / "engines" / "deaot" / "data" / "deaot_layouts.json"
UPSTREAM_REPO = "https://github.com/yoxu515/aot-benchmark"
UPSTREAM_COMMIT = "601c138"
# Output pixels whose top-2 aggregated logits are closer than this are marked in `near_tie`: a
# port that differs by fp32 rounding may pick the other id there, so tests should not count them.
NEAR_TIE = 1e-3
# Seed search (see choose_seed): tries and the share of a frame every id must reach.
SEED_TRIES = 16
MIN_SHARE = 0.005
VARIANTS = ("deaott", "deaots", "deaotb", "deaotl", "r50_deaotl", "swinb_deaotl")

sys.path.insert(0, str(TESTS))
import deaot_weights  # noqa: E402  (tests/ helper: seeded weights and the synthetic clip)


@dataclasses.dataclass(frozen=True)
class GoldenCase:
    """One golden run: which variant, how many objects and frames, on which clip."""

    name: str
    variant: str
    num_objects: int
    frames: int
    height: int = 100
    width: int = 170
    seed: int = 0
    long_term_mem_gap: int = 2
    short_term_mem_skip: int = 1


CASES = (
    GoldenCase("deaott_3obj", "deaott", 3, 8),
    GoldenCase("r50_deaotl_3obj", "r50_deaotl", 3, 6),
    GoldenCase("deaott_12obj", "deaott", 12, 5),
    GoldenCase("deaots_3obj", "deaots", 3, 5),
)


def import_upstream(root: Path) -> types.SimpleNamespace:
    """Put upstream first on sys.path and import the pieces its evaluator uses.

    Upstream's dataloaders/video_transforms imports torchvision only for training augmentations;
    torchvision is not installed here, so a stub module stands in (nothing we call touches it).
    """
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except ImportError:
            tv = types.ModuleType("torchvision")
            tv.transforms = types.ModuleType("torchvision.transforms")
            tv.transforms.functional = types.ModuleType("torchvision.transforms.functional")
            sys.modules["torchvision"] = tv
            sys.modules["torchvision.transforms"] = tv.transforms
            sys.modules["torchvision.transforms.functional"] = tv.transforms.functional
    sys.path.insert(0, str(root))
    return types.SimpleNamespace(
        default_cfg=importlib.import_module("configs.default"),
        models=importlib.import_module("networks.models"),
        engines=importlib.import_module("networks.engines"),
        transforms=importlib.import_module("dataloaders.video_transforms"),
    )


def upstream_config(up: types.SimpleNamespace, variant: str):
    """Upstream's engine config for a variant: ModelConfig merged into DefaultEngineConfig.

    DefaultEngineConfig copies configs/models/<variant>.ModelConfig's MODEL_* fields and adds the
    TRAIN_*/TEST_* fields the model constructor also reads (TRAIN_ENCODER_FREEZE_AT, dropouts).
    The stage configs (pre_ytb_dav, ...) only add dataset/checkpoint paths and create folders,
    so the base class is enough to build the identical network.
    """
    return up.default_cfg.DefaultEngineConfig(exp_name="golden", model=variant)


def build_model(up: types.SimpleNamespace, variant: str) -> torch.nn.Module:
    cfg = upstream_config(up, variant)
    return up.models.build_vos_model(cfg.MODEL_VOS, cfg).eval()


def write_layouts(up: types.SimpleNamespace, path: Path) -> dict[str, int]:
    layouts: dict[str, object] = {
        "_source": {
            "repo": UPSTREAM_REPO,
            "commit": UPSTREAM_COMMIT,
            "how": (
                "cfg = configs.default.DefaultEngineConfig('golden', model=<variant>); "
                "model = networks.models.build_vos_model(cfg.MODEL_VOS, cfg); "
                "{name: list(t.shape) for name, t in model.state_dict().items()} "
                "(parameters and persistent buffers, in state_dict order); "
                "made by tests/engines/deaot/goldens/make_goldens.py"
            ),
            "non_float_buffers": "*.relative_position_index (Swin) are int64; all else float32",
            "torch": torch.__version__,
            "date": datetime.date.today().isoformat(),
        }
    }
    counts: dict[str, int] = {}
    for variant in VARIANTS:
        state = build_model(up, variant).state_dict()
        layouts[variant] = {name: list(t.shape) for name, t in state.items()}
        counts[variant] = len(state)
        odd = {name: str(t.dtype) for name, t in state.items() if t.dtype != torch.float32}
        if odd and any(not n.endswith("relative_position_index") for n in odd):
            raise RuntimeError(f"unexpected non-float32 entries in {variant}: {odd}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(layouts, indent=1) + "\n")
    return counts


def model_input(up: types.SimpleNamespace, cfg, frame: np.ndarray) -> torch.Tensor:
    """Upstream's test transform on one uint8 RGB frame -> float32 [1, 3, h, w] (as aot_tracker)."""
    transform = (
        up.transforms.MultiRestrictSize(
            cfg.TEST_MAX_SHORT_EDGE, cfg.TEST_MAX_LONG_EDGE, False, [1], cfg.MODEL_ALIGN_CORNERS
        ),
        up.transforms.MultiToTensor(),
    )
    sample = {"current_img": frame}
    for step in transform:
        sample = step(sample)
    return sample[0]["current_img"].unsqueeze(0).float()


def long_term_frames(engine) -> list[int]:
    """Frames held in each sub-engine's long-term memory (first layer's key length / enc_hw)."""
    return [sub.long_term_memories[0][0].shape[0] // sub.enc_hw for sub in engine.aot_engines]


@torch.no_grad()
def run_case(
    up: types.SimpleNamespace, case: GoldenCase, forced_labels: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], dict]:
    """Upstream inference on the synthetic clip, mirroring Segment-and-Track-Anything's tracker.

    ``forced_labels`` ([T-1, H, W] uint8), when given, replaces the argmax fed to update_memory
    (teacher forcing): it checks that a test feeding the stored labels back cannot cascade.
    """
    cfg = upstream_config(up, case.variant)
    if cfg.TEST_MAX_SHORT_EDGE is not None or cfg.TEST_MAX_LONG_EDGE != 800 * 1.3:
        raise RuntimeError("upstream's test resize settings changed; revisit the golden procedure")
    model = up.models.build_vos_model(cfg.MODEL_VOS, cfg).eval()
    layout = deaot_weights.load_layout(case.variant)
    weights = deaot_weights.seeded_state_dict(layout, seed=case.seed)
    model.load_state_dict(weights, strict=True)
    engine = up.engines.DeAOTInferEngine(
        model,
        gpu_id=0,
        long_term_mem_gap=case.long_term_mem_gap,
        short_term_mem_skip=case.short_term_mem_skip,
    )
    frames, label0 = deaot_weights.golden_clip(case.num_objects, case.frames, case.height, case.width)
    out_size = (case.height, case.width)

    image = model_input(up, cfg, frames[0])
    model_size = tuple(image.shape[-2:])
    mask = torch.from_numpy(label0).float()[None, None]
    mask = F.interpolate(mask, size=model_size, mode="nearest")
    engine.add_reference_frame(image, mask, obj_nums=case.num_objects, frame_step=0)

    sub_logits, labels, margins = [], [], []
    for t in range(1, case.frames):
        image = model_input(up, cfg, frames[t])
        engine.match_propogate_one_frame(image)
        logits = engine.decode_current_logits(out_size)
        label = torch.argmax(logits, dim=1, keepdim=True).float()
        top2 = torch.topk(logits, 2, dim=1).values
        margins.append((top2[:, 0] - top2[:, 1])[0])
        sub_logits.append(torch.cat([sub.pred_id_logits for sub in engine.aot_engines], dim=0))
        labels.append(label[0, 0].to(torch.uint8))
        if forced_labels is not None:
            label = torch.from_numpy(forced_labels[t - 1]).float()[None, None]
        engine.update_memory(F.interpolate(label, size=model_size, mode="nearest"))

    margin = torch.stack(margins)
    diagnostics = {
        "long_term_frames": long_term_frames(engine),
        "min_top2_margin": float(margin.min()),
        "near_tie_pixels": int((margin < NEAR_TIE).sum()),
    }
    return {
        "sub_logits": torch.stack(sub_logits).numpy().astype(np.float32),
        "labels": torch.stack(labels).numpy(),
        "near_tie": (margin < NEAR_TIE).numpy().astype(np.uint8),
        "model_size": np.array(model_size, dtype=np.int64),
        "num_objects": np.array(case.num_objects),
        "frames": np.array(case.frames),  # the clip's length; its pixels are regenerated
        "height": np.array(case.height),
        "width": np.array(case.width),
        "seed": np.array(case.seed),
        "long_term_mem_gap": np.array(case.long_term_mem_gap),
        "short_term_mem_skip": np.array(case.short_term_mem_skip),
        "variant": np.array(case.variant),
        "clip_crc32": np.array(deaot_weights.crc32_of([frames, label0]), dtype=np.int64),
        "weights_crc32": np.array(deaot_weights.crc32_of(weights.values()), dtype=np.int64),
        "long_term_frames": np.array(long_term_frames(engine), dtype=np.int64),
    }, diagnostics


def describe(case: GoldenCase, result: dict[str, np.ndarray], diagnostics: dict) -> None:
    """Print what a reviewer needs to trust the golden: logit scale and per-object coverage."""
    logits = result["sub_logits"]
    live = logits[logits > -1e9]
    print(f"{case.name}: model_size={tuple(result['model_size'].tolist())} sub_logits={logits.shape} {diagnostics}")
    print(
        f"  live logits: min={live.min():.3f} max={live.max():.3f} mean={live.mean():.3f} "
        f"std={live.std():.3f} abs_mean={np.abs(live).mean():.3f}"
    )
    _, label0 = deaot_weights.golden_clip(case.num_objects, case.frames, case.height, case.width)
    for t, label in enumerate([label0, *result["labels"]]):
        fractions = [float((label == obj).mean()) for obj in range(case.num_objects + 1)]
        kind = "reference" if t == 0 else "predicted"
        print(f"  frame{t} {kind} % bg|objects: " + " ".join(f"{100 * f:.1f}" for f in fractions))


def coverage(labels: np.ndarray, num_objects: int) -> tuple[int, float]:
    """(ids holding MIN_SHARE of every predicted frame, smallest share any id gets in a frame)."""
    shares = [float((labels == obj).mean(axis=(1, 2)).min()) for obj in range(num_objects + 1)]
    return sum(share >= MIN_SHARE for share in shares), min(shares)


def choose_seed(up: types.SimpleNamespace, case: GoldenCase) -> GoldenCase:
    """The first weight seed whose masks are not degenerate on the clip.

    Random weights cannot track, and which id wins where is partly a lottery drawn by the seed.
    A golden whose masks miss ids would leave those ids' memory paths untested, so seeds 0, 1, ...
    are tried until every id, background included, holds at least MIN_SHARE of every predicted
    frame; failing that, the seed with the most such ids (then the largest smallest share) wins.
    With 12 objects no seed passes: upstream's soft aggregation favours the second sub-engine's
    ids (their softmax has 3 live channels against 11), so a few ids always vanish.
    """
    best, best_score = case, (-1, -1.0)
    for seed in range(SEED_TRIES):
        candidate = dataclasses.replace(case, seed=seed)
        result, _ = run_case(up, candidate)
        score = coverage(result["labels"], case.num_objects)
        print(f"  {case.name} seed {seed}: {score[0]} ids >= {MIN_SHARE:.1%}, smallest {score[1]:.2%}")
        if score > best_score:
            best, best_score = candidate, score
        if score[0] == case.num_objects + 1:
            break
    return best


def write_goldens(up: types.SimpleNamespace, cases: tuple[GoldenCase, ...]) -> None:
    for case in cases:
        case = choose_seed(up, case)
        first, diagnostics = run_case(up, case)
        second, _ = run_case(up, case)
        for key in first:
            if not np.array_equal(first[key], second[key]):
                raise RuntimeError(f"upstream is not deterministic on {case.name}: {key} differs")
        path = HERE / f"{case.name}.npz"
        np.savez_compressed(path, **first)
        describe(case, first, diagnostics)
        print(f"  deterministic over two runs; wrote {path.name} ({path.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="aot-benchmark checkout")
    parser.add_argument("--only", choices=("layouts", "goldens", "all"), default="all")
    parser.add_argument("--case", action="append", help="only this golden case (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    up = import_upstream(args.upstream.resolve())
    if args.only in ("layouts", "all"):
        counts = write_layouts(up, LAYOUTS_PATH)
        print("layouts:", counts)
    if args.only in ("goldens", "all"):
        write_goldens(up, CASES if not args.case else tuple(c for c in CASES if c.name in args.case))


if __name__ == "__main__":
    main()
