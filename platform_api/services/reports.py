"""Scheduled reports: segments reassembled into one report (first counter = counter - seg_index),
the readings stored per meter, each meter's last values. Shared by both paths of ingest, ORM-free
(``conn`` as in :mod:`.ingest_rows`); what a report changes on its hub is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update

from dsp.air import messages as M

from ..models import Meter, Reading, Report
from .context import Platform
from .decode import Reject

_R = cast(Table, Report.__table__)
_MT = cast(Table, Meter.__table__)

REPORT_OF = select(
    _R.c.id, _R.c.seg_count, _R.c.received_mask, _R.c.complete, _R.c.measurement_time_s, _R.c.slot, _R.c.readings
).where(
    _R.c.hub_id == bindparam("hub_id"),
    _R.c.key_epoch == bindparam("key_epoch"),
    _R.c.first_counter == bindparam("first_counter"),
)
REPORT_INSERT = insert(_R).returning(_R.c.id)
REPORT_UPDATE = update(_R).where(_R.c.id == bindparam("where_id"))  # SET: the columns given
READINGS_INSERT = insert(cast(Table, Reading.__table__))
METER_UPDATE = update(_MT).where(_MT.c.meter_id == bindparam("where_meter_id"))  # SET: the columns given
TAN = select(_MT.c.tan_index, _MT.c.meter_id).where(_MT.c.hub_id == bindparam("hub_id"), _MT.c.active.is_(True))


@dataclass
class StoredReport:
    id: int
    first_counter: int
    seg_count: int
    received_mask: int
    complete: bool
    measurement_time_s: int
    slot: int
    readings: list

    def answer(self) -> dict:
        """The ``report`` of the ingest answer."""
        return {
            "report_id": self.id,
            "first_counter": self.first_counter,
            "seg_count": self.seg_count,
            "segments_received": bin(self.received_mask).count("1"),
            "complete": self.complete,
            "measurement_time_s": self.measurement_time_s,
        }


def first_counter(header) -> int:
    """Segments never straddle a key switch (section 13), so no counter wraps within a report."""
    return header.counter - header.seg_index


def tan_map(conn, pf: Platform, hub_id: int, version: int) -> dict[int, int]:
    """tan_index -> meter_id of the hub's active TAN, cached per TAN version (exact across
    processes: the version is on the hub row, which the caller has just read)."""
    hit = pf.tan_cache.get(hub_id)
    if hit is not None and hit[0] == version:
        return hit[1]
    m = dict(conn.execute(TAN, {"hub_id": hub_id}).all())
    if len(pf.tan_cache) > 100_000:
        pf.tan_cache.clear()
    pf.tan_cache[hub_id] = (version, m)
    return m


def segment_of(conn, hub_id: int, key_epoch: int, header, msg: M.ScheduledReport) -> StoredReport | None:
    """The report an arriving segment belongs to (None: a new report), checking that it agrees with
    the segments already in (else :class:`Reject` ``segment``)."""
    if header.seg_count == 1:
        return None  # a one-frame report: its counter is new, so is the report
    if header.counter < header.seg_index:
        raise Reject(
            "segment", f"segment {header.seg_index} at counter {header.counter}: segments never wrap (section 13)"
        )
    first = first_counter(header)
    row = conn.execute(REPORT_OF, {"hub_id": hub_id, "key_epoch": key_epoch, "first_counter": first}).first()
    if row is None:
        return None
    rep = StoredReport(row[0], first, row[1], row[2], bool(row[3]), row[4], row[5], list(row[6] or []))
    if rep.seg_count != header.seg_count:
        raise Reject(
            "segment",
            f"segment {header.seg_index} says {header.seg_count} segments, the report "
            f"(first counter {first}) has {rep.seg_count}",
        )
    if rep.measurement_time_s != msg.measurement_time_s:
        raise Reject(
            "segment",
            f"segment {header.seg_index} has measurement time {msg.measurement_time_s}, "
            f"the report has {rep.measurement_time_s}",
        )
    return rep


def store(
    conn,
    pf: Platform,
    hub_id: int,
    tan_version: int,
    header,
    msg: M.ScheduledReport,
    rep: StoredReport | None,
    *,
    slot: int,
    arrival: datetime,
    sub: str,
    key_epoch: int,
) -> StoredReport:
    """Add one segment (the ``rep`` from :func:`segment_of`) and its readings."""
    meters = tan_map(conn, pf, hub_id, tan_version)
    rows = [
        {
            "tan_index": r.tan_index,
            "meter_id": meters.get(r.tan_index),
            "v_rms": r.v_rms,
            "i_rms": r.i_rms,
            "power_factor": r.power_factor,
        }
        for r in msg.readings
    ]
    bit = 1 << header.seg_index
    if rep is None:
        complete = header.seg_count == 1
        rep = StoredReport(
            0,
            first_counter(header),
            header.seg_count,
            bit,
            complete,
            msg.measurement_time_s,
            slot - header.seg_index,
            sorted(rows, key=lambda r: r["tan_index"]),
        )
        rep.id = conn.execute(
            REPORT_INSERT,
            {
                "hub_id": hub_id,
                "key_epoch": key_epoch,
                "first_counter": rep.first_counter,
                "seg_count": rep.seg_count,
                "received_mask": rep.received_mask,
                "complete": complete,
                "measurement_time_s": rep.measurement_time_s,
                "slot": rep.slot,
                "readings": rep.readings,
                "first_arrival_utc": arrival,
                "completed_at": arrival if complete else None,
            },
        ).scalar_one()
    else:
        rep.received_mask |= bit
        rep.readings = sorted(rep.readings + rows, key=lambda r: r["tan_index"])
        vals = {"where_id": rep.id, "received_mask": rep.received_mask, "readings": rep.readings}
        if rep.received_mask == (1 << rep.seg_count) - 1 and not rep.complete:
            rep.complete = True
            vals.update(complete=True, completed_at=arrival)
        conn.execute(REPORT_UPDATE, vals)
    if rows:
        conn.execute(
            READINGS_INSERT,
            [
                {
                    "report_id": rep.id,
                    "substation_id": sub,
                    "hub_id": hub_id,
                    "measurement_time_s": msg.measurement_time_s,
                    **r,
                }
                for r in rows
            ],
        )
        ups = [
            {
                "where_meter_id": r["meter_id"],
                "last_seen_at": arrival,
                "last_v_rms": r["v_rms"],
                "last_i_rms": r["i_rms"],
                "last_power_factor": r["power_factor"],
            }
            for r in rows
            if r["meter_id"] is not None
        ]
        if ups:
            conn.execute(METER_UPDATE, ups)
    return rep
