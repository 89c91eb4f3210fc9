"""The theft analysis run by the Computing Platform (issue [5/6]).

For each service transformer of the Grid Map (one TAN per phase with a Remote Hub), the V/I series
of its active meters are assembled from the scheduled reports' readings (``readings``) and the AMI
interval data (``ami_readings``; an AMI reading replaces a report reading of the same meter and
minute), snapped to the minute. Meter metadata come from the Inventory: phase from the hub's map
phase, coordinates (the transformer's when the meter has none), account, address, service length.
The analysis follows the transformer's ``topology`` (``radial`` when unset; ``bus``; ``feeder``).

Work orders suppress the anomalies they explain (:func:`platform_api.theft.theft_alerts`); every
anomaly is kept as a :class:`TheftFinding` (``alert`` or ``suppressed``), and each alert becomes one
``theft_alert`` event, published through the event log (SSE, webhooks, concentrator) like every
other event. Publication is deduplicated: an anomaly found again (same ``alert_id``), or another
one of the same kind on the same meters while that event is open, publishes nothing. An alert that
a work order recorded later explains is withdrawn (its event's status becomes ``withdrawn``).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import AmiReading, Event, Hub, Meter, Reading, TheftFinding, Transformer, WorkOrderRow
from ..theft import (
    AnomalyType,
    MeterInfo,
    TanAnalysis,
    TanSeries,
    WorkKind,
    WorkOrder,
    analyse_bus,
    analyse_feeder,
    analyse_radial,
    theft_alerts,
)
from ..theft.workorders import TheftAlert
from .changes import OPEN, find_open, set_status, upsert_event
from .clock import iso, utcnow
from .context import Platform

ANALYSES: dict[str, Callable[[TanSeries], TanAnalysis]] = {
    "radial": analyse_radial,
    "bus": analyse_bus,
    "feeder": analyse_feeder,
}
SNAP_S = 60  # readings of one minute belong to one time step (meters' clocks agree within seconds)
MIN_METERS = 2
MIN_TIMES = 10
CHUNK = 900
_run_lock = threading.Lock()  # one analysis at a time per process; across processes: record() locks the area


class UnknownTransformer(LookupError):
    pass


# -- work orders -----------------------------------------------------------------------------------
def work_order_dict(w: WorkOrderRow) -> dict:
    return {
        "order_id": w.id,
        "kind": w.kind,
        "start_at": iso(w.start_at),
        "end_at": iso(w.end_at),
        "meter_ids": list(w.meter_ids or []),
        "transformer_ids": list(w.transformer_ids or []),
        "explains": w.explains,
        "note": w.note,
        "status": w.status,
        "created_at": iso(w.created_at),
        "cancelled_at": iso(w.cancelled_at),
    }


def library_order(w: WorkOrderRow) -> WorkOrder:
    return WorkOrder(
        w.id,
        WorkKind(w.kind),  # as WorkOrder.__post_init__ converts it
        int(w.start_at.timestamp()),
        int(w.end_at.timestamp()),
        meter_ids=tuple(str(m) for m in w.meter_ids or ()),
        transformer_ids=tuple(w.transformer_ids or ()),
        note=w.note or "",
        explains=None if w.explains is None else frozenset(AnomalyType[x.upper()] for x in w.explains),
    )


# -- areas and their series ------------------------------------------------------------------------
@dataclass
class Area:
    transformer_id: str
    substation_id: str | None
    topology: str
    lat: float | None
    lon: float | None
    meters: list[tuple[Meter, Hub]] = field(default_factory=list)


def areas(s: Session, transformer_id: str | None = None) -> list[Area]:
    """The service transformers with hubs, each with its active meters (in TAN order)."""
    qh = select(Hub).where(Hub.transformer_id.is_not(None))
    if transformer_id is not None:
        if (
            s.get(Transformer, transformer_id) is None
            and s.scalar(select(func.count()).select_from(Hub).where(Hub.transformer_id == transformer_id)) == 0
        ):
            raise UnknownTransformer(transformer_id)
        qh = qh.where(Hub.transformer_id == transformer_id)
    hubs = {h.hub_id: h for h in s.scalars(qh.order_by(Hub.hub_id)).all()}
    trs = {
        t.id: t
        for t in s.scalars(
            select(Transformer).where(Transformer.id.in_(sorted({h.transformer_id for h in hubs.values()}) or ["-"]))
        ).all()
    }
    out: dict[str, Area] = {}
    for h in hubs.values():
        tid = h.transformer_id
        assert tid is not None, "hubs selected with a transformer"
        t = trs.get(tid)
        if tid not in out:
            out[tid] = Area(
                tid,
                (t.substation_id if t else None) or h.substation_id,
                (t.topology if t else None) or "radial",
                t.lat if t else None,
                t.lon if t else None,
            )
    ids = list(hubs)
    for i in range(0, len(ids), CHUNK):
        for m in s.scalars(select(Meter).where(Meter.hub_id.in_(ids[i : i + CHUNK]), Meter.active.is_(True))).all():
            assert m.hub_id is not None, "selected by hub_id"
            h = hubs[m.hub_id]
            assert h.transformer_id is not None, "hubs selected with a transformer"
            out[h.transformer_id].meters.append((m, h))
    for a in out.values():
        a.meters.sort(
            key=lambda mh: (mh[1].hub_id, mh[0].tan_index if mh[0].tan_index is not None else 999, mh[0].meter_id)
        )
    return [out[k] for k in sorted(out)]


def meter_info(area: Area, m: Meter, h: Hub) -> MeterInfo:
    lat, lon = (m.lat, m.lon) if m.lat is not None and m.lon is not None else (area.lat, area.lon)
    return MeterInfo(
        str(m.meter_id),
        area.transformer_id,
        (h.map_phase or "a").lower(),
        account=m.account or "",
        address=m.address or "",
        lat=lat,
        lon=lon,
        service_length_m=m.service_length_m,
    )


@dataclass
class Assembled:
    series: TanSeries | None
    skipped: str | None
    imports: list[int]


def assemble(s: Session, area: Area, days: float) -> Assembled:
    """The area's series over the last ``days`` of its data (report readings, then AMI readings)."""
    ids = [m.meter_id for m, _ in area.meters]
    if len(ids) < MIN_METERS:
        return Assembled(None, f"{len(ids)} active meter(s); the analysis needs {MIN_METERS}", [])
    latest = 0
    for i in range(0, len(ids), CHUNK):
        part = ids[i : i + CHUNK]
        for model in (Reading, AmiReading):
            t = s.scalar(select(func.max(model.measurement_time_s)).where(model.meter_id.in_(part)))
            latest = max(latest, t or 0)
    if latest == 0:
        return Assembled(None, "no readings", [])
    since = latest - int(days * 86400)
    rows: list[tuple[str, int, float, float, float]] = []
    imports: set[int] = set()
    for i in range(0, len(ids), CHUNK):
        part = ids[i : i + CHUNK]
        rows += [
            (str(m), t, v, c, p)
            for m, t, v, c, p in s.execute(
                select(
                    Reading.meter_id, Reading.measurement_time_s, Reading.v_rms, Reading.i_rms, Reading.power_factor
                ).where(Reading.meter_id.in_(part), Reading.measurement_time_s >= since)
            ).all()
        ]
    for i in range(0, len(ids), CHUNK):
        part = ids[i : i + CHUNK]
        for m, t, v, c, p, imp in s.execute(
            select(
                AmiReading.meter_id,
                AmiReading.measurement_time_s,
                AmiReading.v_rms,
                AmiReading.i_rms,
                AmiReading.power_factor,
                AmiReading.import_id,
            )
            .where(AmiReading.meter_id.in_(part), AmiReading.measurement_time_s >= since)
            .order_by(AmiReading.measurement_time_s)
        ).all():
            rows.append((str(m), t, v, c, p))
            imports.add(imp)
    with_data = {r[0] for r in rows}
    infos = [meter_info(area, m, h) for m, h in area.meters if str(m.meter_id) in with_data]
    if len(infos) < MIN_METERS:
        return Assembled(None, f"{len(infos)} meter(s) with readings; the analysis needs {MIN_METERS}", [])
    series = TanSeries.from_readings(
        rows,
        infos,
        transformer_id=area.transformer_id,
        period_s=SNAP_S,
        transformer_lat=area.lat,
        transformer_lon=area.lon,
    )
    if series.n_times < MIN_TIMES:
        return Assembled(None, f"{series.n_times} time steps; the analysis needs {MIN_TIMES}", sorted(imports))
    return Assembled(series, None, sorted(imports))


