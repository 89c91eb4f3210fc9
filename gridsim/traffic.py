"""Who sends what, when: the Remote Hub population, grid events, and the transmission schedule.

The schedule follows docs/air-interface.md: scheduled reports in provisioned slots on the two
scheduled channels (code = slot parity), alerts and provisioning requests by slotted ALOHA on
the alert channel (code chosen at random, each alert repeated), pairing after provisioning,
restoration alerts after an outage, TAN anomaly reports after a tap starts. Every transmission
carries exactly one sealed frame (dsp.air.messages) and is written to the ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dsp.air import messages as M
from dsp.air import params as P
from dsp.air.messages import hub_key  # the key rule of simulated hubs, shared with platform_api.testing

PHASES = "ABC"


@dataclass
class Hub:
    hub_id: int
    key: bytes
    bus: int
    feeder: int  # global feeder index
    phase: int  # 0..2 = A..C
    lateral: int  # lateral index within the feeder
    transformer_id: int
    meter_ids: list[int]  # meter_ids[0] is the hub's own meter (tan_index 0)
    level_db: float  # received level at the true input, dB relative to its fundamental RMS
    clock_ppm: float
    cutoff_hz: float
    is_new: bool = False  # sends a provisioning request and pairing messages
    counter: int = 0

    def next_counter(self, n: int = 1) -> int:
        """The first of ``n`` consecutive frame counters. A counter never wraps under one key (the
        nonce would repeat: docs/air-interface.md section 13): a simulation that would pass
        2^24 - 1 must rotate the hub's key first, and is stopped here rather than reuse a nonce."""
        c = self.counter
        if c + n - 1 > P.COUNTER_MAX:
            raise ValueError(f"hub {self.hub_id}: counter {c + n - 1} past 2^24 - 1 under one key; rotate the key")
        self.counter = c + n
        return c


@dataclass
class Event:
    kind: str  # move_phase | switch_lateral | outage | tap
    at_s: float = 0.0
    to_s: float = math.inf
    hub: int | None = None  # hub index
    feeder: int | None = None
    lateral: int | None = None
    to_phase: int | None = None
    to_feeder: int | None = None
    meter: int = 0
    kw: float = 0.0


@dataclass
class Transmission:
    tx_id: int
    hub_index: int
    hub_id: int
    time_s: float  # centre of chip 0, seconds from capture start
    channel: int
    code: int
    slot: int
    kind: str
    counter: int
    frame: bytes
    fields: dict
    bus: int
    feeder: int
    phase: int
    level_db: float
    clock_ppm: float
    cutoff_hz: float
    phase_rad: float
    seg_index: int = 0
    seg_count: int = 1
    extra: dict = field(default_factory=dict)


def make_population(
    rng: np.random.Generator,
    *,
    seed: int,
    n_hubs: int,
    buses: int,
    feeders_per_bus: int,
    laterals_per_feeder: int,
    meters_per_hub: tuple[int, int],
    level_db: tuple[float, float],
    clock_ppm: float,
    cutoff_hz: tuple[float, float],
    new_hub_fraction: float = 0.02,
) -> list[Hub]:
    n_feeders = buses * feeders_per_bus
    hubs = []
    used_ids: set[int] = set()
    for i in range(n_hubs):
        feeder = int(rng.integers(n_feeders))
        hub_id = int(rng.integers(1_000_000, 2**31))
        while hub_id in used_ids:
            hub_id = int(rng.integers(1_000_000, 2**31))
        used_ids.add(hub_id)
        n_m = int(rng.integers(meters_per_hub[0], meters_per_hub[1] + 1))
        hubs.append(
            Hub(
                hub_id=hub_id,
                key=hub_key(seed, hub_id),
                bus=feeder // feeders_per_bus,
                feeder=feeder,
                phase=int(rng.integers(3)),
                lateral=int(rng.integers(max(1, laterals_per_feeder))),
                transformer_id=100_000 + i,
                meter_ids=[int(x) for x in rng.integers(10_000_000, 99_999_999, n_m)],
                level_db=float(rng.uniform(*level_db)),
                clock_ppm=float(rng.uniform(-clock_ppm, clock_ppm)),
                cutoff_hz=float(rng.uniform(*cutoff_hz)),
                counter=int(rng.integers(0, 1000)),
            )
        )
    n_new = int(round(new_hub_fraction * n_hubs))
    for i in rng.choice(n_hubs, size=min(n_new, n_hubs), replace=False) if n_new else []:
        hubs[int(i)].is_new = True
    return hubs


