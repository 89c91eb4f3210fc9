"""Low-voltage areas as plain arrays (:class:`NetSpec`), with the sites where a tap may be connected.

* **US-style split-phase areas** (:func:`us_tan_spec`): one single-phase 25-50 kVA service transformer,
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
  Tap sites: three meters, one tapped at the meter base, one at 2/3 of its service drop from
  the transformer and one at 1/3.
* **European networks that pandapower ships** (:func:`eu_spec`): ``create_kerber_landnetz_kabel_2``
  (14 houses, two strands of NAYY cable, 1.3 km), ``create_synthetic_voltage_control_lv_network``
  (14 houses, three strands, 1.6 km: the long rural feeder) and
  ``create_kerber_landnetz_freileitung_1`` (13 houses directly on a 273 m overhead bus). Lines
  get the zero-sequence data runpp_3ph needs (``Z0 = 4 Z1``: a neutral of the phase
  cross-section), the transformer becomes Dyn with ``vk0 = vk``, and every house is a
  single-phase load on a phase drawn so that the phases are balanced. Tap sites: the service
  line of a far and of a middle house at the house end, and the middle of feeder segments. A
  feeder tap is on the phase of the first meter downstream of it, the meter it is attributed to.
* The IEEE European LV test feeder is in :mod:`gridsim.lv.ieee`.

pandapower is imported inside :func:`eu_spec` only.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

US_CONDUCTORS = {  # per conductor: ohm/km at 75 C, reactance of the triplex
    "#2 Al triplex": (0.871, 0.095),
    "1/0 Al triplex": (0.548, 0.090),
    "4/0 Al triplex": (0.274, 0.085),
}
EU_NETWORKS = ("kerber_landnetz_kabel_2", "synthetic_voltage_control_lv", "kerber_landnetz_freileitung_1")


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
        return (
            4 * self.line_r if self.line_r0 is None else self.line_r0,
            4 * self.line_x if self.line_x0 is None else self.line_x0,
        )

    def key_extra(self) -> dict:
        """What a cache key needs beyond the base fields: only the data a network sets itself
        (so that the keys of networks that set none stay as they were)."""
        out: dict[str, Any] = {}
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
    t, km = spec_lines["to"][li], spec_lines["km"][li]
    spec_lines["to"][li] = new_bus
    spec_lines["km"][li] = km * frac
    for k, v in (
        ("from", new_bus),
        ("to", t),
        ("km", km * (1 - frac)),
        ("r", spec_lines["r"][li]),
        ("x", spec_lines["x"][li]),
    ):
        spec_lines[k].append(v)


def us_tan_spec(rng: np.random.Generator, name: str, n_meters: int, n_taps: int) -> NetSpec:
    """A US split-phase radial transformer area (see the module doc for the equivalent)."""
    kva = float(rng.choice([25.0, 37.5, 50.0]) if n_meters <= 6 else rng.choice([37.5, 50.0]))
    vk = rng.uniform(1.8, 2.6)
    vkr = vk / math.sqrt(1 + rng.uniform(1.0, 2.0) ** 2)
    v_ll = 0.24 * math.sqrt(3)
    buses = [7.2 * math.sqrt(3), v_ll]  # 0: MV, 1: secondary
    lines: dict[str, list[float]] = {"from": [], "to": [], "km": [], "r": [], "x": []}
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
        info.append(
            {
                "meter_id": f"{name}-M{k + 1}",
                "conductor": cond,
                "service_length_m": length,
                "loop_ohm": 2 * r * length / 1000,
            }
        )
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
        taps.append(
            TapSite(
                len(buses) - 1,
                0,
                int(k),
                frac * info[k]["service_length_m"],
                f"on the service drop, {frac:.2f} of the way",
            )
        )
    trafo = dict(hv=0, lv=1, sn_mva=3 * kva / 1000, vn_hv_kv=buses[0], vn_lv_kv=v_ll, vk=vk, vkr=vkr)
    return NetSpec(
        name,
        "us",
        np.array(buses),
        np.array(lines["from"]),
        np.array(lines["to"]),
        np.array(lines["km"]),
        np.array(lines["r"]),
        np.array(lines["x"]),
        trafo,
        0,
        np.array(meter_bus),
        np.zeros(n_meters, int),
        240.0,
        taps,
        info,
        f_hz=60.0,
    )


def eu_spec(rng: np.random.Generator, which: str, n_taps: int) -> NetSpec:
    """One of pandapower's European LV networks as a NetSpec, with tap sites."""
    import pandapower.networks as pn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = {
            "kerber_landnetz_kabel_2": pn.create_kerber_landnetz_kabel_2,
            "synthetic_voltage_control_lv": pn.create_synthetic_voltage_control_lv_network,
            "kerber_landnetz_freileitung_1": pn.create_kerber_landnetz_freileitung_1,
        }[which]()
    bus_ix = {b: i for i, b in enumerate(net.bus.index)}
    buses = list(net.bus.vn_kv.values.astype(float))
    lines = {
        "from": [bus_ix[b] for b in net.line.from_bus],
        "to": [bus_ix[b] for b in net.line.to_bus],
        "km": list(net.line.length_km.astype(float)),
        "r": list(net.line.r_ohm_per_km.astype(float)),
        "x": list(net.line.x_ohm_per_km.astype(float)),
    }
    tr = net.trafo.iloc[0]
    trafo = dict(
        hv=bus_ix[tr.hv_bus],
        lv=bus_ix[tr.lv_bus],
        sn_mva=float(tr.sn_mva),
        vn_hv_kv=float(tr.vn_hv_kv),
        vn_lv_kv=float(tr.vn_lv_kv),
        vk=float(tr.vk_percent),
        vkr=float(tr.vkr_percent),
    )
    load_bus = [bus_ix[b] for b in net.load.bus]
    n = len(load_bus)
    phases = rng.permutation(np.arange(n) % 3)
    info: list[dict[str, Any]] = [{"meter_id": f"{which}-H{k + 1}"} for k in range(n)]
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
    stub_lines = [
        parent_line[b]
        for b in load_bus
        if not children[b]
        and parent_line[b] is not None
        and len(adj[b]) == 1
        and (lines["from"][parent_line[b]] not in meter_of_bus)
    ]
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
    picks += [
        ("feeder", feeder_sorted[-1]),
        ("feeder", feeder_sorted[len(feeder_sorted) // 2]),
        ("feeder", feeder_sorted[len(feeder_sorted) // 4]),
    ]
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
            taps.append(
                TapSite(
                    len(buses) - 1,
                    ph,
                    m,
                    (dist[up] + dist[down]) / 2,
                    f"feeder segment {dist[up]:.0f}-{dist[down]:.0f} m from the transformer, "
                    f"first meter below: {info[m]['meter_id']}",
                )
            )
    return NetSpec(
        which,
        "eu",
        np.array(buses),
        np.array(lines["from"]),
        np.array(lines["to"]),
        np.array(lines["km"]),
        np.array(lines["r"]),
        np.array(lines["x"]),
        trafo,
        bus_ix[net.ext_grid.bus.iloc[0]],
        np.array(load_bus),
        phases,
        float(trafo["vn_lv_kv"]) * 1000 / math.sqrt(3),
        taps,
        info,
        f_hz=50.0,
    )