# -- findings and events ---------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    """JSON-ready: numpy scalars and arrays to Python, non-finite floats to None."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _utc(t: int | None) -> str | None:
    return None if t is None else iso(datetime.fromtimestamp(int(t), tz=UTC))


def alert_details(alert: TheftAlert, area: Area, analysis: str) -> dict:
    """The ``details`` of a theft_alert event: the library's alert with integer meter ids, each
    meter's hub, TAN index and phase, and the first meter's account, address and coordinates."""
    d = _plain(alert.to_dict())
    where = {m.meter_id: (m, h) for m, h in area.meters}
    for m in d["meters"]:
        m["meter_id"] = int(m["meter_id"])
        mh = where.get(m["meter_id"])
        m.update(
            hub_id=mh[1].hub_id if mh else None,
            tan_index=mh[0].tan_index if mh else None,
            phase=mh[1].map_phase if mh else None,
        )
    first = d["meters"][0] if d["meters"] else {}
    d.update(
        meter_ids=[m["meter_id"] for m in d["meters"]],
        analysis=analysis,
        substation_id=area.substation_id,
        account=first.get("account") or None,
        address=first.get("address") or None,
        lat=first.get("lat"),
        lon=first.get("lon"),
        detected_at=_utc(alert.time_s),
        started_at=_utc(alert.start_time_s),
        unaccounted_w=round(float(alert.unaccounted_kw) * 1000.0, 1),
    )
    return d