def location_at(hub_index: int, hub: Hub, t: float, events: list[Event], feeders_per_bus: int) -> tuple[int, int, int]:
    """(bus, feeder, phase) of a hub at time t after the move and switch events so far."""
    feeder, phase = hub.feeder, hub.phase
    for ev in sorted(events, key=lambda e: e.at_s):
        if ev.at_s > t:
            break
        if ev.kind == "move_phase" and ev.hub == hub_index:
            assert ev.to_phase is not None  # a move_phase event always names its new phase
            phase = int(ev.to_phase)
        elif ev.kind == "switch_lateral" and ev.feeder == hub.feeder and ev.lateral == hub.lateral:
            assert ev.to_feeder is not None  # a switch_lateral event always names its new feeder
            feeder = int(ev.to_feeder)
    return feeder // feeders_per_bus, feeder, phase


def powered(hub: Hub, t: float, events: list[Event], location_feeder: int) -> bool:
    for ev in events:
        if ev.kind == "outage" and ev.at_s <= t < ev.to_s and ev.feeder == location_feeder:
            if ev.lateral is None or ev.lateral == hub.lateral:
                return False
    return True


def reading(rng: np.random.Generator, tan_index: int, theft_w: float = 0.0) -> M.MeterReading:
    i_rms = float(rng.uniform(0.5, 40.0))
    v_rms = float(240.0 - 0.08 * i_rms - rng.uniform(0, 3.0) - theft_w / 240.0 * 0.1)
    return M.MeterReading(tan_index, round(v_rms, 2), round(i_rms, 2), round(float(rng.uniform(0.85, 1.0)), 2))


