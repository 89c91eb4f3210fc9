"""Where the receiver's bundles go: the spool first, then the archive; a full disk makes the
receiver *degraded*, never kills it and never loses a bundle it can hold.

    Grouper --bundle--> BundleSink.accept --1--> Spool (SQLite, durable) --> Deliverer --> platform
                                          --2--> BundleArchive (JSONL, whole lines)

1. **The spool comes first.** A bundle is committed to the spool before anything else sees it
   (archive, SigMF annotations, metrics): once :meth:`BundleSink.accept` wrote it there, a crash
   or a power cut cannot lose it.
2. **Disk full** (the spool's SQLite answers "database or disk is full", its budget is used up,
   or the archive's write fails with ``ENOSPC``/``EDQUOT``): the sink turns *degraded*. Bundles
   the spool could not take are held in memory, in order, up to ``hold_max`` (beyond that each
   new bundle is dropped, counted and logged at ERROR: the bound keeps a long outage from
   exhausting memory). Bundles spooled while the archive cannot write are remembered by id.
   A log line says when the receiver enters and leaves the degraded state; the service's
   ``/healthz`` answers 503 with the reason and ``/metrics`` carries it.
3. **Recovery by itself.** A thread retries with exponential backoff (``retry_initial_s`` doubling
   up to ``retry_max_s``); when the disk has room again it moves the held bundles into the spool
   in their order, then catches the archive up from the spool's copies (a bundle the spool no
   longer holds is counted and logged as an archive gap), and leaves the degraded state.

The spool keys rows by ``bundle_id`` and the platform stores a ``bundle_id`` once, so a retry after
an error whose outcome is unknown never makes a duplicate.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

from receiver.archive import DISK_FULL_ERRNOS, BundleArchive
from receiver.contracts.bundle import Bundle
from receiver.spool import Spool, SpoolError, SpoolFull, _is_full

log = logging.getLogger("gla.receiver")

#: The errors of a spool or archive write that make the receiver degraded (anything else is a bug
#: and is raised).
WRITE_ERRORS = (SpoolError, sqlite3.Error, OSError)
REASONS = ("disk_full", "spool_full", "io_error")


def reason_of(e: BaseException) -> str:
    """``disk_full`` (ENOSPC, EDQUOT, SQLite's "database or disk is full"), ``spool_full`` (the
    spool's own disk budget) or ``io_error`` (any other failed write)."""
    if isinstance(e, SpoolFull):
        return "spool_full" if e.used_bytes is not None else "disk_full"
    if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
        return "disk_full"
    if isinstance(e, sqlite3.Error) and _is_full(e):
        return "disk_full"
    return "io_error"


class BundleSink:
    """``accept(bundle)`` from the receive loop; ``state()`` for /healthz, ``stats()`` for /metrics;
    ``close()`` at the end. Thread-safe; see the module docstring."""

    def __init__(
        self,
        spool: Spool,
        archive: BundleArchive | None = None,
        *,
        hold_max: int = 10_000,
        on_spooled: Callable[[], None] | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        name: str = "gla-sink-retry",
    ) -> None:
        if hold_max < 0:
            raise ValueError("hold_max must be >= 0")
        if retry_initial_s <= 0 or retry_max_s < retry_initial_s:
            raise ValueError("need 0 < retry_initial_s <= retry_max_s")
        self.spool, self.archive = spool, archive
        self.hold_max = hold_max
        self.on_spooled = on_spooled
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self._lock = threading.RLock()
        self._held: collections.deque[Bundle] = collections.deque()  # not yet in the spool, in order
        self._unarchived: collections.deque[str] = collections.deque()  # spooled, not yet archived
        self._problems: dict[str, tuple[str, str]] = {}  # "spool"/"archive" -> (reason, detail)
        self._since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = name
        self._last_drop_log = 0.0
        self.counts: dict[str, int] = {
            "accepted": 0,  # bundles handed to the sink
            "spooled": 0,  # of them, committed to the spool
            "held_total": 0,  # ever held in memory
            "dropped": 0,  # beyond hold_max (or left in memory at close): LOST
            "archived": 0,
            "archive_gap": 0,  # spooled but never archived (the spool no longer had them)
            "retries": 0,
            "degraded_episodes": 0,
        }

    # -- the receive loop's side ------------------------------------------------------------------
    def accept(self, b: Bundle) -> None:
        """Take one bundle: spool it (then archive it), or hold it while the disk is full. Never
        raises for a full disk or a failed write."""
        with self._lock:
            self.counts["accepted"] += 1
            if self._held:  # degraded: the held ones go first, keep the order
                self._hold(b)
                return
            try:
                self.spool.put(b)
            except WRITE_ERRORS as e:
                self._enter("spool", e)
                self._hold(b)
                return
            self._spooled(b)

    def _spooled(self, b: Bundle) -> None:
        self.counts["spooled"] += 1
        if self.on_spooled is not None:
            self.on_spooled()
        self._archive(b)

    def _archive(self, b: Bundle) -> None:
        if self.archive is None:
            return
        if self._unarchived:
            self._unarchived.append(b.bundle_id)
            return
        try:
            self.archive.write(b)
        except OSError as e:
            self._enter("archive", e)
            self._unarchived.append(b.bundle_id)
            return
        self.counts["archived"] += 1

    def _hold(self, b: Bundle) -> None:
        if len(self._held) < self.hold_max:
            self._held.append(b)
            self.counts["held_total"] += 1
        else:
            self.counts["dropped"] += 1
            now = time.monotonic()
            if self.counts["dropped"] == 1 or now - self._last_drop_log >= 10.0:
                self._last_drop_log = now
                log.error(
                    "BUNDLES LOST: the disk is full and %d bundles are already held in memory; "
                    "dropping new bundles (%d so far)",
                    len(self._held),
                    self.counts["dropped"],
                    extra={
                        "event": "bundles_dropped",
                        "bundle_id": b.bundle_id,
                        "dropped": self.counts["dropped"],
                        "held": len(self._held),
                        "hold_max": self.hold_max,
                    },
                )

    # -- degraded state ---------------------------------------------------------------------------
    def _enter(self, part: str, e: BaseException) -> None:
        reason = reason_of(e)
        first = not self._problems
        self._problems[part] = (reason, str(e)[:500])
        if first:
            self._since = time.time()
            self.counts["degraded_episodes"] += 1
            log.error(
                "receiver degraded: %s (%s); bundles are held in memory (up to %d) and retried",
                reason,
                part,
                self.hold_max,
                extra={"event": "degraded_enter", "reason": reason, "part": part, "detail": str(e)[:500]},
            )
        self._ensure_thread()

    def _clear(self, part: str) -> None:
        if self._problems.pop(part, None) is None or self._problems:
            return
        since, self._since = self._since, None
        log.warning(
            "receiver recovered: the disk takes writes again",
            extra={
                "event": "degraded_leave",
                "degraded_s": round(time.time() - (since or time.time()), 3),
                "held_total": self.counts["held_total"],
                "dropped": self.counts["dropped"],
                "archive_gap": self.counts["archive_gap"],
            },
        )

    @property
    def degraded(self) -> str | None:
        """The reason the receiver is degraded (``disk_full``, ``spool_full``, ``io_error``), or None."""
        with self._lock:
            return next(iter(self._problems.values()))[0] if self._problems else None

    def state(self) -> dict[str, Any]:
        """For /healthz: the reason, since when, what is held and what was dropped."""
        with self._lock:
            return {
                "degraded": bool(self._problems),
                "reason": next(iter(self._problems.values()))[0] if self._problems else None,
                "problems": {k: {"reason": r, "detail": d} for k, (r, d) in self._problems.items()},
                "since": self._since,
                "held": len(self._held),
                "unarchived": len(self._unarchived),
                "dropped": self.counts["dropped"],
            }

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self.counts, "held": len(self._held), "unarchived": len(self._unarchived)}

    # -- recovery ---------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        delay = self.retry_initial_s
        while not self._stop.is_set():
            self._stop.wait(delay)
            if self._stop.is_set():
                return
            with self._lock:  # (accept starts a new thread under this lock when this one ended)
                if self.retry():
                    self._thread = None  # healthy again; the next problem starts a new thread
                    return
            delay = min(self.retry_max_s, delay * 2.0)

    def retry(self) -> bool:
        """One attempt to move the held bundles into the spool and catch the archive up. True when
        nothing is left (the sink is healthy)."""
        with self._lock:
            if not self._problems and not self._held and not self._unarchived:
                return True
            self.counts["retries"] += 1
            while self._held:
                batch = list(islice(self._held, 0, 64))
                try:
                    self.spool.put_many(batch)  # one transaction: all or none, in order
                except WRITE_ERRORS as e:
                    self._problems["spool"] = (reason_of(e), str(e)[:500])
                    return False
                for b in batch:
                    self._held.popleft()
                    self._spooled(b)
                log.info(
                    "held bundles moved into the spool",
                    extra={"event": "held_flushed", "count": len(batch), "remaining": len(self._held)},
                )
            self._clear("spool")
            if not self._catch_up_archive():
                return False
            self._clear("archive")
            return not self._problems

    def _catch_up_archive(self) -> bool:
        while self._unarchived and self.archive is not None:
            bid = self._unarchived[0]
            try:
                row = self.spool.get(bid)
            except WRITE_ERRORS as e:  # pragma: no cover - a read failing
                self._problems["archive"] = (reason_of(e), str(e)[:500])
                return False
            if row is None:
                self.counts["archive_gap"] += 1
                log.error(
                    "archive gap: bundle no longer in the spool, not archived",
                    extra={"event": "archive_gap", "bundle_id": bid},
                )
                self._unarchived.popleft()
                continue
            try:
                self.archive.write(Bundle.model_validate_json(row["body"]))
            except OSError as e:
                self._problems["archive"] = (reason_of(e), str(e)[:500])
                return False
            self._unarchived.popleft()
            self.counts["archived"] += 1
        return True

    def close(self, timeout_s: float = 5.0) -> int:
        """Stop the retry thread after trying, for up to ``timeout_s``, to write what is held.
        Returns the bundles that stay only in memory and are lost with the process (logged)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        end = time.monotonic() + timeout_s
        delay = 0.1
        while not self.retry() and time.monotonic() < end:
            time.sleep(min(delay, max(0.0, end - time.monotonic())))
            delay = min(1.0, delay * 2.0)
        with self._lock:
            lost = len(self._held)
            if lost:
                self.counts["dropped"] += lost
                log.error(
                    "BUNDLES LOST at shutdown: %d bundles only in memory (the disk is still full)",
                    lost,
                    extra={"event": "bundles_lost_at_stop", "count": lost, "reason": self.degraded},
                )
                self._held.clear()
            if self._unarchived:
                log.error(
                    "stopping with %d spooled bundles not archived (they stay in the spool)",
                    len(self._unarchived),
                    extra={"event": "archive_behind_at_stop", "count": len(self._unarchived)},
                )
        return lost
