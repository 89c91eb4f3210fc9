"""The IEEE European LV test feeder as a :class:`~gridsim.lv.networks.NetSpec`, with tap sites.

The network
-----------
``pandapower.networks.ieee_european_lv_asymmetric`` (pandapower's copy of the IEEE PES test feeder):
an 800 kVA 11/0.416 kV Dyn transformer, 906 LV buses, 905 cable sections (0.03-12 m each, 1.4 km in
all), 55 single-phase houses (21 on phase a, 19 on b, 15 on c) up to 296 m from the transformer along
the cables. Its three scenarios ('on_peak_566', 'off_peak_1', 'off_peak_1440') differ only in the
houses' loads, which a record replaces by its own load profiles (:mod:`.profiles`): the scenario only
supplies the topology, the phases and the cable data. Unlike the networks of :mod:`.networks`, the
feeder carries its own zero-sequence data (each cable's r0/x0, the transformer's vk0/vkr0, the
external grid's short-circuit data), and those are used as they are (``Z0 = 4 Z1`` is not applied).

The 55 meters are the 55 loads (meter ``IEEE-<load name>`` at the load's bus, on its phase).

Exact reduction: the cables have no shunt capacitance or conductance, so a chain of sections with
no load, tap or branch between them is one series impedance in each sequence (``sum r_i l_i``,
``sum x_i l_i``, ``sum r0_i l_i``, ``sum x0_i l_i``) and branches with no house carry no current.
Dropping those (and keeping the lengths, so that distances along the cables stay exact) leaves ~160
buses instead of 907, and a runpp_3ph call holds ~18 copies instead of 3. :func:`reduction_check`
compares the reduced network with the full one on one loaded minute (exact: the difference is the
solver's tolerance).

Tap sites (:func:`tap_sites`), chosen by position only: the meter base of the nearest, a middle and
the farthest house, the middle of the longest service cable, and four points of the feeder cables
(buses on lines that feed two or more houses) nearest 10 %, 35 %, 65 % and 100 % of the farthest
such point's distance from the transformer. A feeder tap is on the phase of the first meter below
it, which is also the meter it is attributed to.

pandapower is imported inside :func:`ieee_net` only.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import warnings

import numpy as np

from .networks import NetSpec, TapSite
from .powerflow import solve_record
from .profiles import MIN_PER_DAY, household_profiles
from .truth import TAP_REF_KW

NAME = "ieee_european_lv"


@functools.lru_cache(maxsize=3)
def ieee_net(scenario: str = "on_peak_566"):
    """pandapower's IEEE European LV feeder (shared between calls: do not modify it)."""
    import pandapower.networks as pn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pn.ieee_european_lv_asymmetric(scenario)


def _load_phases(net) -> np.ndarray:
    """Phase (0, 1, 2) of each single-phase asymmetric load."""
    al = net.asymmetric_load
    s = np.abs(al[["p_a_mw", "p_b_mw", "p_c_mw"]].to_numpy(float)) + np.abs(
        al[["q_a_mvar", "q_b_mvar", "q_c_mvar"]].to_numpy(float)
    )
    if not np.all((s > 0).sum(axis=1) == 1):
        raise ValueError("expected single-phase loads")
    return np.argmax(s, axis=1)


@dataclasses.dataclass
class Tree:
    """The LV cables as a tree rooted at the transformer's LV bus (pandapower bus indices)."""

    root: int
    parent: dict  # bus -> (parent bus, line index)
    dist_m: dict  # bus -> distance from the root along the cables
    order: list  # buses root first
    meters_below: dict  # bus -> number of loads in its subtree

    def children(self) -> dict:
        ch = collections.defaultdict(list)
        for b, (u, _) in self.parent.items():
            ch[u].append(b)
        return ch


def _tree(net) -> Tree:
    root = int(net.trafo.lv_bus.iloc[0])
    adj = collections.defaultdict(list)
    for li, (f, t) in enumerate(zip(net.line.from_bus.to_numpy(int), net.line.to_bus.to_numpy(int))):
        adj[f].append((t, li))
        adj[t].append((f, li))
    km = net.line.length_km.to_numpy(float)
    parent: dict[int, tuple[int, int]] = {}
    dist, order = {root: 0.0}, [root]
    for u in order:  # breadth first; the cables form a tree
        for v, li in adj[u]:
            if v in dist:
                if parent.get(u, (None,))[0] != v:
                    raise ValueError("the LV network is not radial")
                continue
            dist[v] = dist[u] + km[li] * 1000
            parent[v] = (u, li)
            order.append(v)
    below = collections.Counter(int(b) for b in net.asymmetric_load.bus)
    for b in reversed(order[1:]):
        below[parent[b][0]] += below[b]
    return Tree(root, parent, dist, order, dict(below))