def _event_key(d: dict) -> str:
    key = f"theft:{d['transformer_id']}:{d['kind']}:{'+'.join(str(m) for m in d['meter_ids'])}"
    if len(key) > 160:
        key = key[:143] + "#" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return key


def _title(d: dict) -> str:
    who = ", ".join(str(m) for m in d["meter_ids"]) or "-"
    at = f" at {d['address']}" if d.get("address") else ""
    power = f", about {d['unaccounted_kw']:.1f} kW unaccounted" if d.get("unaccounted_kw") else ""
    return (
        f"possible theft ({d['kind'].replace('_', ' ')}): meter {who}{at} on transformer {d['transformer_id']}{power}"
    )[:300]


def _finding(s: Session, d: dict, status: str, order_ids: list[str]) -> TheftFinding:
    now = utcnow()
    f = s.scalars(select(TheftFinding).where(TheftFinding.alert_id == d["alert_id"])).first()
    vals = dict(
        status=status,
        kind=d["kind"],
        detail=d["detail"],
        analysis=d["analysis"],
        transformer_id=d["transformer_id"],
        substation_id=d["substation_id"],
        meter_ids=d["meter_ids"],
        confidence=float(d["confidence"]),
        unaccounted_kw=float(d["unaccounted_kw"] or 0.0),
        detected_time_s=int(d["time_s"]),
        start_time_s=d["start_time_s"],
        alert=d,
        work_order_ids=order_ids,
        last_seen_at=now,
    )
    if f is None:
        f = TheftFinding(alert_id=d["alert_id"], first_seen_at=now, **vals)
        s.add(f)
    else:
        for k, v in vals.items():
            setattr(f, k, v)
    return f


def record(
    s: Session,
    pf: Platform,
    area: Area,
    analysis: str,
    alerts: list[TheftAlert],
    suppressed: list[tuple[TheftAlert, list[str]]],
    imports: list[int],
) -> dict:
    """Store the findings of one area and publish the new alerts (in the caller's transaction)."""
    # runs in other processes (several platform workers on PostgreSQL) record the same area one
    # after the other: the second sees the first's findings instead of clashing on alert_id
    s.execute(select(Transformer.id).where(Transformer.id == area.transformer_id).with_for_update())
    out = {"alerts_new": 0, "alerts_known": 0, "suppressed": len(suppressed), "withdrawn": 0}
    for alert in alerts:
        d = alert_details(alert, area, analysis)
        f = _finding(s, d, "alert", [])
        ev = s.get(Event, f.event_id) if f.event_id else None
        if ev is not None and ev.status != "withdrawn":
            out["alerts_known"] += 1
            continue
        key = _event_key(d)
        ev = find_open(s, key)
        if ev is not None:
            out["alerts_known"] += 1
        else:
            t0 = d["start_time_s"] if d["start_time_s"] is not None else d["time_s"]
            ev = upsert_event(
                s,
                pf,
                type="theft_alert",
                key=key,
                confidence=d["confidence"],
                title=_title(d),
                details=d,
                evidence=[f"theft:{d['alert_id']}"] + [f"import:{i}" for i in imports],
                subject_type="meter",
                subject_id=d["meter_ids"][0] if d["meter_ids"] else None,
                substation_id=area.substation_id,
                status="open",
                occurred_at=datetime.fromtimestamp(int(t0), tz=UTC),
            )
            out["alerts_new"] += 1
        f.event_id = ev.id
    for alert, order_ids in suppressed:
        d = alert_details(alert, area, analysis)
        f = _finding(s, d, "suppressed", order_ids)
        ev = s.get(Event, f.event_id) if f.event_id else None
        if ev is not None and ev.status in OPEN:
            set_status(s, pf, ev, "withdrawn", details={"work_order_ids": order_ids})
            out["withdrawn"] += 1
    return out


