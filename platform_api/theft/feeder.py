"""Unmetered taps on any low-voltage topology (tree-shaped European feeders, several strands,
three phases with a shared neutral): the topology-agnostic sensitivity model.

Model
-----
To first order, every meter's voltage is linear in all the currents of the area:

    v_k(t) = u_g(t) + c_k - sum_j G_kj a_j^(g)(t) + e_k(t)

``a_j^(g)`` is meter j's current projected on the voltage of k's phase g and weighted for the
drop it causes on a line of reactance/resistance ``x_over_r`` (:func:`feeder_regressors`). For j
on k's phase it is ``p_j + x_over_r q_j`` and ``G_kj`` is the resistance (phase and neutral)
that their paths to the transformer share. For j on another phase, ``G_kj`` is the resistance
of the neutral they share, and the projection turns j's current by the 120 degrees between the
phases: a load on phase a raises b and c a little. ``u_g(t)`` is the unknown voltage of phase g
at the transformer. Subtracting the phase's mean at each time removes ``u_g`` and leaves, per
phase, one least-squares problem with shared regressors ``[1, a_1..a_N]`` and the phase's meters
as right-hand sides. No topology is needed, and the neutral coupling between phases is learnt,
not flagged. The baseline must span several times ``N + 1`` samples and, for each house, some
of its large loads.

Detection and localisation
--------------------------
The excess drop of meter k is its residual against its phase partners, scaled to the
leave-one-out form (``- n/(n-1)`` times the demeaned residual). The CUSUM bank runs on it as in
:mod:`.radial`. The excess is standardised with the leverage of each sample: the estimated
``G`` extrapolate when a house draws more than it did in the baseline, see
:func:`.analysis.standardise`. An unmetered current at meter j's connection would show the
pattern ``-n/(n-1) * (G_:j - mean)`` per ampere, which the fit has learnt. At each alarm the
patterns of all meters are matched to the mean excess since the change (:mod:`.localise`). The
answer is "at or just upstream of meter j": its service line, or the feeder section feeding its
connection. The probability of each candidate is reported. The drop model is linear: on long,
heavily loaded feeders the second-order terms of the drop are the next limit after the noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .analysis import (
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
from .linmodel import group_demean, robust_scale
from .localise import Candidate, rank_candidates


def _angle(label: str) -> float:
    return phase_angle_rad(label)


def feeder_regressors(series: TanSeries, frame_phase: str, x_over_r: float) -> np.ndarray:
    """``[1, a_1..a_N]`` (T, N + 1) for the meters of phase ``frame_phase``: ``a_j`` is meter j's
    current projected on that phase's voltage and weighted for the drop it causes on a line with
    reactance/resistance ``x_over_r`` (:func:`.data.drop_current_a`). For a meter on the same
    phase this is ``p_j + x_over_r q_j``; for one on another phase, the share of its current
    whose return through the shared neutral moves this phase's voltage. Rows with a missing
    reading are NaN."""
    th0 = _angle(frame_phase)
    d = np.array([_angle(m.phase) - th0 for m in series.meters])[None, :]
    a = drop_current_a(series.i_active_a, series.i_reactive_a, d, x_over_r)
    return np.concatenate([np.ones((series.n_times, 1)), a], axis=1)


@dataclass
class FeederModel:
    """Fitted sensitivity model. ``coef`` (N + 1, N): per meter (column), its intercept and the
    coefficient (ohm) of every meter's projected current on its group-demeaned voltage;
    ``xtx_inv`` per group: (Z'Z)^-1 of the fit, for the leverage of new data."""

    meter_ids: list[str]
    group_labels: list[str]
    groups: list[np.ndarray]
    coef: np.ndarray
    xtx_inv: list[np.ndarray]
    x_over_r: float
    sigma_v: np.ndarray
    sigma_class_v: np.ndarray
    offset_se_v: np.ndarray
    mean_leverage: np.ndarray
    v_nominal_v: float
    phases: list[str]

    @property
    def n(self) -> int:
        return len(self.meter_ids)

    def _loo_scale(self) -> np.ndarray:
        s = np.full(self.n, np.nan)
        for g in self.groups:
            if len(g) >= 2:
                s[g] = len(g) / (len(g) - 1.0)
        return s

    def excess_and_leverage(self, series: TanSeries) -> tuple[np.ndarray, np.ndarray]:
        """Excess drop (T, N) volts and the leverage of each time step (T, N) (how far its
        currents lie outside what the baseline covered; the prediction variance is
        ``sigma^2 (1 + leverage)``)."""
        if series.meter_ids != self.meter_ids:
            raise ValueError(f"series meters {series.meter_ids} differ from the model's {self.meter_ids}")
        dv = group_demean(series.v_rms, self.groups, series.valid)
        res = np.full(dv.shape, np.nan)
        lev = np.zeros(dv.shape)
        for label, g, inv in zip(self.group_labels, self.groups, self.xtx_inv):
            z = feeder_regressors(series, label, self.x_over_r)
            ok = np.all(np.isfinite(z), axis=1)
            zz = np.nan_to_num(z)
            res[:, g] = dv[:, g] - zz @ self.coef[:, g]
            res[np.ix_(~ok, g)] = np.nan
            lev[:, g] = np.einsum("ti,ij,tj->t", zz, inv, zz)[:, None]
        return -self._loo_scale()[None, :] * res, lev

    def excess_drop_v(self, series: TanSeries) -> np.ndarray:
        return self.excess_and_leverage(series)[0]

    def drop_pattern_v_per_a(self, j: int) -> np.ndarray:
        """Excess drop at every meter per ampere of active current drawn at meter j's
        connection, on j's phase."""
        out = np.zeros(self.n)
        th_j = _angle(self.phases[j])
        for label, g in zip(self.group_labels, self.groups):
            d = th_j - _angle(label)
            unit = math.cos(d) - self.x_over_r * math.sin(d)  # a_j for p_j = 1, q_j = 0
            out[g] = self.coef[1 + j, g] * unit
        return -self._loo_scale() * out

    def self_sensitivity_ohm(self) -> np.ndarray:
        return np.array([self.drop_pattern_v_per_a(k)[k] for k in range(self.n)])

    def relative_offset_v(self) -> np.ndarray:
        return -self._loo_scale() * self.coef[0, :]


def fit_feeder(
    series: TanSeries,
    *,
    accuracy: MeterAccuracy | None = None,
    config: DetectorConfig | None = None,
    x_over_r: float = 0.25,
) -> FeederModel:
    """Fit the sensitivity model on ``series`` (pass the baseline period). ``x_over_r``: the
    reactance/resistance ratio assumed for the lines (0.25: LV cables are 0.1-0.4; it only weights the
    small reactive part of the drop)."""
    accuracy = accuracy or MeterAccuracy()
    config = config or DetectorConfig()
    if not (0 <= x_over_r < 10):
        raise ValueError(f"x_over_r must be in [0, 10), got {x_over_r}")
    pg = series.phase_groups()
    labels, groups = list(pg.keys()), list(pg.values())
    if any(len(g) < 2 for g in groups):
        raise ValueError("every phase needs at least two meters (the others are the reference)")
    n = series.n_meters
    coef = np.zeros((n + 1, n))
    invs, used_all = [], np.zeros((series.n_times, n), bool)
    dv_all = group_demean(series.v_rms, groups, series.valid)
    for label, g in zip(labels, groups):
        z = feeder_regressors(series, label, x_over_r)
        rows = np.all(np.isfinite(z), axis=1) & np.all(series.valid[:, g], axis=1)
        dv = dv_all[:, g]
        use = rows.copy()
        for it in range(3):
            if use.sum() <= 2 * z.shape[1]:
                raise ValueError(f"too few complete time steps ({int(use.sum())}) for {z.shape[1]} regressors")
            zu = z[use]
            scale = np.sqrt(np.maximum(np.sum(zu * zu, axis=0), 1e-300))
            zs = zu / scale  # column scaling, then the normal equations (small: N + 1 columns)
            inv = np.linalg.pinv(zs.T @ zs, rcond=1e-12, hermitian=True)
            c = (inv @ (zs.T @ dv[use])) / scale[:, None]
            if it == 2:
                break
            r = dv - np.nan_to_num(z) @ c
            r[~rows] = np.nan
            sc = robust_scale(r)
            sc = np.where(np.isfinite(sc) & (sc > 0), sc, np.inf)
            use = rows & np.all(np.abs(np.nan_to_num(r)) <= config.trim_sigma * sc[None, :], axis=1)
        coef[:, g] = c
        invs.append(inv / scale[:, None] / scale[None, :])
        used_all[:, g] = use[:, None]
    model = FeederModel(
        series.meter_ids,
        labels,
        groups,
        coef,
        invs,
        x_over_r,
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        np.zeros(n),
        series.v_nominal_v,
        [m.phase for m in series.meters],
    )
    exc, lev = model.excess_and_leverage(series)
    exc[~used_all] = np.nan
    model.sigma_class_v = class_sigma_excess(series, accuracy, groups, np.abs(model.self_sensitivity_ohm()))
    model.sigma_v = residual_sigma(exc, model.sigma_class_v, config)
    for g, inv in zip(groups, invs):
        model.offset_se_v[g] = model.sigma_v[g] * math.sqrt(max(float(inv[0, 0]), 0.0))
        model.mean_leverage[g] = inv.shape[0] / max(int(used_all[:, g[0]].sum()), 1)  # p / n
    return model


def _candidates(model: FeederModel, series: TanSeries) -> list[Candidate]:
    return [
        Candidate(
            f"at or just upstream of meter {mid}: its service line or the feeder section feeding its connection",
            (mid,),
            model.drop_pattern_v_per_a(j),
        )
        for j, mid in enumerate(model.meter_ids)
    ]


def analyse_feeder(
    series: TanSeries,
    *,
    accuracy: MeterAccuracy | None = None,
    config: DetectorConfig | None = None,
    model: FeederModel | None = None,
    x_over_r: float = 0.25,
) -> TanAnalysis:
    """Look for unmetered taps with the topology-agnostic sensitivity model (see the module doc).
    Anomalies are THEFT_SUSPICION with detail ``tap_started`` (localised by pattern matching) or
    ``tap_offset``."""
    accuracy = accuracy or MeterAccuracy()
    config = config or DetectorConfig()
    base = baseline_slice(series, config)
    if model is None:
        model = fit_feeder(series.rows(base), accuracy=accuracy, config=config, x_over_r=x_over_r)
    excess, lev = model.excess_and_leverage(series)
    warnings = []
    ratio = model.sigma_v / model.sigma_class_v
    for noisy in np.flatnonzero(ratio > 3.0):
        warnings.append(
            f"meter {model.meter_ids[noisy]}: residual {model.sigma_v[noisy]:.3f} V is {ratio[noisy]:.1f}x what its "
            f"accuracy class predicts"
        )
    z = standardise(excess, model.sigma_v, config, leverage=lev, params_per_sample=model.mean_leverage)
    eps = config.bank.episodes(z, samples_per_day(series))
    with np.errstate(all="ignore"):
        v_mean = np.nanmean(series.v_rms, axis=0)
    t = series.time_s
    anomalies: list[Anomaly] = []
    gap = int(round(config.bank.merge_gap_s / 86400.0 * samples_per_day(series)))
    for cluster in cluster_episodes(eps, gap):
        ep = cluster[0]  # the first alarm; the window runs from the earliest onset to it
        onset = min(e.onset_idx for e in cluster if e.onset_idx <= ep.alarm_idx)
        win = excess[onset : ep.alarm_idx + 1]
        n_win = max(int(np.sum(np.isfinite(win[:, ep.col]))), 1)
        with np.errstate(all="ignore"):
            xbar = np.nanmean(win, axis=0)
        ranked = rank_candidates(xbar, model.sigma_v, n_win, _candidates(model, series))
        best = ranked[0]
        j = model.meter_ids.index(best.meter_ids[0])
        st = episode_stats(excess, float(model.sigma_v[ep.col]), ep)
        conf = episode_confidence(st["z"], series.n_meters, series.n_times, st["samples"])
        kw = best.current_a * float(v_mean[j]) / 1000.0
        anomalies.append(
            Anomaly(
                AnomalyType.THEFT_SUSPICION,
                series.transformer_id,
                (best.meter_ids[0],),
                int(t[ep.alarm_idx]),
                conf,
                Detail.TAP_STARTED,
                location=best.label,
                start_time_s=int(t[onset]),
                unaccounted_kw=kw,
                evidence={
                    **st,
                    "alarm_meter": series.meter_ids[ep.col],
                    "alarm_meters": sorted({series.meter_ids[e.col] for e in cluster}),
                    "tap_current_a": best.current_a,
                    "location_probability": best.probability,
                    "candidates": [
                        {"meter_id": c.meter_ids[0], "probability": c.probability, "current_a": c.current_a}
                        for c in ranked[:3]
                    ],
                    "cusum_k": ep.k,
                    "cusum_h": ep.h,
                },
            )
        )
    if config.offset_test:
        tol = accuracy.offset_tolerance_v(model.v_nominal_v)
        rel = model.relative_offset_v()
        at_s = int(t[max(base.stop - 1, 0)])
        for k, mid in enumerate(model.meter_ids):
            d, se = rel[k], model.offset_se_v[k]
            if np.isfinite(d) and np.isfinite(se) and d > tol + config.offset_z * se:
                conf = float(special.ndtr((d - tol) / se - config.offset_z + 2.0))
                r_eff = max(float(model.self_sensitivity_ohm()[k]), config.min_service_r_ohm)
                anomalies.append(
                    Anomaly(
                        AnomalyType.THEFT_SUSPICION,
                        series.transformer_id,
                        (mid,),
                        at_s,
                        conf,
                        Detail.TAP_OFFSET,
                        location=f"at or upstream of meter {mid}",
                        start_time_s=int(t[0]),
                        unaccounted_kw=d / r_eff * v_mean[k] / 1000.0,
                        evidence={
                            "offset_below_others_v": float(d),
                            "calibration_tolerance_v": tol,
                            "offset_se_v": float(se),
                        },
                    )
                )
    selfs = model.self_sensitivity_ohm()
    meters = [
        MeterEstimate(
            mid,
            float(-model.coef[0, k]),
            float(selfs[k]),
            float("nan"),
            float(model.sigma_v[k]),
            float(model.sigma_class_v[k]),
            {"offset_below_others_v": float(model.relative_offset_v()[k])},
        )
        for k, mid in enumerate(model.meter_ids)
    ]
    anomalies.sort(key=lambda a: a.time_s)
    return TanAnalysis(series.transformer_id, "feeder", anomalies, meters, warnings, t, excess, base, model)
