"""The Computing Platform app: ``create_app(settings=None)``.

uvicorn --factory platform_api.main:create_app          # settings from GLA_* variables
python -m platform_api --port 8000                      # the same
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import event as sa_event
from sqlalchemy import select

from receiver.contracts.bundle import Bundle

from . import __version__
from .api.main import ROUTERS
from .core.admin import describe_database, ensure_admin_token
from .core.bodylimit import BodyLimit
from .core.config import Settings
from .core.db import Database, migrate
from .core.metrics import PlatformMetrics, RequestTimer
from .core.security import load_receivers_file, token_hash
from .models import Receiver
from .schemas.bundles import BatchIn
from .schemas.imports import GridModel, SimulatorTruth
from .services import changes, forwarding
from .services.clock import utcnow
from .services.context import Platform
from .services.groupcommit import GroupCommit
from .services.worker import Worker

log = logging.getLogger("gla.platform")

DESCRIPTION = """
The substation **Computing Platform** of a grid-location-aware power-line network (and, with
`GLA_MODE=concentrator`, the utility-wide **Concentrator**).

* **Ingest**: Substation Receivers post one *bundle* per transmission (`POST /api/v1/bundles`,
  bearer token per receiver, idempotent by `bundle_id`).
* **Semantic decode**: each frame is checked (CRC, version, kind), verified and decrypted with its
  hub's AES-128-CCM key, checked for replay by its counter, and parsed; segmented scheduled
  reports are reassembled. Rejections are stored with their reason.
* **Inventory and Grid Map**: hubs, their TAN meters and Subordinate Remotes, and the map
  substation -> bus -> feeder -> phase -> service transformer (TAN) -> meters; imported
  (`/api/v1/import/json`, `/api/v1/import/csv`) or built from reports. Every change is in
  `/api/v1/history` with time, cause and evidence.
* **Change inference** as events with a confidence and a threshold policy: new hubs, phase and
  feeder changes, switch-state changes of feeder sections, TAN membership, suspected outages from
  missed scheduled reports, restoration.
* **Provisioning**: channel plan, slot/code assignment, per-hub policy with announced changes,
  channel statistics and rebalancing.
* **Publishing**: GeoJSON and CSV of the map, server-sent events, webhooks, forwarding to the
  concentrator.
* **Theft analysis**: AMI interval data import (CSV), work orders, the analysis of each service
  transformer's V/I series (scheduled reports and AMI data) with `theft_alert` events.

Errors: 401 missing/unknown token, 403 token without the right, 404 unknown resource, 409
conflict, 422 validation (`detail[].loc` names the field).
"""

TAGS = [
    {"name": "bundles", "description": "Ingest from the Substation Receivers and the decoded result."},
    {"name": "inventory", "description": "Remote Hubs, meters (TAN membership) and the change history."},
    {"name": "gridmap", "description": "The Grid Map and its import."},
    {"name": "events", "description": "Inferred changes, their stream, and the threshold policy."},
    {"name": "provisioning", "description": "Channel plan, slots and codes, hub policies, channel statistics."},
    {"name": "publishing", "description": "GeoJSON/CSV export, webhooks, forwarding, concentrator merge."},
    {"name": "receivers", "description": "Credentials of receivers and substation platforms."},
    {"name": "theft", "description": "AMI interval data, work orders, the theft analysis and its alerts."},
    {"name": "health", "description": "Liveness, readiness, identity, Prometheus metrics."},
]


def _load_credentials(pf: Platform) -> int:
    path = pf.settings.receivers_file
    if not path:
        return 0
    entries = load_receivers_file(path)
    with pf.db.write() as s:
        for e in entries:
            r = s.get(Receiver, e["receiver_id"])
            h = token_hash(e["token"])
            other = s.scalars(select(Receiver).where(Receiver.token_sha256 == h)).first()
            if other is not None and other.id != e["receiver_id"]:
                raise ValueError(f"{path}: the token of {e['receiver_id']} is already used by {other.id}")
            if r is None:
                s.add(
                    Receiver(
                        id=e["receiver_id"],
                        substation_id=e["substation_id"],
                        role=e["role"],
                        token_sha256=h,
                        enabled=True,
                        description=f"from {path}",
                        created_at=utcnow(),
                    )
                )
            else:
                r.substation_id, r.role, r.token_sha256, r.enabled = e["substation_id"], e["role"], h, True
    pf.invalidate_auth()
    return len(entries)


def build_platform(settings: Settings) -> Platform:
    """The database (migrated to the head revision) and the platform context, with the session
    hooks that tie commits to forwarding (a snapshot of each changed hub, before the commit) and
    to publishing (wake the worker, after it)."""
    log.info("database: %s", describe_database(settings.database_url))
    db = Database(settings.database_url, echo=settings.sql_echo)
    migrate(db.engine)
    pf = Platform(settings, db, admin_token=ensure_admin_token(settings).token)
    sa_event.listen(db.sessionmaker, "before_commit", lambda session: forwarding.before_commit(pf, session))
    sa_event.listen(db.sessionmaker, "after_commit", lambda session: changes.after_commit(pf, session))
    return pf


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    pf = build_platform(settings)
    _load_credentials(pf)
    worker = Worker(pf)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.background:
            worker.start()
        try:
            yield
        finally:
            worker.stop()

    mode = "Concentrator" if settings.is_concentrator else "Computing Platform"
    app = FastAPI(
        title=f"GLA {mode}",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are api/routes/apidocs.py's: assets from the package, not a CDN
        redoc_url=None,
    )
    app.state.platform = pf
    app.state.worker = worker
    app.state.group_commit = GroupCommit(pf)  # concurrent single posts on SQLite, committed together
    for router in ROUTERS:  # directly on the app: one level of routing less per request
        app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # 413 before a body is read
    app.state.metrics = PlatformMetrics(__version__, settings.mode)
    app.add_middleware(RequestTimer, metrics=app.state.metrics)  # outermost: times the 413s too

    def openapi():
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes, tags=TAGS
        )
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (GridModel, SimulatorTruth, Bundle, BatchIn):  # bodies the routes read themselves
            js = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, d in js.pop("$defs", {}).items():
                comps.setdefault(name, d)
            comps[model.__name__] = js
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
