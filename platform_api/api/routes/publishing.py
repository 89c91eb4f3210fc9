"""Webhooks, forwarding to the concentrator, and the concentrator's merge endpoint."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from sqlalchemy import select

from ...models import Substation, Webhook, WebhookDelivery
from ...schemas.publishing import (
    DeliveryOut,
    FlushOut,
    ForwardBatch,
    ForwardingStatus,
    ForwardResult,
    WebhookIn,
    WebhookOut,
)
from ...services import concentrator, forwarding
from ...services.clock import iso, utcnow
from ...services.ingest import Principal
from ...services.publishing import deliver_once, delivery_dict, webhook_dict
from ..deps import DB, PF, Limit, Offset, not_found, principal, require_admin
from ..strict_route import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute, tags=["publishing"])
HookId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ADMIN: dict[int | str, dict[str, Any]] = {401: {"description": "admin token required"}}


@router.post(
    "/api/v1/webhooks",
    status_code=201,
    response_model=WebhookOut,
    dependencies=[Depends(require_admin)],
    summary="Subscribe a URL to events",
    responses=ADMIN,
)
def create_webhook(pf: PF, body: WebhookIn) -> dict:
    """Each publication of a matching event is POSTed as `{"seq", "action", "event"}` with headers
    `X-GLA-Event`, `X-GLA-Delivery`, `X-GLA-Seq` and, with a secret, `X-GLA-Signature:
    sha256=<HMAC-SHA256 of the body>`. A non-2xx answer or a network error is retried with
    exponential backoff up to `GLA_WEBHOOK_MAX_ATTEMPTS` times."""
    with pf.db.write() as s:
        w = Webhook(
            url=body.url,
            secret=body.secret,
            event_types=body.event_types,
            min_confidence=body.min_confidence,
            active=True,
            created_at=utcnow(),
        )
        s.add(w)
        s.flush()
        out = webhook_dict(w)
    pf.invalidate_webhooks()
    return out


@router.get("/api/v1/webhooks", response_model=list[WebhookOut], summary="List webhooks")
def list_webhooks(s: DB) -> list[dict]:
    return [webhook_dict(w) for w in s.scalars(select(Webhook).order_by(Webhook.id)).all()]


@router.get(
    "/api/v1/webhooks/{webhook_id}",
    response_model=WebhookOut,
    summary="One webhook",
    responses={404: {"description": "unknown webhook"}},
)
def get_webhook(s: DB, webhook_id: HookId) -> dict:
    w = s.get(Webhook, webhook_id)
    if w is None:
        raise not_found(f"webhook {webhook_id}")
    return webhook_dict(w)


@router.delete(
    "/api/v1/webhooks/{webhook_id}",
    response_model=WebhookOut,
    dependencies=[Depends(require_admin)],
    summary="Deactivate a webhook (pending deliveries are dropped)",
    responses={**ADMIN, 404: {"description": "unknown webhook"}},
)
def delete_webhook(pf: PF, webhook_id: HookId) -> dict:
    with pf.db.write() as s:
        w = s.get(Webhook, webhook_id)
        if w is None:
            raise not_found(f"webhook {webhook_id}")
        w.active = False
        for d in s.scalars(
            select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == "pending")
        ).all():
            d.status, d.last_error = "failed", "webhook deactivated"
        out = webhook_dict(w)
    pf.invalidate_webhooks()
    return out


@router.get(
    "/api/v1/webhooks/{webhook_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="Deliveries of a webhook, newest first",
    responses={404: {"description": "unknown webhook"}},
)
def deliveries(s: DB, webhook_id: HookId, limit: Limit = 100, offset: Offset = 0) -> list[dict]:
    if s.get(Webhook, webhook_id) is None:
        raise not_found(f"webhook {webhook_id}")
    rows = s.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return [delivery_dict(d) for d in rows]


@router.get("/api/v1/forwarding", response_model=ForwardingStatus, summary="Forwarding to the concentrator: state")
def forwarding_status(pf: PF, s: DB) -> dict:
    return forwarding.status(s, pf)


@router.post(
    "/api/v1/forwarding/flush",
    response_model=FlushOut,
    dependencies=[Depends(require_admin)],
    summary="Deliver due webhooks and forward due items now",
    responses=ADMIN,
)
def flush(pf: PF) -> dict:
    """What the background thread does every `background_interval_s`, once, synchronously."""
    return {"webhooks": deliver_once(pf), "forwarding": forwarding.forward_once(pf)}


@router.post(
    "/api/v1/concentrator/forward",
    response_model=ForwardResult,
    summary="Concentrator: merge what a substation platform forwards",
    responses={
        401: {"description": "missing or unknown token"},
        403: {"description": "not a platform credential for this substation"},
        404: {"description": "this instance is not a concentrator"},
    },
)
def forward(pf: PF, p: Annotated[Principal, Depends(principal)], batch: ForwardBatch) -> dict:
    """Substation platforms post their outbox here in order (events, Grid Map snapshots of changed
    hubs, completed reports, as their forwarding policy says). Items already merged are skipped,
    so retries are safe. Only in `GLA_MODE=concentrator`."""
    if not pf.settings.is_concentrator:
        raise HTTPException(status_code=404, detail="this instance is not a concentrator (GLA_MODE=concentrator)")
    if p.role != "platform":
        raise HTTPException(status_code=403, detail=f"credential {p.id} is a {p.role}, not a platform")
    if batch.substation_id != p.substation_id or batch.origin != p.id:
        raise HTTPException(
            status_code=403, detail=f"platform {p.id} may forward only as itself for substation {p.substation_id}"
        )
    with pf.db.write() as s:
        return concentrator.merge(s, pf, batch.origin, batch.substation_id, [i.model_dump() for i in batch.items])


@router.get("/api/v1/concentrator/substations", summary="Concentrator: substations and their last contact")
def concentrator_substations(s: DB) -> list[dict]:
    return [
        {"substation_id": x.id, "source": x.source, "last_contact_at": iso(x.last_contact_at)}
        for x in s.scalars(select(Substation).order_by(Substation.id)).all()
    ]
