"""The running platform: settings, database, caches and the hooks that tie commits to publishing."""
from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.config import Settings
from ..core.db import Database
from ..models import Webhook
from .policy import PolicyStore


class Platform:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.policy = PolicyStore()
        self.wakeup = threading.Event()
        self.known_substations: set[str] = set()
        self._webhooks: tuple[float, list[dict]] = (0.0, [])
        self.auth_cache: dict[str, tuple[float, Any]] = {}
        self.http_client_factory = None
        self.fast_path = True  # tests switch it off to compare with the full path
        self._group = None  # tests may inject a factory returning an httpx.Client
        self.stats = {"bundles": 0, "replays": 0}
        self.tan_cache: dict[int, tuple[int, dict[int, int]]] = {}  # services.reports.tan_map
        self.pending_sections: set[str] = set()  # services.inference.section_may_be_pending
        self.pending_at = 0.0
        sa_event.listen(db.sessionmaker, "before_commit", self._before_commit)
        sa_event.listen(db.sessionmaker, "after_commit", self._after_commit)

    # -- webhooks cache --------------------------------------------------------------------------
    def webhooks(self, s: Session) -> list[dict]:
        at, hooks = self._webhooks
        if time.monotonic() - at < 2.0:
            return hooks
        rows = s.scalars(select(Webhook).where(Webhook.active.is_(True))).all()
        hooks = [{"id": w.id, "types": list(w.event_types or ["*"]), "min_confidence": w.min_confidence} for w in rows]
        self._webhooks = (time.monotonic(), hooks)
        return hooks

    @property
    def group(self):
        """The group committer of concurrent single posts (SQLite)."""
        if self._group is None:
            from .ingest import GroupCommit

            self._group = GroupCommit(self)
        return self._group

    def invalidate_webhooks(self) -> None:
        self._webhooks = (0.0, [])

    def invalidate_auth(self) -> None:
        self.auth_cache.clear()

    @property
    def forwarding(self) -> bool:
        return bool(self.settings.concentrator_url) and not self.settings.is_concentrator

    # -- session hooks -----------------------------------------------------------------------------
    def _before_commit(self, session: Session) -> None:
        dirty = session.info.pop("dirty_hubs", None)
        if dirty and self.forwarding and "map" in self.settings.forward:
            from .forwarding import enqueue_map

            enqueue_map(session, self, sorted(dirty))

    def _after_commit(self, session: Session) -> None:
        if session.info.pop("publish", False):
            self.wakeup.set()
