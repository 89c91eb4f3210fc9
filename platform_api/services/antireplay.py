"""Anti-replay window and key epochs of docs/air-interface.md section 13.

**Window.** Per hub and per key epoch the platform keeps the highest accepted counter ``H`` and a
64-bit map of the counters ``H, H-1, ..., H-63`` it accepted (bit ``i`` = counter ``H - i``), as
IPsec (RFC 4303 section 3.4.3) and DTLS (RFC 6347 section 4.1.2.6) do. A verified frame is

- ``new``: counter above ``H`` (the window slides up);
- ``late``: inside the window and its bit is clear (accepted once, the bit is set);
- ``seen``: inside the window and its bit is set (an identical frame is a *duplicate*, a copy
  from another receiver or an alert repeat; a different one is a *replay*);
- ``old``: at or below ``H - 64`` (a replay, unless identical to a stored message: a duplicate).

The window is about distinct messages: copies of one message (same counter, same frame) never
take a second bit.

**Key epochs.** A hub's current key is epoch ``key_epoch``. An operator installs the next key
ahead of time (``PUT /api/v1/hubs/{id}/next-key``); a frame that does not verify under the current
key is tried under the next one, and the first that verifies promotes it (epoch + 1, an empty
window: counters start again at 0). The old key and its window are kept for a grace period
(``GLA_KEY_GRACE_S``) so late copies of old-epoch messages are still accepted under the old
window's rule; after the grace a frame under the old key is a replay. Replacing the current key
(``PUT /api/v1/hubs/{id}`` or an import) also starts a new epoch, without grace. A key a hub used
before is never accepted again as its current or next key (its SHA-256 is kept in
``retired_keys``): a counter restarting at 0 under it would repeat nonces, and replays of its old
frames would find an empty window.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from dsp.air import params as P

from ..models import Hub
from .decode import Reject, open_sealed

WINDOW = P.REPLAY_WINDOW
_MASK = (1 << WINDOW) - 1

Verdict = Literal["new", "late", "seen", "old"]


def classify(highest: int | None, bitmap: int, counter: int) -> Verdict:
    """Where ``counter`` falls against the window (``highest`` None: nothing accepted yet)."""
    if highest is None or counter > highest:
        return "new"
    back = highest - counter
    if back >= WINDOW:
        return "old"
    return "seen" if bitmap >> back & 1 else "late"


def slide(highest: int | None, bitmap: int, counter: int) -> tuple[int, int]:
    """The window after accepting ``counter`` (its verdict was ``new`` or ``late``)."""
    if highest is None:
        return counter, 1
    if counter > highest:
        shift = counter - highest
        return counter, ((bitmap << shift) | 1) & _MASK if shift < WINDOW else 1
    return highest, bitmap | 1 << (highest - counter)


def to_db(bitmap: int) -> int:
    """The 64-bit map as a signed BIGINT (both SQLite and PostgreSQL store int64)."""
    return bitmap - (1 << 64) if bitmap >> 63 else bitmap


def from_db(value: int | None) -> int:
    return (value or 0) & _MASK


@dataclass
class Opened:
    """A frame verified under one of the hub's keys, and that key's window."""

    msg: object
    epoch: int
    role: Literal["current", "next", "previous"]
    highest: int | None
    bitmap: int


def open_frame(hub: Hub, frame: bytes, h, now: datetime) -> Opened:
    """Verify ``frame`` under the hub's current key, then its next key, then (within the grace)
    its previous key. Does not change the hub: the caller promotes a ``next`` with :func:`promote`."""
    assert hub.key_hex
    try:
        msg = open_sealed(frame, h, bytes.fromhex(hub.key_hex))
        return Opened(msg, hub.key_epoch, "current", hub.last_counter, from_db(hub.replay_bitmap))
    except Reject as first:
        if first.reason != "auth":
            raise
        err = first
    if hub.next_key_hex:
        try:
            msg = open_sealed(frame, h, bytes.fromhex(hub.next_key_hex))
            return Opened(msg, hub.key_epoch + 1, "next", None, 0)
        except Reject as e:
            if e.reason != "auth":
                raise
    if hub.prev_key_hex:
        try:
            msg = open_sealed(frame, h, bytes.fromhex(hub.prev_key_hex))
        except Reject as e:
            if e.reason != "auth":
                raise
        else:
            until = hub.prev_key_until
            if until is not None and now <= until:
                return Opened(
                    msg, hub.key_epoch - 1, "previous", hub.prev_last_counter, from_db(hub.prev_replay_bitmap)
                )
            raise Reject(
                "replay",
                f"counter {h.counter} of hub {h.hub_id} is sealed with its previous key (epoch "
                f"{hub.key_epoch - 1}), whose grace ended at {until.isoformat() if until else 'replacement'}",
            )
    raise err


class KeyReuse(ValueError):
    """A key this hub used before: installing it again would repeat (key, counter) nonces."""


def fingerprint(key_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(key_hex)).hexdigest()


def is_retired(hub: Hub, key_hex: str) -> bool:
    return fingerprint(key_hex) in (hub.retired_keys or [])


def _retire(hub: Hub, key_hex: str | None) -> None:
    if key_hex and not is_retired(hub, key_hex):
        hub.retired_keys = [*(hub.retired_keys or []), fingerprint(key_hex)]


def install_next(hub: Hub, key_hex: str) -> None:
    """Install the key the hub will switch to (replacing one not used yet)."""
    key_hex = key_hex.lower()
    if key_hex == hub.key_hex or is_retired(hub, key_hex):
        raise KeyReuse(f"hub {hub.hub_id} has already used this key: a next key must be new")
    hub.next_key_hex = key_hex


def promote(hub: Hub, now: datetime, grace_s: float) -> None:
    """The next key becomes current (epoch + 1, empty window); the old key and its window stay for
    ``grace_s`` seconds."""
    assert hub.next_key_hex
    _retire(hub, hub.key_hex)
    hub.prev_key_hex, hub.prev_last_counter, hub.prev_replay_bitmap = hub.key_hex, hub.last_counter, hub.replay_bitmap
    hub.prev_key_until = now + timedelta(seconds=grace_s)
    hub.key_hex, hub.next_key_hex = hub.next_key_hex, None
    hub.key_epoch += 1
    hub.last_counter, hub.replay_bitmap = None, 0


def replace_current(hub: Hub, key_hex: str) -> bool:
    """An operator's new current key (a replaced or compromised hub): when it differs from the
    current one, a new epoch with an empty window and no grace for the old key; True if changed.
    :class:`KeyReuse` for a key the hub used before."""
    key_hex = key_hex.lower()
    if hub.key_hex == key_hex:
        return False
    if is_retired(hub, key_hex):
        raise KeyReuse(f"hub {hub.hub_id} has already used this key: keys are never reused")
    if hub.key_hex:
        _retire(hub, hub.key_hex)
        hub.key_epoch = (hub.key_epoch or 0) + 1
    hub.key_hex = key_hex
    hub.last_counter, hub.replay_bitmap = None, 0
    hub.prev_key_hex = hub.prev_last_counter = hub.prev_replay_bitmap = hub.prev_key_until = None
    if hub.next_key_hex == key_hex:
        hub.next_key_hex = None
    return True


def accepted(hub: Hub, op: Opened, counter: int) -> None:
    """Record ``counter`` as accepted in the window of the epoch it came under."""
    highest, bitmap = slide(op.highest, op.bitmap, counter)
    if op.role == "previous":
        hub.prev_last_counter, hub.prev_replay_bitmap = highest, to_db(bitmap)
    else:
        hub.last_counter, hub.replay_bitmap = highest, to_db(bitmap)
