"""The routers of the API, in matching order (ingest first: it is the hot path)."""

from fastapi import APIRouter

from .routes import (
    apidocs,
    bundles,
    dashboard,
    events,
    gridmap,
    health,
    inventory,
    provisioning,
    publishing,
    receivers,
    theft,
    workorders,
)

ROUTERS = [
    bundles.router,
    health.router,
    inventory.router,
    gridmap.router,
    events.router,
    provisioning.router,
    publishing.router,
    dashboard.router,
    receivers.router,
    workorders.router,
    theft.router,
    apidocs.router,
]

api_router = APIRouter()
for _r in ROUTERS:
    api_router.include_router(_r)
