"""The run's latency percentiles come from a constant-memory histogram: within 0.25% of the exact ones."""

from __future__ import annotations

import numpy as np
import pytest

from cleanfeed.stream.stats import Collector, LatencyHistogram


def nearest_rank(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, int(np.ceil(q / 100 * len(values)))) - 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_percentiles_are_within_a_quarter_percent_and_max_is_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.lognormal(5.0, 0.6, 20000), rng.uniform(0.02, 5.0, 300), [4000.0]])
    hist = LatencyHistogram()
    for chunk in np.array_split(rng.permutation(values), 37):  # reports arrive in batches
        hist.add(chunk)
    summary = hist.summary()
    assert len(hist) == len(values)
    assert summary["max"] == values.max()
    for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        exact = nearest_rank(values, q)
        assert summary[key] == pytest.approx(exact, rel=0.0026), (key, summary[key], exact)


def test_memory_does_not_grow_with_frames() -> None:
    hist = LatencyHistogram()
    size = hist.counts.nbytes
    for _ in range(50):
        hist.add(np.full(10000, 40.0))
    assert hist.counts.nbytes == size and len(hist) == 500000
    assert hist.summary()["p99"] == 40.0  # clamped to the exact min and max


def test_extremes_and_empty() -> None:
    hist = LatencyHistogram()
    assert hist.summary() == {} and hist.last is None
    hist.add([0.0, 1e9])
    assert hist.summary()["max"] == 1e9 and hist.percentile(0) == 0.0 and hist.last == 1e9
    with pytest.raises(ValueError, match="no latencies"):
        LatencyHistogram().percentile(50)


def test_collector_reports_histogram_figures_and_late_frames() -> None:
    collector = Collector(["src", "sink"], latency_budget_ms=100.0)
    collector.add({"kind": "stats", "element": "sink", "frames_in": 3, "lat": [10.0, 50.0, 150.0]})
    doc = collector.snapshot(collector.started + 1.0)
    assert doc["late"] == 1
    assert doc["latency_ms"]["max"] == 150.0
    assert doc["latency_ms"]["p50"] == pytest.approx(50.0, rel=0.0026)
    assert collector.progress(collector.started + 1.0).latency_ms == 150.0
