"""Bus (series) topology: meters one after another along a cable from the transformer.

Order
-----
Along a bus the voltage falls from meter to meter: every segment carries the current of all the
meters beyond it. The meters are therefore ordered by descending voltage, per strand (``branch``)
and phase (:func:`order_by_voltage`, the patent's ordering). With a fitted model the ordering
uses the *junction* voltage: the meter's voltage with its calibration offset removed and its own
service connection's drop added back, which is strictly decreasing along the bus whenever the
loads draw power. A change of order between two periods, significant in both, is reported as a
METER_ORDER_CHANGE anomaly (a possible meter swap: :func:`compare_bus_orders`).

Cumulative drop model
---------------------
For a chain of meters k_1..k_M (nearest first), with ``A_{>=m}(t)`` the drop current
(``p + rho q``, :func:`.data.drop_current_a`) of the meters at positions m..M,

    v_{k_s}(t) = u_g(t) + c_{k_s} - sum_{m <= s} R_m A_{>=m}(t) - r_k a_k(t)

(segment resistances ``R_m`` shared by the chain; service connection ``r_k`` of each meter,
optional; reactances ``rho`` times the resistances). On a three-phase bus each meter also gets
a coefficient on each other phase's total current projected on its phase (the shared
neutral). ``u_g`` (per phase) is eliminated exactly, as in :mod:`.radial`.

Excess drop and where it is
---------------------------
The excess drop (leave-one-out residual) is monitored by the CUSUM bank. An unmetered current
drawn at the end of segment m adds ``sum_{m' <= min(s, m)} R_m'`` per ampere at position s: the
meters beyond the tap all drop by the same amount, the ones before it by less. Matching this
pattern for every segment and every service connection (:mod:`.localise`) says "on the bus
between meter X and meter Y" or "on the service connection of meter Y".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from .analysis import (
    DAY_S,
    DetectorConfig,
    MeterEstimate,
    TanAnalysis,
    baseline_slice,
    class_sigma_excess,
    cluster_episodes,
    episode_confidence,
    episode_stats,
    residual_sigma,
    samples_per_day,
    standardise,
)
from .anomalies import Anomaly, AnomalyType, Detail
from .data import MeterAccuracy, TanSeries, drop_current_a, phase_angle_rad
from .linmodel import apply_design, fit_within, loo_excess
from .localise import Candidate, loo_pattern, rank_candidates


def chain_key(branch: str, phase: str) -> str:
    return f"{branch}|{phase}"


@dataclass
class BusOrder:
    """Meters per chain (``branch|phase``), nearest the transformer first, with the mean
    (junction) voltage of each meter over the period and its standard error."""

    chains: dict[str, list[str]]
    mean_v: dict[str, float] = field(default_factory=dict)
    se_v: dict[str, float] = field(default_factory=dict)
    start_s: int = 0
    stop_s: int = 0

    def position(self, meter_id: str) -> tuple[str, int]:
        for key, ids in self.chains.items():
            if meter_id in ids:
                return key, ids.index(meter_id) + 1
        raise KeyError(meter_id)


def _chains_of(series: TanSeries) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for k, m in enumerate(series.meters):
        out.setdefault(chain_key(m.branch, m.phase), []).append(k)
    return out


def order_by_voltage(series: TanSeries, *, model: BusModel | None = None) -> BusOrder:
    """Order the meters of each chain by descending mean voltage over the series.

    Without a model this is the raw voltage (the patent's rule; calibration offsets of up to
    +-0.1 % can swap meters whose voltages differ by less). With a model, the junction voltage
    ``v - c + r p + x q`` is used."""
    v = series.v_rms.copy()
    if model is not None:
        if series.meter_ids != model.meter_ids:
            raise ValueError("series and model meters differ")
        p, q = np.nan_to_num(series.i_active_a), np.nan_to_num(series.i_reactive_a)
        v = v - model.offset_v[None, :] + model.stub_r_ohm[None, :] * p + model.stub_x_ohm[None, :] * q
    with np.errstate(all="ignore"):
        mean = np.nanmean(v, axis=0)
        n = np.sum(np.isfinite(v), axis=0)
        sig = model.sigma_v if model is not None else np.nanstd(np.diff(v, axis=0), axis=0) / math.sqrt(2)
        se = sig / np.sqrt(np.maximum(n, 1))
    chains = {}
    for key, cols in _chains_of(series).items():
        cols = sorted(cols, key=lambda k: (-np.nan_to_num(mean[k], nan=-np.inf), series.meter_ids[k]))
        chains[key] = [series.meter_ids[k] for k in cols]
    ids = series.meter_ids
    t = series.time_s
    return BusOrder(
        chains,
        {ids[k]: float(mean[k]) for k in range(len(ids))},
        {ids[k]: float(se[k]) for k in range(len(ids))},
        int(t[0]) if t.size else 0,
        int(t[-1]) if t.size else 0,
    )


def _layout(series: TanSeries, chains: dict[str, list[int]], stubs: bool, coupling: list[str]):
    n = series.n_meters
    per_meter = 1 + (1 if stubs else 0) + len(coupling)
    seg_base = {}
    o = n * per_meter
    for key, cols in chains.items():
        seg_base[key] = o
        o += len(cols)
    return per_meter, seg_base, o


def bus_design(
    series: TanSeries,
    chains: dict[str, list[int]],
    *,
    stubs: bool = True,
    coupling: list[str] | None = None,
    x_over_r: float = 0.25,
) -> np.ndarray:
    """Regressors (T, N, P) of the cumulative drop model for the given chains (column indices,
    nearest first): per meter its offset, minus its own drop current (service connection), minus
    the other phases' total currents projected on its phase (shared neutral); per chain and
    segment m, minus the drop current of the meters at positions m..M (:func:`.data.drop_current_a`)."""
    coupling = coupling or []
    p, q = np.nan_to_num(series.i_active_a), np.nan_to_num(series.i_reactive_a)
    t_n, n = p.shape
    per_meter, seg_base, n_par = _layout(series, chains, stubs, coupling)
    x = np.zeros((t_n, n, n_par))
    pg = series.phase_groups()
    own = drop_current_a(p, q, 0.0, x_over_r)
    tot = {ph: (p[:, pg[ph]].sum(axis=1), q[:, pg[ph]].sum(axis=1)) for ph in coupling}
    for k, m in enumerate(series.meters):
        o = k * per_meter
        x[:, k, o] = 1.0
        j = o + 1
        if stubs:
            x[:, k, j] = -own[:, k]
            j += 1
        for ph in coupling:  # the own phase's slot stays empty (the chain models it)
            if ph != m.phase:
                d = phase_angle_rad(ph) - phase_angle_rad(m.phase)
                x[:, k, j] = -drop_current_a(tot[ph][0], tot[ph][1], d, x_over_r)
            j += 1
    for key, cols in chains.items():
        down = np.cumsum(own[:, cols][:, ::-1], axis=1)[:, ::-1]  # drop current beyond each segment
        b = seg_base[key]
        for s, k in enumerate(cols):  # meter at position s + 1 sees segments 1..s+1
            x[:, k, b : b + s + 1] = -down[:, : s + 1]
    return x


@dataclass
class BusModel:
    """Fitted cumulative drop model. ``chains``: column indices per chain, nearest first;
    ``segment_r_ohm``/``segment_x_ohm`` per chain (segment 1 is not identifiable when the chain
    holds every meter of its phase; X = ``x_over_r`` R); per meter ``offset_v``, ``stub_r_ohm``,
    ``stub_x_ohm``, ``sigma_v``."""

    meter_ids: list[str]
    chains: dict[str, list[int]]
    groups: list[np.ndarray]
    stubs: bool
    coupling: list[str]
    x_over_r: float
    theta: np.ndarray
    offset_v: np.ndarray
    stub_r_ohm: np.ndarray
    stub_x_ohm: np.ndarray
    segment_r_ohm: dict[str, np.ndarray]
    segment_x_ohm: dict[str, np.ndarray]
    sigma_v: np.ndarray
    sigma_class_v: np.ndarray
    v_nominal_v: float
    params_per_sample: np.ndarray | None = None

    def order(self) -> dict[str, list[str]]:
        return {key: [self.meter_ids[k] for k in cols] for key, cols in self.chains.items()}

    def residual_v(self, series: TanSeries) -> np.ndarray:
        if series.meter_ids != self.meter_ids:
            raise ValueError("series and model meters differ")
        x = bus_design(series, self.chains, stubs=self.stubs, coupling=self.coupling, x_over_r=self.x_over_r)
        return series.v_rms - apply_design(x, self.theta, series.n_times)

    def mask(self, series: TanSeries) -> np.ndarray:
        m = series.valid
        return m & np.all(m, axis=1, keepdims=True)  # downstream sums need every meter

    def excess_drop_v(self, series: TanSeries) -> np.ndarray:
        return loo_excess(self.residual_v(series), self.groups, self.mask(series))

    def drop_pattern_v_per_a(self, key: str, segment: int, stub: bool) -> np.ndarray:
        """Extra drop at every meter per ampere drawn at the end of ``segment`` (1-based) of chain
        ``key`` (``stub``: on the service connection of the meter at that position), leave-one-out."""
        cols = self.chains[key]
        r = np.clip(np.nan_to_num(self.segment_r_ohm[key]), 0.0, None)
        cum = np.cumsum(r)
        d = np.zeros(len(self.meter_ids))
        for s, k in enumerate(cols):
            d[k] = cum[min(s, segment - 1)]
        if stub:
            k = cols[segment - 1]
            d[k] += max(float(self.stub_r_ohm[k]), 0.0)
        return loo_pattern(d, self.groups)


def _fit_chains(
    series: TanSeries,
    chains: dict[str, list[int]],
    groups: list[np.ndarray],
    stubs: bool,
    accuracy: MeterAccuracy,
    config: DetectorConfig,
    x_over_r: float,
) -> tuple[BusModel, float]:
    """Fit the model for given chains; also return the (capped) sum of squared residuals."""
    coupling = list(series.phase_groups().keys()) if len(groups) > 1 else []
    x = bus_design(series, chains, stubs=stubs, coupling=coupling, x_over_r=x_over_r)
    mask = series.valid & np.all(series.valid, axis=1, keepdims=True)
    if mask.sum() < 4 * x.shape[2]:
        raise ValueError("too few complete time steps to fit the bus model")
    theta, used = fit_within(series.v_rms, x, groups, mask, trim_sigma=config.trim_sigma)
    n = series.n_meters
    per_meter, seg_base, _ = _layout(series, chains, stubs, coupling)
    blocks = theta[: n * per_meter].reshape(n, per_meter)
    offset = blocks[:, 0]
    stub_r = blocks[:, 1] if stubs else np.zeros(n)
    seg_r = {key: theta[b : b + len(chains[key])] for key, b in seg_base.items()}
    seg_x = {key: x_over_r * r for key, r in seg_r.items()}
    model = BusModel(
        series.meter_ids,
        chains,
        groups,
        stubs,
        coupling,
        x_over_r,
        theta,
        offset,
        stub_r,
        x_over_r * stub_r,
        seg_r,
        seg_x,
        np.zeros(n),
        np.zeros(n),
        series.v_nominal_v,
    )
    resid = series.v_rms - apply_design(x, theta, series.n_times)
    exc = loo_excess(resid, groups, used)
    model.sigma_class_v = class_sigma_excess(series, accuracy, groups, np.abs(stub_r))
    model.sigma_v = residual_sigma(exc, model.sigma_class_v, config)
    n_used = max(int(np.all(used, axis=1).sum()), 1)
    model.params_per_sample = np.zeros(n)
    for cols in chains.values():
        ng = len(cols)
        for s_, k in enumerate(cols):  # own block, the segments on its path, 1/(n-1) of the partners'
            model.params_per_sample[k] = (per_meter + (s_ + 1) / max(ng - s_, 1)) * (1 + 1 / max(ng - 1, 1)) / n_used
    full = loo_excess(resid, groups, mask) / model.sigma_v[None, :]
    ssr = float(np.nansum(np.minimum(full**2, config.trim_sigma**2)))
    return model, ssr


def fit_bus(
    series: TanSeries,
    *,
    order: BusOrder | dict[str, list[str]] | None = None,
    stubs: bool = True,
    accuracy: MeterAccuracy | None = None,
    config: DetectorConfig | None = None,
    refine_order: bool = True,
    x_over_r: float = 0.25,
) -> BusModel:
    """Fit the cumulative drop model.

    The order is, by priority: ``order``; the meters' ``position`` if every meter has one; else
    it is inferred. The inference starts from the voltage order, then (``refine_order``) alternates
    fitting and re-ordering by junction voltage (which removes the calibration offsets that can
    swap close meters), and finally tries exchanging neighbours, keeping an exchange when it lowers
    the residual sum of squares by more than 25 (five residual sigmas). Two meters that differ
    only by where along a service connection versus the bus their drop occurs (typically the last
    two of a chain) cannot be told apart; they keep their voltage order."""
    accuracy = accuracy or MeterAccuracy()
    config = config or DetectorConfig()
    if not (0 <= x_over_r < 10):
        raise ValueError(f"x_over_r must be in [0, 10), got {x_over_r}")
    groups = list(series.phase_groups().values())
    if any(len(g) < 2 for g in groups):
        raise ValueError("every phase needs at least two meters (the others are the reference)")
    inferred = False
    if order is None:
        if all(m.position is not None for m in series.meters):
            tmp: dict[str, list[tuple[int, str]]] = {}
            for m in series.meters:
                assert m.position is not None  # every meter has one (checked just above)
                tmp.setdefault(chain_key(m.branch, m.phase), []).append((m.position, m.meter_id))
            order = {k: [mid for _, mid in sorted(v)] for k, v in tmp.items()}
        else:
            order = order_by_voltage(series)
            inferred = True
    chains_ids = order.chains if isinstance(order, BusOrder) else order
    if sorted(mid for ids in chains_ids.values() for mid in ids) != sorted(series.meter_ids):
        raise ValueError("the order must list every meter of the series exactly once")
    chains = {key: [series.index_of(mid) for mid in ids] for key, ids in chains_ids.items()}
    model, ssr = _fit_chains(series, chains, groups, stubs, accuracy, config, x_over_r)
    if not (inferred and refine_order):
        return model
    for _ in range(4):  # re-order by junction voltage until stable
        new = order_by_voltage(series, model=model).chains
        new_chains = {key: [series.index_of(mid) for mid in ids] for key, ids in new.items()}
        if new_chains == chains:
            break
        m2, s2 = _fit_chains(series, new_chains, groups, stubs, accuracy, config, x_over_r)
        if s2 >= ssr:
            break
        chains, model, ssr = new_chains, m2, s2
    for _ in range(2):  # exchange neighbours while it clearly helps
        improved = False
        for key in list(chains):
            for i in range(len(chains[key]) - 1):
                trial = {k: list(v) for k, v in chains.items()}
                trial[key][i], trial[key][i + 1] = trial[key][i + 1], trial[key][i]
                m2, s2 = _fit_chains(series, trial, groups, stubs, accuracy, config, x_over_r)
                if s2 < ssr - 25.0:
                    chains, model, ssr, improved = trial, m2, s2, True
        if not improved:
            break
    return model


def compare_bus_orders(
    before: BusOrder, after: BusOrder, *, transformer_id: str = "", min_z: float = 5.0, min_difference_v: float = 0.05
) -> list[Anomaly]:
    """METER_ORDER_CHANGE anomalies for pairs of meters of the same chain whose order differs
    between the two periods, significantly in both: the voltage difference must exceed
    ``max(min_difference_v, min_z * its standard error)`` each time. Two meters that exchanged
    places are reported as a possible meter swap."""
    if min_z <= 0 or min_difference_v < 0:
        raise ValueError("min_z must be > 0 and min_difference_v >= 0")
    flips: dict[str, list[tuple[str, str, float]]] = {}
    for key, ids in before.chains.items():
        ids_after = after.chains.get(key, [])
        common = [m for m in ids if m in ids_after]
        for i, a in enumerate(common):
            for b in common[i + 1 :]:
                if ids_after.index(a) < ids_after.index(b):
                    continue
                d0 = before.mean_v[a] - before.mean_v[b]
                d1 = after.mean_v[b] - after.mean_v[a]
                se0 = math.hypot(before.se_v[a], before.se_v[b])
                se1 = math.hypot(after.se_v[a], after.se_v[b])
                thr0, thr1 = max(min_difference_v, min_z * se0), max(min_difference_v, min_z * se1)
                if d0 > thr0 and d1 > thr1:
                    zmin = min(d0 / max(se0, 1e-12), d1 / max(se1, 1e-12))
                    flips.setdefault(key, []).append((a, b, zmin))
    out = []
    for key, pairs in flips.items():
        involved = {m for a, b, _ in pairs for m in (a, b)}
        ids_after = after.chains.get(key, [])
        common_b = [m for m in before.chains[key] if m in ids_after]
        common_a = [m for m in ids_after if m in common_b]
        displaced = {m for m, m2 in zip(common_b, common_a) if m != m2}  # positions that differ
        moved = sorted((involved & displaced) or involved, key=lambda m: before.chains[key].index(m))
        zmin = min(z for _, _, z in pairs)
        conf = float(special.ndtr(min(zmin, 38.0) - min_z + 2.0))
        swap = len(moved) == 2
        where = (
            f"meters {moved[0]} and {moved[1]} exchanged positions on bus {key}: possible meter swap"
            if swap
            else f"meters {', '.join(moved)} changed order on bus {key}"
        )
        out.append(
            Anomaly(
                AnomalyType.METER_ORDER_CHANGE,
                transformer_id,
                tuple(moved),
                after.start_s,
                conf,
                Detail.ORDER_CHANGE,
                location=where,
                evidence={
                    "chain": key,
                    "order_before": before.chains[key],
                    "order_after": after.chains[key],
                    "pairs": [{"upstream_before": a, "downstream_before": b, "z_min": z} for a, b, z in pairs],
                    "possible_swap": swap,
                },
            )
        )
    return out


def _bus_candidates(model: BusModel) -> list[Candidate]:
    out = []
    for key, cols in model.chains.items():
        ids = [model.meter_ids[k] for k in cols]
        for m in range(1, len(cols) + 1):
            before = f"meter {ids[m - 2]}" if m > 1 else "the transformer"
            out.append(
                Candidate(
                    f"bus {key}: segment between {before} and meter {ids[m - 1]}",
                    (ids[m - 1],) + ((ids[m - 2],) if m > 1 else ()),
                    model.drop_pattern_v_per_a(key, m, stub=False),
                )
            )
            if model.stubs:
                out.append(
                    Candidate(
                        f"bus {key}: service connection of meter {ids[m - 1]}",
                        (ids[m - 1],),
                        model.drop_pattern_v_per_a(key, m, stub=True),
                    )
                )
    return out


def analyse_bus(
    series: TanSeries,
    *,
    accuracy: MeterAccuracy | None = None,
    config: DetectorConfig | None = None,
    order: BusOrder | dict[str, list[str]] | None = None,
    stubs: bool = True,
    period_s: int = DAY_S,
    model: BusModel | None = None,
    order_min_z: float = 5.0,
    order_min_difference_v: float = 0.05,
    x_over_r: float = 0.25,
) -> TanAnalysis:
    """Analyse a bus-topology transformer area: fit the cumulative drop model on the baseline,
    flag drops larger than the downstream currents explain (THEFT_SUSPICION,
    ``bus_excess_drop``, localised to a segment or service connection), and compare the meter
    order of every later period of ``period_s`` with the baseline's (METER_ORDER_CHANGE)."""
    accuracy = accuracy or MeterAccuracy()
    config = config or DetectorConfig()
    if period_s <= 0:
        raise ValueError(f"period_s must be > 0, got {period_s}")
    base = baseline_slice(series, config)
    if model is None:
        model = fit_bus(
            series.rows(base), order=order, stubs=stubs, accuracy=accuracy, config=config, x_over_r=x_over_r
        )
    excess = model.excess_drop_v(series)
    warnings = []
    ratio = model.sigma_v / model.sigma_class_v
    for k in np.flatnonzero(ratio > 3.0):
        warnings.append(
            f"meter {model.meter_ids[k]}: residual {model.sigma_v[k]:.3f} V is {ratio[k]:.1f}x what its "
            f"accuracy class predicts (wrong order, topology or unsynchronised clocks?)"
        )
    assert model.params_per_sample is not None  # fit_bus sets it on every model it returns
    z = standardise(excess, model.sigma_v, config, params_per_sample=model.params_per_sample)
    eps = config.bank.episodes(z, samples_per_day(series))
    t = series.time_s
    with np.errstate(all="ignore"):
        v_mean = np.nanmean(series.v_rms, axis=0)
    anomalies: list[Anomaly] = []
    cands_proto = _bus_candidates(model)
    gap = int(round(config.bank.merge_gap_s / 86400.0 * samples_per_day(series)))
    for cluster in cluster_episodes(eps, gap):
        ep = cluster[0]  # the first alarm; the window runs from the earliest onset to it
        onset = min(e.onset_idx for e in cluster if e.onset_idx <= ep.alarm_idx)
        win = excess[onset : ep.alarm_idx + 1]
        n_win = max(int(np.sum(np.isfinite(win[:, ep.col]))), 1)
        with np.errstate(all="ignore"):
            xbar = np.nanmean(win, axis=0)
        cands = [Candidate(c.label, c.meter_ids, c.pattern_v_per_a) for c in cands_proto]
        ranked = rank_candidates(xbar, model.sigma_v, n_win, cands)
        best = ranked[0]
        st = episode_stats(excess, float(model.sigma_v[ep.col]), ep)
        conf = episode_confidence(st["z"], series.n_meters, series.n_times, st["samples"])
        j = model.meter_ids.index(best.meter_ids[0])
        anomalies.append(
            Anomaly(
                AnomalyType.THEFT_SUSPICION,
                series.transformer_id,
                best.meter_ids,
                int(t[ep.alarm_idx]),
                conf,
                Detail.BUS_EXCESS_DROP,
                location=best.label,
                start_time_s=int(t[onset]),
                unaccounted_kw=best.current_a * float(v_mean[j]) / 1000.0,
                evidence={
                    **st,
                    "alarm_meter": series.meter_ids[ep.col],
                    "alarm_meters": sorted({series.meter_ids[e.col] for e in cluster}),
                    "tap_current_a": best.current_a,
                    "location_probability": best.probability,
                    "candidates": [
                        {"where": c.label, "probability": c.probability, "current_a": c.current_a} for c in ranked[:3]
                    ],
                },
            )
        )
    # order per later period against the baseline order
    base_order = order_by_voltage(series.rows(base), model=model)
    base_order.chains = model.order()
    if base.stop < series.n_times:
        t0 = int(t[base.stop])
        while t0 <= t[-1]:
            part = series.slice_time(t0, t0 + period_s)
            if part.n_times >= 10:
                after = order_by_voltage(part, model=model)
                anomalies += compare_bus_orders(
                    base_order,
                    after,
                    transformer_id=series.transformer_id,
                    min_z=order_min_z,
                    min_difference_v=order_min_difference_v,
                )
            t0 += period_s
    meters = [
        MeterEstimate(
            mid,
            float(model.offset_v[k]),
            float(model.stub_r_ohm[k]),
            float(model.stub_x_ohm[k]),
            float(model.sigma_v[k]),
            float(model.sigma_class_v[k]),
            {
                "chain": next(key for key, cols in model.chains.items() if k in cols),
                "position": next(cols.index(k) + 1 for cols in model.chains.values() if k in cols),
            },
        )
        for k, mid in enumerate(model.meter_ids)
    ]
    anomalies.sort(key=lambda a: a.time_s)
    return TanAnalysis(series.transformer_id, "bus", anomalies, meters, warnings, t, excess, base, model)
