"""Run a scenario: population -> schedule -> bursts -> CT-loop channel -> capture + sidecar + truth.

The capture is rendered in one-second blocks; a burst is modulated (gridsim.burst_synth: the
waveform of dsp.tx.modulator, computed faster) when the first block it touches is rendered and
dropped after its last one, so memory stays flat however long the capture is. The result is a
function of the scenario (and its seed) only.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dsp.air import params as P
from dsp.tx import burst
from receiver.contracts.capture import write_truth

from . import burst_synth
from .capture import CaptureWriter
from .channel import Injection, SubstationChannel
from .scenario import Scenario, load_builtin, load_scenario
from .traffic import Event, Scheduler, Transmission, make_population

log = logging.getLogger("gla.sim")

BLOCK_S = 1.0
#: Written to the sidecar as ``gla:simulator``: which arithmetic made the capture. gridsim 2
#: computes the background differently from gridsim 1 (the same model: harmonics from periodic
#: tables, noise from a Ziggurat on SplitMix64, tones by phasor rotation), so its captures differ.
SIMULATOR = (
    "gla-receiver 0.1.0 gridsim 2: harmonics from periodic tables, Ziggurat/SplitMix64 noise, "
    "tones by rotation, vectorised burst synthesis"
)
_EXPLICIT_KIND = {"scheduled": "scheduled_report", "alert": "alert", "provisioning": "provisioning_request"}
_PHASE = {"A": 0, "B": 1, "C": 2}


@dataclass
class SimulationResult:
    scenario: Scenario
    audio_path: Path
    meta_path: Path
    truth_path: Path
    transmissions: list[Transmission]
    hubs: list
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def _events(s: Scenario) -> list[Event]:
    out = []
    for ev in s.events:
        if ev.kind == "move_phase":
            out.append(Event("move_phase", at_s=ev.at_s, hub=ev.hub, to_phase=_PHASE[ev.to_phase]))
        elif ev.kind == "switch_lateral":
            out.append(
                Event("switch_lateral", at_s=ev.at_s, feeder=ev.feeder, lateral=ev.lateral, to_feeder=ev.to_feeder)
            )
        elif ev.kind == "outage":
            out.append(Event("outage", at_s=ev.from_s, to_s=ev.to_s, feeder=ev.feeder, lateral=ev.lateral))
        elif ev.kind == "tap":
            out.append(Event("tap", at_s=ev.from_s, hub=ev.hub, meter=ev.meter, kw=ev.kw))
    return out


def ebn0_db(level_db: float, noise_floor_dbc: float, fs_hz: float, fc_hz: float, cutoff_hz: float) -> float:
    """Eb/N0 of a burst at its true input: energy per information bit of the data part (after the
    transformer's low-pass at the carrier) over the one-sided noise density."""
    lp = 1.0 / (1.0 + (fc_hz / cutoff_hz) ** 4)  # |H|^2 of the 2nd-order Butterworth
    p_s = 10 ** (level_db / 10) * lp  # relative to fundamental power (fundamental RMS cancels)
    n0 = 10 ** (-noise_floor_dbc / 10) / (fs_hz / 2)
    t_bit = P.data_symbols(P.Modulation.BPSK, P.FecRate.R1_2) / P.SYMBOL_RATE_HZ / P.FRAME_BITS
    return 10 * math.log10(p_s * t_bit / n0)


def _resolve(scenario: str | Path | Scenario) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    p = Path(str(scenario))
    if p.suffix == ".toml" or p.exists():
        return load_scenario(p)
    return load_builtin(str(scenario))


def run_scenario(
    scenario: str | Path | Scenario,
    out_stem: str | Path,
    *,
    seed: int | None = None,
    duration_s: float | None = None,
    progress: bool = True,
) -> SimulationResult:
    s = _resolve(scenario)
    if seed is not None or duration_s is not None:
        upd: dict[str, Any] = {}
        if seed is not None:
            upd["seed"] = int(seed)
        if duration_s is not None:
            if duration_s <= 0:
                raise ValueError(f"duration must be positive, got {duration_s}")
            upd["duration_s"] = float(duration_s)
        s = s.model_copy(update={"scenario": s.scenario.model_copy(update=upd)})
    t_wall = time.perf_counter()
    sc, hc = s.scenario, s.hubs
    fs = sc.fs_hz
    plan = s.channel_plan()
    rng = np.random.default_rng([sc.seed, 1])
    hubs = make_population(
        rng,
        seed=sc.seed,
        n_hubs=hc.count,
        buses=s.substation.buses,
        feeders_per_bus=s.substation.feeders_per_bus,
        laterals_per_feeder=hc.laterals_per_feeder,
        meters_per_hub=hc.meters_per_hub,
        level_db=hc.level_db,
        clock_ppm=hc.clock_ppm,
        cutoff_hz=(0.95 * s.substation.transformer_cutoff_hz, 1.3 * s.substation.transformer_cutoff_hz),
    )
    events = _events(s)
    start_unix = sc.start_time_utc.timestamp()
    period = 86400.0 / hc.scheduled_reports_per_day if hc.scheduled_reports_per_day > 0 else math.inf
    sched = Scheduler(
        hubs,
        events,
        rng=np.random.default_rng([sc.seed, 2]),
        duration_s=sc.duration_s,
        start_unix=start_unix,
        feeders_per_bus=s.substation.feeders_per_bus,
        report_period_s=period,
        alert_rate_per_hub_per_day=hc.alert_rate_per_hub_per_day,
        jitter_s=hc.jitter_s,
    )
    explicit = [
        dict(
            at_s=t.at_s,
            hub=t.hub,
            kind=_EXPLICIT_KIND[t.kind],
            **({"channel": t.channel} if t.channel is not None else {}),
            **({"code": t.code} if t.code is not None else {}),
        )
        for t in s.transmissions
    ]
    txs = sched.build(explicit=explicit, background=not explicit)
    for w in sched.warnings[:5]:
        log.warning(w)

    chan = SubstationChannel(s.channel_config(), s.layout(), seed=sc.seed)
    n_total = s.n_samples
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    meas_rng = np.random.default_rng([sc.seed, 3])

    # modulate lazily, in order of start
    pending = list(txs)
    active: list[tuple[Transmission, Injection]] = []
    truth: list[dict] = []
    block = int(BLOCK_S * fs)
    writer = CaptureWriter(
        out_stem,
        fs,
        s.n_inputs,
        s.layout(),
        subtype=sc.capture_subtype,
        start_time_utc=sc.start_time_utc,
        grid_hz=sc.grid_hz,
        expected_frames=n_total,
        ct_polarity=chan.ct_polarity.tolist(),
        description=f"scenario {s.name} (seed {sc.seed})",
        meta_extra={"gla:scenario": s.name, "gla:seed": sc.seed, "gla:simulator": SIMULATOR},
    )
    bar = tqdm(total=n_total, unit="sample", unit_scale=True, disable=not progress, desc=f"simulate {s.name}")
    with writer:
        pos = 0
        while pos < n_total:
            n = min(block, n_total - pos)
            end = pos + n
            while pending and pending[0].time_s * fs - 0.05 * fs < end:
                tx = pending.pop(0)
                inj, rec = _make_injection(tx, chan, plan, fs, s, meas_rng)
                active.append((tx, inj))
                truth.append(rec)
            injs = [inj for _, inj in active]
            writer.write(chan.render(pos, n, injs))
            tail = int(chan.config.injection_tail_s * fs)
            active = [(t, i) for t, i in active if i.start_sample + i.samples.size + tail > end]
            pos = end
            bar.update(n)
    bar.close()
    extra = {
        "scenario": s.name,
        "seed": sc.seed,
        "fs_hz": fs,
        "n_samples": n_total,
        "grid_hz": sc.grid_hz,
        "start_time_utc": sc.start_time_utc.isoformat(),
        "n_inputs": s.n_inputs,
        "inputs": [
            {"index": i, "bus": b, "feeder": f, "phase": "ABC"[p]} for i, (b, f, p) in enumerate(s.layout().inputs)
        ],
        "channel_plan": [{"index": c.index, "fc_hz": c.fc_hz, "role": c.role.name.lower()} for c in plan.channels],
        "hubs": [
            {
                "index": i,
                "hub_id": h.hub_id,
                "key_hex": h.key.hex(),
                "bus": h.bus,
                "feeder": h.feeder,
                "phase": "ABC"[h.phase],
                "lateral": h.lateral,
                "transformer_id": h.transformer_id,
                "meter_ids": h.meter_ids,
                "level_db": round(h.level_db, 2),
                "clock_ppm": round(h.clock_ppm, 2),
                "is_new": h.is_new,
            }
            for i, h in enumerate(hubs)
        ],
        "events": [e.model_dump() for e in s.events],
        "channel": chan.describe(),
    }
    truth_path = write_truth(out_stem, truth, extra)
    return SimulationResult(
        s, writer.audio_path, writer.meta_path, truth_path, txs, hubs, sched.warnings, time.perf_counter() - t_wall
    )


def _make_injection(
    tx: Transmission, chan: SubstationChannel, plan: P.ChannelPlan, fs: int, s: Scenario, meas_rng: np.random.Generator
) -> tuple[Injection, dict]:
    ch = plan.channel(tx.channel)
    start_sample = int(round(tx.time_s * fs))
    f0_true = float(chan.grid_frequency(max(start_sample - 1, 0), 1)[0])
    f0_meas = f0_true + float(meas_rng.normal(0, 3e-4))  # the hub's own measurement, < 1 mHz
    chips = burst.burst_chips(tx.frame, tx.channel, tx.code, ch.modulation, ch.fec)
    first, samples = burst_synth.modulate(  # = dsp.tx.modulator.modulate, faster
        chips,
        fs_hz=fs,
        fc_hz=ch.fc_hz,
        t_start_s=tx.time_s,
        grid_period_s=1.0 / f0_meas,
        clock_ppm=tx.clock_ppm,
        phase_rad=tx.phase_rad,
    )
    inj = Injection(
        start_sample=first,
        samples=samples,
        bus=tx.bus,
        feeder=tx.feeder,
        phase=tx.phase,
        level_db=tx.level_db,
        cutoff_hz=tx.cutoff_hz,
        crosstalk_seed=tx.tx_id + 7919 * s.seed,
    )
    gains = chan.crosstalk_gains(inj)
    rec = {
        "tx_id": tx.tx_id,
        "hub_id": tx.hub_id,
        "hub_index": tx.hub_index,
        "bus": tx.bus,
        "feeder": tx.feeder,
        "phase": "ABC"[tx.phase],
        "input": chan.input_index(tx.bus, tx.feeder, tx.phase),
        "channel": tx.channel,
        "code": tx.code,
        "slot": tx.slot,
        "fc_hz": ch.fc_hz,
        "start_time_s": tx.time_s,
        "start_sample": start_sample,
        "first_sample": first,
        "end_sample": first + samples.size,
        "kind": tx.kind,
        "counter": tx.counter,
        "seg_index": tx.seg_index,
        "seg_count": tx.seg_count,
        "frame_hex": tx.frame.hex(),
        "fields": tx.fields,
        "level_db": round(tx.level_db, 3),
        "ebn0_db": round(ebn0_db(tx.level_db, s.channel.noise_floor_dbc, fs, ch.fc_hz, tx.cutoff_hz), 3),
        "clock_ppm": round(tx.clock_ppm, 3),
        "cutoff_hz": round(tx.cutoff_hz, 1),
        "phase_rad": round(tx.phase_rad, 6),
        "grid_hz_true": f0_true,
        "grid_hz_measured": f0_meas,
        "crosstalk_gains": [round(float(g), 6) for g in gains],
        **tx.extra,
    }
    return inj, rec


def print_summary(result: SimulationResult, limit: int = 20) -> None:
    s = result.scenario
    txs = result.transmissions
    kinds: dict[str, int] = {}
    for t in txs:
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
    rt = s.duration_s / result.wall_s if result.wall_s > 0 else float("inf")
    print(
        f"scenario {s.name}: {s.substation.buses} bus(es) x {s.substation.feeders_per_bus} feeders = "
        f"{s.n_inputs} CT inputs, {len(result.hubs)} hubs, {s.duration_s:g} s at {s.fs_hz} Hz "
        f"(simulated in {result.wall_s:.1f} s, {rt:.1f}x real time)"
    )
    print(f"capture: {result.audio_path}  sidecar: {result.meta_path}  truth: {result.truth_path}")
    print(f"sent {len(txs)} bursts: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    if s.events:
        print("staged events: " + "; ".join(_event_text(e) for e in s.events))
    if limit:
        print(
            f"{'t_s':>8} {'hub_id':>11} {'kind':<22} {'ch':>2} {'code':>4} {'bus':>3} {'feeder':>6} {'ph':>2} "
            f"{'Eb/N0':>6}"
        )
        for t in txs[:limit]:
            ch = s.channel_plan().channel(t.channel)
            e = ebn0_db(t.level_db, s.channel.noise_floor_dbc, s.fs_hz, ch.fc_hz, t.cutoff_hz)
            print(
                f"{t.time_s:8.2f} {t.hub_id:>11} {t.kind:<22} {t.channel:>2} {t.code:>4} {t.bus:>3} {t.feeder:>6} "
                f"{'ABC'[t.phase]:>2} {e:6.1f}"
            )
        if len(txs) > limit:
            print(f"... and {len(txs) - limit} more (all in {result.truth_path})")
    for w in result.warnings[:3]:
        print(f"warning: {w}")


def _event_text(e) -> str:
    d = e.model_dump()
    kind = d.pop("kind")
    return kind + "(" + ", ".join(f"{k}={v}" for k, v in d.items() if v is not None) + ")"
