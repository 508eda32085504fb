"""A Prometheus endpoint with a run's live figures, for broadcast monitoring.

    server = MetricsServer(port=9464)            # http://127.0.0.1:9464/metrics
    pipeline.run(monitor=server)                 # updated with every stats document
    server.close()

It exposes the figures of the stats document (cleanfeed.stream.stats), so ``--stats`` and the endpoint
never disagree. prometheus-client is imported only when a server is made (``pip install
'cleanfeed[metrics]'``). The server binds to loopback unless another host is given: the
figures describe a feed and its machine, which is nobody else's business by default.

Metrics (counters end in ``_total``; latency in seconds as Prometheus prefers):

- ``cleanfeed_frames_in_total``, ``cleanfeed_frames_out_total``, ``cleanfeed_degraded_total``,
  ``cleanfeed_late_total``, ``cleanfeed_reconnects_total``, ``cleanfeed_dropped_total``
- ``cleanfeed_logo_visible_total``: frames on which a ``logocheck`` element found a logo on air
- ``cleanfeed_frames_in_flight``, ``cleanfeed_fps``, ``cleanfeed_running`` (1 until the run
  ended), ``cleanfeed_latency_seconds{quantile="0.5|0.95|0.99|1"}`` (1 = max)
- per stage (label ``stage``): ``cleanfeed_stage_fps``, ``cleanfeed_stage_frames_in_total``,
  ``cleanfeed_stage_frames_out_total``, ``cleanfeed_stage_busy_seconds_total``,
  ``cleanfeed_stage_load``, ``cleanfeed_stage_rss_bytes``, and every named counter an element
  keeps (``Element.count``) as ``cleanfeed_stage_count_total{stage, counter}``; the frames a
  stage shed (cleanfeed.stream.shedding) also as ``cleanfeed_stage_shed_total{stage, reason}``
  (reason ``late`` or ``backlog``), the slack distribution as its ``slack_le_*ms`` counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cleanfeed.errors import CleanfeedError, MediaError

QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"), ("max", "1"))
TOTALS = (
    ("frames_in", "Frames the source read"),
    ("frames_out", "Frames the sink rendered"),
    ("degraded", "Frames emitted with the fast fallback fill (meta degraded)"),
    ("late", "Frames whose end-to-end latency exceeded the budget"),
    ("reconnects", "Times a source reconnected to its input"),
    ("dropped", "Frames in that never came out (known once the run ended)"),
)


class MetricsUnavailableError(CleanfeedError, ImportError):
    """prometheus-client is not installed."""

    exit_code = 2


class _Figures:
    """A prometheus-client collector that renders the latest stats document on each scrape."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {}

    def describe(self) -> list[Any]:
        return []  # nothing to check at registration: the names are fixed

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        doc = self.doc  # one reference read: updates replace the whole map
        for key, doc_text in TOTALS:
            yield CounterMetricFamily(f"cleanfeed_{key}", doc_text, value=float(doc.get(key) or 0))
        yield CounterMetricFamily("cleanfeed_logo_visible", "Frames on which logocheck found a logo still visible",
                                  value=float((doc.get("counters") or {}).get("logo_visible") or 0))
        yield GaugeMetricFamily("cleanfeed_frames_in_flight", "Frames read but not yet rendered",
                                value=float(doc.get("in_flight") or 0))
        yield GaugeMetricFamily("cleanfeed_fps", "Frames out per second of streaming time", value=float(doc.get("fps") or 0))
        yield GaugeMetricFamily("cleanfeed_running", "1 while the run goes on, 0 once it ended",
                                value=0.0 if doc.get("final") else 1.0)
        latency = GaugeMetricFamily("cleanfeed_latency_seconds", "End-to-end frame latency quantiles over the run (1 = max)",
                                    labels=["quantile"])
        for key, label in QUANTILES:
            value = (doc.get("latency_ms") or {}).get(key)
            if value is not None:
                latency.add_metric([label], float(value) / 1000)
        yield latency
        yield from self._stages(doc.get("stages") or {})

    @staticmethod
    def _stages(stages: dict[str, dict[str, Any]]) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        fps = GaugeMetricFamily("cleanfeed_stage_fps", "Frames per second a stage handles", labels=["stage"])
        f_in = CounterMetricFamily("cleanfeed_stage_frames_in", "Frames into a stage", labels=["stage"])
        f_out = CounterMetricFamily("cleanfeed_stage_frames_out", "Frames out of a stage", labels=["stage"])
        busy = CounterMetricFamily("cleanfeed_stage_busy_seconds", "Seconds a stage spent in its element", labels=["stage"])
        load = GaugeMetricFamily("cleanfeed_stage_load", "Busy share of the run so far (0..1)", labels=["stage"])
        rss = GaugeMetricFamily("cleanfeed_stage_rss_bytes", "Peak resident memory of a stage's process", labels=["stage"])
        counts = CounterMetricFamily("cleanfeed_stage_count", "Named counters an element keeps", labels=["stage", "counter"])
        shed = CounterMetricFamily("cleanfeed_stage_shed", "Frames a stage put on its cheap path, by reason",
                                   labels=["stage", "reason"])
        for name, st in stages.items():
            fps.add_metric([name], float(st.get("fps") or 0))
            f_in.add_metric([name], float(st.get("frames_in") or 0))
            f_out.add_metric([name], float(st.get("frames_out") or 0))
            busy.add_metric([name], float(st.get("busy_s") or 0))
            load.add_metric([name], float(st.get("load") or 0))
            rss.add_metric([name], float(st.get("rss_mb") or 0) * 1024 * 1024)
            for counter, value in (st.get("counters") or {}).items():
                counts.add_metric([name, str(counter)], float(value))
                if str(counter).startswith("shed_") and counter != "shed_entered":
                    shed.add_metric([name, str(counter)[5:]], float(value))
        yield from (fps, f_in, f_out, busy, load, rss, counts, shed)


class MetricsServer:
    """Serves ``/metrics`` on ``host:port`` (port 0: any free port, see :attr:`port`) from a
    daemon thread; call it with each stats document (it is a pipeline monitor). ``figures``: a
    collector with a ``doc`` attribute that renders another document (a fleet's, with a label
    per feed) instead of one run's."""

    def __init__(self, port: int, host: str = "127.0.0.1", figures: Any = None) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise MetricsUnavailableError(
                "--metrics-port needs prometheus-client: pip install 'cleanfeed[metrics]' (or prometheus-client)"
            ) from None
        if not 0 <= port < 65536:
            raise MediaError(f"metrics port must be 0-65535, got {port}")
        self._figures = figures if figures is not None else _Figures()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._figures)  # type: ignore[arg-type]
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as err:
            raise MediaError(f"metrics endpoint {host}:{port} must be free to bind, got {err.strerror or err}") from None
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def __call__(self, doc: dict[str, Any]) -> None:
        self._figures.doc = doc

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
