"""Dependencies and small helpers shared by the routes."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Iterator, Optional

from fastapi import Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from ..core.security import platform, principal, require_admin  # noqa: F401  (re-exported)
from ..services.context import Platform

PF = Annotated[Platform, Depends(platform)]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")]
HubIdQ = Annotated[Optional[int], Query(ge=0, le=2**32 - 1, description="filter by hub id")]
SubQ = Annotated[Optional[str], Query(max_length=64, pattern=r"^[A-Za-z0-9._:/@-]+$", description="filter by substation")]

MIN_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_TIME = datetime(2200, 1, 1, tzinfo=timezone.utc)


def session(pf: PF) -> Iterator[Session]:
    with pf.db.session() as s:
        yield s


DB = Annotated[Session, Depends(session)]


def invalid(loc: list, msg: str, type_: str = "value_error") -> RequestValidationError:
    """A 422 in FastAPI's format naming ``loc``."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type_, "input": None}])


def csv_text(raw: bytes) -> str:
    """The text of a posted CSV body (UTF-8, an optional BOM); 422 on other encodings or NULs."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise invalid(["body"], "the CSV must be UTF-8") from None
    if "\x00" in text:
        raise invalid(["body"], "NUL characters are not allowed")
    return text


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} not found")


def parse_time(value: Optional[str], loc: list) -> Optional[datetime]:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(loc, "not an ISO 8601 time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    try:
        t = t.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise invalid(loc, "time out of range") from None
    if not MIN_TIME <= t <= MAX_TIME:
        raise invalid(loc, "time must lie between 2000 and 2200")
    return t


def check_time(t: Optional[datetime], loc: list) -> Optional[datetime]:
    if t is None:
        return None
    try:
        t = t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    except (OverflowError, ValueError):
        raise invalid(loc, "time out of range") from None
    if not MIN_TIME <= t <= MAX_TIME:
        raise invalid(loc, "time must lie between 2000 and 2200")
    return t


def page(rows: list[Any]) -> list[Any]:
    return rows
