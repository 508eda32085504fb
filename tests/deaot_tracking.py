"""Test helpers: a DeAOT tracker or checkpoint file with seeded weights (tests/deaot_weights.py), no download."""

from __future__ import annotations

from pathlib import Path

import torch
from deaot_weights import load_layout, seeded_state_dict

from cleanfeed.engines.deaot.checkpoint import deaot_from_state_dict
from cleanfeed.engines.deaot.graphs import MemoriseGraph, ReferenceGraph, StepGraph
from cleanfeed.engines.deaot.tracker import DeaotTracker, TrackerConfig
from cleanfeed.engines.runners import get_runner
from cleanfeed.engines.runners.base import RunnerConfig


def tracker_for(variant: str, seed: int, gap: int, capacity: int = 16) -> DeaotTracker:
    """A CPU fp32 torch tracker of ``variant`` with ``seeded_state_dict`` weights."""
    net, arch = deaot_from_state_dict(seeded_state_dict(load_layout(variant), seed), variant)
    runners = []
    for graph in (ReferenceGraph, StepGraph, MemoriseGraph):
        inputs, outputs = graph.specs(arch.layers)
        runners.append(get_runner(RunnerConfig(), module=graph(net), inputs=inputs, outputs=outputs))
    return DeaotTracker(arch, *runners, TrackerConfig(long_term_gap=gap, max_long_term=capacity))


def save_checkpoint(path: Path, variant: str = "deaott", seed: int = 0) -> Path:
    """A checkpoint file laid out as upstream saves them (``{"state_dict": ...}``)."""
    torch.save({"state_dict": seeded_state_dict(load_layout(variant), seed)}, path)
    return path
