"""Theft analysis evaluated on pandapower's three-phase unbalanced power flow (issue [5/6], item 5).

    nice .venv/bin/python -m benchmarks.theft_eval            # full: ~10-15 min on 2 cores
    .venv/bin/python -m benchmarks.theft_eval --quick         # a few scenarios, ~1 min (smoke test)

Writes ``benchmarks/results/theft.json`` and ``benchmarks/results/theft_detection.png``
(``--out DIR`` elsewhere). Power-flow solutions are cached in ``out/theft_cache/``.

Ground truth
------------
Voltages come from ``pandapower.pf.runpp_3ph`` (three-phase, unbalanced, constant-power loads):

* **US-style split-phase areas** (built here): one single-phase 25-50 kVA service transformer,
  4-10 meters, each on its own service drop of 15-60 m of #2, 1/0 or 4/0 aluminium triplex.
  runpp_3ph has no centre-tapped single-phase transformer, so the 120/240 V secondary is
  modelled by its exact equivalent for what the meters see. A US residential meter (form 2S)
  measures the L1-L2 voltage and the two line currents in one element. On the L1-L2 loop the
  neutral current of unbalanced 120 V loads cancels: ``V12,meter = V12,tr - Z_c (I1 + I2)``
  with ``Z_c`` one conductor's impedance. So each service drop is a phase-a line of a Dyn
  three-phase transformer whose secondary is rated 240 V line-to-neutral, with the neutral
  (zero-sequence) impedance set to ``Z0 = 4 Z1``. A single-phase load then sees the loop
  impedance ``(2 Z1 + Z0) / 3 = 2 Z1``: the two hot conductors of the triplex. The transformer
  is sized at three times the single-phase kVA so that its phase-a impedance is the
  single-phase one. A 120 V tap of P watts on L1 drops V12 exactly as much as a 240 V tap of P
  watts (``Z_c P/120 = 2 Z_c P/240``), so the taps are modelled as 240 V loads. What this
  leaves out is what a form 2S meter does not measure either (one V_rms per meter, the issue's
  data): the L1-N/L2-N imbalance of a 120 V tap. A meter reporting both legs (0.1 % of 120 V
  each) would see a 120 V tap at its own service about 4 times more clearly, a 240 V one about
  1.4 times; neither the detector nor the bound assumes such meters.
* **European networks that pandapower ships**: ``create_kerber_landnetz_kabel_2`` (14 houses,
  two strands of NAYY cable, 1.3 km), ``create_synthetic_voltage_control_lv_network``
  (14 houses, three strands, 1.6 km: the long rural feeder) and
  ``create_kerber_landnetz_freileitung_1`` (13 houses directly on a 273 m overhead bus). Lines
  get the zero-sequence data runpp_3ph needs (``Z0 = 4 Z1``: a neutral of the phase
  cross-section), the transformer becomes Dyn with ``vk0 = vk``, and every house is a
  single-phase load on a phase drawn so that the phases are balanced. The IEEE European LV test
  feeder is not used here; it is kept aside for an independent check (``benchmarks/theft_ieee_check.py``).

Each (network, load profile) is solved once per minute for three days. Many time steps go into
one pandapower network holding copies of the area as separate islands, each with its own
external grid (about 3000 buses per call: 250 copies of a US area, ~100 of a European feeder),
so that a single runpp_3ph call solves that many minutes (2-6 ms per area-minute on an idle
core instead of 60-80 ms; runpp_3ph has a dense step whose cost grows with the square of the
bus count, hence the limit). Each tap site is solved once with a 3 kW tap switched on for the whole record
(tap at pf 0.95). 1 kW and 0.3 kW taps take the 3 kW solution's change scaled by P/3 kW;
``linearity_check`` in the JSON compares this with exact runpp_3ph solutions of 1 and 0.3 kW
taps on a sample of minutes. A tap that starts at t0, or switches on and off, takes the tapped
solution where it is on and the clean one elsewhere: the flow is static, so this is exact.

Load profiles (1-minute steps, synthesised per house): a base load, a cycling refrigerator,
lighting and electronics following a daily activity curve (night trough, morning and evening
peaks, each house shifted), and Poisson-started appliances. Appliances start more often when the
activity is high, and each has its own power, duration and power factor: kettle or microwave,
cooking, washer, dryer, dishwasher, a US water heater, and a US air-conditioner that cycles in
the afternoon and evening. The medium-voltage grid moves the external-grid voltage by +-1 %
daily, adds a slow random walk and on-load tap-changer steps of 0.6 %.

Meter noise (``MeterAccuracy`` defaults): voltage 0.1 % random (one sigma) plus a fixed
calibration gain error uniform in +-0.1 %, current 0.25 % + 0.25 %, resolutions 0.01 V, 0.01 A
and 0.01 of power factor (the scheduled-report fields). It is drawn afresh for each trial.
Reading the issue's "0.1 % random" as one standard deviation is the most conservative reading:
accuracy classes are limits of error, and a limit read as a uniform bound is 0.058 % rms, read as
a 95 % bound 0.05 % (``--v-random-pct`` sets it; the headline figures keep 0.1 %).

Scenarios and trials
--------------------
Tap sites: in each US area three meters, one tapped at the meter base, one at 2/3 of its service
drop from the transformer and one at 1/3 (8 areas, 24 sites). In each European network, the
service line of a far and of a middle house at the house end, and the middle of feeder
segments (3 sites per network). Each site is tapped with 0.3, 1 and 3 kW. Each record is 3 days;
the detector fits on day 1 and then runs over the whole record.

* *starting during the record*: the tap switches on at a random minute of day 2 and is
  followed for 24 h. It is constant or intermittent (on 10-60 min, off 10-90 min, repeated;
  duty about 40 %). There are 5 trials per (site, size, kind), each with its own start time,
  switching pattern and meter noise;
* *present from the start*: the tap is on from minute 0, constant or intermittent (2 trials);
* *clean*: no tap, 16 noise draws of every area's clean record (the 8 tapped US areas, 4 more
  US areas and the 3 European networks). Every THEFT_SUSPICION counts as a false alarm, per
  1,000 meter-days over the three days. Alarms before the tap's start in tapped records are
  reported too.

US areas use ``analyse_radial``; European feeders use ``analyse_feeder`` (topology-agnostic,
localisation by drop pattern). A detection is the first THEFT_SUSPICION at or after the tap's
start. It is *localised* if it names the tapped meter. For a European feeder tap between two
connections, the tapped meter is the first meter downstream of the tap; ``named_meter_from_tap_m``
also gives the distance from the tap to the named meter's connection, the localisation level
on feeders. The headline US rates are over *constant* taps: a 3 kW tap draws 3 kW, while an
intermittent one draws it only while on. Intermittent taps are reported beside them
(``*_intermittent``). US trials are repeated at half the random voltage noise, with the
detector told that class (``us_half_random_voltage_noise``), in case 0.1 % is read as a 2-sigma
bound; ``--v-random-pct 0.05`` runs the whole benchmark (clean records too) at that reading
(``benchmarks/results/theft_v_random_0.05/theft.json``). The in-run sensitivity does not measure
false alarms at that noise; the whole-benchmark run does.

The bound: smallest tap any detector could see in the same time
--------------------------------------------------------------
Let ``d(t)`` be the change of every meter's voltage per kW of tap, from the power flows
(``(V_tap - V_clean) / kW``), and ``m(t)`` the tap's on/off pattern. The readings are
``v(t) = v_clean(t) + P m(t) d(t) + n(t)`` with independent Gaussian noise of standard
deviation ``sigma_v`` (0.1 % of the voltage with the quantisation) per reading. Every phase's
voltage at the transformer is unknown at every minute, so only the part of ``d`` that is not
common to a phase's meters can be seen: ``e(t) = sum_g ||P_g d_g(t)||^2`` with ``P_g`` the
projection that removes the phase's mean (calibration offsets cancel in a change). For a
radial area this is ``s(t)^2 (1 - 1/n)``, where ``s`` is the tapped meter's own extra drop per kW.
That equals ``s^2 / (1 + 1/(n-1))``: the tapped meter's drop against the mean of its n - 1
partners, whose noise adds its share.
Suppose a detector knew the onset, the pattern ``m`` and ``d`` (a clairvoyant, so its result
bounds every real detector). Its best test over a window of W minutes is the matched filter.
Its statistic has mean ``P E`` and variance ``sigma_v^2 E``, with
``E = sum_{t in W} m(t) e(t)``. This is also the Cramer-Rao bound: no unbiased estimator of P
has a variance below ``sigma_v^2 / E``. Detecting with probability 0.95 at a false-alarm
probability alpha requires

    P >= P_min = (z_{1-alpha} + z_{0.95}) sigma_v / sqrt(E).

``alpha`` is the false-alarm budget spent on one window: 1 per 1,000 meter-days is
``alpha = N W / (1440 * 1000)`` for one test of an area of N meters per window of W minutes.
``P_min`` is computed per trial for W = 60 min and W = 24 h. ``bound_detectable`` is the share
of trials whose tap is at least ``P_min``. The clairvoyant detects a tap of P with probability
``Phi((z_{1-alpha} + z_{0.95}) P / P_min - z_{1-alpha})`` (``bound_p_detect_*``); its mean over
the trials (``bound_expected_detect_*``) is the most any detector can expect. A real detector
does not know the onset, and a sequential test at this false-alarm rate needs about 1.3 times
the clairvoyant's tap: ``sequential_reference_detect_3kw_1h_us`` is the share the detector's
own CUSUM bank would catch within the hour on white Gaussian residuals at each trial's SNR
(``snr_per_min_1h``, the shift in standard deviations per reading).

The bound and the detector treat each phase's secondary voltage as unknown at every minute. In
this simulation it is not: it is the external-grid voltage (daily swing, a random walk that
steps every 5 min by about 0.10 V rms at 240 V, a few tap-changer steps of 1.44 V) less the
transformer's drop under the total current, metered and tapped. A tap's share of that drop
(0.06-0.14 V per kW in the tapped US areas) is a common step that no metered current explains,
and a detector modelling the grid voltage as the simulation makes it could use it (to detect,
not to localise). Neither does, on purpose: on a real lateral the secondary voltage also moves
with the neighbouring transformers' loads through the shared medium-voltage impedance, and with
regulator and capacitor steps, none of which is simulated, so such a detector's false-alarm
rate here would be the simulation's, not the grid's. A constant tap present from the start has no onset. It cannot be told
from a calibration offset below the 2 x 0.1 % tolerance. Its bound is
``(tolerance + (z_{1-alpha} + z_{0.95}) sigma / sqrt(n)) / mean(s)`` over the first day, with
``sigma = sigma_v sqrt(1 + 1/(n_g - 1))``.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread per process: the analyses are small

import argparse
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import multiprocessing as mp
import pathlib
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import special

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_json  # noqa: E402
from platform_api.theft import (DetectorConfig, MeterAccuracy, MeterInfo, TanSeries,  # noqa: E402
                                analyse_feeder, analyse_radial)

MIN_PER_DAY = 1440
T0_UNIX = 1_795_305_600  # 2026-11-22 00:00 UTC
TAP_PF = 0.95
TAP_REF_KW = 3.0
SIZES_KW = (0.3, 1.0, 3.0)
Z95 = 1.6448536269514722
US_CONDUCTORS = {  # per conductor: ohm/km at 75 C, reactance of the triplex
    "#2 Al triplex": (0.871, 0.095),
    "1/0 Al triplex": (0.548, 0.090),
    "4/0 Al triplex": (0.274, 0.085),
}
EU_NETWORKS = ("kerber_landnetz_kabel_2", "synthetic_voltage_control_lv", "kerber_landnetz_freileitung_1")


# ====================================================================================== config
@dataclass
class EvalConfig:
    mode: str = "full"
    seed: int = 20261122
    days: int = 3
    n_us_tap_tans: int = 8
    n_us_clean_tans: int = 4
    us_meters: tuple[int, int] = (4, 10)
    us_tap_sites: int = 3
    eu_networks: tuple[str, ...] = EU_NETWORKS
    eu_tap_sites: int = 3
    draws_during: int = 5  # trials per (site, size, kind) with the tap starting during the record
    draws_start: int = 2  # trials per (site, size, kind) with the tap present from the start
    draws_half_noise: int = 2  # US trials per (site, size) at half the random voltage noise
    clean_draws: int = 16  # noise draws of each clean record
    batch_buses: int = 3000  # copies per runpp_3ph call: about this many buses (its cost has a dense, quadratic part)
    min_batch: int = 50  # ... but at least this many copies (a network of ~1000 buses wants fewer)
    kinds: tuple[str, ...] = ("constant", "intermittent")  # tap kinds tried at every site
    starts: tuple[str, ...] = ("during", "start")  # tap starting during the record, present from the start
    tap_from_min: int = 0  # taps are never on before this minute: their solutions start there
    workers: int = 2
    linearity_minutes: int = 240
    v_random_pct: float = 0.1  # random voltage error, one sigma, % (0.05: "0.1 %" read as a 2-sigma bound)

    @classmethod
    def quick(cls) -> "EvalConfig":
        return cls(mode="quick", n_us_tap_tans=1, n_us_clean_tans=0, us_meters=(4, 5), us_tap_sites=1,
                   eu_networks=("kerber_landnetz_freileitung_1",), eu_tap_sites=1, draws_during=1, draws_start=1,
                   draws_half_noise=1, clean_draws=2, linearity_minutes=60, days=3)


# ============================================================================ load profiles
def _activity(rng: np.random.Generator, n_min: int, n: int) -> np.ndarray:
    """Daily activity 0..~1 per house (T, n): night trough, morning and evening peaks."""
    t = np.arange(n_min)[:, None]
    shift = rng.normal(0.0, 45.0, n)[None, :]
    h = (((t + shift) % MIN_PER_DAY) / 60.0)
    day = (t // MIN_PER_DAY)
    scale = 0.7 + 0.6 * rng.random((int(day.max()) + 1, n))
    a = (0.08 + 0.55 * np.exp(-((h - 7.3) / 1.1) ** 2) + 0.25 * ((h > 9) & (h < 16.5))
         + 0.9 * np.exp(-((h - 19.5) / 2.0) ** 2))
    return a * scale[day[:, 0]]


def _pulses(rng, rate: np.ndarray, dur_min: tuple[int, int], power_w: tuple[float, float]) -> np.ndarray:
    """Rectangular appliance runs started by a Poisson process with per-minute rate (T, n)."""
    t_n, n = rate.shape
    starts = rng.random(rate.shape) < rate
    out = np.zeros((t_n + 1, n))
    ti, hi = np.nonzero(starts)
    if ti.size:
        dur = rng.integers(dur_min[0], dur_min[1] + 1, ti.size)
        pw = rng.uniform(power_w[0], power_w[1], ti.size)
        np.add.at(out, (ti, hi), pw)
        np.add.at(out, (np.minimum(ti + dur, t_n), hi), -pw)
    return np.cumsum(out[:-1], axis=0)


def _cycling(rng, n_min: int, n: int, period: tuple[float, float], duty: np.ndarray | tuple[float, float],
             power_w: tuple[float, float]) -> np.ndarray:
    """Thermostatic cycling (refrigerator, air conditioner): on for ``duty`` of each period."""
    per = rng.uniform(period[0], period[1], n)[None, :]
    ph = rng.uniform(0, 1, n)[None, :]
    t = np.arange(n_min)[:, None]
    if isinstance(duty, tuple):
        duty = rng.uniform(duty[0], duty[1], n)[None, :]
    frac = (t / per + ph + 0.02 * np.cumsum(rng.normal(0, 1, (n_min, n)), axis=0) / np.sqrt(per)) % 1.0
    return (frac < duty) * rng.uniform(power_w[0], power_w[1], n)[None, :]


def household_profiles(rng: np.random.Generator, n: int, n_min: int, region: str) -> tuple[np.ndarray, np.ndarray]:
    """Active and reactive power (W, var), shape (n_min, n), of n houses at 1-minute steps."""
    act = _activity(rng, n_min, n)
    parts: list[tuple[np.ndarray, float]] = []  # (watts, power factor)
    base = np.broadcast_to(rng.uniform(80, 250, n), (n_min, n)) * (1 + 0.05 * rng.standard_normal((n_min, n)))
    parts.append((base, 0.9))
    parts.append((_cycling(rng, n_min, n, (35, 60), (0.3, 0.45), (100, 180)), 0.85))  # refrigerator
    light = act * rng.uniform(150, 450, n)[None, :] * (1 + 0.15 * rng.standard_normal((n_min, n)))
    parts.append((np.clip(light, 0, None), 0.95))
    us = region == "us"
    parts.append((_pulses(rng, 0.004 * act, (2, 6), (900, 1800)), 1.0))  # kettle / microwave
    parts.append((_pulses(rng, 0.0015 * act * (act > 0.6), (20, 60), (1500, 3000)), 1.0))  # cooking
    parts.append((_pulses(rng, 0.0006 * act, (35, 70), (300, 600)), 0.7))  # washer motor
    parts.append((_pulses(rng, 0.0004 * act, (15, 25), (1800, 2200)), 1.0))  # dishwasher / washer heater
    if us:
        parts.append((_pulses(rng, 0.0003 * act, (40, 60), (4000, 5500)), 1.0))  # dryer
        parts.append((_pulses(rng, 0.0025 * act, (10, 35), (4000, 4500)), 1.0))  # water heater
        t = np.arange(n_min)[:, None]
        h = (t % MIN_PER_DAY) / 60.0
        hot = np.clip(np.sin(np.pi * (h - 9) / 14), 0, None) * rng.uniform(0.2, 0.8, n)[None, :]
        parts.append((_cycling(rng, n_min, n, (18, 30), hot, (2500, 4200)), 0.88))  # air conditioner
    p = np.zeros((n_min, n))
    q = np.zeros((n_min, n))
    for w, pf in parts:
        p += w
        q += w * math.tan(math.acos(pf))
    return p, q


def mv_voltage_pu(rng: np.random.Generator, n_min: int) -> np.ndarray:
    """External-grid voltage (pu) over time: daily swing, slow random walk, OLTC steps."""
    t = np.arange(n_min)
    v = 1.0 + 0.01 * np.sin(2 * np.pi * (t / MIN_PER_DAY) + rng.uniform(0, 2 * np.pi))
    walk = np.cumsum(rng.normal(0, 0.0004, n_min // 5 + 1))
    v += np.repeat(walk - walk.mean(), 5)[:n_min]
    steps = np.zeros(n_min)
    for s in rng.choice(n_min, size=max(1, n_min // 700), replace=False):
        steps[s:] += rng.choice([-0.006, 0.006])
    return v + steps - steps.mean()


# ================================================================================ networks
@dataclass
class TapSite:
    """Where a tap may be connected: a bus (on a phase) of the network, and the meter it is
    attributed to (the meter of the service line, or the first meter downstream)."""

    bus: int
    phase: int
    meter: int
    distance_m: float
    where: str


@dataclass
class NetSpec:
    """A low-voltage area in plain arrays (so it can be replicated quickly)."""

    name: str
    region: str
    bus_vn_kv: np.ndarray
    line_from: np.ndarray
    line_to: np.ndarray
    line_km: np.ndarray
    line_r: np.ndarray
    line_x: np.ndarray
    trafo: dict
    ext_bus: int
    meter_bus: np.ndarray
    meter_phase: np.ndarray  # 0, 1, 2 = a, b, c
    v_base_ln: float
    taps: list[TapSite] = field(default_factory=list)
    meter_info: list[dict] = field(default_factory=list)
    f_hz: float = 50.0
    line_r0: np.ndarray | None = None  # zero-sequence ohm/km; None: 4 x positive sequence (a neutral of the
    line_x0: np.ndarray | None = None  # phase cross-section)
    ext_grid: dict | None = None  # short-circuit data of the external grid (pandapower ext_grid columns)

    def zero_sequence(self) -> tuple[np.ndarray, np.ndarray]:
        """Zero-sequence ohm/km of the lines: the network's own, or 4 x the positive sequence."""
        return (4 * self.line_r if self.line_r0 is None else self.line_r0,
                4 * self.line_x if self.line_x0 is None else self.line_x0)

    def key_extra(self) -> dict:
        """What a cache key needs beyond the base fields: only the data a network sets itself
        (so that the keys of networks that set none stay as they were)."""
        out = {}
        if self.line_r0 is not None or self.line_x0 is not None:
            out["z0"] = [np.round(a, 9).tolist() for a in self.zero_sequence()]
        if self.ext_grid is not None:
            out["ext_grid"] = {k: round(float(v), 9) for k, v in sorted(self.ext_grid.items())}
        return out

    @property
    def n_meters(self) -> int:
        return int(self.meter_bus.size)

    def network_distance_m(self, bus: int) -> np.ndarray:
        """Distance along the lines from ``bus`` to every meter's connection (m)."""
        import collections
        import heapq
        adj = collections.defaultdict(list)
        for f, t, km in zip(self.line_from, self.line_to, self.line_km):
            adj[int(f)].append((int(t), km * 1000))
            adj[int(t)].append((int(f), km * 1000))
        dist = {bus: 0.0}
        heap = [(0.0, bus)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist.get(u, math.inf):
                continue
            for v, w in adj[u]:
                if d + w < dist.get(v, math.inf):
                    dist[v] = d + w
                    heapq.heappush(heap, (d + w, v))
        return np.array([dist.get(int(b), math.inf) for b in self.meter_bus])


def _split_line(spec_lines: dict, li: int, frac: float, new_bus: int):
    """Split line ``li`` at ``frac`` of its length (from its from-bus) at ``new_bus``."""
    f, t, km = spec_lines["from"][li], spec_lines["to"][li], spec_lines["km"][li]
    spec_lines["to"][li] = new_bus
    spec_lines["km"][li] = km * frac
    for k, v in (("from", new_bus), ("to", t), ("km", km * (1 - frac)), ("r", spec_lines["r"][li]),
                 ("x", spec_lines["x"][li])):
        spec_lines[k].append(v)


def us_tan_spec(rng: np.random.Generator, name: str, n_meters: int, n_taps: int) -> NetSpec:
    """A US split-phase radial transformer area (see the module doc for the equivalent)."""
    kva = float(rng.choice([25.0, 37.5, 50.0]) if n_meters <= 6 else rng.choice([37.5, 50.0]))
    vk = rng.uniform(1.8, 2.6)
    vkr = vk / math.sqrt(1 + rng.uniform(1.0, 2.0) ** 2)
    v_ll = 0.24 * math.sqrt(3)
    buses = [7.2 * math.sqrt(3), v_ll]  # 0: MV, 1: secondary
    lines = {"from": [], "to": [], "km": [], "r": [], "x": []}
    meter_bus, info = [], []
    names = list(US_CONDUCTORS)
    for k in range(n_meters):
        cond = names[rng.choice(3, p=[0.3, 0.45, 0.25])]
        length = float(rng.uniform(15, 60))
        r, x = US_CONDUCTORS[cond]
        buses.append(v_ll)
        meter_bus.append(len(buses) - 1)
        lines["from"].append(1)
        lines["to"].append(len(buses) - 1)
        lines["km"].append(length / 1000)
        lines["r"].append(r)
        lines["x"].append(x)
        info.append({"meter_id": f"{name}-M{k + 1}", "conductor": cond, "service_length_m": length,
                     "loop_ohm": 2 * r * length / 1000})
    taps = []
    tap_meters = rng.choice(n_meters, size=min(n_taps, n_meters), replace=False)
    fracs = [1.0, 2 / 3, 1 / 3]
    for j, k in enumerate(tap_meters):
        frac = fracs[j % len(fracs)]
        if frac >= 1.0:
            taps.append(TapSite(meter_bus[k], 0, int(k), info[k]["service_length_m"], "at the meter base"))
            continue
        buses.append(v_ll)
        _split_line(lines, int(k), frac, len(buses) - 1)
        taps.append(TapSite(len(buses) - 1, 0, int(k), frac * info[k]["service_length_m"],
                            f"on the service drop, {frac:.2f} of the way"))
    trafo = dict(hv=0, lv=1, sn_mva=3 * kva / 1000, vn_hv_kv=buses[0], vn_lv_kv=v_ll, vk=vk, vkr=vkr)
    return NetSpec(name, "us", np.array(buses), np.array(lines["from"]), np.array(lines["to"]), np.array(lines["km"]),
                   np.array(lines["r"]), np.array(lines["x"]), trafo, 0, np.array(meter_bus),
                   np.zeros(n_meters, int), 240.0, taps, info, f_hz=60.0)


def eu_spec(rng: np.random.Generator, which: str, n_taps: int) -> NetSpec:
    """One of pandapower's European LV networks as a NetSpec, with tap sites."""
    import pandapower.networks as pn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = {"kerber_landnetz_kabel_2": pn.create_kerber_landnetz_kabel_2,
               "synthetic_voltage_control_lv": pn.create_synthetic_voltage_control_lv_network,
               "kerber_landnetz_freileitung_1": pn.create_kerber_landnetz_freileitung_1}[which]()
    bus_ix = {b: i for i, b in enumerate(net.bus.index)}
    buses = list(net.bus.vn_kv.values.astype(float))
    lines = {"from": [bus_ix[b] for b in net.line.from_bus], "to": [bus_ix[b] for b in net.line.to_bus],
             "km": list(net.line.length_km.astype(float)), "r": list(net.line.r_ohm_per_km.astype(float)),
             "x": list(net.line.x_ohm_per_km.astype(float))}
    tr = net.trafo.iloc[0]
    trafo = dict(hv=bus_ix[tr.hv_bus], lv=bus_ix[tr.lv_bus], sn_mva=float(tr.sn_mva), vn_hv_kv=float(tr.vn_hv_kv),
                 vn_lv_kv=float(tr.vn_lv_kv), vk=float(tr.vk_percent), vkr=float(tr.vkr_percent))
    load_bus = [bus_ix[b] for b in net.load.bus]
    n = len(load_bus)
    phases = rng.permutation(np.arange(n) % 3)
    info = [{"meter_id": f"{which}-H{k + 1}"} for k in range(n)]
    # distances from the transformer along the tree
    import collections
    adj = collections.defaultdict(list)
    for li, (f, t) in enumerate(zip(lines["from"], lines["to"])):
        adj[f].append((t, li))
        adj[t].append((f, li))
    dist = {trafo["lv"]: 0.0}
    parent_line = {}
    stack = [trafo["lv"]]
    while stack:
        u = stack.pop()
        for v, li in adj[u]:
            if v not in dist:
                dist[v] = dist[u] + lines["km"][li] * 1000
                parent_line[v] = li
                stack.append(v)
    meter_of_bus = {b: k for k, b in enumerate(load_bus)}
    for k, b in enumerate(load_bus):
        info[k]["distance_m"] = dist[b]
    # tap sites: house service lines (the line feeding a load bus that has no other branch),
    # and feeder segments (a line whose far end feeds a connection)
    children = collections.defaultdict(list)
    for v, li in parent_line.items():
        children[lines["from"][li] if lines["to"][li] == v else lines["to"][li]].append(v)
    stub_lines = [parent_line[b] for b in load_bus if not children[b] and parent_line[b] is not None
                  and len(adj[b]) == 1 and (lines["from"][parent_line[b]] not in meter_of_bus)]
    stub_lines = [li for li in stub_lines if (lines["to"][li] in meter_of_bus or lines["from"][li] in meter_of_bus)]
    feeder_lines = [li for li in range(len(lines["km"])) if li not in stub_lines]

    def first_meter_below(v):
        """The meter at v, or of v's service connection, or the nearest one below v."""
        if v in meter_of_bus:
            return meter_of_bus[v]
        best = None
        for c in children[v]:
            if c in meter_of_bus and not children[c]:
                return meter_of_bus[c]
        for c in children[v]:
            m = first_meter_below(c)
            if m is not None and (best is None or info[m]["distance_m"] < info[best]["distance_m"]):
                best = m
        return best

    def far(li):
        return max(dist[lines["to"][li]], dist[lines["from"][li]])

    taps = []
    stub_sorted = sorted(stub_lines, key=far)
    feeder_sorted = sorted(feeder_lines, key=far)
    picks = []
    if stub_sorted:
        picks += [("stub", stub_sorted[-1]), ("stub", stub_sorted[len(stub_sorted) // 2])]
    picks += [("feeder", feeder_sorted[-1]), ("feeder", feeder_sorted[len(feeder_sorted) // 2]),
              ("feeder", feeder_sorted[len(feeder_sorted) // 4])]
    picks = picks[:n_taps]
    for kind, li in picks:
        a, b = lines["from"][li], lines["to"][li]
        down = b if dist[b] > dist[a] else a
        m = first_meter_below(down)
        ph = int(phases[m])
        if kind == "stub":  # at the house end of its service line (meter base)
            taps.append(TapSite(down, ph, m, dist[down], f"service line of {info[m]['meter_id']}, at the house"))
        else:  # half way along a feeder segment, on the phase of the first meter below it
            buses.append(buses[a])
            up = a if down == b else b
            _split_line(lines, li, 0.5 if up == a else 0.5, len(buses) - 1)
            taps.append(TapSite(len(buses) - 1, ph, m, (dist[up] + dist[down]) / 2,
                                f"feeder segment {dist[up]:.0f}-{dist[down]:.0f} m from the transformer, "
                                f"first meter below: {info[m]['meter_id']}"))
    return NetSpec(which, "eu", np.array(buses), np.array(lines["from"]), np.array(lines["to"]), np.array(lines["km"]),
                   np.array(lines["r"]), np.array(lines["x"]), trafo, bus_ix[net.ext_grid.bus.iloc[0]],
                   np.array(load_bus), phases, float(trafo["vn_lv_kv"]) * 1000 / math.sqrt(3), taps, info, f_hz=50.0)


# ============================================================================= power flow
class ReplicatedNet:
    """``k`` copies of a NetSpec as islands of one pandapower network (one copy per minute)."""

    def __init__(self, spec: NetSpec, k: int, numba: bool = True):
        import pandapower as pp
        self.spec, self.k, self.numba = spec, k, numba
        nb = spec.bus_vn_kv.size
        net = pp.create_empty_network(f_hz=spec.f_hz)
        b0 = pp.create_buses(net, nb * k, np.tile(spec.bus_vn_kv, k))
        off = (np.arange(k) * nb)[:, None]
        nl = spec.line_from.size
        r0, x0 = spec.zero_sequence()
        pp.create_lines_from_parameters(
            net, (b0[0] + spec.line_from[None, :] + off).ravel(), (b0[0] + spec.line_to[None, :] + off).ravel(),
            np.tile(spec.line_km, k), np.tile(spec.line_r, k), np.tile(spec.line_x, k), 0.0, 1.0,
            r0_ohm_per_km=np.tile(r0, k), x0_ohm_per_km=np.tile(x0, k), c0_nf_per_km=0.0)
        assert len(net.line) == nl * k
        tr = spec.trafo
        pp.create_transformers_from_parameters(
            net, b0[0] + tr["hv"] + off[:, 0], b0[0] + tr["lv"] + off[:, 0], tr["sn_mva"], tr["vn_hv_kv"],
            tr["vn_lv_kv"], tr["vkr"], tr["vk"], 0.0, 0.0, vector_group="Dyn", vk0_percent=tr.get("vk0", tr["vk"]),
            vkr0_percent=tr.get("vkr0", tr["vkr"]), mag0_percent=100.0, mag0_rx=0.0, si0_hv_partial=0.9)
        sc = dict(s_sc_max_mva=100.0, rx_max=0.1, r0x0_max=1.0, x0x_max=1.0, s_sc_min_mva=100.0, rx_min=0.1,
                  r0x0_min=1.0, x0x_min=1.0)
        sc.update(spec.ext_grid or {})
        pp.create_ext_grid(net, b0[0] + spec.ext_bus, vm_pu=1.0, **sc)
        eg = net.ext_grid.loc[np.zeros(k, int)].reset_index(drop=True)
        eg["bus"] = (b0[0] + spec.ext_bus + off[:, 0]).astype(net.ext_grid.bus.dtype)
        net.ext_grid = eg
        self.load_buses = np.concatenate([spec.meter_bus, np.array([t.bus for t in spec.taps], int)])
        self.load_phase = np.concatenate([spec.meter_phase, np.array([t.phase for t in spec.taps], int)])
        nload = self.load_buses.size
        pp.create_asymmetric_load(net, int(b0[0] + self.load_buses[0]))  # one by the API: the dtypes
        al = net.asymmetric_load
        rows = al.loc[np.zeros(nload * k, int)].reset_index(drop=True)  # then the rest in one go
        rows["bus"] = (b0[0] + self.load_buses[None, :] + off).ravel().astype(al.bus.dtype)
        net.asymmetric_load = rows
        self.net = net
        self.meter_rows = (b0[0] + spec.meter_bus[None, :] + off).astype(int)  # (k, M)
        self.nload = nload
        self._cols = [("p_a_mw", "q_a_mvar"), ("p_b_mw", "q_b_mvar"), ("p_c_mw", "q_c_mvar")]

    def solve(self, p_w: np.ndarray, q_var: np.ndarray, vm_pu: np.ndarray) -> np.ndarray:
        """Meter voltages (volts, line-to-neutral on each meter's phase), shape (n, M), for n <= k
        minutes; ``p_w``/``q_var`` (n, meters + taps), ``vm_pu`` (n,). Unused copies carry no load."""
        from pandapower.pf.runpp_3ph import runpp_3ph
        n = p_w.shape[0]
        k, nload = self.k, self.nload
        al = self.net.asymmetric_load
        for ph, (pc, qc) in enumerate(self._cols):
            sel = (self.load_phase == ph)[None, :]
            pp_ = np.zeros((k, nload))
            qq_ = np.zeros((k, nload))
            pp_[:n] = np.where(sel, p_w, 0.0) / 1e6
            qq_[:n] = np.where(sel, q_var, 0.0) / 1e6
            al[pc] = pp_.ravel()
            al[qc] = qq_.ravel()
        vm = np.ones(k)
        vm[:n] = vm_pu
        self.net.ext_grid["vm_pu"] = vm
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runpp_3ph(self.net, max_iteration=30, numba=self.numba)
        if not self.net.converged:
            raise RuntimeError(f"runpp_3ph did not converge on {self.spec.name}")
        res = self.net.res_bus_3ph
        vmat = np.stack([res.vm_a_pu.values, res.vm_b_pu.values, res.vm_c_pu.values], axis=1)  # (buses, 3)
        rows = self.meter_rows[:n]
        v = vmat[rows, self.spec.meter_phase[None, :]]
        vn = self.spec.bus_vn_kv[self.spec.meter_bus] * 1000 / math.sqrt(3)
        return v * vn[None, :]


def solve_record(spec: NetSpec, p_w: np.ndarray, q_var: np.ndarray, vm_pu: np.ndarray, tap_w: np.ndarray,
                 batch: int, rep: ReplicatedNet | None = None) -> np.ndarray:
    """Meter voltages (T, M) for the loads (T, M) and per-site tap powers ``tap_w`` (T, S)."""
    rep = rep or ReplicatedNet(spec, batch)
    t_n = p_w.shape[0]
    tq = tap_w * math.tan(math.acos(TAP_PF))
    out = np.empty((t_n, spec.n_meters))
    for t0 in range(0, t_n, rep.k):
        t1 = min(t_n, t0 + rep.k)
        pw = np.concatenate([p_w[t0:t1], tap_w[t0:t1]], axis=1)
        qv = np.concatenate([q_var[t0:t1], tq[t0:t1]], axis=1)
        out[t0:t1] = rep.solve(pw, qv, vm_pu[t0:t1])
    return out


def currents(v: np.ndarray, p_w: np.ndarray, q_var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Meter current (A) and power factor from the load powers and the solved voltage."""
    s = np.hypot(p_w, q_var)
    i = s / v
    pf = np.divide(p_w, s, out=np.ones_like(s), where=s > 0)
    return i, pf


# =============================================================================== truth
@dataclass
class Truth:
    spec: NetSpec
    p_w: np.ndarray
    q_var: np.ndarray
    v_clean: np.ndarray
    v_tap: list[np.ndarray]  # per tap site, 3 kW on the whole record
    solve_s: float
    linearity: dict | None = None


def _cache_path(key: str) -> pathlib.Path:
    d = ROOT / "out" / "theft_cache"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def make_truth(spec: NetSpec, rng: np.random.Generator, cfg: EvalConfig, *, with_taps: bool,
               linearity: bool) -> Truth:
    n_min = cfg.days * MIN_PER_DAY
    p, q = household_profiles(rng, spec.n_meters, n_min, spec.region)
    vm = mv_voltage_pu(rng, n_min)
    key = json.dumps({"v": 3, "spec": spec.name, "bus": spec.bus_vn_kv.round(6).tolist(),
                      "lines": [spec.line_from.tolist(), spec.line_to.tolist(), spec.line_km.round(9).tolist(),
                                spec.line_r.tolist(), spec.line_x.tolist()],
                      "tr": {k: round(float(v), 9) for k, v in spec.trafo.items()}, "meters": spec.meter_bus.tolist(),
                      "ph": spec.meter_phase.tolist(), "taps": [(t.bus, t.phase) for t in spec.taps],
                      "p": hashlib.sha256(p.tobytes()).hexdigest(), "vm": hashlib.sha256(vm.tobytes()).hexdigest(),
                      "with_taps": with_taps, "lin": linearity and cfg.linearity_minutes, **spec.key_extra(),
                      **({"tap_from": cfg.tap_from_min} if cfg.tap_from_min else {})})
    path = _cache_path(key)
    n_sites = len(spec.taps) if with_taps else 0
    if path.exists():
        z = np.load(path, allow_pickle=False)
        lin = json.loads(str(z["linearity"])) if "linearity" in z.files else None
        return Truth(spec, p, q, z["v_clean"], [z[f"v_tap{s}"] for s in range(n_sites)], float(z["solve_s"]), lin)
    t_start = time.perf_counter()
    batch = int(np.clip(cfg.batch_buses // spec.bus_vn_kv.size, cfg.min_batch, 250))
    rep = ReplicatedNet(spec, batch)
    zeros = np.zeros((n_min, len(spec.taps)))
    v_clean = solve_record(spec, p, q, vm, zeros, batch, rep)
    v_tap = []
    t_on = cfg.tap_from_min  # before it the tapped record is the clean one (no tap is on)
    for s in range(n_sites):
        tw = zeros[t_on:].copy()
        tw[:, s] = TAP_REF_KW * 1000
        v_tap.append(np.concatenate([v_clean[:t_on], solve_record(spec, p[t_on:], q[t_on:], vm[t_on:], tw, batch,
                                                                  rep)]))
    lin = None
    if linearity and n_sites:
        # exact runpp_3ph solutions of smaller taps against the scaled 3 kW solution
        # its own generator, not `rng`: a run that finds the solutions cached must draw the same noise
        sel_rng = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))
        sel = t_on + np.sort(sel_rng.choice(n_min - t_on, size=min(cfg.linearity_minutes, n_min - t_on),
                                            replace=False))
        worst = {}
        for kw in (1.0, 0.3):
            tw = np.zeros((sel.size, len(spec.taps)))
            tw[:, 0] = kw * 1000
            exact = solve_record(spec, p[sel], q[sel], vm[sel], tw, batch, rep)
            scaled = v_clean[sel] + (v_tap[0][sel] - v_clean[sel]) * kw / TAP_REF_KW
            worst[f"{kw:g}kw_max_abs_error_mv"] = float(np.abs(exact - scaled).max() * 1000)
            worst[f"{kw:g}kw_max_tap_effect_mv"] = float(np.abs(exact - v_clean[sel]).max() * 1000)
        lin = {"network": spec.name, "minutes": int(sel.size), **worst}
    solve_s = time.perf_counter() - t_start
    arrays = {"v_clean": v_clean, "solve_s": np.array(solve_s)}
    arrays.update({f"v_tap{s}": v for s, v in enumerate(v_tap)})
    if lin is not None:
        arrays["linearity"] = np.array(json.dumps(lin))
    np.savez(path, **arrays)
    return Truth(spec, p, q, v_clean, v_tap, solve_s, lin)


# ========================================================================= measurement
def measure(rng: np.random.Generator, v: np.ndarray, i: np.ndarray, pf: np.ndarray,
            acc: MeterAccuracy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Readings with the accuracy class's errors: fixed gain per meter, random per reading,
    rounded to the resolution."""
    n = v.shape[1]
    gv = rng.uniform(-acc.v_fixed_pct, acc.v_fixed_pct, n) / 100
    gi = rng.uniform(-acc.i_fixed_pct, acc.i_fixed_pct, n) / 100
    vm = v * (1 + gv) + v * acc.v_random_pct / 100 * rng.standard_normal(v.shape)
    im = i * (1 + gi) + i * acc.i_random_pct / 100 * rng.standard_normal(i.shape)
    q = lambda x, r: np.round(x / r) * r  # noqa: E731
    return (q(vm, acc.v_resolution_v), np.clip(q(im, acc.i_resolution_a), 0, None),
            np.clip(q(pf, acc.pf_resolution), -1, 1))


def tap_mask(rng: np.random.Generator, n_min: int, t0: int, kind: str) -> np.ndarray:
    m = np.zeros(n_min, bool)
    if kind == "constant":
        m[t0:] = True
        return m
    t, on = t0, True
    while t < n_min:
        d = int(rng.integers(10, 61)) if on else int(rng.integers(10, 91))
        if on:
            m[t:t + d] = True
        t += d
        on = not on
    return m


# =============================================================================== bound
def _z(alpha: float) -> float:
    return float(-special.ndtri(alpha))


def group_projection_energy(dv_per_kw: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Per minute, ||P_g dV||^2 summed over phase groups (V^2 per kW^2): the part of the tap's
    voltage change that no common per-phase voltage can explain."""
    e = np.zeros(dv_per_kw.shape[0])
    for g in groups:
        d = dv_per_kw[:, g]
        d = d - d.mean(axis=1, keepdims=True)
        e += np.sum(d * d, axis=1)
    return e


def bound_kw(e_per_min: np.ndarray, mask: np.ndarray, t0: int, window: int, sigma_v: float, n_meters: int) -> float:
    """Smallest tap (kW) a clairvoyant matched filter detects with probability 0.95 within
    ``window`` minutes of ``t0`` at the false-alarm budget of 1 per 1,000 meter-days."""
    sl = slice(t0, t0 + window)
    energy = float(np.sum(mask[sl] * e_per_min[sl])) / sigma_v ** 2
    alpha = min(0.5, n_meters * window / (MIN_PER_DAY * 1000.0))
    return (_z(alpha) + Z95) / math.sqrt(energy) if energy > 0 else float("inf")


def bound_p_detect(size_kw: float, pmin_kw: float, n_meters: int, window: int) -> float:
    """Probability that the clairvoyant matched filter of :func:`bound_kw` detects a tap of
    ``size_kw`` within ``window`` minutes: ``Phi((z_a + z_0.95) size / P_min - z_a)``."""
    if not (pmin_kw > 0 and math.isfinite(pmin_kw)):
        return 0.0
    za = _z(min(0.5, n_meters * window / (MIN_PER_DAY * 1000.0)))
    return float(special.ndtr((za + Z95) * size_kw / pmin_kw - za))


def snr_per_min(size_kw: float, pmin_kw: float, n_meters: int, window: int) -> float:
    """The tap's shift of the excess drop in standard deviations per reading, averaged (rms) over
    the window: ``sqrt(E) P / (sigma_v sqrt(W))`` from :func:`bound_kw`."""
    if not (pmin_kw > 0 and math.isfinite(pmin_kw)):
        return 0.0
    za = _z(min(0.5, n_meters * window / (MIN_PER_DAY * 1000.0)))
    return float((za + Z95) * size_kw / pmin_kw / math.sqrt(window))


def sequential_reference(snr: list[float], window: int = 60, reps: int = 4000, seed: int = 7) -> list[float]:
    """Probability that the detector's own CUSUM bank (references and thresholds of
    ``DetectorConfig().bank`` at 1-minute samples) alarms within ``window`` minutes of a shift of
    ``snr`` standard deviations in white Gaussian noise, with the onset unknown to it (Monte
    Carlo on a grid, interpolated). It is what this sequential test can do at its false-alarm
    rate when the residual is exactly white; the clairvoyant bound knows the onset."""
    from platform_api.theft.changedetect import cusum_upper
    bank = DetectorConfig().bank
    hs = bank.thresholds(MIN_PER_DAY)
    rng = np.random.default_rng(seed)
    grid = np.arange(0.0, 2.05, 0.05)
    pre = 600  # the statistics start in their in-control state
    p = []
    for d in grid:
        z = rng.standard_normal((pre + window, reps))
        z[pre:] += d
        hit = np.zeros(reps, bool)
        for k, h in zip(bank.ks, hs):
            hit |= (cusum_upper(z, k)[pre:] > h).any(axis=0)
        p.append(float(hit.mean()))
    return [float(np.interp(x, grid, p)) for x in snr]


# ============================================================================== trials
def _series(spec: NetSpec, v, i, pf) -> TanSeries:
    t = T0_UNIX + 60 * np.arange(v.shape[0])
    if spec.region == "us":
        meters = [MeterInfo(inf["meter_id"], spec.name, "ab", account=f"ACC-{inf['meter_id']}",
                            address=f"{k + 1} Example St", service_length_m=inf["service_length_m"])
                  for k, inf in enumerate(spec.meter_info)]
    else:
        meters = [MeterInfo(inf["meter_id"], spec.name, "abc"[int(spec.meter_phase[k])],
                            account=f"ACC-{inf['meter_id']}") for k, inf in enumerate(spec.meter_info)]
    return TanSeries(t, meters, v, i, pf, transformer_id=spec.name)


def analyse(spec: NetSpec, series: TanSeries, accuracy: MeterAccuracy | None = None):
    """The detector under test: the radial analysis for US areas, the feeder one for European."""
    if spec.region == "us":
        return analyse_radial(series, accuracy=accuracy)
    return analyse_feeder(series, accuracy=accuracy)


def run_job(job: dict) -> dict:
    """Solve one network's record(s) and run its trials (one process)."""
    cfg = EvalConfig(**job["cfg"])
    rng = np.random.default_rng(job["seed"])
    if job["region"] == "us":
        n_m = int(rng.integers(cfg.us_meters[0], cfg.us_meters[1] + 1))
        spec = us_tan_spec(rng, job["name"], n_m, cfg.us_tap_sites if job["taps"] else 0)
    elif job.get("spec_fn"):  # "module:function" building the NetSpec from (rng, cfg): another network
        import importlib
        mod, fn = job["spec_fn"].split(":")
        spec = getattr(importlib.import_module(mod), fn)(rng, cfg)
    else:
        spec = eu_spec(rng, job["name"], cfg.eu_tap_sites)
    truth = make_truth(spec, rng, cfg, with_taps=job["taps"], linearity=job.get("linearity", False))
    acc = MeterAccuracy(v_random_pct=cfg.v_random_pct)
    n_min = truth.v_clean.shape[0]
    i_clean, pf_clean = currents(truth.v_clean, truth.p_w, truth.q_var)
    groups = list(_series(spec, truth.v_clean[:2], i_clean[:2], pf_clean[:2]).phase_groups().values())
    sigma_v = acc.v_sigma_v(spec.v_base_ln)
    t_analyse = 0.0
    clean_rows, trial_rows = [], []
    for d in range(cfg.clean_draws):
        vm_, im_, pfm_ = measure(rng, truth.v_clean, i_clean, pf_clean, acc)
        t1 = time.perf_counter()
        res = analyse(spec, _series(spec, vm_, im_, pfm_), accuracy=acc)
        t_analyse += time.perf_counter() - t1
        alarms = [a for a in res.anomalies if a.anomaly_type == 1]
        clean_rows.append({"network": spec.name, "region": spec.region, "draw": d, "meters": spec.n_meters,
                           "meter_days": spec.n_meters * n_min / MIN_PER_DAY, "false_alarms": len(alarms),
                           "details": sorted({a.detail for a in alarms})})
    half = MeterAccuracy(v_random_pct=acc.v_random_pct / 2)
    for s, site in enumerate(spec.taps if job["taps"] else []):
        dv3 = truth.v_tap[s] - truth.v_clean
        i_tap, pf_tap = currents(truth.v_tap[s], truth.p_w, truth.q_var)
        e_min = group_projection_energy(dv3 / TAP_REF_KW, groups)
        k = site.meter
        meter_dist = spec.network_distance_m(site.bus)
        ids = [mi["meter_id"] for mi in spec.meter_info]
        g = next(g for g in groups if k in g)
        others = [j for j in g if j != k]
        s1 = (dv3[:, others].mean(axis=1) - dv3[:, k]) / TAP_REF_KW  # tapped meter's excess per kW
        plan = [(size, kind, start, "stated", d) for size in SIZES_KW for kind in cfg.kinds for start in cfg.starts
                for d in range(cfg.draws_during if start == "during" else cfg.draws_start)]
        if spec.region == "us":  # sensitivity to the noise reading: 0.1 % as a 2-sigma bound
            plan += [(size, "constant", "during", "half", d) for size in (1.0, 3.0)
                     for d in range(cfg.draws_half_noise)]
        for size, kind, start, noise, d in plan:
            t0 = int(rng.integers(MIN_PER_DAY, 2 * MIN_PER_DAY)) if start == "during" else 0
            m = tap_mask(rng, n_min, t0, kind)
            mm = m[:, None] * (size / TAP_REF_KW)
            v = truth.v_clean + mm * dv3
            i = i_clean + mm * (i_tap - i_clean)
            pf = np.where(m[:, None], pf_tap, pf_clean)
            a = acc if noise == "stated" else half
            vm_, im_, pfm_ = measure(rng, v, i, pf, a)
            t1 = time.perf_counter()
            res = analyse(spec, _series(spec, vm_, im_, pfm_), accuracy=a)
            t_analyse += time.perf_counter() - t1
            t_start_s = T0_UNIX + 60 * t0
            alarms = [x for x in res.anomalies if x.anomaly_type == 1]
            pre = [x for x in alarms if x.time_s < t_start_s and start == "during"]
            post = [x for x in alarms if x.time_s >= t_start_s or start == "start"]
            first = min(post, key=lambda x: x.time_s) if post else None
            delay = (first.time_s - t_start_s) / 60.0 if first else None
            sv = a.v_sigma_v(spec.v_base_ln)
            if start == "during" or kind == "intermittent":
                pmin_1h = bound_kw(e_min, m, t0, 60, sv, spec.n_meters)
                pmin_24h = bound_kw(e_min, m, t0, MIN_PER_DAY, sv, spec.n_meters)
            else:  # constant from the start: confounded with calibration
                tol = a.offset_tolerance_v(spec.v_base_ln)
                sm = float(np.mean(s1[:MIN_PER_DAY]))
                sig_e = sv * math.sqrt(1 + 1 / max(len(g) - 1, 1))
                pmin_1h = float("inf")
                pmin_24h = ((tol + (_z(spec.n_meters / 1000.0) + Z95) * sig_e / math.sqrt(MIN_PER_DAY)) / sm
                            if sm > 0 else float("inf"))
            mid = spec.meter_info[k]["meter_id"]
            trial_rows.append({
                "network": spec.name, "region": spec.region, "site": s, "where": site.where,
                "distance_m": round(site.distance_m, 1), "tap_meter": mid, "size_kw": size, "kind": kind,
                "start": start, "noise": noise, "draw": d, "t0_min": t0, "detected": first is not None,
                "delay_min": delay, "detail": first.detail if first else None,
                "localised": bool(first and first.meter_ids and first.meter_ids[0] == mid),
                "located_meter": first.meter_ids[0] if first else None,
                "named_meter_from_tap_m": (round(float(meter_dist[ids.index(first.meter_ids[0])]), 1)
                                           if first and first.meter_ids and first.meter_ids[0] in ids else None),
                "tapped_meter_from_tap_m": round(float(meter_dist[k]), 1),
                "confidence": round(first.confidence, 4) if first else None,
                "unaccounted_kw_est": round(first.unaccounted_kw, 3) if first else None,
                "false_alarms_before_tap": len(pre), "meter_days_before_tap": spec.n_meters * t0 / MIN_PER_DAY,
                "extra_drop_v_per_kw": round(float(np.mean(s1[m])) if m.any() else 0.0, 5),
                "bound_kw_1h": pmin_1h, "bound_kw_24h": pmin_24h, "meters": spec.n_meters,
                "bound_p_detect_1h": bound_p_detect(size, pmin_1h, spec.n_meters, 60),
                "bound_p_detect_24h": bound_p_detect(size, pmin_24h, spec.n_meters, MIN_PER_DAY),
                "snr_per_min_1h": snr_per_min(size, pmin_1h, spec.n_meters, 60)})
    return {"name": spec.name, "region": spec.region, "meters": spec.n_meters, "solve_s": truth.solve_s,
            "analyse_s": t_analyse, "linearity": truth.linearity, "clean": clean_rows, "trials": trial_rows,
            "spec": {"meters": spec.meter_info, "taps": [dataclasses.asdict(t) for t in spec.taps],
                     "trafo_kva": spec.trafo["sn_mva"] * 1000 / (3 if spec.region == "us" else 1)}}


# ========================================================================== aggregation
def _wilson(k: int, n: int) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    z = 1.96
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)]


def _within(r: dict, minutes: float) -> bool:
    return r["delay_min"] is not None and r["delay_min"] <= minutes


def _rate(rows: list[dict], pred) -> dict:
    k = sum(1 for r in rows if pred(r))
    return {"rate": round(k / len(rows), 4) if rows else None, "k": k, "n": len(rows), "ci95": _wilson(k, len(rows))}


def _finite_median(xs) -> float | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return round(float(np.median(xs)), 4) if xs else None


def summarise(results: list[dict]) -> dict:
    """Rates and tables. The headline US rates are over constant taps starting during the record
    (a tap that draws 3 kW); intermittent taps, which draw 3 kW only while on, are reported
    beside them."""
    all_trials = [r for res in results for r in res["trials"]]
    trials = [r for r in all_trials if r["noise"] == "stated"]
    clean = [r for res in results for r in res["clean"]]
    out: dict = {}
    us = [r for r in trials if r["region"] == "us" and r["start"] == "during"]
    for kind in ("constant", "intermittent"):
        sfx = "" if kind == "constant" else "_intermittent"
        us3 = [r for r in us if r["size_kw"] == 3.0 and r["kind"] == kind]
        us1 = [r for r in us if r["size_kw"] == 1.0 and r["kind"] == kind]
        out["detect_3kw_1h_us" + sfx] = _rate(us3, lambda r: _within(r, 60))
        out["detect_1kw_24h_us" + sfx] = _rate(us1, lambda r: _within(r, MIN_PER_DAY))
        det = [r for r in us3 if _within(r, 60)] + [r for r in us1 if _within(r, MIN_PER_DAY)]
        out["localise_us" + sfx] = _rate(det, lambda r: r["localised"])
        # the same rates among the trials the bound says any detector could catch in time
        out["detect_3kw_1h_us_bound_detectable" + sfx] = _rate([r for r in us3 if r["bound_kw_1h"] <= 3.0],
                                                               lambda r: _within(r, 60))
        out["detect_1kw_24h_us_bound_detectable" + sfx] = _rate([r for r in us1 if r["bound_kw_24h"] <= 1.0],
                                                                lambda r: _within(r, MIN_PER_DAY))
        out["bound_detectable_3kw_1h_us" + sfx] = _rate(us3, lambda r: r["bound_kw_1h"] <= 3.0)
        out["bound_detectable_1kw_24h_us" + sfx] = _rate(us1, lambda r: r["bound_kw_24h"] <= 1.0)
        # expected shares: the clairvoyant (onset and pattern known) and the detector's own CUSUM
        # bank on white noise at each trial's SNR (onset unknown), both at the trials' tap sizes
        out["bound_expected_detect_3kw_1h_us" + sfx] = (
            round(float(np.mean([r["bound_p_detect_1h"] for r in us3])), 4) if us3 else None)
        out["bound_expected_detect_1kw_24h_us" + sfx] = (
            round(float(np.mean([r["bound_p_detect_24h"] for r in us1])), 4) if us1 else None)
        if kind == "constant" and us3:
            out["sequential_reference_detect_3kw_1h_us"] = round(float(np.mean(
                sequential_reference([r["snr_per_min_1h"] for r in us3]))), 4)
    # by where the tap is on the service drop
    by_where = {}
    for w in sorted({r["where"] for r in us}):
        rows = [r for r in us if r["where"] == w and r["kind"] == "constant"]
        by_where[w] = {"detect_3kw_1h": _rate([r for r in rows if r["size_kw"] == 3.0],
                                              lambda r: _within(r, 60))["rate"],
                       "detect_1kw_24h": _rate([r for r in rows if r["size_kw"] == 1.0],
                                               lambda r: _within(r, MIN_PER_DAY))["rate"],
                       "median_extra_drop_v_per_kw": _finite_median(r["extra_drop_v_per_kw"] for r in rows)}
    out["us_by_tap_position"] = by_where
    half = [r for r in all_trials if r["noise"] == "half"]
    if half:
        h3 = [r for r in half if r["size_kw"] == 3.0]
        h1 = [r for r in half if r["size_kw"] == 1.0]
        det = [r for r in h3 if _within(r, 60)] + [r for r in h1 if _within(r, MIN_PER_DAY)]
        out["us_half_random_voltage_noise"] = {
            "note": "0.05 % random voltage error (0.1 % read as a 2-sigma bound; the detector is told the same "
                    "class), constant taps starting during the record",
            "detect_3kw_1h": _rate(h3, lambda r: _within(r, 60)),
            "detect_1kw_24h": _rate(h1, lambda r: _within(r, MIN_PER_DAY)),
            "localise": _rate(det, lambda r: r["localised"])}
    fa = sum(r["false_alarms"] for r in clean)
    md = sum(r["meter_days"] for r in clean)
    out["false_alarms_clean"] = {"alarms": fa, "meter_days": round(md, 1),
                                 "per_1000_meter_days": round(1000 * fa / md, 4) if md else None}
    for reg in ("us", "eu"):
        c = [r for r in clean if r["region"] == reg]
        f, m = sum(r["false_alarms"] for r in c), sum(r["meter_days"] for r in c)
        out[f"false_alarms_clean_{reg}"] = {"alarms": f, "meter_days": round(m, 1),
                                            "per_1000_meter_days": round(1000 * f / m, 4) if m else None}
    out["false_alarms_clean_by_network"] = {
        n: {"alarms": sum(r["false_alarms"] for r in clean if r["network"] == n),
            "meter_days": round(sum(r["meter_days"] for r in clean if r["network"] == n), 1)}
        for n in sorted({r["network"] for r in clean})}
    pre_fa = sum(r["false_alarms_before_tap"] for r in trials)
    pre_md = sum(r["meter_days_before_tap"] for r in trials)
    out["false_alarms_before_taps"] = {"alarms": pre_fa, "meter_days": round(pre_md, 1),
                                       "per_1000_meter_days": round(1000 * pre_fa / pre_md, 4) if pre_md else None}
    # detection table by region, size, kind, start
    table = []
    for reg in ("us", "eu"):
        for start in ("during", "start"):
            for kind in ("constant", "intermittent"):
                for size in SIZES_KW:
                    rows = [r for r in trials if r["region"] == reg and r["start"] == start and r["kind"] == kind
                            and r["size_kw"] == size]
                    if not rows:
                        continue
                    det24 = [r for r in rows if _within(r, MIN_PER_DAY)]
                    table.append({
                        "region": reg, "start": start, "kind": kind, "size_kw": size, "n": len(rows),
                        "detect_1h": _rate(rows, lambda r: _within(r, 60))["rate"],
                        "detect_24h": _rate(rows, lambda r: _within(r, MIN_PER_DAY))["rate"],
                        "detect_any": _rate(rows, lambda r: r["detected"])["rate"],
                        "localised_of_detected_24h": _rate(det24, lambda r: r["localised"])["rate"],
                        "median_delay_min": _finite_median(r["delay_min"] for r in rows if r["detected"]),
                        "bound_detectable_1h": _rate(rows, lambda r: size >= r["bound_kw_1h"])["rate"],
                        "bound_detectable_24h": _rate(rows, lambda r: size >= r["bound_kw_24h"])["rate"],
                        "median_bound_kw_1h": _finite_median(r["bound_kw_1h"] for r in rows),
                        "median_bound_kw_24h": _finite_median(r["bound_kw_24h"] for r in rows)})
    out["table"] = table
    # European honest limit: smallest size detected within 24 h in >= 95 % of constant taps
    # starting during the record, pooled and per network
    eu = [r for r in trials if r["region"] == "eu" and r["start"] == "during" and r["kind"] == "constant"]

    def smallest(rows):
        for size in SIZES_KW:
            rr = [r for r in rows if r["size_kw"] == size]
            if rr and sum(_within(r, MIN_PER_DAY) for r in rr) / len(rr) >= 0.95:
                return size
        return None

    out["smallest_tap_kw_detected_eu_24h"] = smallest(eu)
    out["smallest_tap_kw_detected_eu_24h_by_network"] = {
        n: smallest([r for r in eu if r["network"] == n]) for n in sorted({r["network"] for r in eu})}
    eu_det = [r for r in trials if r["region"] == "eu" and r["start"] == "during" and _within(r, MIN_PER_DAY)]
    out["localise_eu_24h"] = _rate(eu_det, lambda r: r["localised"])
    out["localise_eu_24h_within_50m"] = _rate(eu_det, lambda r: r["named_meter_from_tap_m"] is not None
                                              and r["named_meter_from_tap_m"] <= 50.0)
    out["named_meter_from_tap_m_eu_24h_median"] = _finite_median(r["named_meter_from_tap_m"] for r in eu_det)
    # per scenario (network, site, size, kind, start)
    scen = {}
    for r in trials:
        scen.setdefault((r["network"], r["site"], r["size_kw"], r["kind"], r["start"]), []).append(r)
    out["scenarios"] = [{
        "network": k[0], "site": k[1], "where": rows[0]["where"], "distance_m": rows[0]["distance_m"],
        "tap_meter": rows[0]["tap_meter"], "size_kw": k[2], "kind": k[3], "start": k[4], "trials": len(rows),
        "detected": sum(r["detected"] for r in rows), "detected_1h": sum(_within(r, 60) for r in rows),
        "detected_24h": sum(_within(r, MIN_PER_DAY) for r in rows),
        "localised": sum(r["localised"] for r in rows),
        "delay_min": [None if r["delay_min"] is None else round(r["delay_min"], 1) for r in rows],
        "false_alarms_before_tap": sum(r["false_alarms_before_tap"] for r in rows),
        "false_alarms_per_1000_meter_days_before_tap": (
            round(1000 * sum(r["false_alarms_before_tap"] for r in rows)
                  / sum(r["meter_days_before_tap"] for r in rows), 3)
            if sum(r["meter_days_before_tap"] for r in rows) > 0 else None),
        "extra_drop_v_per_kw": rows[0]["extra_drop_v_per_kw"],
        "bound_kw_1h": _finite_median(r["bound_kw_1h"] for r in rows),
        "bound_kw_24h": _finite_median(r["bound_kw_24h"] for r in rows)} for k, rows in sorted(scen.items())]
    return out


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def plot(summary: dict, trials: list[dict], path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, reg, title in ((axes[0], "us", "US split-phase radial areas"), (axes[1], "eu", "European feeders")):
        for window, label, col in ((60, "1 h", "tab:red"), (MIN_PER_DAY, "24 h", "tab:blue")):
            for kind, ls in (("constant", "-"), ("intermittent", ":")):
                xs, ys, bs = [], [], []
                for size in SIZES_KW:
                    rows = [r for r in trials if r["region"] == reg and r["start"] == "during" and r["kind"] == kind
                            and r["size_kw"] == size]
                    if not rows:
                        continue
                    xs.append(size)
                    ys.append(np.mean([_within(r, window) for r in rows]))
                    key = "bound_kw_1h" if window == 60 else "bound_kw_24h"
                    bs.append(np.mean([size >= r[key] for r in rows]))
                if xs:
                    ax.plot(xs, ys, ls, marker="o", color=col, label=f"detected within {label} ({kind})")
                    ax.plot(xs, bs, ls, marker="x", color=col, alpha=0.35,
                            label=f"bound: detectable within {label} ({kind})" if kind == "constant" else None)
        ax.axhline(0.95, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xticks(SIZES_KW)
        ax.set_xticklabels([f"{s:g}" for s in SIZES_KW])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("tap size (kW), starting during the record")
        ax.set_ylabel("fraction of trials")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(title)
        ax.legend(fontsize=7, loc="lower right")
    ax = axes[2]
    for size, col in zip(SIZES_KW, ("tab:green", "tab:blue", "tab:red")):
        for kind, ls in (("constant", "-"), ("intermittent", ":")):
            rows = [r for r in trials if r["region"] == "us" and r["start"] == "during" and r["size_kw"] == size
                    and r["kind"] == kind]
            d = sorted(max(r["delay_min"], 1.0) for r in rows if r["delay_min"] is not None)
            if rows:
                ax.step([1.0] + d + [4 * MIN_PER_DAY], np.arange(len(d) + 2) / len(rows), where="post", color=col,
                        ls=ls, label=f"US {size:g} kW ({kind})")
    ax.axvline(60, color="grey", lw=0.8, ls="--")
    ax.axvline(MIN_PER_DAY, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("time to detect (min)")
    ax.set_ylabel("fraction detected")
    ax.set_xlim(1, 3 * MIN_PER_DAY)
    ax.set_ylim(0, 1.02)
    ax.set_title("US: time to detect, taps starting during the record")
    ax.legend(fontsize=7)
    fig.suptitle(f"Theft analysis on runpp_3ph ground truth; false alarms on clean data: "
                 f"{summary['false_alarms_clean']['per_1000_meter_days']} per 1,000 meter-days")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating,)):
        return _jsonable(float(x))
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few scenarios (smoke test)")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--workers", type=int, default=None, help="processes (default 2, quick 1)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--v-random-pct", type=float, default=None,
                    help="random voltage error, one sigma, %% (default 0.1; 0.05 reads the issue's 0.1 %% as 2 sigma)")
    args = ap.parse_args(argv)
    cfg = EvalConfig.quick() if args.quick else EvalConfig()
    if args.workers is not None:
        cfg.workers = max(1, args.workers)
    elif args.quick:
        cfg.workers = 1
    if args.seed is not None:
        cfg.seed = args.seed
    if args.v_random_pct is not None:
        cfg.v_random_pct = args.v_random_pct
    t_start = time.perf_counter()
    cfgd = dataclasses.asdict(cfg)
    jobs = [{"region": "eu", "name": n, "seed": cfg.seed + 1000 + i, "taps": True, "linearity": i == 0, "cfg": cfgd}
            for i, n in enumerate(cfg.eu_networks)]
    jobs += [{"region": "us", "name": f"US-T{i + 1:02d}", "seed": cfg.seed + i, "taps": True, "linearity": i == 0,
              "cfg": cfgd} for i in range(cfg.n_us_tap_tans)]
    jobs += [{"region": "us", "name": f"US-C{i + 1:02d}", "seed": cfg.seed + 500 + i, "taps": False, "cfg": cfgd}
             for i in range(cfg.n_us_clean_tans)]
    results = []
    if cfg.workers > 1:
        # by its importable name, so that the workers find it also when this file runs as __main__
        # (python -m, or runpy from `gla bench theft`)
        from benchmarks import theft_eval as this
        with mp.get_context("spawn").Pool(cfg.workers) as pool:
            for res in pool.imap_unordered(this.run_job, jobs):
                results.append(res)
                print(f"[theft_eval] {res['name']}: {res['meters']} meters, power flows {res['solve_s']:.0f} s, "
                      f"analysis {res['analyse_s']:.0f} s", file=sys.stderr)
    else:
        for job in jobs:
            res = run_job(job)
            results.append(res)
            print(f"[theft_eval] {res['name']}: {res['meters']} meters, power flows {res['solve_s']:.0f} s, "
                  f"analysis {res['analyse_s']:.0f} s", file=sys.stderr)
    results.sort(key=lambda r: r["name"])
    s = summarise(results)
    trials = [r for res in results for r in res["trials"] if r["noise"] == "stated"]
    runtime = time.perf_counter() - t_start
    cmd = ("nice .venv/bin/python -m benchmarks.theft_eval" + (" --quick" if args.quick else "")
           + (f" --v-random-pct {cfg.v_random_pct:g}" if args.v_random_pct is not None else ""))
    targets = {
        "detect_rate_3kw_1h_us": (s["detect_3kw_1h_us"]["rate"], ">= 0.95"),
        "detect_rate_1kw_24h_us": (s["detect_1kw_24h_us"]["rate"], ">= 0.95"),
        "localise_rate_us": (s["localise_us"]["rate"], ">= 0.90"),
        "false_alarms_per_1000_meter_days_clean": (s["false_alarms_clean"]["per_1000_meter_days"], "<= 1"),
    }
    met = {k: (v is not None and (v <= 1 if t == "<= 1" else v >= float(t.split()[-1])))
           for k, (v, t) in targets.items()}
    out = {
        "detect_rate_3kw_1h_us": s["detect_3kw_1h_us"]["rate"],
        "detect_rate_1kw_24h_us": s["detect_1kw_24h_us"]["rate"],
        "localise_rate_us": s["localise_us"]["rate"],
        "false_alarms_per_1000_meter_days_clean": s["false_alarms_clean"]["per_1000_meter_days"],
        "smallest_tap_kw_detected_eu_24h": s["smallest_tap_kw_detected_eu_24h"],
        "detect_rate_3kw_1h_us_intermittent": s["detect_3kw_1h_us_intermittent"]["rate"],
        "detect_rate_1kw_24h_us_intermittent": s["detect_1kw_24h_us_intermittent"]["rate"],
        "localise_rate_us_intermittent": s["localise_us_intermittent"]["rate"],
        "false_alarms_per_1000_meter_days_clean_us": s["false_alarms_clean_us"]["per_1000_meter_days"],
        "false_alarms_per_1000_meter_days_clean_eu": s["false_alarms_clean_eu"]["per_1000_meter_days"],
        "localise_rate_eu_24h": s["localise_eu_24h"]["rate"],
        "localise_rate_eu_24h_within_50m": s["localise_eu_24h_within_50m"]["rate"],
        "bound_expected_detect_rate_3kw_1h_us": s["bound_expected_detect_3kw_1h_us"],
        "sequential_reference_detect_rate_3kw_1h_us": s.get("sequential_reference_detect_3kw_1h_us"),
        "definitions": {
            "detect_rate_3kw_1h_us": "US areas, constant 3 kW taps starting at a random minute of day 2: share "
                                     "detected "
                                     "(first THEFT_SUSPICION at or after the start) within 60 min",
            "detect_rate_1kw_24h_us": "same for constant 1 kW taps, within 24 h",
            "localise_rate_us": "of the detections counted in the two rates above, the share whose anomaly names the "
                                "tapped meter",
            "*_intermittent": "the same for intermittent taps (on 10-60 min, off 10-90 min), whose time counts from "
                              "their first switch-on",
            "false_alarms_per_1000_meter_days_clean": "THEFT_SUSPICION anomalies per 1,000 meter-days in clean "
                                                      "records, US and European pooled (3 days each, all of it "
                                                      "analysed)",
            "localise_rate_eu_24h_within_50m": "European detections within 24 h whose named meter is connected within "
                                               "50 m (along the lines) of the tap: the localisation level on feeders",
            "smallest_tap_kw_detected_eu_24h": "smallest of 0.3/1/3 kW whose constant taps starting during the record "
                                               "on the European feeders are detected within 24 h in >= 95 % of trials",
            "bound_expected_detect_rate_3kw_1h_us": "mean over the trials of detect_rate_3kw_1h_us of the probability "
                                                    "that the clairvoyant matched filter (onset and pattern known) "
                                                    "detects the 3 kW tap within 60 min: what any detector could expect",
            "sequential_reference_detect_rate_3kw_1h_us": "the same for the detector's own CUSUM bank on white Gaussian "
                                                          "noise at each trial's SNR, onset unknown (sequential_reference)",
            "bound_kw_1h / bound_kw_24h": "per trial, the smallest tap a clairvoyant matched filter detects with "
                                          "probability 0.95 in that time at 1 false alarm per 1,000 meter-days "
                                          "(module docstring)"},
        "targets": {k: {"value": v, "target": t, "met": met[k]} for k, (v, t) in targets.items()},
        "command": cmd,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine(), "cpu_model": cpu_model(), "platform": platform.platform(), "workers": cfg.workers,
                    "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "runtime_s": round(runtime, 1),
        "mode": cfg.mode,
        "config": cfgd,
        "noise": dataclasses.asdict(MeterAccuracy(v_random_pct=cfg.v_random_pct)),
        "detector": {"radial": "platform_api.theft.analyse_radial (US)",
                     "feeder": "platform_api.theft.analyse_feeder (EU)",
                     "config": _jsonable(dataclasses.asdict(DetectorConfig()))},
        "summary": {k: v for k, v in s.items() if k != "scenarios"},
        "scenarios": s["scenarios"],
        "linearity_check": [r["linearity"] for r in results if r["linearity"]],
        "networks": [{"name": r["name"], "region": r["region"], "meters": r["meters"],
                      "power_flow_s": round(r["solve_s"], 1),
                      "analysis_s": round(r["analyse_s"], 1), **r["spec"]} for r in results],
        "clean_records": [c for r in results for c in r["clean"]],
        "trials_file": "out/theft_trials.json (every trial; not committed; next to theft.json with --out)",
    }
    out = _jsonable(out)
    write_json(args.out / "theft.json", out)
    default_out = args.out.resolve() == (ROOT / "benchmarks" / "results").resolve()
    trials_path = (ROOT / "out" if default_out else args.out) / "theft_trials.json"  # not committed
    write_json(trials_path, _jsonable([r for res in results for r in res["trials"]]))
    plot(s, trials, args.out / "theft_detection.png")
    print(json.dumps({k: out[k] for k in ("detect_rate_3kw_1h_us", "detect_rate_1kw_24h_us", "localise_rate_us",
                                          "false_alarms_per_1000_meter_days_clean", "smallest_tap_kw_detected_eu_24h",
                                          "runtime_s")}, indent=1))
    return out


if __name__ == "__main__":
    main()
