"""Import of AMI interval data (CSV, the format of :mod:`platform_api.theft.ami_csv`) into
``ami_readings``: one row per meter and interval end, the input of the theft analysis next to the
scheduled reports' readings.

The whole file is checked before anything is written (a rejected file stores nothing); a reading
already stored with the same values is left alone and one with other values is replaced, so
uploading the same file again changes nothing. Meter ids must be the Inventory's (uint32); readings
of meters not in the Inventory yet are stored and listed in the answer.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from ..models import AmiReading, ImportRun, Meter
from ..theft import AmiCsvError, AmiData, read_ami_csv_text
from .clock import utcnow
from .imports import ImportProblem, sha

MIN_TIME_S = 946_684_800  # 2000-01-01, as for every other time the platform accepts
MAX_TIME_S = 7_258_118_400  # 2200-01-01
CHUNK = 900


def _where(data: AmiData, k: int, column: str) -> list:
    line = int(data.line[k]) if data.line is not None else None
    return ["body"] + ([f"line {line}"] if line is not None else []) + [column]


def parse(text: str, *, assume_utc: bool = False) -> tuple[AmiData, np.ndarray]:
    """The readings and their meter ids as integers; :class:`ImportProblem` names line and column."""
    try:
        data = read_ami_csv_text(text, assume_utc=assume_utc)
    except AmiCsvError as e:
        loc = ["body"] + ([f"line {e.line}"] if e.line is not None else []) + ([e.column] if e.column else [])
        raise ImportProblem(loc, str(e)) from None
    if len(data) == 0:
        raise ImportProblem(["body"], "no readings after the header line")
    ids = np.zeros(len(data), dtype=np.int64)
    for k, mid in enumerate(data.meter_id):
        if not (mid.isascii() and mid.isdigit() and len(mid) <= 10 and int(mid) < 2**32):
            raise ImportProblem(
                _where(data, k, "meter_id"),
                f"meter id {mid[:40]!r} is not an Inventory meter id (an integer 0..4294967295)",
            )
        ids[k] = int(mid)
    bad = np.flatnonzero((data.time_s < MIN_TIME_S) | (data.time_s >= MAX_TIME_S))
    if bad.size:
        raise ImportProblem(
            _where(data, int(bad[0]), "timestamp"), f"time {int(data.time_s[bad[0]])} must lie between 2000 and 2200"
        )
    return data, ids


def store(s: Session, data: AmiData, ids: np.ndarray, *, raw: bytes, substation_id: str) -> dict:
    """Upsert the readings in the caller's transaction; returns the counts of the answer."""
    now = utcnow()
    digest = sha(raw)
    run = ImportRun(at=now, format="ami_csv", substation_id=substation_id, sha256=digest, counts={})
    s.add(run)
    s.flush()
    t_lo, t_hi = int(data.time_s.min()), int(data.time_s.max())
    meters = sorted({int(x) for x in ids})
    stored: dict[tuple[int, int], tuple[int, float, float, float]] = {}
    for i in range(0, len(meters), CHUNK):
        q = select(
            AmiReading.id,
            AmiReading.meter_id,
            AmiReading.measurement_time_s,
            AmiReading.v_rms,
            AmiReading.i_rms,
            AmiReading.power_factor,
        ).where(AmiReading.meter_id.in_(meters[i : i + CHUNK]), AmiReading.measurement_time_s.between(t_lo, t_hi))
        for rid, mid, t, v, c, p in s.execute(q).all():
            stored[(mid, t)] = (rid, v, c, p)
    new, changed, same = [], [], 0
    for mid, t, v, c, p in zip(
        ids.tolist(), data.time_s.tolist(), data.v_rms.tolist(), data.i_rms.tolist(), data.pf.tolist()
    ):
        old = stored.get((mid, t))
        if old is None:
            new.append(
                {
                    "meter_id": mid,
                    "measurement_time_s": t,
                    "v_rms": v,
                    "i_rms": c,
                    "power_factor": p,
                    "import_id": run.id,
                }
            )
        elif old[1:] != (v, c, p):
            changed.append({"id": old[0], "v_rms": v, "i_rms": c, "power_factor": p, "import_id": run.id})
        else:
            same += 1
    for i in range(0, len(new), 5000):
        s.execute(insert(AmiReading), new[i : i + 5000])
    if changed:
        s.execute(update(AmiReading), changed)
    known: set[int] = set()
    for i in range(0, len(meters), CHUNK):
        known.update(s.scalars(select(Meter.meter_id).where(Meter.meter_id.in_(meters[i : i + CHUNK]))).all())
    unknown = [m for m in meters if m not in known]
    counts = {
        "rows": len(data),
        "inserted": len(new),
        "updated": len(changed),
        "unchanged": same,
        "meters": len(meters),
        "unknown_meters": len(unknown),
    }
    run.counts = counts
    return {
        "import_id": run.id,
        "sha256": digest,
        **{k: v for k, v in counts.items() if k != "unknown_meters"},
        "unknown_meter_ids": unknown[:100],
        "first_time_s": t_lo,
        "last_time_s": t_hi,
    }


def reading_dict(r: AmiReading) -> dict:
    return {
        "meter_id": r.meter_id,
        "measurement_time_s": r.measurement_time_s,
        "v_rms": r.v_rms,
        "i_rms": r.i_rms,
        "power_factor": r.power_factor,
        "import_id": r.import_id,
    }