class Scheduler:
    """Builds the list of transmissions of a scenario (deterministic for a seed)."""

    def __init__(
        self,
        hubs: list[Hub],
        events: list[Event],
        *,
        rng: np.random.Generator,
        duration_s: float,
        start_unix: float,
        feeders_per_bus: int,
        report_period_s: float,
        alert_rate_per_hub_per_day: float,
        jitter_s: float,
        alert_repeats: int = 2,
    ) -> None:
        self.hubs, self.events, self.rng = hubs, events, rng
        self.duration_s, self.start_unix = duration_s, start_unix
        self.fpb = feeders_per_bus
        self.report_period_s = report_period_s
        self.alert_rate = alert_rate_per_hub_per_day
        self.jitter_s = min(jitter_s, 0.2)
        self.alert_repeats = alert_repeats
        self.out: list[Transmission] = []
        self.warnings: list[str] = []
        self.first_slot = math.ceil(start_unix / P.SLOT_S)

    # -- helpers -------------------------------------------------------------------------------
    def _slot_time(self, slot: int) -> float:
        return slot * P.SLOT_S - self.start_unix + P.SLOT_START_OFFSET_S

    def _emit(
        self,
        hub_index: int,
        slot: int,
        channel: int,
        code: int,
        msg: M.Message,
        extra: dict | None = None,
        frames: list[bytes] | None = None,
    ) -> list[bytes]:
        """Schedule ``msg`` (or the already sealed ``frames`` of a repeat); returns the frames."""
        hub = self.hubs[hub_index]
        t = self._slot_time(slot) + float(self.rng.uniform(-self.jitter_s, self.jitter_s))
        bus, feeder, phase = location_at(hub_index, hub, t, self.events, self.fpb)
        if not powered(hub, t, self.events, feeder):
            return frames or []
        if frames is None:  # a first sending, not a repeat
            frames = M.encode_message(msg, hub_id=hub.hub_id, counter=hub.next_counter(0), key=hub.key)
            hub.next_counter(len(frames))
        if t < 0 or t + P.burst_duration_s() + 0.1 > self.duration_s:
            return frames
        for seg, fr in enumerate(frames):
            counter = int.from_bytes(fr[5:8], "big")
            if seg:  # later segments go in the following slots of the same channel
                t2 = self._slot_time(slot + seg) + float(self.rng.uniform(-self.jitter_s, self.jitter_s))
                if t2 + P.burst_duration_s() + 0.1 > self.duration_s:
                    break
                code_s = (slot + seg) % 2 if channel != 2 else code
            else:
                t2, code_s = t, code
            fields = M.open_frame(fr, lambda _h: hub.key).as_dict()
            self.out.append(
                Transmission(
                    tx_id=len(self.out),
                    hub_index=hub_index,
                    hub_id=hub.hub_id,
                    time_s=t2,
                    channel=channel,
                    code=code_s,
                    slot=slot + seg,
                    kind=fields["kind"],
                    counter=counter,
                    frame=fr,
                    fields=fields["fields"],
                    bus=bus,
                    feeder=feeder,
                    phase=phase,
                    level_db=hub.level_db,
                    clock_ppm=hub.clock_ppm,
                    cutoff_hz=hub.cutoff_hz,
                    phase_rad=float(self.rng.uniform(0, 2 * np.pi)),
                    seg_index=seg,
                    seg_count=len(frames),
                    extra=dict(extra or {}),
                )
            )
        return frames

    def _alert_slot(self, t: float) -> int:
        return math.ceil((self.start_unix + t) / P.SLOT_S)

    # -- traffic ---------------------------------------------------------------------------------
    def scheduled_reports(self) -> None:
        """Slots on the two scheduled channels, a report period apart; segments in consecutive slots."""
        period_slots = max(1, int(self.report_period_s // P.SLOT_S))
        pointer = [0, 0]  # next free slot (within the period) on channels 0 and 1
        assignment = []
        for i, hub in enumerate(self.hubs):
            n_frames = -(-len(hub.meter_ids) // M.ScheduledReport.PER_FRAME)
            channel = 0 if pointer[0] <= pointer[1] else 1
            if pointer[channel] + n_frames > period_slots:
                self.warnings.append(f"scheduled channels full: hub {hub.hub_id} gets no report slot")
                continue
            assignment.append((i, pointer[channel], channel))
            pointer[channel] += n_frames
        n_periods = int(math.ceil(self.duration_s / self.report_period_s)) + 1
        for p in range(n_periods):
            for i, slot_in_period, channel in assignment:
                slot = self.first_slot + p * period_slots + slot_in_period
                hub = self.hubs[i]
                t_meas = int(self.start_unix + self._slot_time(slot) - 60)
                theft = self._theft_w(i, self._slot_time(slot))
                readings = [
                    reading(self.rng, j, theft if j == self._tap_meter(i) else 0.0) for j in range(len(hub.meter_ids))
                ]
                self._emit(i, slot, channel, slot % 2, M.ScheduledReport(t_meas, readings))

    def _theft_w(self, hub_index: int, t: float) -> float:
        return sum(ev.kw * 1000 for ev in self.events if ev.kind == "tap" and ev.hub == hub_index and ev.at_s <= t)

    def _tap_meter(self, hub_index: int) -> int:
        for ev in self.events:
            if ev.kind == "tap" and ev.hub == hub_index:
                return ev.meter
        return -1

    def _alert(self, hub_index: int, t: float, msg: M.Message, extra: dict | None = None) -> None:
        """Slotted ALOHA on the alert channel: the same sealed frame sent ``alert_repeats`` times,
        each with a fresh random code, a random 1..5 slots apart."""
        slot = self._alert_slot(t)
        frames = None
        for r in range(self.alert_repeats):
            frames = self._emit(
                hub_index,
                slot,
                2,
                int(self.rng.integers(P.CODES_PER_CHANNEL)),
                msg,
                dict(extra or {}, repeat=r),
                frames=frames,
            )
            slot += int(self.rng.integers(1, 6))

    def alerts(self) -> None:
        rate_s = self.alert_rate / 86400.0
        for i in range(len(self.hubs)):
            n = self.rng.poisson(rate_s * self.duration_s)
            for t in np.sort(self.rng.uniform(0, self.duration_s, n)):
                typ = int(
                    self.rng.choice([M.AlertType.SAG, M.AlertType.SWELL, M.AlertType.DISTRESS], p=[0.6, 0.3, 0.1])
                )
                v = 240 * (0.85 if typ == M.AlertType.SAG else 1.1 if typ == M.AlertType.SWELL else 1.0)
                self._alert(
                    i, float(t), M.Alert(typ, int(self.start_unix + t), round(v, 2), int(self.rng.integers(1, 30)))
                )

    def provisioning(self) -> None:
        for i, hub in enumerate(self.hubs):
            if not hub.is_new:
                continue
            t = float(self.rng.uniform(0, min(600.0, self.duration_s / 2)))  # new hubs come up over minutes
            self._alert(i, t, M.ProvisioningRequest(meter_id=hub.meter_ids[0], capabilities=1))
            for j, mid in enumerate(hub.meter_ids[1:], start=1):
                t += float(self.rng.uniform(8, 20))
                self._alert(i, t, M.Pairing(meter_id=mid, tan_index=j, relation=M.Relation.SUBORDINATE_SAME_PHASE))

    def event_traffic(self) -> None:
        for ev in self.events:
            if ev.kind == "outage" and ev.to_s < self.duration_s:
                for i, hub in enumerate(self.hubs):
                    _, feeder, _ = location_at(i, hub, ev.at_s, self.events, self.fpb)
                    if feeder == ev.feeder and (ev.lateral is None or ev.lateral == hub.lateral):
                        t = ev.to_s + float(self.rng.uniform(2, 40))
                        self._alert(
                            i,
                            t,
                            M.Alert(M.AlertType.RESTORATION, int(self.start_unix + t), 240.0, int(ev.to_s - ev.at_s)),
                            {"event": "outage"},
                        )
            elif ev.kind == "tap" and ev.hub is not None:
                t = ev.at_s + float(self.rng.uniform(20, 60))
                self._alert(
                    ev.hub,
                    t,
                    M.TanAnomaly(
                        M.AnomalyType.THEFT_SUSPICION,
                        ev.meter,
                        int(self.start_unix + t),
                        unaccounted_w=ev.kw * 1000,
                        confidence=0.9,
                    ),
                    {"event": "tap"},
                )

    def explicit(self, items: list[dict]) -> None:
        for it in items:
            i = int(it["hub"]) % len(self.hubs)
            hub = self.hubs[i]
            kind = it.get("kind", "scheduled_report")
            t = float(it["at_s"])
            msg: M.Message
            if kind == "scheduled_report":
                msg = M.ScheduledReport(
                    int(self.start_unix + t), [reading(self.rng, j) for j in range(min(2, len(hub.meter_ids)))]
                )
            elif kind == "alert":
                msg = M.Alert(M.AlertType.SAG, int(self.start_unix + t), 205.0, 2)
            elif kind == "provisioning_request":
                msg = M.ProvisioningRequest(meter_id=hub.meter_ids[0])
            elif kind == "pairing":
                msg = M.Pairing(meter_id=hub.meter_ids[-1], tan_index=len(hub.meter_ids) - 1)
            elif kind == "tan_anomaly":
                msg = M.TanAnomaly(M.AnomalyType.THEFT_SUSPICION, 0, int(self.start_unix + t), 1000.0, 0.8)
            else:
                raise ValueError(f"explicit transmission {it}: unknown kind {kind!r}")
            channel = int(it.get("channel", 2 if kind != "scheduled_report" else 0))
            code = int(it.get("code", 0))
            # place exactly at at_s (no slot rounding, no jitter): explicit transmissions are for tests
            saved = self.jitter_s, self._slot_time
            self.jitter_s = 0.0
            self._slot_time = lambda _slot, _t=t: _t  # type: ignore[method-assign,misc]  # patched for one call
            try:
                self._emit(i, self._alert_slot(t), channel, code, msg, {"explicit": True})
            finally:
                self.jitter_s, self._slot_time = saved[0], saved[1]  # type: ignore[method-assign]

    def build(self, explicit: list[dict] | None = None, background: bool = True) -> list[Transmission]:
        if explicit:
            self.explicit(explicit)
        if background:
            self.scheduled_reports()
            self.alerts()
            self.provisioning()
            self.event_traffic()
        self.out.sort(key=lambda tx: tx.time_s)
        for n, tx in enumerate(self.out):
            tx.tx_id = n
        return self.out
