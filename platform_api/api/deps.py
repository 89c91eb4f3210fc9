"""Dependencies and small helpers shared by the routes: the platform context, the credential
checks (receiver, platform and admin tokens; see :mod:`platform_api.core.security`), pages and times."""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, overload

from fastapi import Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..core.security import token_hash
from ..models import Receiver
from ..services.clock import utcnow
from ..services.context import Platform
from ..services.ingest import Principal

bearer = HTTPBearer(auto_error=False, description="receiver, platform or admin token")


async def platform(request: Request) -> Platform:
    return request.app.state.platform


def _unauthorized(msg: str) -> HTTPException:
    return HTTPException(status_code=401, detail=msg, headers={"WWW-Authenticate": "Bearer"})


def lookup(pf: Platform, token: str) -> tuple[str, str, str, bool] | None:
    h = token_hash(token)
    hit = pf.auth_cache.get(h)
    if hit is not None and time.monotonic() - hit[0] < 5.0:
        return hit[1]
    with pf.db.session() as s:
        r = s.scalars(select(Receiver).where(Receiver.token_sha256 == h)).first()
        val = None if r is None else (r.id, r.substation_id, r.role, r.enabled)
    if val is not None:  # at most every 5 s per credential (the cache's lifetime)
        with pf.db.write() as s:
            s.execute(update(Receiver).where(Receiver.id == val[0]).values(last_used_at=utcnow()))
    pf.auth_cache[h] = (time.monotonic(), val)
    return val


def authenticate(pf: Platform, authorization: str | None) -> Principal:
    """The principal of an ``Authorization: Bearer <token>`` header (401/403 as above)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("missing bearer token")
    found = lookup(pf, token.strip())
    if found is None:
        raise _unauthorized("unknown token")
    rid, sub, role, enabled = found
    if not enabled:
        raise HTTPException(status_code=403, detail=f"credential {rid} is disabled")
    return Principal(id=rid, substation_id=sub, role=role)


async def principal(
    creds: HTTPAuthorizationCredentials | None = Depends(bearer), pf: Platform = Depends(platform)
) -> Principal:
    """Async (no thread hop on the ingest path); the token lookup is cached for 5 s."""
    if creds is None or not creds.credentials:
        raise _unauthorized("missing bearer token")
    found = lookup(pf, creds.credentials)
    if found is None:
        raise _unauthorized("unknown token")
    rid, sub, role, enabled = found
    if not enabled:
        raise HTTPException(status_code=403, detail=f"credential {rid} is disabled")
    return Principal(id=rid, substation_id=sub, role=role)


async def require_admin(
    creds: HTTPAuthorizationCredentials | None = Depends(bearer), pf: Platform = Depends(platform)
) -> None:
    """Operator routes (and the exports that carry customer data): the admin token is required,
    always. It is ``GLA_ADMIN_TOKEN`` or the one the platform made at first start
    (:mod:`platform_api.core.admin`); there is no open mode."""
    if creds is None or not creds.credentials:
        raise _unauthorized("missing admin token")
    want = pf.admin_token
    if not want or not hmac.compare_digest(creds.credentials.encode(), want.encode()):
        if lookup(pf, creds.credentials) is not None:
            raise HTTPException(status_code=403, detail="this credential may not use operator routes")
        raise _unauthorized("unknown token")


async def is_admin(
    creds: HTTPAuthorizationCredentials | None = Depends(bearer), pf: Platform = Depends(platform)
) -> bool:
    """The optional credential of the routes that anyone may read but whose customer data
    (accounts, addresses: :mod:`platform_api.services.redact`) only the operator sees: True for
    the admin token, False without a credential or with another known one (a receiver's or a
    platform's), 401 for an unknown token (a mistyped one is said, not silently read as none)."""
    if creds is None or not creds.credentials:
        return False
    want = pf.admin_token
    if want and hmac.compare_digest(creds.credentials.encode(), want.encode()):
        return True
    if lookup(pf, creds.credentials) is None:
        raise _unauthorized("unknown token")
    return False


PF = Annotated[Platform, Depends(platform)]
#: True when the caller holds the admin credential: answers carry customer data only then
Admin = Annotated[bool, Depends(is_admin)]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")]
HubIdQ = Annotated[int | None, Query(ge=0, le=2**32 - 1, description="filter by hub id")]
SubQ = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._:/@-]+$", description="filter by substation")]

MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)


def session(pf: PF) -> Iterator[Session]:
    with pf.db.session() as s:
        yield s


DB = Annotated[Session, Depends(session)]


def invalid(loc: list, msg: str, type_: str = "value_error") -> RequestValidationError:
    """A 422 in FastAPI's format naming ``loc``."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type_, "input": None}])


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} not found")


def parse_time(value: str | None, loc: list) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(loc, "not an ISO 8601 time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    try:
        t = t.astimezone(UTC)
    except (OverflowError, ValueError):
        raise invalid(loc, "time out of range") from None
    if not MIN_TIME <= t <= MAX_TIME:
        raise invalid(loc, "time must lie between 2000 and 2200")
    return t


@overload
def check_time(t: datetime, loc: list) -> datetime: ...
@overload
def check_time(t: None, loc: list) -> None: ...
@overload
def check_time(t: datetime | None, loc: list) -> datetime | None: ...
def check_time(t: datetime | None, loc: list) -> datetime | None:
    """`t` in UTC (naive times read as UTC), or None for None; 422 naming `loc` when out of range."""
    if t is None:
        return None
    try:
        t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise invalid(loc, "time out of range") from None
    if not MIN_TIME <= t <= MAX_TIME:
        raise invalid(loc, "time must lie between 2000 and 2200")
    return t


def page(rows: list[Any]) -> list[Any]:
    return rows
