"""Provisioning: channel plan, slot/code assignment, per-hub policy, capacity, channel statistics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import select

from ...models import Hub, HubPolicy
from ...schemas.provisioning import (
    AssignIn,
    AssignOut,
    HubPolicyOut,
    PlanChange,
    PlanIn,
    PlanOut,
    PolicyIn,
    RebalanceIn,
    RebalanceOut,
)
from ...services import provisioning as prov
from ...services.clock import iso, utcnow
from ..deps import DB, PF, SubQ, check_time, invalid, not_found, parse_time, require_admin
from ..strict_route import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute, tags=["provisioning"])
HubId = Annotated[int, Path(ge=0, le=2**32 - 1)]
ADMIN: dict[int | str, dict[str, Any]] = {
    401: {"description": "admin token required"},
    422: {"description": "names the offending field"},
}


def _sub(pf, substation_id: str | None) -> str:
    return substation_id or pf.settings.substation_id


def _prov_error(e: prov.ProvisioningError):
    return invalid(["body", e.field], str(e))


@router.get(
    "/api/v1/provisioning/channel-plan",
    response_model=PlanOut,
    summary="The channel plan in force and any announced one",
)
def get_plan(pf: PF, s: DB, substation_id: SubQ = None) -> dict:
    sub = _sub(pf, substation_id)
    now = utcnow()
    _, pending = prov.plan_versions(s, sub, now)
    active = prov.effective_plan(s, pf, sub, now)
    return {
        "substation_id": sub,
        "active": active,
        "pending": None
        if pending is None
        else {
            "version": pending.id,
            "reports_per_day": pending.reports_per_day,
            "activation_time": iso(pending.activation_at),
            **pending.plan,
        },
        "alert_channel": prov.alert_policy(active),
    }


@router.put(
    "/api/v1/provisioning/channel-plan",
    response_model=PlanChange,
    dependencies=[Depends(require_admin)],
    summary="Announce a new channel plan with a future activation time",
    responses=ADMIN,
)
def put_plan(pf: PF, body: PlanIn, substation_id: SubQ = None) -> dict:
    """Validated against the air-interface rules (above the 11th harmonic, below the transformer
    cutoff, no overlap). If the report period or the scheduled channels change, every provisioned
    hub gets a new policy version that activates together with the plan."""
    sub = _sub(pf, substation_id)
    check_time(body.activation_time, ["body", "activation_time"])
    if body.channels is None:
        try:
            plan = prov.default_plan_dict(body.grid_hz, body.transformer_cutoff_hz)
        except ValueError as e:
            raise invalid(["body", "transformer_cutoff_hz"], str(e)) from None
    else:
        plan = {"grid_hz": body.grid_hz, "transformer_cutoff_hz": body.transformer_cutoff_hz}
    if body.channels is not None:
        plan["channels"] = [c.model_dump() for c in body.channels]
        try:
            plan = prov.plan_to_dict(prov.plan_from_dict(plan))
        except (ValueError, KeyError) as e:
            raise invalid(["body", "channels"], str(e)) from None
    try:
        with pf.db.write() as s:
            pv, changed = prov.set_plan(s, pf, sub, plan, body.reports_per_day, body.activation_time, body.note)
            return {"version": pv.id, "activation_time": iso(pv.activation_at), "policies_changed": len(changed)}
    except prov.ProvisioningError as e:
        raise _prov_error(e) from None


@router.get("/api/v1/provisioning/capacity", summary="Slot usage of the scheduled channels and alert-channel load")
def capacity(
    pf: PF, s: DB, substation_id: SubQ = None, alerts_per_hub_per_day: Annotated[float, Query(ge=0, le=1000)] = 1.0
) -> dict:
    """Default plan: 2 scheduled channels x 10,800 slots per 12-hour period = 21,600 report slots,
    enough for 12,000 hubs reporting twice a day with one-frame reports (56 %)."""
    return prov.capacity(s, pf, _sub(pf, substation_id), alerts_per_hub_per_day)


@router.post(
    "/api/v1/provisioning/assign",
    response_model=AssignOut,
    dependencies=[Depends(require_admin)],
    summary="Assign slots to hubs that have no policy yet",
    responses=ADMIN,
)
def assign(pf: PF, body: AssignIn | None = None) -> dict:
    body = body or AssignIn()
    sub = _sub(pf, body.substation_id)
    with pf.db.write() as s:
        if body.hub_ids is not None:
            hubs = list(s.scalars(select(Hub).where(Hub.hub_id.in_(body.hub_ids[:100_000]))).all())
            missing = set(body.hub_ids) - {h.hub_id for h in hubs}
            if missing:
                raise invalid(["body", "hub_ids"], f"unknown hubs {sorted(missing)[:10]}")
        else:
            have = set(s.scalars(select(HubPolicy.hub_id).where(HubPolicy.substation_id == sub)).all())
            hubs = [h for h in s.scalars(select(Hub).where(Hub.substation_id == sub)).all() if h.hub_id not in have]
        try:
            pols = prov.assign(s, pf, hubs, substation_id=sub, reason="operator assignment")
        except prov.ProvisioningError as e:
            raise _prov_error(e) from None
        s.flush()
        return {
            "substation_id": sub,
            "assigned": len(pols),
            "policies": [
                {
                    "hub_id": p.hub_id,
                    "version": p.version,
                    "channel": p.channel,
                    "slot_offset": p.slot_offset,
                    "slots_per_report": p.slots_per_report,
                }
                for p in pols[:100]
            ],
            "capacity": prov.capacity(s, pf, sub),
        }


@router.get(
    "/api/v1/hubs/{hub_id}/policy",
    response_model=HubPolicyOut,
    tags=["provisioning"],
    summary="The policy a hub must follow (and any announced change)",
    responses={404: {"description": "unknown hub"}},
)
def get_policy(pf: PF, s: DB, hub_id: HubId) -> dict:
    """What provisioning tells the hub (docs/air-interface.md section 14): channel plan, its
    scheduled channel and slots (code = slot parity), the alert-channel rules, modulation and FEC,
    and a pending change with its activation time and slot."""
    hub = s.get(Hub, hub_id)
    if hub is None:
        raise not_found(f"hub {hub_id}")
    now = utcnow()
    cur, pending = prov.hub_policies(s, hub_id, now)
    sub = hub.substation_id or pf.settings.substation_id
    plan = prov.effective_plan(s, pf, sub, now)
    return {
        "hub_id": hub_id,
        "substation_id": hub.substation_id,
        "provisioned": cur is not None,
        "current": prov.policy_dict(cur, now) if cur else None,
        "pending": prov.policy_dict(pending, now) if pending else None,
        "channel_plan": plan,
        "alert": prov.alert_policy(plan),
    }


@router.put(
    "/api/v1/hubs/{hub_id}/policy",
    response_model=HubPolicyOut,
    dependencies=[Depends(require_admin)],
    tags=["provisioning"],
    summary="Change a hub's policy from a future activation time",
    responses={**ADMIN, 404: {"description": "unknown hub"}},
)
def put_policy(pf: PF, hub_id: HubId, body: PolicyIn) -> dict:
    check_time(body.activation_time, ["body", "activation_time"])
    with pf.db.write() as s:
        hub = s.get(Hub, hub_id)
        if hub is None:
            raise not_found(f"hub {hub_id}")
        try:
            prov.change_policy(
                s,
                pf,
                hub,
                channel=body.channel,
                slot_offset=body.slot_offset,
                modulation=body.modulation,
                fec=body.fec,
                activation_at=body.activation_time,
                reason=body.reason or "operator",
            )
        except prov.ProvisioningError as e:
            raise _prov_error(e) from None
        s.flush()
        now = utcnow()
        cur, pending = prov.hub_policies(s, hub_id, now)
        plan = prov.effective_plan(s, pf, hub.substation_id or pf.settings.substation_id, now)
        return {
            "hub_id": hub_id,
            "substation_id": hub.substation_id,
            "provisioned": cur is not None,
            "current": prov.policy_dict(cur, now) if cur else None,
            "pending": prov.policy_dict(pending, now) if pending else None,
            "channel_plan": plan,
            "alert": prov.alert_policy(plan),
        }


@router.get("/api/v1/provisioning/channel-stats", summary="Success rate per channel and code, with a recommendation")
def channel_stats(
    pf: PF,
    s: DB,
    substation_id: SubQ = None,
    since: Annotated[str | None, Query(max_length=40, description="ISO time (default: all)")] = None,
    min_samples: Annotated[int, Query(ge=1, le=1_000_000)] = 20,
    threshold: Annotated[float, Query(gt=0, le=1)] = 0.05,
) -> dict:
    """From the bundles: per channel and code, how many bursts the receiver posted, how many
    decoded and verified, and why the others failed. When the scheduled channels differ by more
    than `threshold`, the recommendation is to rotate hubs between them (`alternate`) or, when the
    worse channel succeeds less than half the time, to move its hubs (`move`)."""
    return prov.channel_stats(
        s, pf, _sub(pf, substation_id), parse_time(since, ["query", "since"]), min_samples, threshold
    )


@router.post(
    "/api/v1/provisioning/rebalance",
    response_model=RebalanceOut,
    dependencies=[Depends(require_admin)],
    summary="Apply the channel-statistics recommendation as announced policy changes",
    responses=ADMIN,
)
def rebalance(pf: PF, body: RebalanceIn | None = None) -> dict:
    body = body or RebalanceIn()
    check_time(body.activation_time, ["body", "activation_time"])
    check_time(body.since, ["body", "since"])
    sub = _sub(pf, body.substation_id)
    with pf.db.write() as s:
        stats = prov.channel_stats(s, pf, sub, body.since)
        rec = stats["recommendation"]
        action = rec["action"] if body.action == "auto" else body.action
        if action == "none" or "better_channel" not in rec:
            return {
                "substation_id": sub,
                "action": "none",
                "recommendation": rec,
                "policies_changed": 0,
                "activation_time": None,
            }
        try:
            pols = prov.rebalance(s, pf, sub, action, body.activation_time, rec["better_channel"], rec["worse_channel"])
        except prov.ProvisioningError as e:
            raise _prov_error(e) from None
        return {
            "substation_id": sub,
            "action": action,
            "recommendation": rec,
            "policies_changed": len(pols),
            "activation_time": iso(pols[0].activation_at) if pols else None,
        }
