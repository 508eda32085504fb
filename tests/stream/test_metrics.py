"""The Prometheus endpoint: scraped with urllib on loopback while a run goes on."""

from __future__ import annotations

import re
import socket
import sys
import urllib.request

import pytest

from cleanfeed.errors import MediaError
from cleanfeed.stream.cli.execute import execute
from cleanfeed.stream.metrics import MetricsServer, MetricsUnavailableError
from cleanfeed.stream.pipeline import Pipeline
from tests.stream import fake_elements  # noqa: F401  (registers t_countsrc)


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    assert match, f"{sample} not in:\n{text}"
    return float(match.group(1))


def test_a_running_pipeline_is_scraped_on_loopback() -> None:
    server = MetricsServer(0)
    scrapes: list[str] = []

    def scrape(progress) -> None:
        if progress.frames_out >= 10 and len(scrapes) < 3:
            scrapes.append(urllib.request.urlopen(server.url, timeout=5).read().decode())

    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        report = Pipeline.from_launch("t_countsrc frames=40 delay_ms=10 ! identity ! fakesink").run(
            mode="thread", progress=scrape, monitor=server, stats_every_s=0.05
        )
        final = urllib.request.urlopen(server.url, timeout=5).read().decode()
    finally:
        server.close()
    assert scrapes, "never scraped while running"
    live = scrapes[-1]
    assert _value(live, "cleanfeed_running") == 1.0
    assert 10 <= _value(live, "cleanfeed_frames_out_total") <= 40
    for name in ("frames_in", "degraded", "late", "reconnects", "dropped"):
        _value(live, f"cleanfeed_{name}_total")
    assert _value(live, 'cleanfeed_latency_seconds{quantile="0.99"}') >= 0
    assert _value(live, 'cleanfeed_stage_fps{stage="identity"}') >= 0
    assert _value(live, 'cleanfeed_stage_frames_in_total{stage="fakesink"}') >= 10
    assert "# TYPE cleanfeed_frames_in_total counter" in live
    assert "# TYPE cleanfeed_stage_fps gauge" in live
    assert _value(final, "cleanfeed_running") == 0.0
    assert _value(final, "cleanfeed_frames_out_total") == report.frames_out == 40
    # the snapshot keeps latency to the microsecond (ms, 3 decimals): half of that either way
    assert _value(final, 'cleanfeed_latency_seconds{quantile="1"}') == pytest.approx(
        report.latency_ms["max"] / 1000, rel=1e-3, abs=0.5e-6)
    assert _value(final, 'cleanfeed_stage_fps{stage="fakesink"}') > 0


def test_execute_serves_metrics_for_the_run_and_closes_the_port(capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    execute(Pipeline.from_launch("t_countsrc frames=5 ! fakesink"), mode="thread", metrics_port=port)
    assert f"metrics on http://127.0.0.1:{port}/metrics" in capsys.readouterr().err
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(MediaError, match=rf"^metrics endpoint 127.0.0.1:{port} must be free to bind, got .*in use"):
            MetricsServer(port)


def test_without_prometheus_client_the_error_says_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MetricsUnavailableError, match=r"^--metrics-port needs prometheus-client: pip install 'cleanfeed\[metrics\]'"):
        MetricsServer(0)


def test_element_counters_become_labelled_series() -> None:
    server = MetricsServer(0)
    try:
        server({"final": True, "reconnects": 3, "stages": {"urisrc": {"fps": 25.0, "counters": {"reconnects": 3, "repeated": 7}}}})
        text = urllib.request.urlopen(server.url, timeout=5).read().decode()
    finally:
        server.close()
    assert _value(text, 'cleanfeed_stage_count_total{counter="reconnects",stage="urisrc"}') == 3
    assert _value(text, 'cleanfeed_stage_count_total{counter="repeated",stage="urisrc"}') == 7
    assert _value(text, "cleanfeed_reconnects_total") == 3 and _value(text, "cleanfeed_running") == 0
