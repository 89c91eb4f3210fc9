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
        self.tan_cache: dict[int, tuple[int, dict[int, int]]] = {}
        self._pending: set[str] = set()
        self._pending_at = 0.0
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

    def tan_map(self, s: Session | None, hub_id: int, version: int, raw=None) -> dict[int, int]:
        """tan_index -> meter_id of the hub's active TAN, cached per TAN version (exact across
        processes: the version is on the hub row, which the caller has just read). Queries with
        the session ``s`` or the DB-API cursor wrapper ``raw``."""
        hit = self.tan_cache.get(hub_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        from ..models import Meter

        if raw is not None:
            m = dict(raw.all("SELECT tan_index, meter_id FROM meters WHERE hub_id = ? AND active = ?",
                             (hub_id, raw.b(True))))
        else:
            m = dict(s.execute(select(Meter.tan_index, Meter.meter_id).where(Meter.hub_id == hub_id,
                                                                             Meter.active.is_(True))).all())
        if len(self.tan_cache) > 100_000:
            self.tan_cache.clear()
        self.tan_cache[hub_id] = (version, m)
        return m

    def section_may_be_pending(self, s: Session | None, section_id: str, raw=None) -> bool:
        """Whether a hub of the section may hold a feeder-change candidate (set refreshed every 2 s,
        and at once for candidates made in this process)."""
        if time.monotonic() - self._pending_at > 2.0:
            from ..models import Hub

            if raw is not None:
                rows = raw.all("SELECT DISTINCT section_id FROM hubs WHERE cand_feeder IS NOT NULL "
                               "AND section_id IS NOT NULL", ())
                self._pending = {r[0] for r in rows}
            else:
                self._pending = set(s.scalars(select(Hub.section_id).where(
                    Hub.cand_feeder.is_not(None), Hub.section_id.is_not(None)).distinct()).all())
            self._pending_at = time.monotonic()
        return section_id in self._pending

    def note_pending(self, section_id: str | None) -> None:
        if section_id:
            self._pending.add(section_id)

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
