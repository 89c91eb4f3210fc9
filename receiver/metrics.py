"""The receiver service's ``/metrics`` and ``/healthz``: Prometheus exposition by ``prometheus_client``.

Each service owns a :class:`ServiceMetrics` with its own ``CollectorRegistry`` (never the
process-wide one), so several services in one process (the tests, the benchmarks) do not
collide. Counters and gauges are read at each scrape from the parts that keep them (the
source's :class:`~receiver.sources.base.SourceStats`, the grouper, the spool, the sink, the
deliverer): nothing is copied in the receive loop. Two histograms are observed as things happen:

* ``gla_bundle_latency_seconds``: from the processing of the block holding a burst's last
  sample to its bundle being made (the receive chain's and the grouper's delay);
* ``gla_delivery_latency_seconds`` and ``gla_delivery_request_seconds`` (the deliverer's, see
  :meth:`receiver.delivery.Deliverer.metric_families`): spooled to answered, and one HTTP post.

The metric names are those the service exported before prometheus_client (dashboards and alerts
use them); the list is in docs/operations.md.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from dsp.air import params as P

#: the text format generate_latest writes (named here: older prometheus_client has no constant for it)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: a bundle is made some 1 s after its burst ends (BENCHMARKS.md: median 1.2 s, alarm beyond 2 s)
BUNDLE_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
#: how long the wall times of processed blocks are remembered (a burst older than this is not timed)
BLOCK_MEMORY_S = 120.0

_MOD = {"bpsk": P.Modulation.BPSK, "qpsk": P.Modulation.QPSK}
_FEC = {"1/2": P.FecRate.R1_2, "2/3": P.FecRate.R2_3}

Family = CounterMetricFamily | GaugeMetricFamily


def counter(name: str, help_: str, value: float) -> CounterMetricFamily:
    """``gla_<name>`` as a counter (``name`` ends in ``_total``, as exported before)."""
    return CounterMetricFamily("gla_" + name, help_, value=value)


def gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily("gla_" + name, help_, value=value)


def gauge_by(name: str, help_: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    g = GaugeMetricFamily("gla_" + name, help_, labels=[label])
    for k, v in values.items():
        g.add_metric([k], v)
    return g


class _Live(Collector):
    """Reads the service's parts at each scrape."""

    def __init__(self, parts: list[Callable[[], Iterable[Any]]]) -> None:
        self.parts = parts

    def collect(self) -> Iterable[Any]:
        for part in list(self.parts):
            yield from part()


class ServiceMetrics:
    """What ``/metrics`` exports: a registry of its own, the live parts and the histograms.

    ``parts``: callables returning metric families, read at each scrape (add with
    :meth:`add`). ``block_done(end_sample)`` after each block is processed and
    ``bundle_made(bundle)`` as each bundle is made time the bundles; ``segment_reset()`` at a
    discontinuity (sample indices of the new segment are not comparable with the old ones)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.started = time.time()
        self.stream_time_s = 0.0  #: stream time of the newest sample processed
        self.stream_wall_at = 0.0  #: wall time it was processed
        self.parts: list[Callable[[], Iterable[Any]]] = [self._own]
        self.registry.register(_Live(self.parts))
        self.bundle_latency = Histogram(
            "gla_bundle_latency_seconds",
            "from the processing of the block holding a burst's last sample to its bundle being made",
            buckets=BUNDLE_BUCKETS_S,
            registry=self.registry,
        )
        self._ends: deque[int] = deque()  # end sample of each processed block (ascending)
        self._walls: deque[float] = deque()  # and when it was processed
        self._fs = 0.0

    def add(self, part: Callable[[], Iterable[Any]]) -> None:
        self.parts.append(part)

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    def _own(self) -> Iterable[Family]:
        lag = time.time() - self.stream_wall_at if self.stream_wall_at else 0.0
        yield gauge("lag_seconds", "seconds since the newest block was processed", max(0.0, lag))
        yield gauge("stream_time_seconds", "stream time of the newest sample processed", self.stream_time_s)

    def lag_s(self) -> float | None:
        """Seconds since the newest block was processed (None before the first)."""
        return time.time() - self.stream_wall_at if self.stream_wall_at else None

    # timing the bundles ----------------------------------------------------------------------
    def block_done(self, end_sample: int, fs_hz: float) -> None:
        now = time.time()
        self._fs = fs_hz
        self.stream_time_s = end_sample / fs_hz
        self.stream_wall_at = now
        if self._ends and end_sample < self._ends[-1]:
            self.segment_reset()
        self._ends.append(end_sample)
        self._walls.append(now)
        while self._walls and now - self._walls[0] > BLOCK_MEMORY_S:
            self._ends.popleft()
            self._walls.popleft()

    def segment_reset(self) -> None:
        self._ends.clear()
        self._walls.clear()

    def bundle_made(self, bundle: Any) -> None:
        """Observe the bundle's latency: its burst's last sample is the best copy's chip 0 plus
        the burst's duration; the wall time is that of the first block that reached it."""
        if not self._ends or not self._fs:
            return
        try:
            start = min(c.start_sample for c in bundle.copies)
            dur_s = P.burst_duration_s(_MOD[bundle.modulation], _FEC[bundle.fec])
        except (AttributeError, KeyError, ValueError):
            return
        end = start + int(round(dur_s * self._fs))
        i = bisect.bisect_left(self._ends, end)
        if i == len(self._ends) or (i == 0 and end < self._ends[0] - self._fs * BLOCK_MEMORY_S):
            return
        self.bundle_latency.observe(max(0.0, time.time() - self._walls[i]))

    def render(self) -> tuple[bytes, str]:
        """The text exposition (format 0.0.4) -> ``(body, content type)``. Not OpenMetrics: the
        names kept from before include a gauge and a counter that differ only by ``_total``
        (``gla_receiver_bundles_held``), which OpenMetrics does not allow."""
        return generate_latest(self.registry), CONTENT_TYPE