# -- the run ---------------------------------------------------------------------------------------
def _analyse_area(pf: Platform, area: Area, days: float, orders: list[WorkOrder], margin_s: int) -> dict:
    res = {
        "transformer_id": area.transformer_id,
        "analysis": area.topology,
        "meters": len(area.meters),
        "times": 0,
        "first_time_s": None,
        "last_time_s": None,
        "anomalies": 0,
        "alerts_new": 0,
        "alerts_known": 0,
        "suppressed": 0,
        "withdrawn": 0,
        "warnings": [],
        "skipped": None,
    }
    with pf.db.session() as s:
        got = assemble(s, area, days)
    if got.series is None:
        res["skipped"] = got.skipped
        return res
    series = got.series
    res.update(
        meters=series.n_meters,
        times=series.n_times,
        first_time_s=int(series.time_s[0]),
        last_time_s=int(series.time_s[-1]),
    )
    try:
        result = ANALYSES[area.topology](series)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as e:
        res["skipped"] = f"analysis failed: {e}"[:300]
        return res
    res["anomalies"] = len(result.anomalies)
    res["warnings"] = [str(w)[:300] for w in result.warnings]
    mine = [o for o in orders if area.transformer_id in o.transformer_ids or set(o.meter_ids) & set(series.meter_ids)]
    directory = {m.meter_id: m for m in series.meters}
    where = {area.transformer_id: (area.lat, area.lon)} if area.lat is not None and area.lon is not None else {}
    alerts, gone = theft_alerts(result.anomalies, mine, directory=directory, transformers=where, margin_s=margin_s)
    suppressed = [(theft_alerts([a], (), directory=directory, transformers=where)[0][0], ids) for a, ids in gone]
    with pf.db.write() as s:
        res.update(record(s, pf, area, area.topology, alerts, suppressed, got.imports))
    return res


def run(pf: Platform, *, transformer_id: str | None = None, days: float = 14.0, margin_s: int = 86400) -> dict:
    """Analyse every service transformer (or one); see the module doc. Raises
    :class:`UnknownTransformer` for an id the Grid Map does not know."""
    with _run_lock:
        with pf.db.session() as s:
            found = areas(s, transformer_id)
            orders = [
                library_order(w) for w in s.scalars(select(WorkOrderRow).where(WorkOrderRow.status == "active")).all()
            ]
        results = [_analyse_area(pf, a, days, orders, margin_s) for a in found]
    tot = {k: sum(r[k] for r in results) for k in ("alerts_new", "alerts_known", "suppressed", "withdrawn")}
    return {
        "transformers": len(results),
        "analysed": sum(1 for r in results if r["skipped"] is None),
        **tot,
        "results": results,
    }


def finding_dict(f: TheftFinding) -> dict:
    return {
        "alert_id": f.alert_id,
        "status": f.status,
        "kind": f.kind,
        "detail": f.detail,
        "analysis": f.analysis,
        "transformer_id": f.transformer_id,
        "substation_id": f.substation_id,
        "meter_ids": list(f.meter_ids),
        "confidence": round(float(f.confidence), 6),
        "unaccounted_kw": f.unaccounted_kw,
        "detected_time_s": f.detected_time_s,
        "start_time_s": f.start_time_s,
        "work_order_ids": list(f.work_order_ids or []),
        "event_id": f.event_id,
        "first_seen_at": iso(f.first_seen_at),
        "last_seen_at": iso(f.last_seen_at),
        "alert": f.alert,
    }
