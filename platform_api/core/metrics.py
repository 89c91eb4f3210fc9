"""The platform's ``/metrics``: request latency per route, by ``prometheus_client``.

:class:`PlatformMetrics` owns a ``CollectorRegistry`` per app (never the process-wide one: the
tests, and several apps in one process, do not collide). :class:`RequestTimer`, an ASGI
middleware around the whole app, observes every HTTP request into

* ``gla_platform_request_duration_seconds{method, route, status}`` (histogram): from the request
  reaching the app to the end of its answer's body (a server-sent event stream: to its end).

``route`` is the route's template (``/api/v1/hubs/{hub_id}``), never the raw path, so that the
label set stays bounded whatever clients send: a path no route matched is ``<unmatched>`` (also
a 413 answered before routing), a method other than the usual ones ``other``. Also exported:
``gla_platform_info{version, mode}`` (always 1).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PlatformMetrics", "RequestTimer", "CONTENT_TYPE"]

#: the text format generate_latest writes (named here: older prometheus_client has no constant for it)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: a bundle post is answered in about a millisecond; an import or a theft analysis takes seconds
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"


class PlatformMetrics:
    """The registry of one app and its metrics."""

    def __init__(self, version: str, mode: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.request_duration = Histogram(
            "gla_platform_request_duration_seconds",
            "HTTP requests: from reaching the app to the end of the answer, by route template",
            ["method", "route", "status"],
            buckets=BUCKETS_S,
            registry=self.registry,
        )
        info = Gauge(
            "gla_platform_info",
            "this platform's version and mode (always 1)",
            ["version", "mode"],
            registry=self.registry,
        )
        info.labels(version=version, mode=mode).set(1)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.request_duration.labels(method if method in METHODS else "other", route, str(status)).observe(seconds)

    def render(self) -> bytes:
        """The text exposition (format 0.0.4)."""
        return generate_latest(self.registry)


class RequestTimer:
    """ASGI middleware: times each HTTP request into ``metrics`` (see the module's docstring)."""

    def __init__(self, app: ASGIApp, metrics: PlatformMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # unless an answer starts: an exception escaping the app is answered 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            # the router put the matched route into this same scope
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe(scope.get("method", ""), route, status, time.perf_counter() - t0)