def http_server(listen: str, metrics: ServiceMetrics, health: Callable[[], tuple[bool, dict]]) -> ThreadingHTTPServer:
    """``GET /metrics`` and ``GET /healthz`` on ``listen`` (host:port), served from a thread."""
    host, port = listen.rsplit(":", 1)

    class H(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, ctype = metrics.render()
                code = 200
            elif path == "/healthz":
                ok, info = health()
                body, ctype, code = json.dumps(info).encode(), "application/json", 200 if ok else 503
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):  # quiet
            pass

    srv = ThreadingHTTPServer((host, int(port)), H)
    threading.Thread(target=srv.serve_forever, name="gla-http", daemon=True).start()
    return srv


# the parts of the service ----------------------------------------------------------------------
def source_families(src: Any) -> Iterable[Family]:
    """The source's counters (:class:`~receiver.sources.base.SourceStats`) and its input problem."""
    s = src.stats
    yield counter("samples_in_total", "input samples per channel received", s.samples)
    yield counter("gaps_total", "gaps in the input stream", s.gaps)
    yield counter(
        "gap_samples_total",
        "samples missing in gaps (filled with NaN, or skipped beyond max_gap_fill_s)",
        s.gap_samples,
    )
    yield counter("duplicates_total", "duplicated messages dropped", s.duplicates)
    yield counter("reordered_total", "messages put back in order", s.reordered)
    yield counter("late_dropped_total", "messages dropped that came after their gap was given up", s.late_dropped)
    yield counter("bad_frames_total", "malformed messages skipped", s.bad_frames)
    yield counter("foreign_dropped_total", "messages of another stream id dropped", s.foreign_dropped)
    yield counter("wrong_shape_dropped_total", "messages of another shape dropped", s.wrong_shape_dropped)
    yield counter(
        "unconfirmed_dropped_total",
        "messages of a new session or shape never confirmed, dropped",
        s.unconfirmed_dropped,
    )
    yield counter("resyncs_total", "times the stream was re-anchored", s.resyncs)
    yield counter("xruns_total", "xruns the JACK server reported (JACK input; lost samples count as gaps)", s.xruns)
    yield counter("nonfinite_total", "NaN/inf samples", s.nonfinite)
    yield counter("clipped_total", "clipped samples", s.clipped)
    yield counter("messages_total", "messages received", s.messages)
    yield counter(
        "pass_tags_mismatch_total",
        "messages whose gr-zeromq tag header disagrees with [input] pass_tags (dropped)",
        s.pass_tags_mismatch,
    )
    yield counter(
        "vlen_mismatch_total",
        "GNU Radio messages dropped because the sink's vector length looks like 1",
        s.vlen_mismatch,
    )
    yield counter("skipped_samples_total", "of the gap samples, those resynced past (gaps over 2 s)", s.skipped_samples)
    problem = input_problem(src)
    yield gauge(
        "input_pass_tags_mismatch",
        "1 while the messages disagree with the sink's settings ([input] pass_tags, or the sink's vlen)",
        float(bool(problem)),
    )


def input_problem(src: Any) -> str | None:
    """What makes every message of the input unusable (a pass_tags mismatch), or None."""
    asm = getattr(src, "assembler", None)
    return getattr(asm, "tags_mismatch", None)


def grouper_families(grouper: Any) -> Iterable[Family]:
    g = grouper.stats if grouper is not None else {}
    yield counter("bundles_total", "bundles made", g.get("bundles", 0))
    yield counter("bundles_crc_ok_total", "bundles with a clean frame", g.get("bundles_crc_ok", 0))
    yield counter(
        "crc_failures_total", "bundles without a clean frame", g.get("bundles", 0) - g.get("bundles_crc_ok", 0)
    )
    yield counter(
        "stale_outputs_dropped_total",
        "chain outputs of an ended segment dropped at a resync",
        g.get("stale_outputs_dropped", 0),
    )


def spool_families(spool: Any) -> Iterable[Family]:
    yield gauge("spool_depth", "bundles waiting for delivery", spool.depth())


def sink_families(sink: Any) -> Iterable[Family]:
    """The degraded state and the bundles held/dropped."""
    from receiver.sink import REASONS

    reason = sink.degraded
    st = sink.stats()
    yield gauge_by(
        "receiver_degraded",
        "1 while the receiver is degraded for this reason (bundles held in memory)",
        "reason",
        {r: float(r == reason) for r in REASONS},
    )
    yield gauge("receiver_bundles_held", "bundles held in memory, not yet in the spool", st["held"])
    yield counter("receiver_bundles_held_total", "bundles ever held in memory (disk full)", st["held_total"])
    yield counter(
        "receiver_bundles_dropped_total",
        "bundles LOST: dropped beyond the in-memory bound while the disk was full",
        st["dropped"],
    )
    yield gauge("archive_unwritten_bundles", "spooled bundles the archive has still to write", st["unarchived"])
    yield counter("archive_gap_bundles_total", "spooled bundles never archived", st["archive_gap"])
