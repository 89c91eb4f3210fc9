"""Bundles refused for an unknown hub are decoded again once the hub's key arrives.

A frame from a hub the Inventory has no key for is stored with ``status: rejected, reason:
unknown_hub`` and answered 201 (the receiver delivered it correctly: retrying the post would not
help). When a key for that hub is entered later (an import, ``PUT /api/v1/hubs/{id}``), the
stored bundles of that hub that waited for it are decoded again, oldest arrival first (so the
counter window sees them in the order they were sent), exactly as a first post would be: their
rejection record is removed and the bundle row is written anew with the new outcome, keeping its
body, digest and first ``received_at``. A re-post of such a bundle then answers the new outcome
as an idempotent replay, which is how ``gla replay --post`` learns that they were decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import delete, select, update

from receiver.contracts.bundle import Bundle

from ..models import BundleRow, Hub, Rejection
from . import fullpath
from .context import Platform

log = logging.getLogger("gla.platform")


def redecode_unknown_hub(pf: Platform, hub_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Decode again the bundles refused for ``unknown_hub`` whose hub now has a key (only the
    hubs in ``hub_ids`` when given). Returns the new outcomes counted by status."""
    wanted = None if hub_ids is None else sorted(set(hub_ids))
    if wanted is not None and not wanted:
        return {}
    out: dict[str, int] = {}
    with pf.db.writer_lock(), pf.db.write() as s:
        q = (
            select(BundleRow)
            .join(Hub, Hub.hub_id == BundleRow.hub_id)
            .where(BundleRow.status == "rejected", BundleRow.reason == "unknown_hub", Hub.key_hex.is_not(None))
        )
        if wanted is not None:
            q = q.where(BundleRow.hub_id.in_(wanted))
        waiting = [
            (r.bundle_id, r.body, r.body_sha256, r.received_at)
            for r in s.scalars(q.order_by(BundleRow.arrival_utc, BundleRow.counter, BundleRow.bundle_id)).all()
        ]
        s.expunge_all()
        for bundle_id, body, digest, received_at in waiting:
            s.execute(delete(Rejection).where(Rejection.bundle_id == bundle_id))
            s.execute(delete(BundleRow).where(BundleRow.bundle_id == bundle_id))
            answer = fullpath.process(s, pf, Bundle.model_validate_json(body), body, digest)
            s.execute(update(BundleRow).where(BundleRow.bundle_id == bundle_id).values(received_at=received_at))
            out[answer["status"]] = out.get(answer["status"], 0) + 1
    if waiting:
        log.info("decoded again %d bundles that waited for their hub's key: %s", len(waiting), out)
    return out
