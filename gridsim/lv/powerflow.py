"""Three-phase unbalanced power flow (pandapower ``runpp_3ph``, constant-power loads) of a NetSpec.

Many time steps go into one pandapower network holding copies of the area as separate islands,
each with its own external grid (about 3000 buses per call: 250 copies of a US area, ~100 of a
European feeder), so that a single runpp_3ph call solves that many minutes (2-6 ms per
area-minute on an idle core instead of 60-80 ms; runpp_3ph has a dense step whose cost grows with
the square of the bus count, hence the limit). Taps are loads at pf ``TAP_PF``.

pandapower is imported inside :class:`ReplicatedNet` only.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .networks import NetSpec

TAP_PF = 0.95


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
            net,
            (b0[0] + spec.line_from[None, :] + off).ravel(),
            (b0[0] + spec.line_to[None, :] + off).ravel(),
            np.tile(spec.line_km, k),
            np.tile(spec.line_r, k),
            np.tile(spec.line_x, k),
            0.0,
            1.0,
            r0_ohm_per_km=np.tile(r0, k),
            x0_ohm_per_km=np.tile(x0, k),
            c0_nf_per_km=0.0,
        )
        assert len(net.line) == nl * k
        tr = spec.trafo
        pp.create_transformers_from_parameters(
            net,
            b0[0] + tr["hv"] + off[:, 0],
            b0[0] + tr["lv"] + off[:, 0],
            tr["sn_mva"],
            tr["vn_hv_kv"],
            tr["vn_lv_kv"],
            tr["vkr"],
            tr["vk"],
            0.0,
            0.0,
            vector_group="Dyn",
            vk0_percent=tr.get("vk0", tr["vk"]),
            vkr0_percent=tr.get("vkr0", tr["vkr"]),
            mag0_percent=100.0,
            mag0_rx=0.0,
            si0_hv_partial=0.9,
        )
        sc = dict(
            s_sc_max_mva=100.0,
            rx_max=0.1,
            r0x0_max=1.0,
            x0x_max=1.0,
            s_sc_min_mva=100.0,
            rx_min=0.1,
            r0x0_min=1.0,
            x0x_min=1.0,
        )
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


def solve_record(
    spec: NetSpec,
    p_w: np.ndarray,
    q_var: np.ndarray,
    vm_pu: np.ndarray,
    tap_w: np.ndarray,
    batch: int,
    rep: ReplicatedNet | None = None,
) -> np.ndarray:
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
