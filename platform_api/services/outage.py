"""Suspected outages from scheduled reports that do not arrive, and restoration.

A hub is *silent* when the last report it owed (by its policy's slots, or one report period after
its last report when it has no policy) has not arrived ``missed_grace_slots`` after its slot, and
nothing else has been heard from it since that slot (a hub that sent an alert or a restoration
after missing a report has power), and no restoration of its section has been reported since
(the miss belongs to an outage that is over).
Silent hubs are grouped by feeder section (hubs without a section: by feeder). A group with at
least ``outage_min_hubs`` silent hubs that are at least ``outage_min_fraction`` of the group's
expected hubs is a ``suspected_outage`` with confidence ``fraction * (1 - 2**-silent)``. Outage
alerts (last gasp) from hubs add to the same event with certainty per alerting hub.

When silent hubs of a section with an open outage are heard again, or a hub sends a restoration
alert, the outage is resolved and a ``restoration`` event names the outage interval (restoration
alerts carry the outage duration, so a restoration is reported even when the outage was too short
to miss a report).

The clock is the substation's *data time* (the latest arrival of any bundle), not the wall clock:
a receiver that stops posting does not make the whole substation look dark.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import BundleRow, Event, Hub, Section
from .changes import OPEN, change, publish, set_status, upsert_event
from .clock import iso, slot_floor, slot_start
from .context import Platform
from .provisioning import active_policies, effective_plan, last_due_slot, period_slots


def data_time(s: Session, substation_id: str) -> datetime | None:
    return s.scalar(select(func.max(BundleRow.arrival_utc)).where(BundleRow.substation_id == substation_id))


def group_key(hub: Hub) -> tuple[str, dict]:
    if hub.section_id:
        return f"outage:{hub.section_id}", {"section_id": hub.section_id}
    return (
        f"outage:{hub.substation_id}/f{hub.map_feeder}",
        {"section_id": None, "feeder": hub.map_feeder, "bus": hub.map_bus},
    )


def check_missed(s: Session, pf: Platform, substation_id: str, now: datetime | None = None) -> dict:
    now = now or data_time(s, substation_id)
    if now is None:
        return {"substation_id": substation_id, "now": None, "silent_hubs": [], "events": []}
    pol = pf.policy.get(s)
    now_slot = slot_floor(now)
    plan = effective_plan(s, pf, substation_id)
    default_period = period_slots(plan["reports_per_day"])
    policies = active_policies(s, substation_id, now)
    hubs = s.scalars(select(Hub).where(Hub.substation_id == substation_id, Hub.map_feeder.is_not(None))).all()
    restored = _restorations(s, substation_id)
    groups: dict[str, dict] = {}
    silent = []
    for hub in hubs:
        p = policies.get(hub.hub_id)
        if p is not None:
            due = last_due_slot(p, now_slot - pol.missed_grace_slots)
            if due is None:
                continue
            ok = hub.last_report_slot is not None and hub.last_report_slot >= due - 1
        elif hub.last_report_slot is not None:
            due = hub.last_report_slot + default_period
            ok = now_slot <= due + pol.missed_grace_slots
        else:
            continue
        if not ok and hub.last_seen_at is not None and slot_floor(hub.last_seen_at) > due:
            # heard after the report it missed (an alert, a restoration): powered, not silent
            ok = True
        key, info = group_key(hub)
        if not ok and key in restored and slot_floor(restored[key]) > due:
            # the report fell due during an outage of its section that has since been restored
            ok = True
        g = groups.setdefault(
            key,
            {
                **info,
                "expected": [],
                "silent": [],
                "due": [],
                "evidence": [],
                "feeder": hub.map_feeder,
                "bus": hub.map_bus,
            },
        )
        g["expected"].append(hub.hub_id)
        if not ok:
            g["silent"].append(hub.hub_id)
            g["due"].append(due)
            if hub.last_bundle_id:
                g["evidence"].append(hub.last_bundle_id)
            silent.append(hub.hub_id)
            if hub.status != "silent":
                hub.status = "silent"
    events = []
    for key, g in groups.items():
        n, m = len(g["silent"]), len(g["expected"])
        if n < pol.outage_min_hubs or n / m < pol.outage_min_fraction:
            continue
        conf = (n / m) * (1.0 - 2.0**-n)
        ev = _raise_outage(s, pf, key, g, conf, substation_id, slot_start(min(g["due"])))
        events.append(ev.id)
    return {
        "substation_id": substation_id,
        "now": iso(now),
        "now_slot": now_slot,
        "silent_hubs": sorted(silent),
        "events": events,
    }


def _restorations(s: Session, substation_id: str) -> dict[str, datetime]:
    """Outage group key -> time of its latest restoration."""
    rows = s.execute(
        select(Event.key, func.max(Event.occurred_at))
        .where(Event.substation_id == substation_id, Event.type == "restoration")
        .group_by(Event.key)
    ).all()
    return {"outage:" + k.split(":", 1)[1]: t for k, t in rows if k and ":" in k and t is not None}


def _raise_outage(
    s: Session, pf: Platform, key: str, g: dict, conf: float, substation_id: str | None, since: datetime
) -> Event:
    where = f"feeder section {g['section_id']}" if g.get("section_id") else f"feeder {g.get('feeder')}"
    existing = s.scalars(select(Event).where(Event.key == key, Event.status.in_(OPEN))).first()
    details = dict(existing.details) if existing is not None else {}
    alerting = set(details.get("alerting_hubs", []))
    silent = set(details.get("silent_hubs", [])) | set(g.get("silent", []))
    conf = max(conf, 1.0 - 0.2 ** len(alerting)) if alerting else conf
    if existing is not None:
        conf = max(conf, existing.confidence)
    details.update(
        {
            "section_id": g.get("section_id"),
            "feeder": g.get("feeder"),
            "bus": g.get("bus"),
            "silent_hubs": sorted(silent),
            "alerting_hubs": sorted(alerting),
            "expected_hubs": len(g.get("expected", [])) or details.get("expected_hubs"),
            "since": details.get("since") or iso(since),
        }
    )
    ev = upsert_event(
        s,
        pf,
        type="suspected_outage",
        key=key,
        confidence=conf,
        title=f"suspected outage of {where}: {len(silent)} hubs silent, {len(alerting)} outage alerts",
        details=details,
        evidence=g.get("evidence", []),
        subject_type="section" if g.get("section_id") else "feeder",
        subject_id=g.get("section_id") or f"{substation_id}/f{g.get('feeder')}",
        substation_id=substation_id,
        occurred_at=since,
    )
    if g.get("section_id") and conf >= pf.policy.get(s).act_for("suspected_outage"):
        sec = s.get(Section, g["section_id"])
        if sec is not None:
            change(
                s,
                sec,
                "energized",
                False,
                entity="section",
                entity_id=sec.id,
                cause="inference",
                evidence=ev.evidence,
                event_id=ev.id,
                substation_id=substation_id,
            )
    return ev


def outage_alert(s: Session, pf: Platform, hub: Hub, bundle_id: str, event_time: datetime) -> None:
    if hub.map_feeder is None:
        return
    key, info = group_key(hub)
    existing = s.scalars(select(Event).where(Event.key == key, Event.status.in_(OPEN))).first()
    alerting = set((existing.details or {}).get("alerting_hubs", [])) if existing else set()
    alerting.add(hub.hub_id)
    g = {**info, "feeder": hub.map_feeder, "bus": hub.map_bus, "evidence": [bundle_id], "silent": [], "expected": []}
    if existing is not None:
        existing.details = {**existing.details, "alerting_hubs": sorted(alerting)}
    else:
        # the first alert opens the event; _raise_outage reads alerting hubs from it
        g["silent"] = []
    ev = _raise_outage(s, pf, key, g, 1.0 - 0.2 ** len(alerting), hub.substation_id, event_time)
    ev.details = {**ev.details, "alerting_hubs": sorted(alerting)}


def heard(s: Session, pf: Platform, hub: Hub, bundle_id: str, at: datetime) -> None:
    """Any message from a silent hub: it is back; an open outage of its group may be over."""
    if hub.status != "silent":
        return
    hub.status = "active"
    if hub.map_feeder is None:
        return
    key, _ = group_key(hub)
    ev = s.scalars(select(Event).where(Event.key == key, Event.status.in_(OPEN))).first()
    if ev is None:
        return
    d = dict(ev.details)
    back = set(d.get("restored_hubs", [])) | {hub.hub_id}
    d["restored_hubs"] = sorted(back)
    ev.details = d
    silent = set(d.get("silent_hubs", [])) | set(d.get("alerting_hubs", []))
    if silent and len(back & silent) * 2 >= len(silent):
        _restore(s, pf, hub, ev, bundle_id, at, duration_s=None)


def restoration_alert(
    s: Session, pf: Platform, hub: Hub, bundle_id: str, event_time: datetime, duration_s: int
) -> None:
    if hub.status == "silent":
        hub.status = "active"
    if hub.map_feeder is None:
        return
    key, _ = group_key(hub)
    ev = s.scalars(select(Event).where(Event.key == key, Event.status.in_(OPEN))).first()
    _restore(s, pf, hub, ev, bundle_id, event_time, duration_s=duration_s)


def _restore(
    s: Session, pf: Platform, hub: Hub, outage: Event | None, bundle_id: str, at: datetime, duration_s: int | None
) -> None:
    key, info = group_key(hub)
    pol = pf.policy.get(s)
    start = at - timedelta(seconds=duration_s) if duration_s is not None else None
    if outage is not None:
        set_status(s, pf, outage, "resolved", details={"restored_at": iso(at)})
        if start is None and outage.details.get("since"):
            start = datetime.fromisoformat(outage.details["since"].replace("Z", "+00:00"))
    if info.get("section_id"):
        sec = s.get(Section, info["section_id"])
        if sec is not None and not sec.energized:
            change(
                s,
                sec,
                "energized",
                True,
                entity="section",
                entity_id=sec.id,
                cause="inference",
                evidence=[bundle_id],
                event_id=outage.id if outage else None,
                substation_id=hub.substation_id,
            )
    rkey = "restoration:" + key.split(":", 1)[1]
    horizon = at - timedelta(seconds=pol.restoration_window_s)
    recent = s.scalars(
        select(Event).where(Event.key == rkey, Event.occurred_at >= horizon).order_by(Event.id.desc()).limit(1)
    ).first()
    prev = dict(recent.details or {}) if recent is not None else {}
    hubs = set(prev.get("hubs", []))
    hubs.add(hub.hub_id)
    where = f"feeder section {info['section_id']}" if info.get("section_id") else f"feeder {hub.map_feeder}"

    def _t(v):
        return datetime.fromisoformat(v.replace("Z", "+00:00")) if v else None

    # several hubs report one outage: the earliest start and restoration, the longest duration
    starts = [x for x in (start, _t(prev.get("outage_start"))) if x is not None]
    restored = min([at] + ([_t(prev["restored_at"])] if prev.get("restored_at") else []))
    durations = [x for x in (duration_s, prev.get("reported_duration_s")) if x is not None]
    details = {
        **info,
        "feeder": hub.map_feeder,
        "bus": hub.map_bus,
        "hubs": sorted(hubs),
        "outage_event_id": outage.id if outage else prev.get("outage_event_id"),
        "outage_start": iso(min(starts)) if starts else None,
        "restored_at": iso(restored),
        "reported_duration_s": max(durations) if durations else None,
    }
    if durations:
        details["outage_duration_s"] = max(durations)
    elif starts:
        details["outage_duration_s"] = round((restored - min(starts)).total_seconds(), 1)
    conf = 1.0 - 0.2 ** len(hubs)
    if recent is not None:
        recent.details = details
        recent.confidence = max(recent.confidence, conf)
        recent.evidence = list(dict.fromkeys((recent.evidence or []) + [bundle_id]))[-200:]
        recent.observations += 1
        recent.updated_at = datetime.now(UTC)
        if recent.published:
            publish(s, pf, recent, "updated")
        return
    upsert_event(
        s,
        pf,
        type="restoration",
        key=rkey,
        confidence=conf,
        title=f"power restored to {where}",
        details=details,
        evidence=[bundle_id],
        subject_type="section" if info.get("section_id") else "feeder",
        subject_id=info.get("section_id") or f"{hub.substation_id}/f{hub.map_feeder}",
        substation_id=hub.substation_id,
        occurred_at=at,
        status="info",
    )
