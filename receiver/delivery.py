"""Delivery of spooled bundles to the Computing Platform: nothing accepted is lost, nothing is
recorded twice.

The receiver's pipeline hands each bundle to :meth:`Deliverer.submit` (or puts it into the
:class:`receiver.spool.Spool` itself); once that returns the bundle is on disk. A background
thread posts due bundles to ``POST /api/v1/bundles/batch`` (or one by one to
``POST /api/v1/bundles`` when the platform has no batch route, or to isolate a bad bundle) with
the receiver's bearer token, and marks each one by the platform's answer:

============================  ================================================================
answer                        what happens to the spooled bundle
============================  ================================================================
2xx (also a replay:           ``delivered``. ``Idempotent-Replayed: true`` (or ``replayed`` in a
``Idempotent-Replayed``)      batch) means the platform had it already: counted as *replayed*.
409                           ``delivered`` with the conflict kept (``http_status`` 409); logged
                              as an error: the platform holds another body under that id and
                              retrying would never change that.
422                           ``rejected`` with the detail; kept for inspection, not retried (a
                              schema bug on one side; ``Spool.requeue`` after the fix).
401 / 403                     posting *stops* (``halted``): the credentials are wrong, revoked or
                              for another receiver/substation. Everything stays spooled; posting
                              is tried again after ``auth_recheck_s`` or :meth:`Deliverer.resume`.
connection error, timeout,    retried with exponential backoff and jitter
5xx, 429, other 4xx           (``backoff_initial_s`` doubling up to ``backoff_max_s``; a
                              ``Retry-After`` is honoured); while the platform is unreachable no
                              request is made before the backoff ends; when it answers again,
                              every backed-off bundle is due at once.
============================  ================================================================

Idempotency makes every retry safe: the platform stores a ``bundle_id`` once, so a bundle whose
answer was lost (platform killed after its commit, receiver killed before marking it) is simply
posted again and answered as a replay. ``benchmarks/bench_kill.py`` checks this with ``kill -9``
on both sides.

Statistics (:meth:`Deliverer.stats`; Prometheus text from :meth:`Deliverer.prometheus`, with the
latency histograms of :mod:`receiver.delivery_metrics`): posted,
requests, delivered, replayed, conflicts, rejected, retries, failures by reason, spool depth,
oldest pending age, last error and its time, last success time, halted, in-memory overflow.
Logs go to the ``gla.delivery`` logger with ``extra=`` fields (``event``, ``bundle_id``, ``count``,
``reason``, ``status_code``, ``delay_s`` ...).

:func:`deliver_all` is the synchronous variant for ``gla replay --post``.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from receiver import delivery_metrics
from receiver.spool import BundleLike, Item, Spool, SpoolError, SpoolFull

log = logging.getLogger("gla.delivery")

USER_AGENT = "gla-receiver/1"
BUNDLES_PATH = "/api/v1/bundles"
FAILURE_REASONS = ("connect", "timeout", "network", "http_5xx", "http_429", "http_4xx", "bad_response", "auth", "spool")


def _base_url(url: str) -> str:
    base = url.rstrip("/")
    for suffix in (BUNDLES_PATH + "/batch", BUNDLES_PATH):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


def _retry_after(r: httpx.Response) -> float | None:
    v = r.headers.get("retry-after")
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        return None


def _detail(r: httpx.Response) -> str:
    try:
        d = r.json()
    except ValueError:
        return r.text[:500]
    if isinstance(d, dict) and "detail" in d:
        d = d["detail"]
    return d if isinstance(d, str) else json.dumps(d)[:2000]


def _summary(result: Any, replayed: bool) -> str:
    """What is kept of a 2xx answer: the platform's verdict on the frame, not the whole body."""
    out: dict = {"replayed": bool(replayed)}
    if isinstance(result, dict):
        for k in ("status", "reason", "hub_id", "counter", "kind"):
            if result.get(k) is not None:
                out[k] = result[k]
    return json.dumps(out, separators=(",", ":"))


class _Round:
    """Outcomes of one step, written to the spool together."""

    def __init__(self) -> None:
        self.delivered: dict[str, str] = {}
        self.conflicts: dict[str, str] = {}
        self.rejected: dict[str, str] = {}
        self.failed: list[tuple[Item, str, str]] = []  # (item, reason, error)
        self.transport_failure: tuple[str, str, float | None] | None = None  # reason, error, retry-after
        self.halt: str | None = None
        self.success = False


