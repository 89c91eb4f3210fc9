"""Slots and times (docs/air-interface.md section 11)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from dsp.air import params as P

SLOT_S = P.SLOT_S
SLOTS_PER_DAY = int(round(86400 / SLOT_S))  # 21,600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def slot_of(t: datetime) -> int:
    """The slot a burst whose chip 0 is centred at ``t`` was sent in (nominal start 0.25 s in,
    so the nearest slot start + 0.25 s wins; tolerates +-2 s of clock error)."""
    return int(math.floor((aware(t).timestamp() - P.SLOT_START_OFFSET_S) / SLOT_S + 0.5))


def slot_floor(t: datetime) -> int:
    """The slot containing time ``t`` (floor(unix/4))."""
    return int(math.floor(aware(t).timestamp() / SLOT_S))


def slot_start(slot: int) -> datetime:
    return EPOCH + timedelta(seconds=slot * SLOT_S)


def iso(t: datetime | None) -> str | None:
    return None if t is None else aware(t).isoformat().replace("+00:00", "Z")
