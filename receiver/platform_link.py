"""The service's link to the Computing Platform: the deliverer and the health reports, started
once the receiver's token is known (kept apart from :mod:`receiver.service` to keep it short).

A token that cannot be had (``platform.token_file`` missing, unreadable or empty; ``platform.url``
without any token) does not stop the receiver: bundles are spooled and archived as always,
``/healthz`` answers 503 naming the problem, the error is logged once per change, and the file
is read again every ``retry_s`` (from the receive loop) until it can be; then posting starts and
the spooled bundles go out. (Before, a missing token file was a traceback at start-up.)
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("gla.receiver")


class PlatformLink:
    """``try_start()`` from the receive loop; ``problem`` for /healthz; ``wake()`` for the sink;
    ``maybe_post(...)`` the health report; ``stop()`` at the end."""

    def __init__(self, platform: Any, receiver_id: str, spool: Any, metrics: Any, retry_s: float = 10.0) -> None:
        self.url: str | None = platform.url
        self.token_value: str | None = platform.token
        self.token_file: str | None = platform.token_file
        self.receiver_id, self.spool, self.metrics, self.retry_s = receiver_id, spool, metrics, retry_s
        self.deliverer: Any = None
        self.poster: _HealthPoster | None = None
        self.problem: str | None = None
        self._next = 0.0

    def read_token(self) -> tuple[str | None, str | None]:
        """``(token, None)`` or ``(None, why not)``."""
        if self.token_value:
            return self.token_value, None
        if not self.token_file:
            return None, "platform.url is set without platform.token or platform.token_file: bundles are only spooled"
        try:
            token = Path(self.token_file).read_text().strip()
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or str(e)
            return None, f"platform.token_file {self.token_file}: cannot read it ({why}): bundles are only spooled"
        if not token:
            return None, f"platform.token_file {self.token_file}: empty: bundles are only spooled"
        return token, None

    def try_start(self) -> None:
        """Start posting if there is a platform, posting has not started, and the token can be had
        now (tried at most every ``retry_s``)."""
        if not self.url or self.deliverer is not None or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.retry_s
        token, problem = self.read_token()
        if problem is not None and problem != self.problem:
            log.error(problem, extra={"event": "platform_token"})
        self.problem = problem
        if token is None:
            return
        from receiver.delivery import Deliverer  # (httpx: ~0.1 s to import, only when there is a platform)

        d = Deliverer(self.spool, self.url, token)
        self.metrics.add(lambda: d.metric_families(spool=False))
        self.metrics.register(d.histograms)
        self.poster = _HealthPoster(self.url, token, self.receiver_id)
        self.deliverer = d.start()

    def wake(self) -> None:
        if self.deliverer is not None:
            self.deliverer.wake()

    def maybe_post(self, m: Any, src: Any, grouper: Any) -> None:
        if self.poster is not None:
            self.poster.maybe_post(m, src, grouper, self.spool)

    def stop(self, drain_s: float = 5.0) -> None:
        if self.deliverer is not None:
            self.deliverer.stop(drain_s=drain_s)


class _HealthPoster:
    """Every ``every_s`` seconds, tell the platform how this receiver is doing (best effort, in a
    thread: a platform that is down never slows the receive loop)."""

    def __init__(self, url: str, token: str, receiver_id: str, every_s: float = 10.0) -> None:
        self.url = url.rstrip("/") + f"/api/v1/receivers/{receiver_id}/health"
        self.token, self.every_s, self.last = token, every_s, 0.0
        self.busy = threading.Event()

    def maybe_post(self, m: Any, src: Any, grouper: Any, spool: Any) -> None:
        now = time.time()
        if now - self.last < self.every_s or self.busy.is_set():
            return
        self.last = now
        g = grouper.stats if grouper else {}
        body = {
            "lag_s": max(0.0, now - (m.stream_wall_at or now)),
            "gaps": src.stats.gaps,
            "gap_samples": src.stats.gap_samples,
            "spool_depth": spool.depth(),
            "samples_in": src.stats.samples,
            "bundles": g.get("bundles", 0),
            "crc_failures": g.get("bundles", 0) - g.get("bundles_crc_ok", 0),
            "stream_time_s": m.stream_time_s,
            "reported_at": datetime.now(UTC).isoformat(),
        }
        self.busy.set()
        threading.Thread(target=self._post, args=(body,), daemon=True).start()

    def _post(self, body: dict) -> None:
        import httpx

        try:
            httpx.post(self.url, json=body, headers={"Authorization": f"Bearer {self.token}"}, timeout=3.0)
        except httpx.HTTPError as e:
            log.debug("health report not delivered: %s", e)
        finally:
            self.busy.clear()
