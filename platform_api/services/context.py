"""The running platform: settings, database and the per-process caches the services share.

A plain object: :func:`platform_api.main.create_app` builds it, wires the session hooks (forwarding
of changed hubs, waking the publisher) and keeps it on ``app.state.platform``; the routes get it
by the ``platform`` dependency. Services are modules that take it as an argument; it imports none
of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.config import Settings
from ..core.db import Database
from .policy import PolicyStore


@dataclass(eq=False)
class Platform:
    settings: Settings
    db: Database
    policy: PolicyStore = field(default_factory=PolicyStore)
    #: the operators' bearer token (:func:`platform_api.core.admin.ensure_admin_token`); empty = none
    #: accepted: :func:`platform_api.api.deps.require_admin` never opens without one
    admin_token: str = ""
    #: set after a commit that published something: the background worker delivers at once
    wakeup: threading.Event = field(default_factory=threading.Event)
    #: tests may inject a factory returning an httpx.Client (webhooks, forwarding)
    http_client_factory: Callable[[], Any] | None = None
    #: tests switch it off to compare the fast path of ingest with the full path
    fast_path: bool = True
    stats: dict[str, int] = field(default_factory=lambda: {"bundles": 0, "replays": 0})
    # caches (each is read and refreshed by the one service module that owns it)
    known_substations: set[str] = field(default_factory=set)  # services.inventory
    auth_cache: dict[str, tuple[float, Any]] = field(default_factory=dict)  # api.deps (credential lookups)
    webhooks_cache: tuple[float, list[dict]] = (0.0, [])  # services.changes
    tan_cache: dict[int, tuple[int, dict[int, int]]] = field(default_factory=dict)  # services.reports
    pending_sections: set[str] = field(default_factory=set)  # services.inference
    pending_at: float = 0.0

    @property
    def forwarding(self) -> bool:
        return bool(self.settings.concentrator_url) and not self.settings.is_concentrator

    def invalidate_webhooks(self) -> None:
        self.webhooks_cache = (0.0, [])

    def invalidate_auth(self) -> None:
        self.auth_cache.clear()
