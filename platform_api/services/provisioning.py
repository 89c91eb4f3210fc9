"""Provisioning: the channel plan, slot and code assignment, per-hub policies, channel statistics.

Slots (docs/air-interface.md section 11): 4 s, 21,600 a day, aligned to UTC midnight. A hub that
reports ``R`` times a day owns, on one scheduled channel, the slots ``offset + k * P + j`` where
``P = 21600 // R`` is the report period in slots, ``k`` counts reports and ``j < n`` the segments
of one report (``n = ceil(meters / 2)``: two readings per frame). Its code is ``slot mod 2``. With
the defaults (R = 2, two scheduled channels) there are 2 x 10,800 slots per period: 12,000 hubs
with one-frame reports use 56 % of them. The alert channel is slotted ALOHA with a random code of
four; a hub repeats each alert and provisioning request 2 to 3 times.

A rotation (``alt_channel``/``alt_slot_offset``) pairs two hubs with the same number of slots on
the two scheduled channels: even-numbered reports use the primary slots, odd-numbered ones the
partner's, so both hubs see both channels' success rates.

Policies are versioned. A first policy applies at once (the hub is waiting for it); any change
applies from an activation time at least ``min_activation_notice_s`` ahead, so hubs and the
receiver switch together.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from dsp.air import params as P

from ..models import BundleRow, Hub, HubPolicy, Meter, PlanVersion
from .changes import record
from .clock import SLOTS_PER_DAY, aware, iso, slot_start, utcnow
from .context import Platform

ALERT_REPEATS = 3


class ProvisioningError(ValueError):
    """A request that cannot be met; ``field`` names the offending input."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field


class CapacityError(ProvisioningError):
    pass


# -- channel plan ----------------------------------------------------------------------------------
def default_plan_dict(grid_hz: float = 60.0, cutoff_hz: float = 3600.0) -> dict:
    return plan_to_dict(P.ChannelPlan.default(grid_hz, cutoff_hz))


def plan_to_dict(plan: P.ChannelPlan) -> dict:
    return {
        "grid_hz": plan.grid_hz,
        "transformer_cutoff_hz": plan.transformer_cutoff_hz,
        "channels": [
            {
                "index": c.index,
                "fc_hz": c.fc_hz,
                "role": c.role.name.lower(),
                "modulation": c.modulation.name.lower(),
                "fec": "1/2" if c.fec == P.FecRate.R1_2 else "2/3",
                "band_hz": [round(c.f_low_hz, 3), round(c.f_high_hz, 3)],
                "codes": P.CODES_PER_CHANNEL,
            }
            for c in plan.channels
        ],
    }


def plan_from_dict(d: dict) -> P.ChannelPlan:
    chans = tuple(
        P.Channel(
            index=int(c["index"]),
            fc_hz=float(c["fc_hz"]),
            role=P.ChannelRole[c["role"].upper()],
            modulation=P.Modulation[c.get("modulation", "bpsk").upper()],
            fec=P.FecRate.R1_2 if c.get("fec", "1/2") == "1/2" else P.FecRate.R2_3,
        )
        for c in d["channels"]
    )
    plan = P.ChannelPlan(
        grid_hz=float(d["grid_hz"]), channels=chans, transformer_cutoff_hz=float(d.get("transformer_cutoff_hz", 3600.0))
    )
    plan.validate()
    return plan


