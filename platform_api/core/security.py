"""Credentials: bearer tokens per receiver / substation platform, and the admin token.

Tokens are random strings handed out once (``POST /api/v1/receivers``) or listed in the receivers
file (``GLA_RECEIVERS_FILE``); the database keeps only their SHA-256. A missing or unknown token
is 401; a known token used beyond its rights (another substation, another receiver id, a disabled
credential, the wrong role) is 403.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Optional

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update

from ..models import Receiver
from ..services.clock import utcnow
from ..services.context import Platform
from ..services.ingest import Principal

bearer = HTTPBearer(auto_error=False, description="receiver, platform or admin token")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "gla_" + secrets.token_urlsafe(32)


async def platform(request: Request) -> Platform:
    return request.app.state.platform


def _unauthorized(msg: str) -> HTTPException:
    return HTTPException(status_code=401, detail=msg, headers={"WWW-Authenticate": "Bearer"})


def lookup(pf: Platform, token: str) -> Optional[tuple[str, str, str, bool]]:
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


def authenticate(pf: Platform, authorization: Optional[str]) -> Principal:
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


async def principal(creds: Optional[HTTPAuthorizationCredentials] = Depends(bearer),
                    pf: Platform = Depends(platform)) -> Principal:
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


async def require_admin(creds: Optional[HTTPAuthorizationCredentials] = Depends(bearer),
                  pf: Platform = Depends(platform)) -> None:
    """Operator routes: open when no ``GLA_ADMIN_TOKEN`` is configured (development), else the
    admin token is required."""
    want = pf.settings.admin_token
    if not want:
        return
    if creds is None or not creds.credentials:
        raise _unauthorized("missing admin token")
    if not hmac.compare_digest(creds.credentials, want):
        if lookup(pf, creds.credentials) is not None:
            raise HTTPException(status_code=403, detail="this credential may not use operator routes")
        raise _unauthorized("unknown token")


def load_receivers_file(path: str) -> list[dict]:
    """JSON list of {receiver_id, substation_id, token[, role]} or a CSV with those columns."""
    p = Path(path)
    text = p.read_text()
    if p.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        data = json.loads(text)
        rows = data["receivers"] if isinstance(data, dict) else data
    out = []
    for i, r in enumerate(rows):
        for k in ("receiver_id", "substation_id", "token"):
            if not r.get(k):
                raise ValueError(f"{path}: entry {i} lacks {k}")
        out.append({"receiver_id": str(r["receiver_id"]), "substation_id": str(r["substation_id"]),
                    "token": str(r["token"]), "role": str(r.get("role") or "receiver")})
    return out