def tap_sites(net, tree: Tree, phases: np.ndarray) -> list[TapSite]:
    """The tap sites of the module doc (by position only), as TapSites on pandapower bus indices
    (``meter``: index of the load the tap is attributed to)."""
    load_bus = net.asymmetric_load.bus.to_numpy(int)
    names = list(net.asymmetric_load.name)
    meter_at = {int(b): k for k, b in enumerate(load_bus)}
    ch = tree.children()
    d = tree.dist_m

    def first_meter_below(b):
        best, stack = None, [b]
        while stack:
            u = stack.pop()
            if u in meter_at and (best is None or d[u] < d[load_bus[best]]):
                best = meter_at[u]
            stack.extend(ch[u])
        return best

    sites = []
    by_dist = sorted(range(len(load_bus)), key=lambda k: d[load_bus[k]])
    for k, label in ((by_dist[0], "nearest"), (by_dist[len(by_dist) // 2], "middle"), (by_dist[-1], "farthest")):
        b = int(load_bus[k])
        sites.append(TapSite(b, int(phases[k]), k, d[b], f"meter base of the {label} house ({names[k]})"))
    # the service cable of a house: the path from its bus up to the first bus with another house below
    service = {}
    for k, b in enumerate(load_bus):
        path, u = [int(b)], int(b)
        while u in tree.parent and tree.meters_below[tree.parent[u][0]] == 1:
            u = tree.parent[u][0]
            path.append(u)
        if u in tree.parent:
            path.append(tree.parent[u][0])  # the joint on the feeder
        service[k] = path
    k = max(service, key=lambda k: d[service[k][0]] - d[service[k][-1]])
    path = service[k]
    half = (d[path[0]] + d[path[-1]]) / 2
    b = min(path[1:-1] or path[:1], key=lambda u: abs(d[u] - half))
    sites.append(
        TapSite(
            b,
            int(phases[k]),
            k,
            d[b],
            f"service cable of {names[k]}, {d[path[0]] - d[b]:.0f} m from the house "
            f"({d[path[0]] - d[path[-1]]:.0f} m cable)",
        )
    )
    # feeder cables: buses whose parent line feeds two houses or more
    feeder = [b for b in tree.order[1:] if tree.meters_below.get(b, 0) >= 2]
    far = max(d[b] for b in feeder)
    for frac in (0.10, 0.35, 0.65, 1.0):
        b = min(feeder, key=lambda u: abs(d[u] - frac * far))
        m = first_meter_below(b)
        sites.append(
            TapSite(
                b,
                int(phases[m]),
                m,
                d[b],
                f"feeder cable at {d[b]:.0f} m ({frac:.0%} of the feeder's reach), "
                f"first meter below: {names[m]} ({d[load_bus[m]] - d[b]:.0f} m further)",
            )
        )
    return sites


def ieee_spec(*, scenario: str = "on_peak_566", reduce: bool = True, n_taps: int | None = None) -> NetSpec:
    """The IEEE European LV feeder as a NetSpec with its tap sites, the first ``n_taps`` of them
    (default all 8). ``reduce``: the exact reduction of the module doc."""
    net = ieee_net(scenario)
    tree = _tree(net)
    phases = _load_phases(net)
    load_bus = net.asymmetric_load.bus.to_numpy(int)
    sites = tap_sites(net, tree, phases)
    if n_taps is not None:
        sites = sites[:n_taps]
    ln = net.line
    z = {
        "r": ln.r_ohm_per_km.to_numpy(float),
        "x": ln.x_ohm_per_km.to_numpy(float),
        "r0": ln.r0_ohm_per_km.to_numpy(float),
        "x0": ln.x0_ohm_per_km.to_numpy(float),
    }
    if not (
        np.all(ln.c_nf_per_km.to_numpy(float) == 0)
        and np.all(ln.g_us_per_km.to_numpy(float) == 0)
        and np.all(ln.parallel.to_numpy() == 1)
    ):
        raise ValueError("the reduction needs cables without shunt elements")
    km = ln.length_km.to_numpy(float)
    tr = net.trafo.iloc[0]
    hv = int(tr.hv_bus)
    if reduce:
        keep = {tree.root} | {int(b) for b in load_bus} | {s.bus for s in sites}
        ch = tree.children()
        keep |= {b for b in tree.order if sum(tree.meters_below.get(c, 0) > 0 for c in ch[b]) >= 2}
    else:
        keep = set(tree.order)
    used = [b for b in tree.order if b in keep]  # root first
    ix = {b: i + 1 for i, b in enumerate(used)}  # 0: the MV bus
    lines: dict[str, list[float]] = {k: [] for k in ("from", "to", "km", "r", "x", "r0", "x0")}
    for b in used[1:]:
        if b not in keep:
            continue
        u, length, acc = b, 0.0, dict.fromkeys(("r", "x", "r0", "x0"), 0.0)
        while True:  # up the chain to the next kept bus: the sections' impedances add
            u, li = tree.parent[u]
            length += km[li]
            for q in acc:
                acc[q] += z[q][li] * km[li]
            if u in keep:
                break
        lines["from"].append(ix[u])
        lines["to"].append(ix[b])
        lines["km"].append(length)
        for q in acc:
            lines[q].append(acc[q] / length)
    bus_vn = np.array([float(net.bus.vn_kv[hv])] + [float(net.bus.vn_kv[b]) for b in used])
    trafo = dict(
        hv=0,
        lv=ix[tree.root],
        sn_mva=float(tr.sn_mva),
        vn_hv_kv=float(tr.vn_hv_kv),
        vn_lv_kv=float(tr.vn_lv_kv),
        vk=float(tr.vk_percent),
        vkr=float(tr.vkr_percent),
        vk0=float(tr.vk0_percent),
        vkr0=float(tr.vkr0_percent),
    )
    eg = net.ext_grid.iloc[0]
    ext = {
        c: float(eg[c])
        for c in ("s_sc_max_mva", "rx_max", "r0x0_max", "x0x_max", "s_sc_min_mva", "rx_min", "r0x0_min", "x0x_min")
    }
    names = list(net.asymmetric_load.name)
    info = [
        {
            "meter_id": f"IEEE-{names[k]}",
            "phase": "abc"[int(phases[k])],
            "pp_bus": int(b),
            "distance_m": round(tree.dist_m[int(b)], 1),
        }
        for k, b in enumerate(load_bus)
    ]
    taps = [TapSite(ix[s.bus], s.phase, s.meter, s.distance_m, s.where) for s in sites]
    return NetSpec(
        NAME,
        "eu",
        bus_vn,
        np.array(lines["from"]),
        np.array(lines["to"]),
        np.array(lines["km"]),
        np.array(lines["r"]),
        np.array(lines["x"]),
        trafo,
        0,
        np.array([ix[int(b)] for b in load_bus]),
        phases.astype(int),
        float(tr.vn_lv_kv) * 1000 / math.sqrt(3),
        taps,
        info,
        f_hz=float(net.f_hz),
        line_r0=np.array(lines["r0"]),
        line_x0=np.array(lines["x0"]),
        ext_grid=ext,
    )


def reduction_check(seed: int = 5) -> dict:
    """The reduced network against the full one (907 buses) on one loaded minute with a 3 kW tap at
    every site in turn: largest difference of a meter voltage (mV)."""
    rng = np.random.default_rng(seed)
    red, full = ieee_spec(), ieee_spec(reduce=False)
    p, q = household_profiles(rng, red.n_meters, MIN_PER_DAY, "eu")
    t = int(np.argmax(p.sum(axis=1)))  # the most loaded minute
    s = len(red.taps)
    tap = np.eye(s) * TAP_REF_KW * 1000
    args = (np.repeat(p[t : t + 1], s, 0), np.repeat(q[t : t + 1], s, 0), np.ones(s), tap, s)
    v_red = solve_record(red, *args)
    v_full = solve_record(full, *args)
    return {
        "buses_full": int(full.bus_vn_kv.size),
        "buses_reduced": int(red.bus_vn_kv.size),
        "lines_full": int(full.line_from.size),
        "lines_reduced": int(red.line_from.size),
        "load_kw": round(float(p[t].sum()) / 1000, 2),
        "max_abs_difference_mv": float(np.abs(v_red - v_full).max() * 1e3),
    }
