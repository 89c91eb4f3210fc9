"""Change inference from where hubs are heard: new hubs, phase and feeder changes, switch states.

Each decoded message with an unambiguous feeder/phase inference from the receiver is one
observation. Heard where the Grid Map says: the hub is confirmed. Heard elsewhere: the
observation adds to the hub's *candidate* location; the candidate's confidence combines the
receiver's confidences as independent evidence, ``1 - prod(1 - c_i)``. A candidate becomes an
event (published from ``report_threshold``) and the platform changes the map when the confidence
reaches the act threshold with at least ``min_observations`` bundles.

Feeder changes are checked against the hub's feeder section first: when at least
``switch_min_hubs`` hubs of one section are heard on the same other feeder within
``switch_window_s`` and no hub of the section has been heard on the old feeder since, that is ONE
``switch_state_change`` of the section (all its hubs and transformers move, heard or not), and
the hubs' own events are superseded by it. A lone hub moving feeder waits, as a suspected
``hub_feeder_change``, until another hub of its section has been heard where the map says (so
it was not a switch) or it is alone in its section.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from ..models import Event, Hub, Section, Transformer
from .changes import OPEN, change, set_status, upsert_event
from .context import Platform
from .inventory import Loc, ensure_feeder, loc_dict, map_loc
from .policy import InferencePolicy

# where place() puts a hub: a Loc, or (a section moved by a switch) a hub's Grid Map phase, which
# an import may have left unknown
Placement = tuple[str, int, int, str | None]

_H = cast(Table, Hub.__table__)
PENDING_SECTIONS = select(_H.c.section_id).where(_H.c.cand_feeder.is_not(None), _H.c.section_id.is_not(None)).distinct()


def section_may_be_pending(conn, pf: Platform, section_id: str) -> bool:
    """Whether a hub of the section may hold a feeder-change candidate (set refreshed every 2 s,
    and at once for candidates made in this process). ``conn``: ``session.connection()`` or a
    :class:`platform_api.core.compiled.Cursor`."""
    if time.monotonic() - pf.pending_at > 2.0:
        pf.pending_sections = {r[0] for r in conn.execute(PENDING_SECTIONS).all()}
        pf.pending_at = time.monotonic()
    return section_id in pf.pending_sections


def note_pending(pf: Platform, section_id: str | None) -> None:
    if section_id:
        pf.pending_sections.add(section_id)


def combine(p: float | None, c: float) -> float:
    return 1.0 - (1.0 - (p or 0.0)) * (1.0 - c)


def _cand(hub: Hub) -> Loc | None:
    sub, bus, feeder, phase = hub.cand_substation, hub.cand_bus, hub.cand_feeder, hub.cand_phase
    if feeder is None:
        return None
    # observe() sets the four from one Loc, clear_candidate() clears them together
    assert sub is not None and bus is not None and phase is not None, "a candidate is a whole Loc"
    return (sub, bus, feeder, phase)


def clear_candidate(hub: Hub) -> None:
    hub.cand_substation = hub.cand_bus = hub.cand_feeder = hub.cand_phase = None
    hub.cand_confidence = None
    hub.cand_observations = 0
    hub.cand_since = None
    hub.cand_evidence = None
    hub.cand_event_id = None


def _withdraw(s: Session, pf: Platform, hub: Hub, why: str) -> None:
    if hub.cand_event_id is not None:
        ev = s.get(Event, hub.cand_event_id)
        if ev is not None and ev.status in OPEN and ev.type in ("hub_phase_change", "hub_feeder_change"):
            set_status(s, pf, ev, "withdrawn", details={"withdrawn_because": why})
    clear_candidate(hub)


def observe(
    s: Session, pf: Platform, hub: Hub, loc: Loc | None, confidence: float, bundle_id: str, at: datetime
) -> None:
    """One observation of ``hub`` at ``loc`` (None: the receiver could not tell)."""
    if loc is None:
        return
    hub.heard_substation, hub.heard_bus, hub.heard_feeder, hub.heard_phase = loc
    hub.heard_confidence = confidence
    pol = pf.policy.get(s)
    current = map_loc(hub)
    if current is not None and current == loc:
        hub.last_confirmed_at = at
        if hub.cand_feeder is not None:
            _withdraw(s, pf, hub, "heard again where the Grid Map says")
        if hub.section_id:
            reevaluate_section(s, pf, hub.section_id, pol, at)
        return
    if _cand(hub) == loc:
        hub.cand_confidence = combine(hub.cand_confidence, confidence)
        hub.cand_observations = (hub.cand_observations or 0) + 1
        hub.cand_evidence = (list(hub.cand_evidence or []) + [bundle_id])[-50:]
    else:
        if hub.cand_feeder is not None:
            _withdraw(s, pf, hub, f"heard at yet another place ({loc_dict(loc)})")
        hub.cand_substation, hub.cand_bus, hub.cand_feeder, hub.cand_phase = loc
        note_pending(pf, hub.section_id)
        hub.cand_confidence = confidence
        hub.cand_observations = 1
        hub.cand_since = at
        hub.cand_evidence = [bundle_id]
    evaluate(s, pf, hub, pol, at)


def evaluate(s: Session, pf: Platform, hub: Hub, pol: InferencePolicy, at: datetime) -> None:
    cand = _cand(hub)
    if cand is None:
        return
    if hub.map_feeder is None:
        _new_hub(s, pf, hub, pol, at)
    elif cand[0] != hub.substation_id or cand[2] != hub.map_feeder:
        _feeder_change(s, pf, hub, pol, at)
    else:
        _phase_change(s, pf, hub, pol, at)


def _ready(hub: Hub, pol: InferencePolicy, etype: str) -> bool:
    return (hub.cand_confidence or 0) >= pol.act_for(etype) and (hub.cand_observations or 0) >= pol.min_observations


def place(
    s: Session,
    pf: Platform,
    hub: Hub,
    loc: Placement,
    *,
    cause: str,
    evidence: list[str],
    event_id: int | None,
    at: datetime,
    phase_only: bool = False,
) -> None:
    """Move ``hub`` on the Grid Map to ``loc`` and record each changed attribute."""
    sub, bus, feeder, phase = loc
    kw: dict[str, Any] = dict(
        entity="hub", entity_id=hub.hub_id, cause=cause, evidence=evidence, event_id=event_id, substation_id=sub
    )
    if not phase_only:
        change(s, hub, "substation_id", sub, **kw)
        change(s, hub, "map_bus", bus, **kw)
        change(s, hub, "map_feeder", feeder, **kw)
        ensure_feeder(s, sub, bus, feeder)
    change(s, hub, "map_phase", phase, **kw)
    change(s, hub, "map_source", cause if cause in ("import", "operator") else "inference", **kw)
    if hub.status in ("inventory", "silent"):
        change(s, hub, "status", "active", **kw)
    hub.last_confirmed_at = at
    hub.updated_at = at


def _new_hub(s: Session, pf: Platform, hub: Hub, pol: InferencePolicy, at: datetime) -> None:
    cand = _cand(hub)
    assert cand is not None, "evaluate() calls this only for a hub with a candidate"
    ev = upsert_event(
        s,
        pf,
        type="new_hub",
        key=f"new_hub:{hub.hub_id}",
        confidence=hub.cand_confidence or 0.0,
        title=f"new hub {hub.hub_id} heard on feeder {cand[2]} phase {cand[3]}",
        details={
            "hub_id": hub.hub_id,
            "heard": loc_dict(cand),
            "observations": hub.cand_observations,
            "mode": hub.mode,
        },
        evidence=hub.cand_evidence or [],
        replace_evidence=True,
        observations=hub.cand_observations,
        subject_type="hub",
        subject_id=hub.hub_id,
        substation_id=cand[0],
        occurred_at=hub.cand_since,
    )
    hub.cand_event_id = ev.id
    if _ready(hub, pol, "new_hub"):
        ev_evidence = list(hub.cand_evidence or [])
        place(s, pf, hub, cand, cause="inference", evidence=ev_evidence, event_id=ev.id, at=at)
        set_status(s, pf, ev, "applied", details={"placed": loc_dict(cand)})
        clear_candidate(hub)


def _phase_change(s: Session, pf: Platform, hub: Hub, pol: InferencePolicy, at: datetime) -> None:
    cand = _cand(hub)
    assert cand is not None, "evaluate() calls this only for a hub with a candidate"
    ev = upsert_event(
        s,
        pf,
        type="hub_phase_change",
        key=f"hub_location:{hub.hub_id}",
        confidence=hub.cand_confidence or 0.0,
        title=f"hub {hub.hub_id} heard on phase {cand[3]}, the Grid Map says {hub.map_phase}",
        details={
            "hub_id": hub.hub_id,
            "from": loc_dict(map_loc(hub)),
            "to": loc_dict(cand),
            "observations": hub.cand_observations,
        },
        evidence=hub.cand_evidence or [],
        replace_evidence=True,
        observations=hub.cand_observations,
        subject_type="hub",
        subject_id=hub.hub_id,
        substation_id=cand[0],
        occurred_at=hub.cand_since,
    )
    hub.cand_event_id = ev.id
    if _ready(hub, pol, "hub_phase_change"):
        place(
            s,
            pf,
            hub,
            cand,
            cause="inference",
            evidence=list(hub.cand_evidence or []),
            event_id=ev.id,
            at=at,
            phase_only=True,
        )
        set_status(s, pf, ev, "applied")
        clear_candidate(hub)


def _section_peers(s: Session, hub: Hub, pol: InferencePolicy, at: datetime) -> tuple[list[Hub], bool, int]:
    """Hubs of ``hub``'s section heard on the same other feeder recently; whether any hub of the
    section was heard where the map says since the first of them; how many hubs the section has."""
    members = list(s.scalars(select(Hub).where(Hub.section_id == hub.section_id)).all())
    horizon = at - timedelta(seconds=pol.switch_window_s)
    peers = [
        h
        for h in members
        if h.cand_feeder == hub.cand_feeder
        and h.cand_substation == hub.cand_substation
        and h.cand_since is not None
        and h.cand_since >= horizon
        and h.map_feeder is not None
        and h.map_feeder != h.cand_feeder
    ]
    if not peers:
        return [], False, len(members)
    earliest = min(h.cand_since for h in peers if h.cand_since is not None)  # all of them: see above
    peer_ids = {h.hub_id for h in peers}
    stayed = any(
        h.last_confirmed_at is not None and h.last_confirmed_at >= earliest and h.hub_id not in peer_ids
        for h in members
    )
    return peers, stayed, len(members)


def _feeder_change(s: Session, pf: Platform, hub: Hub, pol: InferencePolicy, at: datetime, force: bool = False) -> None:
    pending_switch = False
    if hub.section_id and not force:
        peers, stayed, n_members = _section_peers(s, hub, pol, at)
        if len(peers) >= pol.switch_min_hubs and not stayed:
            _switch(s, pf, hub.section_id, peers, pol, at)
            return
        pending_switch = n_members > 1 and not stayed
    cand = _cand(hub)
    assert cand is not None, "evaluate(), reevaluate_section() and force() call this only for a hub with a candidate"
    ev = upsert_event(
        s,
        pf,
        type="hub_feeder_change",
        key=f"hub_location:{hub.hub_id}",
        confidence=hub.cand_confidence or 0.0,
        title=f"hub {hub.hub_id} heard on feeder {cand[2]} phase {cand[3]}, the Grid Map says feeder "
        f"{hub.map_feeder} phase {hub.map_phase}",
        details={
            "hub_id": hub.hub_id,
            "from": loc_dict(map_loc(hub)),
            "to": loc_dict(cand),
            "observations": hub.cand_observations,
            "section_id": hub.section_id,
            "waiting_for_section": pending_switch,
        },
        evidence=hub.cand_evidence or [],
        replace_evidence=True,
        observations=hub.cand_observations,
        subject_type="hub",
        subject_id=hub.hub_id,
        substation_id=cand[0],
        occurred_at=hub.cand_since,
    )
    hub.cand_event_id = ev.id
    if _ready(hub, pol, "hub_feeder_change") and not pending_switch:
        evidence = list(hub.cand_evidence or [])
        place(s, pf, hub, cand, cause="inference", evidence=evidence, event_id=ev.id, at=at)
        if hub.section_id:  # it left its section (re-tapped elsewhere); the section stays where it was
            change(
                s,
                hub,
                "section_id",
                None,
                entity="hub",
                entity_id=hub.hub_id,
                cause="inference",
                evidence=evidence,
                event_id=ev.id,
                substation_id=cand[0],
            )
        if hub.transformer_id:
            others = s.scalars(
                select(Hub.hub_id).where(Hub.transformer_id == hub.transformer_id, Hub.hub_id != hub.hub_id)
            ).first()
            tr = s.get(Transformer, hub.transformer_id)
            if tr is not None and others is None:
                change(
                    s,
                    tr,
                    "feeder",
                    cand[2],
                    entity="transformer",
                    entity_id=tr.id,
                    cause="inference",
                    evidence=evidence,
                    event_id=ev.id,
                    substation_id=cand[0],
                )
                change(
                    s,
                    tr,
                    "section_id",
                    None,
                    entity="transformer",
                    entity_id=tr.id,
                    cause="inference",
                    evidence=evidence,
                    event_id=ev.id,
                    substation_id=cand[0],
                )
        set_status(s, pf, ev, "applied")
        clear_candidate(hub)


def _switch(s: Session, pf: Platform, section_id: str, peers: list[Hub], pol: InferencePolicy, at: datetime) -> None:
    sec = s.get(Section, section_id)
    first = peers[0]
    first_cand = _cand(first)
    assert first_cand is not None, "peers hold a candidate (_section_peers() and force() pick them so)"
    to_sub, to_bus, to_feeder, _ = first_cand
    conf = 0.0
    for p in peers:
        conf = combine(conf, p.cand_confidence or 0.0)
    obs = sum(p.cand_observations or 0 for p in peers)
    evidence: list[str] = []
    for p in peers:
        for b in p.cand_evidence or []:
            if b not in evidence:
                evidence.append(b)
    from_feeder = sec.feeder if sec is not None else first.map_feeder
    members = list(s.scalars(select(Hub).where(Hub.section_id == section_id)).all())
    ev = upsert_event(
        s,
        pf,
        type="switch_state_change",
        key=f"switch:{section_id}:{to_sub}:{to_feeder}",
        confidence=conf,
        title=f"feeder section {section_id} moved from feeder {from_feeder} to feeder {to_feeder} "
        f"({len(peers)} of {len(members)} hubs heard there)",
        details={
            "section_id": section_id,
            "from_feeder": from_feeder,
            "to_feeder": to_feeder,
            "to_bus": to_bus,
            "to_substation": to_sub,
            "hubs_heard": sorted(p.hub_id for p in peers),
            "hubs_in_section": len(members),
            "observations": obs,
        },
        evidence=evidence,
        replace_evidence=True,
        observations=obs,
        subject_type="section",
        subject_id=section_id,
        substation_id=to_sub,
        occurred_at=min(
            p.cand_since for p in peers if p.cand_since is not None
        ),  # observe() sets it with the candidate
    )
    for p in peers:
        if p.cand_event_id is not None and p.cand_event_id != ev.id:
            old = s.get(Event, p.cand_event_id)
            if old is not None and old.status in OPEN:
                set_status(s, pf, old, "superseded", superseded_by=ev.id)
        p.cand_event_id = ev.id
    if conf < pol.act_for("switch_state_change") or obs < pol.min_observations:
        return
    kw: dict[str, Any] = dict(cause="inference", evidence=evidence, event_id=ev.id, substation_id=to_sub)
    if sec is not None:
        change(s, sec, "feeder", to_feeder, entity="section", entity_id=sec.id, **kw)
        change(s, sec, "bus", to_bus, entity="section", entity_id=sec.id, **kw)
        sec.updated_at = at
        for tr in s.scalars(select(Transformer).where(Transformer.section_id == section_id)).all():
            change(s, tr, "feeder", to_feeder, entity="transformer", entity_id=tr.id, **kw)
            change(s, tr, "bus", to_bus, entity="transformer", entity_id=tr.id, **kw)
    peer_ids = {p.hub_id for p in peers}
    for h in members:
        if h.hub_id in peer_ids:
            cand = _cand(h)
            assert cand is not None, "peers hold a candidate"
            place(s, pf, h, cand, cause="inference", evidence=evidence, event_id=ev.id, at=at)
            clear_candidate(h)
        elif h.map_feeder is not None:
            place(
                s,
                pf,
                h,
                (to_sub, to_bus, to_feeder, h.map_phase),
                cause="inference",
                evidence=evidence,
                event_id=ev.id,
                at=at,
            )
            h.last_confirmed_at = None  # not heard there yet
    set_status(s, pf, ev, "applied")


def reevaluate_section(s: Session, pf: Platform, section_id: str, pol: InferencePolicy, at: datetime) -> None:
    """A hub of the section was confirmed where the map says: pending lone feeder moves of the
    section were not a switch, so they may now be applied."""
    # cheap test first: this runs for every confirmed observation
    if not section_may_be_pending(s.connection(), pf, section_id):
        return
    members = s.scalars(select(Hub).where(Hub.section_id == section_id)).all()
    for h in members:  # filtered in Python: the session does not autoflush
        if (
            h.cand_feeder is not None
            and h.map_feeder is not None
            and (h.cand_feeder != h.map_feeder or h.cand_substation != h.substation_id)
        ):
            _feeder_change(s, pf, h, pol, at)


class NothingToApply(ValueError):
    pass


def force(s: Session, pf: Platform, ev: Event, at: datetime) -> None:
    """An operator confirms a suspected map change: apply it whatever its confidence."""
    pol = pf.policy.get(s).model_copy(update={"act_threshold": 0.0, "type_act_threshold": {}, "min_observations": 1})
    if ev.type in ("new_hub", "hub_phase_change", "hub_feeder_change"):
        assert ev.subject_id is not None, "events about a hub name it (subject_id)"
        hub = s.get(Hub, int(ev.subject_id))
        if hub is None or hub.cand_event_id != ev.id or _cand(hub) is None:
            raise NothingToApply(f"event {ev.id} has no pending evidence to apply")
        if ev.type == "hub_feeder_change":
            _feeder_change(s, pf, hub, pol, at, force=True)
        else:
            evaluate(s, pf, hub, pol, at)
        return
    if ev.type == "switch_state_change":
        section_id = ev.subject_id
        assert section_id is not None, "switch events name their section (subject_id)"
        peers = [
            h
            for h in s.scalars(select(Hub).where(Hub.section_id == section_id)).all()
            if h.cand_event_id == ev.id and _cand(h) is not None
        ]
        if not peers:
            raise NothingToApply(f"event {ev.id} has no pending evidence to apply")
        _switch(s, pf, section_id, peers, pol, at)
        return
    raise NothingToApply(f"events of type {ev.type} do not change the Grid Map")