class Deliverer:
    """Posts spooled bundles from a background thread: ``start()``, ``submit(bundle)``, ``stop()``.

    ``url`` is the platform's base URL (``http://host:8000``; a URL ending in ``/api/v1/bundles``
    is accepted too). ``jitter`` in [0, 1]: each backoff delay is multiplied by a random factor in
    [1 - jitter, 1]. ``client``: an ``httpx.Client`` to use (tests); otherwise one is made and
    closed by :meth:`stop`.
    """

    def __init__(
        self,
        spool: Spool,
        url: str,
        token: str | None,
        *,
        timeout_s: float = 5.0,
        batch: int = 100,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 60.0,
        jitter: float = 0.5,
        client: httpx.Client | None = None,
        use_batch: bool | None = None,
        idle_poll_s: float = 1.0,
        auth_recheck_s: float | None = 300.0,
        keep_delivered_days: float = 7.0,
        housekeeping_interval_s: float = 3600.0,
        overflow_max: int = 10_000,
        name: str = "gla-delivery",
        rng: random.Random | None = None,
    ) -> None:
        if batch < 1 or batch > 1000:
            raise ValueError("batch must be 1..1000 (the platform's batch limit)")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError("jitter must lie in [0, 1]")
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        self.spool = spool
        self.base_url = _base_url(url)
        self.single_url = self.base_url + BUNDLES_PATH
        self.batch_url = self.single_url + "/batch"
        self.token = token
        self.timeout_s = timeout_s
        self.batch = batch
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.jitter = jitter
        self.idle_poll_s = idle_poll_s
        self.auth_recheck_s = auth_recheck_s
        self.keep_delivered_days = keep_delivered_days
        self.housekeeping_interval_s = housekeeping_interval_s
        self.overflow_max = overflow_max
        self.name = name
        self._rng = rng or random.Random()
        self._own_client = client is None
        self.client = client if client is not None else self._make_client()
        self._batch_ok: bool | None = use_batch  # None: try the batch route, learn from 404/405
        self._cur_batch = batch
        self._consecutive = 0  # consecutive failed requests (platform unreachable / unhappy)
        self._not_before = 0.0  # wall time before which no request is made (global backoff)
        self._halted: str | None = None
        self._halted_at = 0.0
        self._last_housekeeping = 0.0
        self._overflow: collections.deque = collections.deque()
        self._olock = threading.Lock()
        self._slock = threading.Lock()
        self._step_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.histograms = delivery_metrics.DeliveryMetrics()
        self._stats: dict[str, Any] = {
            "posted": 0,
            "requests": 0,
            "delivered": 0,
            "replayed": 0,
            "conflicts": 0,
            "rejected": 0,
            "retries": 0,
            "failures": {r: 0 for r in FAILURE_REASONS},
            "platform_status": {},
            "last_error": None,
            "last_error_time": None,
            "last_success_time": None,
        }

    def _make_client(self) -> httpx.Client:
        return httpx.Client(
            timeout=httpx.Timeout(self.timeout_s),
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
        )

    # -- the pipeline side ------------------------------------------------------------------------
    def submit(self, bundle: BundleLike) -> bool:
        """Accept a bundle: into the spool (durable; True), or, when the spool is full, into a
        bounded in-memory overflow that the delivery thread puts into the spool as room appears
        (False). Raises :class:`SpoolFull` only when the overflow is full too (backpressure)."""
        with self._olock:
            if self._overflow:
                self._flush_overflow_locked()
            if not self._overflow:
                try:
                    self.spool.put(bundle)
                    self._wake.set()
                    return True
                except SpoolFull as e:
                    self._fail_stat("spool", str(e))
                    log.warning(
                        "spool full: holding bundles in memory", extra={"event": "spool_full", "detail": str(e)}
                    )
            if len(self._overflow) >= self.overflow_max:
                raise SpoolFull(f"spool full and {len(self._overflow)} bundles already held in memory")
            self._overflow.append(bundle)
            return False

    def _flush_overflow_locked(self) -> int:
        n = 0
        while self._overflow:
            try:
                self.spool.put(self._overflow[0])
            except SpoolFull:
                break
            self._overflow.popleft()
            n += 1
        if n:
            log.info(
                "overflow moved into the spool",
                extra={"event": "overflow_flushed", "count": n, "remaining": len(self._overflow)},
            )
        return n

    def flush_overflow(self) -> int:
        with self._olock:
            return self._flush_overflow_locked()

    # -- the thread -------------------------------------------------------------------------------
    def start(self) -> Deliverer:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        if self._own_client and self.client.is_closed:
            self.client = self._make_client()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        log.info(
            "delivery started", extra={"event": "delivery_start", "url": self.base_url, "depth": self.spool.depth()}
        )
        return self

    def stop(self, timeout: float = 10.0, drain_s: float = 0.0) -> None:
        """Stop the thread after its current request (``drain_s``: first wait up to that long for
        the spool to empty). Whatever is left stays spooled for the next start."""
        if drain_s > 0 and self._thread is not None:
            end = time.monotonic() + drain_s
            while time.monotonic() < end and self.spool.depth() > 0 and not self._halted:
                self._wake.set()
                time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        with self._olock:
            self._flush_overflow_locked()
            if self._overflow:
                log.error(
                    "stopping with bundles only in memory (spool full)",
                    extra={"event": "overflow_lost_on_stop", "count": len(self._overflow)},
                )
        if self._own_client:
            self.client.close()
        log.info("delivery stopped", extra={"event": "delivery_stop", "depth": self.spool.depth()})

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.step()
            except SpoolFull as e:  # the disk is full: the platform's answers cannot be recorded yet
                log.warning("spool full: delivery paused", extra={"event": "delivery_spool_full", "detail": str(e)})
                self._fail_stat("spool", str(e))
                wait = min(self.backoff_max_s, 1.0)
            except Exception as e:  # the thread must not die: log, back off, go on
                log.exception("delivery step failed", extra={"event": "delivery_crash", "detail": repr(e)})
                self._fail_stat("spool" if isinstance(e, (SpoolError, OSError, sqlite3.Error)) else "network", repr(e))
                wait = min(self.backoff_max_s, 1.0)
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()

    # -- one step ---------------------------------------------------------------------------------
    def step(self, now: float | None = None) -> float:
        """Post one batch of due bundles; returns how long to wait before the next step."""
        with self._step_lock:
            return self._step(time.time() if now is None else now)

    def _step(self, now: float) -> float:
        if self._overflow:
            self.flush_overflow()
        if now - self._last_housekeeping >= self.housekeeping_interval_s:
            self._last_housekeeping = now
            try:
                self.spool.purge(self.keep_delivered_days, now=now)
            except SpoolError:  # pragma: no cover
                pass
        if self._halted:
            if self.auth_recheck_s is None:
                return self.idle_poll_s
            left = self._halted_at + self.auth_recheck_s - now
            if left > 0:
                return min(left, self.idle_poll_s)
            log.info("retrying after a credentials problem", extra={"event": "auth_recheck"})
            self._halted = None
            n = 1  # probe with one bundle
        else:
            n = self._cur_batch
        horizon = 1.5 * self.backoff_max_s + 1.0  # no backoff or Retry-After reaches further
        if now < self._not_before:
            if self._not_before - now <= horizon:
                return self._not_before - now
            self._not_before = 0.0  # the wall clock went back: do not wait for the old future
        items = self.spool.due(n, now)
        if not items:
            nd = self.spool.next_due()
            if nd is not None and nd - now > horizon:
                n_rel = self.spool.release(now)
                log.warning(
                    "pending bundles due far in the future (the clock went back?): made due now",
                    extra={"event": "clock_step", "count": n_rel, "ahead_s": round(nd - now, 1)},
                )
                return 0.0
            return self.idle_poll_s if nd is None else min(max(nd - now, 0.01), self.idle_poll_s)
        rnd = _Round()
        if len(items) > 1 and self._batch_ok is not False:
            self._post_batch(items, rnd)
        else:
            self._post_singles(items, rnd)
        return self._apply(rnd, now)

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def _send(self, url: str, content: str, items: list[Item]) -> httpx.Response:
        with self._slock:
            self._stats["requests"] += 1
            self._stats["posted"] += len(items)
            self._stats["retries"] += sum(1 for it in items if it.attempts > 0)
        kw: dict[str, Any] = {"timeout": self.timeout_s} if self._own_client else {}  # a given client keeps its own
        t0 = time.perf_counter()
        r = self.client.post(url, content=content.encode("utf-8"), headers=self._headers(), **kw)
        self.histograms.request.observe(time.perf_counter() - t0)
        return r

    @staticmethod
    def _transport_reason(e: Exception) -> str:
        if isinstance(e, httpx.TimeoutException):
            return "timeout"
        if isinstance(e, httpx.ConnectError):
            return "connect"
        return "network"

    def _post_batch(self, items: list[Item], rnd: _Round) -> None:
        body = '{"bundles":[' + ",".join(it.body for it in items) + "]}"
        try:
            r = self._send(self.batch_url, body, items)
        except httpx.TransportError as e:
            reason = self._transport_reason(e)
            if reason == "timeout" and self._cur_batch > 1:
                self._cur_batch = max(1, len(items) // 2)  # maybe the batch is just too slow: halve it
            rnd.transport_failure = (reason, f"{type(e).__name__}: {e}", None)
            rnd.failed.extend((it, reason, str(e)) for it in items)
            return
        code = r.status_code
        if code in (404, 405) and self._batch_ok is None:
            log.info(
                "the platform has no batch route: posting one by one",
                extra={"event": "batch_unavailable", "status_code": code},
            )
            self._batch_ok = False
            self._post_singles(items, rnd)
            return
        if code in (413, 422):
            # one bad bundle fails the whole batch's validation: post them singly to find it
            self._post_singles(items, rnd)
            return
        if code in (401, 403):
            rnd.halt = f"HTTP {code}: {_detail(r)}"
            return
        if 200 <= code < 300:
            try:
                results = r.json()["results"]
                if len(results) != len(items):
                    raise ValueError(f"{len(results)} results for {len(items)} bundles")
            except (ValueError, KeyError, TypeError) as e:
                rnd.transport_failure = ("bad_response", f"batch answer unreadable: {e}", None)
                rnd.failed.extend((it, "bad_response", str(e)) for it in items)
                return
            self._batch_ok = True
            rnd.success = True
            if self._cur_batch < self.batch:
                self._cur_batch = min(self.batch, self._cur_batch * 2)
            for it, res in zip(items, results):
                st = int(res.get("http_status", 0)) if isinstance(res, dict) else 0
                if isinstance(res, dict) and res.get("bundle_id") not in (None, it.bundle_id):
                    rnd.failed.append((it, "bad_response", "batch answer out of order"))
                    continue
                self._classify(
                    it, st, rnd, replayed=bool(res.get("replayed")), result=res.get("result"), detail=res.get("error")
                )
            return
        reason, ra = self._http_reason(r)
        rnd.transport_failure = (reason, f"HTTP {code}: {_detail(r)[:300]}", ra)
        rnd.failed.extend((it, reason, f"HTTP {code}") for it in items)

    def _post_singles(self, items: list[Item], rnd: _Round) -> None:
        row_5xx = 0
        for k, it in enumerate(items):
            try:
                r = self._send(self.single_url, it.body, [it])
            except httpx.TransportError as e:
                reason = self._transport_reason(e)
                rnd.transport_failure = (reason, f"{type(e).__name__}: {e}", None)
                rnd.failed.extend((x, reason, str(e)) for x in items[k:])
                return
            code = r.status_code
            if code in (401, 403):
                rnd.halt = f"HTTP {code}: {_detail(r)}"
                return
            if code in (429, 502, 503, 504) or (code >= 500 and row_5xx >= 2):
                # the platform is overloaded or down: back off for everything
                reason, ra = self._http_reason(r)
                rnd.transport_failure = (reason, f"HTTP {code}: {_detail(r)[:300]}", ra)
                rnd.failed.extend((x, reason, f"HTTP {code}") for x in items[k:])
                return
            if code >= 500:
                row_5xx += 1  # maybe this bundle trips a platform bug: back it off, try the next
            else:
                row_5xx = 0
            replayed = r.headers.get("idempotent-replayed", "").lower() == "true"
            result = None
            if 200 <= code < 300:
                try:
                    result = r.json()
                except ValueError:
                    result = None
            self._classify(
                it, code, rnd, replayed=replayed, result=result, detail=None if 200 <= code < 300 else _detail(r)
            )

    @staticmethod
    def _http_reason(r: httpx.Response) -> tuple[str, float | None]:
        code = r.status_code
        if code == 429:
            return "http_429", _retry_after(r)
        if code >= 500:
            return "http_5xx", _retry_after(r)
        return "http_4xx", None

    def _classify(self, it: Item, code: int, rnd: _Round, *, replayed: bool, result: Any, detail: Any) -> None:
        if 200 <= code < 300:
            rnd.success = True
            rnd.delivered[it.bundle_id] = _summary(result, replayed)
            self.histograms.latency.observe(max(0.0, time.time() - it.created))
            with self._slock:
                self._stats["delivered"] += 1
                if replayed:
                    self._stats["replayed"] += 1
                if isinstance(result, dict) and result.get("status"):
                    ps = self._stats["platform_status"]
                    ps[result["status"]] = ps.get(result["status"], 0) + 1
        elif code == 409:
            rnd.success = True
            rnd.conflicts[it.bundle_id] = str(detail)[:2000]
            with self._slock:
                self._stats["conflicts"] += 1
            log.error(
                "the platform holds another body under this bundle_id: not retried",
                extra={
                    "event": "delivery_conflict",
                    "bundle_id": it.bundle_id,
                    "status_code": 409,
                    "detail": str(detail)[:500],
                },
            )
        elif code == 422:
            rnd.success = True
            rnd.rejected[it.bundle_id] = str(detail)[:2000]
            with self._slock:
                self._stats["rejected"] += 1
            log.error(
                "the platform rejected a bundle (schema): kept in the spool, not retried",
                extra={
                    "event": "delivery_rejected",
                    "bundle_id": it.bundle_id,
                    "status_code": 422,
                    "detail": str(detail)[:500],
                },
            )
        elif code in (401, 403):
            rnd.halt = f"HTTP {code}: {detail}"
        else:
            reason = "http_429" if code == 429 else "http_5xx" if code >= 500 else "http_4xx"
            rnd.failed.append((it, reason, f"HTTP {code}: {str(detail)[:300]}"))

    def _delay(self, attempts: int) -> float:
        d = min(self.backoff_max_s, self.backoff_initial_s * (2.0 ** max(0, attempts - 1)))
        return d * (1.0 - self.jitter * self._rng.random())

    def _apply(self, rnd: _Round, now: float) -> float:
        sp = self.spool
        if rnd.delivered:
            sp.mark_delivered(list(rnd.delivered), 201, response=rnd.delivered, now=now)
        if rnd.conflicts:
            sp.mark_delivered(list(rnd.conflicts), 409, response=rnd.conflicts, now=now)
        if rnd.rejected:
            sp.mark_rejected(list(rnd.rejected), 422, response=rnd.rejected, now=now)
        wait = 0.0
        if rnd.transport_failure is not None:
            reason, error, retry_after = rnd.transport_failure
            self._consecutive += 1
            delay = self._delay(self._consecutive)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.backoff_max_s))
            self._not_before = now + delay
            wait = delay
            self._fail_stat(reason, error)
            log.warning(
                "platform unavailable: backing off",
                extra={
                    "event": "delivery_backoff",
                    "reason": reason,
                    "detail": error[:300],
                    "delay_s": round(delay, 3),
                    "consecutive": self._consecutive,
                    "count": len(rnd.failed),
                },
            )
        by_next: dict[float, list[str]] = {}
        errors: dict[float, str] = {}
        for it, reason, error in rnd.failed:
            if rnd.transport_failure is not None:
                nxt = self._not_before
            else:
                nxt = now + self._delay(it.attempts + 1)
                self._fail_stat(reason, error)
            by_next.setdefault(nxt, []).append(it.bundle_id)
            errors[nxt] = f"{reason}: {error}"
        for nxt, ids in by_next.items():
            sp.mark_failed(ids, errors[nxt], nxt)
        if rnd.success:
            with self._slock:
                self._stats["last_success_time"] = now
            if self._consecutive and rnd.transport_failure is None:
                released = sp.release(now)
                log.info(
                    "platform reachable again",
                    extra={"event": "delivery_recovered", "after_failures": self._consecutive, "released": released},
                )
                self._consecutive = 0
            elif rnd.transport_failure is None:
                self._consecutive = 0
        if rnd.halt is not None:
            self._halted = rnd.halt
            self._halted_at = now
            self._fail_stat("auth", rnd.halt)
            log.error(
                "the platform refused the receiver's credentials: posting stopped, bundles stay spooled",
                extra={
                    "event": "delivery_halted",
                    "detail": rnd.halt[:500],
                    "depth": sp.depth(),
                    "recheck_s": self.auth_recheck_s,
                },
            )
            return self.idle_poll_s
        return wait

    def _fail_stat(self, reason: str, error: str) -> None:
        with self._slock:
            f = self._stats["failures"]
            f[reason] = f.get(reason, 0) + 1
            self._stats["last_error"] = f"{reason}: {error}"[:1000]
            self._stats["last_error_time"] = time.time()

    # -- credentials ------------------------------------------------------------------------------
    @property
    def halted(self) -> str | None:
        """Why posting stopped (401/403), or None."""
        return self._halted

    def resume(self, token: str | None = None) -> None:
        """Post again (after the operator fixed the credentials), optionally with a new token."""
        if token is not None:
            self.token = token
        self._halted = None
        self._not_before = 0.0
        log.info("delivery resumed", extra={"event": "delivery_resume"})
        self._wake.set()

    # -- statistics -------------------------------------------------------------------------------
    def stats(self) -> dict:
        with self._slock:
            s = json.loads(json.dumps(self._stats))
        try:
            s["spool_depth"] = self.spool.depth()
            s["oldest_pending_age_s"] = self.spool.oldest_pending_age_s()
            s["spool_bytes"] = self.spool.size_bytes()
        except SpoolError:
            s["spool_depth"] = s["oldest_pending_age_s"] = s["spool_bytes"] = None
        s["halted"] = self._halted
        s["overflow"] = len(self._overflow)
        s["consecutive_failures"] = self._consecutive
        s["batch_endpoint"] = self._batch_ok
        return s

    def metric_families(self, *, spool: bool = True) -> Iterable[Any]:
        """:meth:`stats` as Prometheus metric families (see :mod:`receiver.delivery_metrics`)."""
        return delivery_metrics.families(self.stats(), spool=spool)

    def prometheus(self) -> str:
        """The statistics and the latency histograms in the Prometheus text exposition format."""
        return delivery_metrics.exposition(self)


