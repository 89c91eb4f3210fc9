"""Credentials: bearer tokens per receiver / substation platform, and the admin token.

Tokens are random strings handed out once (``POST /api/v1/receivers``) or listed in the receivers
file (``GLA_RECEIVERS_FILE``); the database keeps only their SHA-256. A missing or unknown token
is 401; a known token used beyond its rights (another substation, another receiver id, a disabled
credential, the wrong role) is 403. The request dependencies that check them are in
:mod:`platform_api.api.deps`; this module only makes, hashes and loads tokens.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
from pathlib import Path


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "gla_" + secrets.token_urlsafe(32)


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
        out.append(
            {
                "receiver_id": str(r["receiver_id"]),
                "substation_id": str(r["substation_id"]),
                "token": str(r["token"]),
                "role": str(r.get("role") or "receiver"),
            }
        )
    return out
