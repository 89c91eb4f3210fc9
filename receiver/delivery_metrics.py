"""The deliverer's Prometheus metrics (kept apart from :mod:`receiver.delivery` to keep it short).

:class:`DeliveryMetrics` holds the two histograms a :class:`~receiver.delivery.Deliverer`
observes as it posts, in a ``CollectorRegistry`` of its own (registered into the service's by
``gla receive``), and :func:`families` turns :meth:`Deliverer.stats` into metric families:

* ``gla_delivery_latency_seconds``: from a bundle entering the spool to the platform's 2xx;
* ``gla_delivery_request_seconds``: one HTTP post (a batch or a single bundle) to its answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

#: spooled to delivered: immediate when the platform is up, minutes to hours across an outage
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
#: one post of up to 100 bundles to a local platform
REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DeliveryMetrics(Collector):
    """The deliverer's histograms; ``collect()`` yields them (register it into a registry)."""

    def __init__(self) -> None:
        self.latency = Histogram(
            "gla_delivery_latency_seconds",
            "from a bundle entering the spool to the platform's 2xx answer",
            buckets=LATENCY_BUCKETS_S,
            registry=None,
        )
        self.request = Histogram(
            "gla_delivery_request_seconds",
            "one HTTP post to the platform, to its answer",
            buckets=REQUEST_BUCKETS_S,
            registry=None,
        )

    def collect(self) -> Iterable[Any]:
        yield from self.latency.collect()
        yield from self.request.collect()


def families(s: dict[str, Any], *, spool: bool = True) -> Iterable[Any]:
    """The statistics ``s`` (:meth:`Deliverer.stats`) as metric families; ``spool=False`` leaves
    out ``gla_spool_depth`` (the service exports it with or without a deliverer)."""

    def counter(name: str, help_: str, value: Any) -> Iterable[Any]:
        if value is not None:
            yield CounterMetricFamily("gla_" + name, help_, value=value)

    def gauge(name: str, help_: str, value: Any) -> Iterable[Any]:
        if value is not None:
            yield GaugeMetricFamily("gla_" + name, help_, value=value)

    yield from counter("delivery_posted_total", "Bundles sent to the platform (every attempt).", s["posted"])
    yield from counter("delivery_requests_total", "HTTP requests to the platform.", s["requests"])
    yield from counter("delivery_delivered_total", "Bundles the platform answered 2xx.", s["delivered"])
    yield from counter("delivery_replayed_total", "2xx answers that were idempotent replays.", s["replayed"])
    yield from counter("delivery_conflicts_total", "Bundles answered 409 (another body under the id).", s["conflicts"])
    yield from counter("delivery_rejected_total", "Bundles answered 422 (kept, not retried).", s["rejected"])
    yield from counter("delivery_retries_total", "Posts of bundles that had failed before.", s["retries"])
    fail = CounterMetricFamily("gla_delivery_failures_total", "Failed attempts by reason.", labels=["reason"])
    for reason, n in sorted(s["failures"].items()):
        fail.add_metric([reason], n)
    yield fail
    if spool:
        yield from gauge("spool_depth", "Pending bundles in the spool.", s["spool_depth"])
    yield from gauge("spool_oldest_pending_age_seconds", "Age of the oldest pending bundle.", s["oldest_pending_age_s"])
    yield from gauge("spool_bytes", "Size of the spool database and its WAL.", s["spool_bytes"])
    yield from gauge("delivery_overflow_bundles", "Bundles held in memory because the spool is full.", s["overflow"])
    yield from gauge("delivery_halted", "1 when posting stopped on a credentials problem.", int(bool(s["halted"])))
    yield from gauge(
        "delivery_last_success_timestamp_seconds", "Time of the last answered post.", s["last_success_time"]
    )
    yield from gauge("delivery_last_error_timestamp_seconds", "Time of the last failure.", s["last_error_time"])


class _Stats(Collector):
    def __init__(self, deliverer: Any) -> None:
        self.deliverer = deliverer

    def collect(self) -> Iterable[Any]:
        return families(self.deliverer.stats())


def exposition(deliverer: Any) -> str:
    """The deliverer's statistics and histograms in the Prometheus text format (one registry
    made for the call, so nothing global is touched)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Stats(deliverer))
    reg.register(deliverer.histograms)
    return generate_latest(reg).decode()