def deliver_all(
    spool: Spool,
    url: str,
    token: str | None,
    timeout_s: float = 5.0,
    *,
    progress: bool = False,
    batch: int = 100,
    max_wait_s: float = 120.0,
    client: httpx.Client | None = None,
    backoff_initial_s: float = 0.5,
    backoff_max_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Deliver everything pending now, in the calling thread (``gla replay --post``).

    Backed-off bundles are made due at once; transient failures are retried with backoff until
    the spool is empty, posting halts on 401/403, or ``max_wait_s`` passes. ``progress`` shows a
    tqdm bar. Returns the deliverer's statistics plus ``pending`` and ``complete``.
    """
    d = Deliverer(
        spool,
        url,
        token,
        timeout_s=timeout_s,
        batch=batch,
        client=client,
        backoff_initial_s=backoff_initial_s,
        backoff_max_s=backoff_max_s,
        auth_recheck_s=None,
    )
    spool.release()
    total = spool.depth()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="bundle", desc="posting", leave=True)
    end = time.monotonic() + max_wait_s
    depth = total
    try:
        while True:
            depth = spool.depth()
            if bar is not None:
                bar.update(max(0, total - depth - bar.n))
            if depth == 0 or d.halted or time.monotonic() >= end:
                break
            wait = d.step()
            if d.halted:
                continue
            if wait > 0 and depth:
                sleep(max(0.0, min(wait, end - time.monotonic())))
    finally:
        if bar is not None:
            bar.close()
        if d._own_client:
            d.client.close()
    out = d.stats()
    out.update(pending=depth, complete=depth == 0, total=total)
    if depth:
        log.warning(
            "deliver_all finished with bundles pending",
            extra={"event": "deliver_all_incomplete", "depth": depth, "halted": d.halted},
        )
    return out
