"""Ground truth of a low-voltage area over a record: loads, MV voltage and the solved meter voltages.

Each (network, load profile) is solved once per minute of the record (:mod:`.powerflow`). Each tap
site is solved once with a ``TAP_REF_KW`` (3 kW) tap at pf 0.95 switched on for the whole record
(from ``RecordConfig.tap_from_min``). Smaller taps take the 3 kW solution's change scaled by
P / 3 kW (:func:`gridsim.lv.events.apply_tap`); with ``linearity=True`` :func:`make_truth`
compares this with exact runpp_3ph solutions of 1 and 0.3 kW taps on a sample of minutes. A tap
that starts at t0, or switches on and off, takes the tapped solution where it is on and the clean
one elsewhere: the flow is static, so this is exact.

Solutions are cached in ``out/theft_cache/`` (``cache_dir``), keyed by the network, the loads, the
MV voltage and the record's settings.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .networks import NetSpec
from .powerflow import ReplicatedNet, solve_record
from .profiles import MIN_PER_DAY, household_profiles, mv_voltage_pu

ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / "out" / "theft_cache"
TAP_REF_KW = 3.0


@dataclass
class RecordConfig:
    """How a record is made and solved."""

    days: int = 3
    batch_buses: int = 3000  # copies per runpp_3ph call: about this many buses (its cost has a dense, quadratic part)
    min_batch: int = 50  # ... but at least this many copies (a network of ~1000 buses wants fewer)
    tap_from_min: int = 0  # taps are never on before this minute: their solutions start there
    linearity_minutes: int = 240  # minutes of the linearity check


@dataclass
class Truth:
    spec: NetSpec
    p_w: np.ndarray
    q_var: np.ndarray
    v_clean: np.ndarray
    v_tap: list[np.ndarray]  # per tap site, 3 kW on the whole record
    solve_s: float
    linearity: dict | None = None


def _cache_path(key: str, cache_dir: pathlib.Path | None = None) -> pathlib.Path:
    d = CACHE_DIR if cache_dir is None else pathlib.Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def make_truth(
    spec: NetSpec,
    rng: np.random.Generator,
    cfg: RecordConfig,
    *,
    with_taps: bool,
    linearity: bool,
    cache_dir: pathlib.Path | None = None,
) -> Truth:
    """Draw the record's loads and MV voltage from ``rng`` and solve it: clean, and with a 3 kW tap at
    each tap site in turn (``with_taps``). ``cfg``: a :class:`RecordConfig` (or anything with its
    fields)."""
    n_min = cfg.days * MIN_PER_DAY
    p, q = household_profiles(rng, spec.n_meters, n_min, spec.region)
    vm = mv_voltage_pu(rng, n_min)
    key = json.dumps(
        {
            "v": 3,
            "spec": spec.name,
            "bus": spec.bus_vn_kv.round(6).tolist(),
            "lines": [
                spec.line_from.tolist(),
                spec.line_to.tolist(),
                spec.line_km.round(9).tolist(),
                spec.line_r.tolist(),
                spec.line_x.tolist(),
            ],
            "tr": {k: round(float(v), 9) for k, v in spec.trafo.items()},
            "meters": spec.meter_bus.tolist(),
            "ph": spec.meter_phase.tolist(),
            "taps": [(t.bus, t.phase) for t in spec.taps],
            "p": hashlib.sha256(p.tobytes()).hexdigest(),
            "vm": hashlib.sha256(vm.tobytes()).hexdigest(),
            "with_taps": with_taps,
            "lin": linearity and cfg.linearity_minutes,
            **spec.key_extra(),
            **({"tap_from": cfg.tap_from_min} if cfg.tap_from_min else {}),
        }
    )
    path = _cache_path(key, cache_dir)
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
        v_tap.append(
            np.concatenate([v_clean[:t_on], solve_record(spec, p[t_on:], q[t_on:], vm[t_on:], tw, batch, rep)])
        )
    lin = None
    if linearity and n_sites:
        # exact runpp_3ph solutions of smaller taps against the scaled 3 kW solution
        # its own generator, not `rng`: a run that finds the solutions cached must draw the same noise
        sel_rng = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))
        sel = t_on + np.sort(sel_rng.choice(n_min - t_on, size=min(cfg.linearity_minutes, n_min - t_on), replace=False))
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
    arrays: dict[str, Any] = {"v_clean": v_clean, "solve_s": np.array(solve_s)}  # savez(**arrays)
    arrays.update({f"v_tap{s}": v for s, v in enumerate(v_tap)})
    if lin is not None:
        arrays["linearity"] = np.array(json.dumps(lin))
    np.savez(path, **arrays)
    return Truth(spec, p, q, v_clean, v_tap, solve_s, lin)