def period_slots(reports_per_day: float) -> int:
    return max(1, int(SLOTS_PER_DAY // reports_per_day))


def activation_slot(t: datetime) -> int:
    return int(math.ceil(aware(t).timestamp() / P.SLOT_S))


def plan_versions(s: Session, substation_id: str, now: datetime) -> tuple[PlanVersion | None, PlanVersion | None]:
    rows = s.scalars(
        select(PlanVersion)
        .where(PlanVersion.substation_id == substation_id)
        .order_by(PlanVersion.activation_at, PlanVersion.id)
    ).all()
    active = None
    pending = None
    for r in rows:
        if r.activation_at <= now:
            active = r
        elif pending is None:
            pending = r
    return active, pending


def effective_plan(s: Session, pf: Platform, substation_id: str, now: datetime | None = None) -> dict:
    now = now or utcnow()
    active, _ = plan_versions(s, substation_id, now)
    if active is None:
        return {
            "version": None,
            "reports_per_day": pf.settings.reports_per_day,
            "activation_time": None,
            **default_plan_dict(),
        }
    return {
        "version": active.id,
        "reports_per_day": active.reports_per_day,
        "activation_time": iso(active.activation_at),
        **active.plan,
    }


def scheduled_channels(plan: dict) -> list[int]:
    return [c["index"] for c in plan["channels"] if c["role"] == "scheduled"]


def alert_channels(plan: dict) -> list[int]:
    return [c["index"] for c in plan["channels"] if c["role"] == "alert"]


# -- policies --------------------------------------------------------------------------------------
def hub_policies(s: Session, hub_id: int, now: datetime) -> tuple[HubPolicy | None, HubPolicy | None]:
    rows = s.scalars(select(HubPolicy).where(HubPolicy.hub_id == hub_id).order_by(HubPolicy.version)).all()
    cur = None
    pending = None
    for r in rows:
        if r.activation_at <= now:
            cur = r
        else:
            pending = r
    return cur, pending


def latest_policies(s: Session, substation_id: str) -> dict[int, HubPolicy]:
    """Newest version (active or pending) of every hub's policy in the substation."""
    sub = (
        select(HubPolicy.hub_id, func.max(HubPolicy.version).label("v"))
        .where(HubPolicy.substation_id == substation_id)
        .group_by(HubPolicy.hub_id)
        .subquery()
    )
    rows = s.scalars(
        select(HubPolicy).join(sub, and_(HubPolicy.hub_id == sub.c.hub_id, HubPolicy.version == sub.c.v))
    ).all()
    return {r.hub_id: r for r in rows}


def active_policies(s: Session, substation_id: str, now: datetime) -> dict[int, HubPolicy]:
    out: dict[int, HubPolicy] = {}
    rows = s.scalars(
        select(HubPolicy)
        .where(HubPolicy.substation_id == substation_id, HubPolicy.activation_at <= now)
        .order_by(HubPolicy.version)
    ).all()
    for r in rows:
        out[r.hub_id] = r
    return out


def slots_needed(n_meters: int) -> int:
    return max(1, -(-max(1, n_meters) // 2))


class SlotMap:
    """Occupancy of the scheduled channels within one report period."""

    def __init__(self, channels: list[int], period: int) -> None:
        self.period = period
        self.channels = channels
        self.busy = {c: bytearray(period) for c in channels}
        self.cursor = {c: 0 for c in channels}

    def mark(self, channel: int, offset: int, n: int, value: int = 1) -> None:
        if channel not in self.busy:
            return
        b = self.busy[channel]
        for j in range(n):
            b[(offset + j) % self.period] = value

    def used(self, channel: int) -> int:
        return self.period - self.busy[channel].count(0)

    def is_free(self, channel: int, offset: int, n: int) -> bool:
        if channel not in self.busy or offset < 0 or offset + n > self.period:
            return False
        return not any(self.busy[channel][offset : offset + n])

    def find(self, channel: int, n: int) -> int | None:
        b = self.busy[channel]
        need = bytes(n)
        i = b.find(need, self.cursor[channel])
        if i < 0 or i + n > self.period:
            i = b.find(need, 0)
        if i < 0 or i + n > self.period:
            return None
        self.cursor[channel] = i + n
        return i

    def allocate(self, n: int, prefer: int | None = None) -> tuple[int, int]:
        order = sorted(self.channels, key=lambda c: (c != prefer if prefer is not None else 0, self.used(c)))
        for c in order:
            off = self.find(c, n)
            if off is not None:
                self.mark(c, off, n)
                return c, off
        raise CapacityError(
            "channel_plan",
            f"no {n} consecutive free slots on scheduled channels {self.channels} "
            f"(period {self.period} slots): capacity exhausted",
        )


def build_slot_map(
    s: Session, substation_id: str, plan: dict, exclude: set[int] | frozenset[int] = frozenset()
) -> SlotMap:
    period = period_slots(plan["reports_per_day"])
    sm = SlotMap(scheduled_channels(plan), period)
    for hub_id, pol in latest_policies(s, substation_id).items():
        if hub_id in exclude or pol.period_slots != period:
            continue
        sm.mark(pol.channel, pol.slot_offset, pol.slots_per_report)
        if pol.alt_channel is not None and pol.alt_slot_offset is not None:
            pass  # the partner owns those slots in its primary policy
    return sm


def meter_counts(s: Session, hub_ids: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for i in range(0, len(hub_ids), 500):
        chunk = hub_ids[i : i + 500]
        for hub_id, n in s.execute(
            select(Meter.hub_id, func.count())
            .where(Meter.hub_id.in_(chunk), Meter.active.is_(True))
            .group_by(Meter.hub_id)
        ).all():
            assert hub_id is not None, "selected by hub_id"
            out[hub_id] = n
    return out


def _new_version(
    s: Session,
    hub: Hub,
    *,
    substation_id: str,
    channel: int,
    offset: int,
    n: int,
    plan: dict,
    activation_at: datetime,
    reason: str,
    modulation: str = "bpsk",
    fec: str = "1/2",
    alt_channel: int | None = None,
    alt_offset: int | None = None,
    prev: HubPolicy | None = None,
) -> HubPolicy:
    version = (prev.version + 1) if prev is not None else 1
    pol = HubPolicy(
        hub_id=hub.hub_id,
        substation_id=substation_id,
        version=version,
        channel=channel,
        slot_offset=offset,
        slots_per_report=n,
        period_slots=period_slots(plan["reports_per_day"]),
        reports_per_day=plan["reports_per_day"],
        modulation=modulation,
        fec=fec,
        alt_channel=alt_channel,
        alt_slot_offset=alt_offset,
        activation_at=activation_at,
        activation_slot=activation_slot(activation_at),
        created_at=utcnow(),
        reason=reason,
    )
    s.add(pol)
    record(
        s,
        entity="policy",
        entity_id=hub.hub_id,
        field="version",
        old=prev.version if prev else None,
        new=version,
        cause="provisioning",
        evidence=[reason],
        substation_id=substation_id,
    )
    return pol


def assign(
    s: Session,
    pf: Platform,
    hubs: list[Hub],
    *,
    substation_id: str,
    reason: str,
    activation_at: datetime | None = None,
    plan: dict | None = None,
) -> list[HubPolicy]:
    """Give each hub slots on a scheduled channel (a new policy version). Hubs without a policy get
    theirs at once; hubs that have one get the new version from ``activation_at``."""
    now = utcnow()
    plan = plan or effective_plan(s, pf, substation_id, now)
    ids = {h.hub_id for h in hubs}
    sm = build_slot_map(s, substation_id, plan, exclude=ids)
    latest = latest_policies(s, substation_id)
    counts = meter_counts(s, sorted(ids))
    out = []
    for hub in sorted(hubs, key=lambda h: h.hub_id):
        prev = latest.get(hub.hub_id)
        n = slots_needed(counts.get(hub.hub_id, 1))
        ch, off = sm.allocate(n)
        when = now if prev is None else (activation_at or now + timedelta(seconds=pf.settings.min_activation_notice_s))
        out.append(
            _new_version(
                s,
                hub,
                substation_id=substation_id,
                channel=ch,
                offset=off,
                n=n,
                plan=plan,
                activation_at=when,
                reason=reason,
                prev=prev,
                modulation=prev.modulation if prev else "bpsk",
                fec=prev.fec if prev else "1/2",
            )
        )
    return out


def check_activation(pf: Platform, activation_at: datetime | None, field: str = "activation_time") -> datetime:
    now = utcnow()
    earliest = now + timedelta(seconds=pf.settings.min_activation_notice_s)
    if activation_at is None:
        return earliest
    activation_at = aware(activation_at)
    if activation_at < earliest - timedelta(seconds=1):
        raise ProvisioningError(
            field,
            f"{field} must be at least {pf.settings.min_activation_notice_s:g} s in the "
            f"future (not before {iso(earliest)})",
        )
    return activation_at


def change_policy(
    s: Session,
    pf: Platform,
    hub: Hub,
    *,
    channel: int | None,
    slot_offset: int | None,
    modulation: str | None,
    fec: str | None,
    activation_at: datetime | None,
    reason: str,
) -> HubPolicy:
    substation_id = hub.substation_id or pf.settings.substation_id
    now = utcnow()
    plan = effective_plan(s, pf, substation_id, now)
    prev = latest_policies(s, substation_id).get(hub.hub_id)
    when = check_activation(pf, activation_at) if prev is not None else (aware(activation_at) if activation_at else now)
    if modulation == "qpsk" and not ((hub.capabilities or 0) & 1):
        raise ProvisioningError("modulation", f"hub {hub.hub_id} did not announce QPSK capability (bit 0)")
    n = slots_needed(meter_counts(s, [hub.hub_id]).get(hub.hub_id, 1))
    sm = build_slot_map(s, substation_id, plan, exclude={hub.hub_id})
    sched = scheduled_channels(plan)
    if channel is not None and channel not in sched:
        raise ProvisioningError("channel", f"channel {channel} is not a scheduled channel of the plan ({sched})")
    if slot_offset is not None:
        ch = channel if channel is not None else (prev.channel if prev else sched[0])
        if not sm.is_free(ch, slot_offset, n):
            raise ProvisioningError(
                "slot_offset",
                f"slots {slot_offset}..{slot_offset + n - 1} of channel {ch} are "
                f"taken or outside the period of {sm.period}",
            )
        off = slot_offset
    elif (
        prev is not None
        and (channel is None or channel == prev.channel)
        and sm.is_free(prev.channel, prev.slot_offset, n)
    ):
        ch, off = prev.channel, prev.slot_offset
    else:
        ch, off = sm.allocate(n, prefer=channel)
    return _new_version(
        s,
        hub,
        substation_id=substation_id,
        channel=ch,
        offset=off,
        n=n,
        plan=plan,
        activation_at=when,
        reason=reason,
        prev=prev,
        modulation=modulation or (prev.modulation if prev else "bpsk"),
        fec=fec or (prev.fec if prev else "1/2"),
    )


def policy_dict(pol: HubPolicy, now: datetime | None = None) -> dict:
    now = now or utcnow()
    offsets = [
        pol.slot_offset + k * pol.period_slots + j
        for k in range(max(1, SLOTS_PER_DAY // pol.period_slots))
        for j in range(pol.slots_per_report)
    ]
    nxt = []
    base = max(pol.activation_slot, int(now.timestamp() // P.SLOT_S))
    for slot in next_report_slots(pol, base, 4):
        nxt.append(slot)
    return {
        "version": pol.version,
        "channel": pol.channel,
        "code_rule": "slot_index mod 2",
        "slot_offset": pol.slot_offset,
        "slots_per_report": pol.slots_per_report,
        "period_slots": pol.period_slots,
        "reports_per_day": pol.reports_per_day,
        "slots_of_day": offsets[:64],
        "rotation": None
        if pol.alt_channel is None
        else {"odd_reports_channel": pol.alt_channel, "odd_reports_slot_offset": pol.alt_slot_offset},
        "modulation": pol.modulation,
        "fec": pol.fec,
        "activation_time": iso(pol.activation_at),
        "activation_slot": pol.activation_slot,
        "next_report_slots": nxt,
        "reason": pol.reason,
    }


def next_report_slots(pol: HubPolicy, from_slot: int, count: int) -> list[int]:
    """Absolute first slots of the next ``count`` reports at or after ``from_slot``."""
    per = pol.period_slots
    day0 = (from_slot // SLOTS_PER_DAY) * SLOTS_PER_DAY
    k = max(0, (from_slot - day0 - pol.slot_offset + per - 1) // per)
    out: list[int] = []
    while len(out) < count:
        slot = day0 + pol.slot_offset + k * per
        if slot - day0 >= SLOTS_PER_DAY:
            day0 += SLOTS_PER_DAY
            k = 0
            continue
        if slot >= from_slot:
            out.append(slot)
        k += 1
    return out


def last_due_slot(pol: HubPolicy, now_slot: int) -> int | None:
    """The first slot of the last report due at or before ``now_slot`` (None before activation)."""
    per = pol.period_slots
    day0 = (now_slot // SLOTS_PER_DAY) * SLOTS_PER_DAY
    for d in (day0, day0 - SLOTS_PER_DAY):
        k = (now_slot - d - pol.slot_offset) // per
        k = min(k, (SLOTS_PER_DAY - 1 - pol.slot_offset) // per)
        if k >= 0:
            slot = d + pol.slot_offset + k * per
            return slot if slot >= pol.activation_slot else None
    return None


def alert_policy(plan: dict) -> dict:
    return {
        "channels": alert_channels(plan),
        "access": "slotted_aloha",
        "codes": list(range(P.CODES_PER_CHANNEL)),
        "code_rule": "uniform random per burst, including repeats",
        "repeats": ALERT_REPEATS,
        "repeat_spacing_slots": [1, 5],
        "slot_s": P.SLOT_S,
        "start_offset_s": P.SLOT_START_OFFSET_S,
    }


# -- capacity and channel statistics ------------------------------------------------------------
def capacity(s: Session, pf: Platform, substation_id: str, alerts_per_hub_per_day: float = 1.0) -> dict:
    now = utcnow()
    plan = effective_plan(s, pf, substation_id, now)
    sm = build_slot_map(s, substation_id, plan)
    per = sm.period
    n_sched = len(sm.channels)
    used = {c: sm.used(c) for c in sm.channels}
    hubs = s.scalar(select(func.count()).select_from(Hub).where(Hub.substation_id == substation_id)) or 0
    provisioned = len(latest_policies(s, substation_id))
    total = per * n_sched
    g = hubs * alerts_per_hub_per_day * ALERT_REPEATS / SLOTS_PER_DAY / max(1, len(alert_channels(plan)))
    return {
        "substation_id": substation_id,
        "reports_per_day": plan["reports_per_day"],
        "period_slots": per,
        "scheduled_channels": sm.channels,
        "slots_per_period_per_channel": per,
        "slots_per_period_total": total,
        "slots_per_day_total": SLOTS_PER_DAY * n_sched,
        "used_slots_per_period": {str(c): u for c, u in used.items()},
        "utilization": round(sum(used.values()) / total, 6) if total else None,
        "hubs": hubs,
        "provisioned_hubs": provisioned,
        "max_hubs_one_frame_reports": total,
        "alert_channel": {
            "offered_load_per_slot": round(g, 6),
            "expected_success": round(math.exp(-g), 6),
            "assumed_alerts_per_hub_per_day": alerts_per_hub_per_day,
            "repeats": ALERT_REPEATS,
        },
    }


def channel_stats(
    s: Session,
    pf: Platform,
    substation_id: str,
    since: datetime | None = None,
    min_samples: int = 20,
    threshold: float = 0.05,
) -> dict:
    q = select(
        BundleRow.channel,
        BundleRow.code,
        BundleRow.status,
        BundleRow.reason,
        func.count(),
        func.avg(BundleRow.best_snr_db),
    ).where(BundleRow.substation_id == substation_id)
    if since is not None:
        q = q.where(BundleRow.arrival_utc >= since)
    q = q.group_by(BundleRow.channel, BundleRow.code, BundleRow.status, BundleRow.reason)
    cells: dict[tuple[int, int], dict] = {}
    for ch, code, status, reason, n, snr in s.execute(q).all():
        c = cells.setdefault(
            (ch, code),
            {"channel": ch, "code": code, "bundles": 0, "decoded": 0, "no_frame": 0, "rejected": {}, "_snr": 0.0},
        )
        c["bundles"] += n
        if status in ("accepted", "duplicate"):
            c["decoded"] += n
        elif status == "no_frame":
            c["no_frame"] += n
        else:
            c["rejected"][reason or "?"] = c["rejected"].get(reason or "?", 0) + n
        c["_snr"] += (snr or 0.0) * n
    codes = []
    chans: dict[int, dict] = {}
    for (ch, _code), c in sorted(cells.items()):
        c["success_rate"] = round(c["decoded"] / c["bundles"], 6) if c["bundles"] else None
        c["mean_snr_db"] = round(c.pop("_snr") / c["bundles"], 3) if c["bundles"] else None
        codes.append(c)
        t = chans.setdefault(ch, {"channel": ch, "bundles": 0, "decoded": 0})
        t["bundles"] += c["bundles"]
        t["decoded"] += c["decoded"]
    for t in chans.values():
        t["success_rate"] = round(t["decoded"] / t["bundles"], 6) if t["bundles"] else None
    plan = effective_plan(s, pf, substation_id)
    rec = recommend(plan, chans, codes, min_samples, threshold)
    return {
        "substation_id": substation_id,
        "since": iso(since),
        "channels": sorted(chans.values(), key=lambda x: x["channel"]),
        "codes": codes,
        "recommendation": rec,
    }


def recommend(plan: dict, chans: dict[int, dict], codes: list[dict], min_samples: int, threshold: float) -> dict:
    sched = scheduled_channels(plan)
    notes = []
    for c in codes:
        sib = [o for o in codes if o["channel"] == c["channel"] and o["code"] != c["code"]]
        for o in sib:
            if (
                c["bundles"] >= min_samples
                and o["bundles"] >= min_samples
                and c["success_rate"] is not None
                and o["success_rate"] is not None
                and o["success_rate"] - c["success_rate"] >= threshold
                and c["channel"] in sched
            ):
                notes.append(
                    f"code {c['code']} of channel {c['channel']} (slot parity {c['code']}) succeeds "
                    f"{c['success_rate']:.1%} against {o['success_rate']:.1%}: check clock synchronisation "
                    f"and late bursts spilling into the next slot"
                )
    rates = {ch: chans[ch] for ch in sched if ch in chans and chans[ch]["bundles"] >= min_samples}
    if len(rates) < 2:
        return {
            "action": "none",
            "reason": f"fewer than {min_samples} bundles on each scheduled channel",
            "notes": notes,
        }
    (b, bst), (w, wst) = sorted(rates.items(), key=lambda kv: -kv[1]["success_rate"])[:2]
    gap = bst["success_rate"] - wst["success_rate"]
    if gap < threshold:
        return {
            "action": "none",
            "reason": f"scheduled channels within {threshold:.0%} of each other",
            "notes": notes,
            "better_channel": b,
            "worse_channel": w,
            "gap": round(gap, 6),
        }
    action = "move" if wst["success_rate"] < 0.5 else "alternate"
    why = f"channel {w} succeeds {wst['success_rate']:.1%} against {bst['success_rate']:.1%} on channel {b}: " + (
        "move its hubs to the better channel where slots are free"
        if action == "move"
        else "rotate hubs between the two channels report by report"
    )
    return {
        "action": action,
        "better_channel": b,
        "worse_channel": w,
        "gap": round(gap, 6),
        "reason": why,
        "notes": notes,
    }


def rebalance(
    s: Session, pf: Platform, substation_id: str, action: str, activation_at: datetime | None, better: int, worse: int
) -> list[HubPolicy]:
    """Apply a recommendation as new policy versions from ``activation_at``."""
    when = check_activation(pf, activation_at)
    now = utcnow()
    plan = effective_plan(s, pf, substation_id, now)
    latest = latest_policies(s, substation_id)
    hubs = {h.hub_id: h for h in s.scalars(select(Hub).where(Hub.hub_id.in_(list(latest)))).all()} if latest else {}
    out: list[HubPolicy] = []
    if action == "move":
        sm = build_slot_map(s, substation_id, plan)
        for hub_id, pol in sorted(latest.items()):
            if pol.channel != worse:
                continue
            off = sm.find(better, pol.slots_per_report)
            if off is None:
                break
            sm.mark(better, off, pol.slots_per_report)
            out.append(
                _new_version(
                    s,
                    hubs[hub_id],
                    substation_id=substation_id,
                    channel=better,
                    offset=off,
                    n=pol.slots_per_report,
                    plan=plan,
                    activation_at=when,
                    reason=f"rebalance: move from channel {worse}",
                    prev=pol,
                    modulation=pol.modulation,
                    fec=pol.fec,
                )
            )
        return out
    # alternate: pair hubs of the two channels that need the same number of slots
    by_n: dict[tuple[int, int], list[HubPolicy]] = {}
    for pol in latest.values():
        if pol.alt_channel is None and pol.channel in (better, worse):
            by_n.setdefault((pol.channel, pol.slots_per_report), []).append(pol)
    for (ch, n), pols in sorted(by_n.items()):
        if ch != worse:
            continue
        partners = by_n.get((better, n), [])
        for a, b in zip(sorted(pols, key=lambda p: p.hub_id), sorted(partners, key=lambda p: p.hub_id)):
            out.append(
                _new_version(
                    s,
                    hubs[a.hub_id],
                    substation_id=substation_id,
                    channel=a.channel,
                    offset=a.slot_offset,
                    n=n,
                    plan=plan,
                    activation_at=when,
                    prev=a,
                    alt_channel=b.channel,
                    alt_offset=b.slot_offset,
                    reason=f"rebalance: rotate with hub {b.hub_id}",
                    modulation=a.modulation,
                    fec=a.fec,
                )
            )
            out.append(
                _new_version(
                    s,
                    hubs[b.hub_id],
                    substation_id=substation_id,
                    channel=b.channel,
                    offset=b.slot_offset,
                    n=n,
                    plan=plan,
                    activation_at=when,
                    prev=b,
                    alt_channel=a.channel,
                    alt_offset=a.slot_offset,
                    reason=f"rebalance: rotate with hub {a.hub_id}",
                    modulation=b.modulation,
                    fec=b.fec,
                )
            )
    return out


def set_plan(
    s: Session,
    pf: Platform,
    substation_id: str,
    plan: dict,
    reports_per_day: float,
    activation_at: datetime | None,
    note: str | None,
) -> tuple[PlanVersion, list[HubPolicy]]:
    """Store a new plan version; when the report period changes, every provisioned hub gets a new
    policy version activating with the plan."""
    try:
        plan_from_dict(plan)
    except (ValueError, KeyError) as e:
        raise ProvisioningError("channels", str(e)) from None
    if not scheduled_channels(plan):
        raise ProvisioningError("channels", "the plan needs at least one scheduled channel")
    if not alert_channels(plan):
        raise ProvisioningError("channels", "the plan needs an alert channel (provisioning requests and alerts)")
    when = check_activation(pf, activation_at)
    now = utcnow()
    old = effective_plan(s, pf, substation_id, now)
    pv = PlanVersion(
        substation_id=substation_id,
        plan=plan,
        reports_per_day=reports_per_day,
        activation_at=when,
        activation_slot=activation_slot(when),
        created_at=now,
        note=note,
    )
    s.add(pv)
    s.flush()
    record(
        s,
        entity="plan",
        entity_id=substation_id,
        field="version",
        old=old["version"],
        new=pv.id,
        cause="provisioning",
        evidence=[note or "operator"],
        substation_id=substation_id,
    )
    changed: list[HubPolicy] = []
    new_plan = {"reports_per_day": reports_per_day, **plan}
    if period_slots(reports_per_day) != period_slots(old["reports_per_day"]) or scheduled_channels(
        plan
    ) != scheduled_channels(old):
        latest = latest_policies(s, substation_id)
        if latest:
            hubs = list(s.scalars(select(Hub).where(Hub.hub_id.in_(list(latest)))).all())
            sm = SlotMap(scheduled_channels(new_plan), period_slots(reports_per_day))
            for hub in sorted(hubs, key=lambda h: h.hub_id):
                prev = latest[hub.hub_id]
                ch, off = sm.allocate(prev.slots_per_report)
                changed.append(
                    _new_version(
                        s,
                        hub,
                        substation_id=substation_id,
                        channel=ch,
                        offset=off,
                        n=prev.slots_per_report,
                        plan=new_plan,
                        activation_at=when,
                        reason=f"plan version {pv.id}",
                        prev=prev,
                        modulation=prev.modulation,
                        fec=prev.fec,
                    )
                )
    return pv, changed


def slot_time(slot: int) -> str:
    t = iso(slot_start(slot))
    assert t is not None, "iso() of a datetime is a string"
    return t
