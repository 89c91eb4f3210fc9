"""Credentials of receivers and of substation platforms (operator routes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from sqlalchemy import select

from ...core.security import new_token, token_hash
from ...models import Receiver
from ...schemas.receivers import ReceiverIn, ReceiverOut, ReceiverToken
from ...services.clock import iso, utcnow
from ..deps import DB, PF, not_found, require_admin
from ..strict_route import StrictJSONRoute

router = APIRouter(
    route_class=StrictJSONRoute,
    tags=["receivers"],
    dependencies=[Depends(require_admin)],
    responses={401: {"description": "admin token required"}},
)
RxId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/@-]+$")]


def _out(r: Receiver) -> dict:
    return {
        "receiver_id": r.id,
        "substation_id": r.substation_id,
        "role": r.role,
        "enabled": r.enabled,
        "description": r.description,
        "created_at": iso(r.created_at),
        "last_used_at": iso(r.last_used_at),
    }


@router.post(
    "/api/v1/receivers",
    status_code=201,
    response_model=ReceiverToken,
    summary="Register a receiver (or a substation platform) and get its token",
    responses={409: {"description": "receiver id exists or token already in use"}},
)
def create(pf: PF, body: ReceiverIn) -> dict:
    """The token is returned once; the platform keeps only its SHA-256. A receiver may then post
    bundles naming itself and `substation_id`; a `platform` credential may forward to a
    concentrator for `substation_id`."""
    token = body.token or new_token()
    with pf.db.write() as s:
        if s.get(Receiver, body.receiver_id) is not None:
            raise HTTPException(
                status_code=409, detail=f"receiver {body.receiver_id} exists (rotate its token instead)"
            )
        if s.scalars(select(Receiver).where(Receiver.token_sha256 == token_hash(token))).first() is not None:
            raise HTTPException(status_code=409, detail="token already in use")
        r = Receiver(
            id=body.receiver_id,
            substation_id=body.substation_id,
            role=body.role,
            token_sha256=token_hash(token),
            enabled=True,
            description=body.description,
            created_at=utcnow(),
        )
        s.add(r)
        s.flush()
        out = {**_out(r), "token": token}
    pf.invalidate_auth()
    return out


@router.get("/api/v1/receivers", response_model=list[ReceiverOut], summary="List credentials")
def list_(s: DB) -> list[dict]:
    return [_out(r) for r in s.scalars(select(Receiver).order_by(Receiver.id)).all()]


@router.get(
    "/api/v1/receivers/{receiver_id}",
    response_model=ReceiverOut,
    summary="One credential",
    responses={404: {"description": "unknown receiver"}},
)
def get(s: DB, receiver_id: RxId) -> dict:
    r = s.get(Receiver, receiver_id)
    if r is None:
        raise not_found(f"receiver {receiver_id}")
    return _out(r)


@router.post(
    "/api/v1/receivers/{receiver_id}/rotate",
    response_model=ReceiverToken,
    summary="Issue a new token (the old one stops working at once)",
    responses={404: {"description": "unknown receiver"}},
)
def rotate(pf: PF, receiver_id: RxId) -> dict:
    token = new_token()
    with pf.db.write() as s:
        r = s.get(Receiver, receiver_id)
        if r is None:
            raise not_found(f"receiver {receiver_id}")
        r.token_sha256 = token_hash(token)
        r.enabled = True
        out = {**_out(r), "token": token}
    pf.invalidate_auth()
    return out


@router.delete(
    "/api/v1/receivers/{receiver_id}",
    response_model=ReceiverOut,
    summary="Disable a credential",
    responses={404: {"description": "unknown receiver"}},
)
def disable(pf: PF, receiver_id: RxId) -> dict:
    with pf.db.write() as s:
        r = s.get(Receiver, receiver_id)
        if r is None:
            raise not_found(f"receiver {receiver_id}")
        r.enabled = False
        out = _out(r)
    pf.invalidate_auth()
    return out
