"""The background thread: webhook deliveries, forwarding to the concentrator, missed-report checks,
and (with ``theft_interval_s`` > 0) the theft analysis."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import select

from ..models import Substation
from . import outage
from .context import Platform
from .forwarding import forward_once
from .publishing import deliver_once
from .theft import run as run_theft

log = logging.getLogger("gla.platform.worker")


class Worker:
    def __init__(self, pf: Platform) -> None:
        self.pf = pf
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_missed = 0.0
        self._last_theft = time.monotonic()  # the first background analysis one period after start-up
        self.errors = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gla-platform-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.pf.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_once(self) -> dict:
        out: dict[str, Any] = {"webhooks": deliver_once(self.pf), "forwarding": forward_once(self.pf)}
        if (
            not self.pf.settings.is_concentrator
            and time.monotonic() - self._last_missed >= self.pf.settings.missed_check_interval_s
        ):
            self._last_missed = time.monotonic()
            out["missed"] = self.check_missed()
        every = self.pf.settings.theft_interval_s
        if every > 0 and not self.pf.settings.is_concentrator and time.monotonic() - self._last_theft >= every:
            self._last_theft = time.monotonic()
            res = run_theft(self.pf)
            out["theft"] = {k: v for k, v in res.items() if k != "results"}
        return out

    def check_missed(self) -> list[dict]:
        res = []
        with self.pf.db.session() as s:
            subs = list(s.scalars(select(Substation.id)).all())
        for sid in subs:
            with self.pf.db.write() as s:
                res.append(outage.check_missed(s, self.pf, sid))
        return res

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep the thread alive; the next round retries
                self.errors += 1
                log.exception("background round failed")
            self.pf.wakeup.wait(self.pf.settings.background_interval_s)
            self.pf.wakeup.clear()
