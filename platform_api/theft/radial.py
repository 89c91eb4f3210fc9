"""Unmetered taps in a radial transformer area: every meter on its own service line.

Model (per transformer secondary; per phase of a three-phase transformer)
-----------------------------------------------------------------------
With ``p_k``/``q_k`` the active/reactive current of meter k (see :mod:`.data`),

    v_k(t) = u_g(t) + c_k - R_k (p_k(t) + rho q_k(t)) + e_k(t)

``u_g(t)`` is the secondary voltage of the meter's group g (one phase), unknown and different at
every time step: it follows the medium-voltage grid and the transformer's drop under the total
current, and on a three-phase transformer the neutral shift that a load on one phase causes on
the others. ``c_k`` is the meter's calibration offset, ``R_k`` its service-line loop resistance
and ``rho = X/R`` of the line (``x_over_r``, default 0.25; one coefficient per line because a
household's active and reactive currents move together and separate R and X would be
unstable, see :func:`.data.drop_current_a`). ``u`` is eliminated exactly per time step
(:mod:`.linmodel`), so the impedances are estimated jointly from how each voltage follows its
own current against the others. With ``DetectorConfig.estimate_x_over_r`` (default) ``rho`` is
estimated per line on the baseline (``rho_k``), with a prior of standard deviation
``x_over_r_prior_sd`` around ``x_over_r``: service drops differ (triplex #2 to 4/0: X/R 0.1 to
0.3), and a wrong ``rho`` biases ``R_k`` (about 5 % for #2 triplex taken as 0.25) so that a load
of another power factor than the baseline's mix (a 4.5 kW water heater at pf 1 against
air-conditioner cycles at 0.88) leaves an excess drop of 0.1-0.2 V for as long as it runs; at
0.05 % voltage noise that alone gave 6 false alarms per 1,000 meter-days on the pandapower
benchmark's clean US records. The leverage of a sample then includes the uncertainty of ``rho_k``
(own regressors ``[1, p + rho_k q, q]``, the prior on the last).

``common_mode="transformer"`` instead uses one ``u(t)`` for all phases and adds, per meter, the
transformer's phase currents projected on the meter's phase as regressors
(``- sum_phi G_k,phi a_phi(t)``): the regression against the transformer current, needed when a
phase has a single meter. In both modes a load on one phase that lifts the others is
explained, not flagged.

Detection
---------
The *excess drop* of meter k is the drop its own current does not explain, measured against
the others: ``x_k(t) = mean_{j != k} r_j(t) - r_k(t)`` with ``r = v - c + R (p + rho q)``. A tap on
k's service line at a distance with loop resistance ``R_tap`` from the transformer adds
``R_tap * I_tap(t)`` to ``x_k`` (and lifts the others by 1/(n-1) of it: a one-sided test
localises). Three tests:

1. *Tap starting during the record* (constant or intermittent): the CUSUM bank of
   :mod:`.changedetect` on ``x_k / sigma_k``. ``sigma_k`` is the larger of the baseline spread and
   what the accuracy class predicts (0.1 % random voltage error of both the meter and the mean of
   its partners, quantisation, current error through ``R_k``), so the false-alarm rate holds.
   The extra drop over the alarm episode, divided by ``R_k``, is the least tap current that
   explains it (the tap at the meter end of the line); times the voltage, the unaccounted power.
2. *Constant tap present from the start*: it is indistinguishable from a calibration offset, so
   it is flagged only when ``mean_{j != k} c_j - c_k`` exceeds the largest offset the fixed
   calibration errors explain (2 x 0.1 % of the voltage) by ``offset_z`` standard errors.
   An intermittent tap present from the start shows as steps in ``x_k`` and is caught by test 1.
3. *Implausible impedance*: a tap or bypass that draws in step with the meter's own load
   inflates ``R_k``; with the service length known, ``R_k`` per metre is compared with the
   largest plausible conductor and with the other meters.
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
    episode_confidence,
    episode_stats,
    residual_sigma,
    samples_per_day,
    standardise,
)
from .anomalies import Anomaly, AnomalyType, Detail
from .data import MeterAccuracy, TanSeries, drop_current_a, phase_angle_rad
from .linmodel import apply_design, fit_within, loo_excess

COMMON_MODES = ("auto", "phase", "transformer")


def _groups_and_coupling(series: TanSeries, common_mode: str) -> tuple[str, list[np.ndarray], list[str]]:
    if common_mode not in COMMON_MODES:
        raise ValueError(f"common_mode must be one of {COMMON_MODES}, got {common_mode!r}")
    pg = series.phase_groups()
    if common_mode == "auto":
        common_mode = "phase" if all(len(ix) >= 2 for ix in pg.values()) else "transformer"
    if common_mode == "phase":
        return "phase", list(pg.values()), []
    if series.n_meters < 2:
        raise ValueError("the radial analysis needs at least two meters")
    coupling = list(pg.keys()) if len(pg) > 1 else []
    return "transformer", [np.arange(series.n_meters)], coupling


def _own_drop_current(series: TanSeries, x_over_r: float | np.ndarray) -> np.ndarray:
    """Each meter's drop current ``p + x_over_r q`` (T, N), missing readings as 0; ``x_over_r``
    a number or one per meter."""
    return np.nan_to_num(drop_current_a(series.i_active_a, series.i_reactive_a, 0.0, x_over_r))


def radial_design(
    series: TanSeries,
    coupling_phases: list[str],
    x_over_r: float = 0.25,
    own_x_over_r: np.ndarray | None = None,
    separate_q: bool = False,
) -> np.ndarray:
    """Regressors (T, N, N * B), B = 2 + separate_q + len(coupling_phases): per meter its offset
    (1), minus its drop current ``p + rho_k q`` (``rho_k = own_x_over_r[k]``, else ``x_over_r``),
    with ``separate_q`` minus its reactive current ``q`` (whose coefficient is the line's
    reactance beyond ``rho_k R``), and minus each coupled phase's total current projected on the
    meter's phase with ``x_over_r`` (:func:`.data.drop_current_a`)."""
    own = _own_drop_current(series, x_over_r if own_x_over_r is None else np.asarray(own_x_over_r, float))
    t_n, n = own.shape
    sq = 1 if separate_q else 0
    b = 2 + sq + len(coupling_phases)
    x = np.zeros((t_n, n, n * b))
    q_own = np.nan_to_num(series.i_reactive_a) if separate_q else None
    pg = series.phase_groups()
    p, q = np.nan_to_num(series.i_active_a), np.nan_to_num(series.i_reactive_a)
    tot = {ph: (p[:, pg[ph]].sum(axis=1), q[:, pg[ph]].sum(axis=1)) for ph in coupling_phases}
    for k, m in enumerate(series.meters):
        o = k * b
        x[:, k, o] = 1.0
        x[:, k, o + 1] = -own[:, k]
        if q_own is not None:  # separate_q
            x[:, k, o + 2] = -q_own[:, k]
        for j, ph in enumerate(coupling_phases):
            d = phase_angle_rad(ph) - phase_angle_rad(m.phase)
            x[:, k, o + 2 + sq + j] = -drop_current_a(tot[ph][0], tot[ph][1], d, x_over_r)
    return x


@dataclass
class RadialModel:
    """A fitted radial drop model (see the module doc). Arrays are per meter, in the order of
    ``meter_ids``: ``offset_v`` (c_k, gauge: relative within the group), ``r_ohm`` (service loop
    resistance), ``x_ohm`` (= ``own_x_over_r * r_ohm``), ``coupling`` (N, phases) ohms, standard
    errors, ``sigma_v`` and ``sigma_class_v`` of the excess drop. ``own_x_over_r``: each service
    line's reactance/resistance as estimated on the baseline (None: ``x_over_r`` for all);
    ``x_over_r`` is then the prior and the ratio of the coupling terms."""

    meter_ids: list[str]
    common_mode: str
    groups: list[np.ndarray]
    coupling_phases: list[str]
    x_over_r: float
    theta: np.ndarray
    offset_v: np.ndarray
    r_ohm: np.ndarray
    x_ohm: np.ndarray
    coupling: np.ndarray
    offset_se_v: np.ndarray
    r_se_ohm: np.ndarray
    sigma_v: np.ndarray
    sigma_class_v: np.ndarray
    v_nominal_v: float
    n_rows: int
    params_per_sample: np.ndarray | None = None
    own_xtx_inv: np.ndarray | None = None  # (N, B, B): per meter, of its own regressors over the baseline
    own_x_over_r: np.ndarray | None = None

    def own_regressors(self, series: TanSeries) -> np.ndarray:
        """Each meter's own regressors (T, N, B): ``[1, p + rho_k q]``, and ``q`` when the X/R are
        estimated (their uncertainty then counts in the leverage)."""
        a = _own_drop_current(series, self.own_ratio)
        cols = [np.ones_like(a), a]
        if self.own_x_over_r is not None:
            cols.append(np.nan_to_num(series.i_reactive_a))
        return np.stack(cols, axis=2)

    @property
    def own_ratio(self) -> np.ndarray | float:
        """X/R used for each meter's own drop current."""
        return self.x_over_r if self.own_x_over_r is None else self.own_x_over_r

    def leverage(self, series: TanSeries) -> np.ndarray:
        """Leverage of each excess-drop sample (T, N): how far each meter's current lies outside
        what the baseline covered, for the meter itself plus its partners' share."""
        assert self.own_xtx_inv is not None  # fit_radial sets it on every model it returns
        z = self.own_regressors(series)
        h = np.einsum("tni,nij,tnj->tn", z, self.own_xtx_inv, z)
        out = np.zeros_like(h)
        for g in self.groups:
            ng = len(g)
            hs = h[:, g]
            out[:, g] = hs + (hs.sum(axis=1, keepdims=True) - hs) / (ng - 1) ** 2
        return out

    def _check(self, series: TanSeries):
        if series.meter_ids != self.meter_ids:
            raise ValueError(f"series meters {series.meter_ids} differ from the model's {self.meter_ids}")

    def mask(self, series: TanSeries) -> np.ndarray:
        m = series.valid
        if self.coupling_phases:  # phase totals need every meter
            m = m & np.all(m, axis=1, keepdims=True)
        return m

    def residual_v(self, series: TanSeries) -> np.ndarray:
        """``v - x @ theta`` (T, N): each voltage with its offset and own drop removed."""
        self._check(series)
        x = radial_design(series, self.coupling_phases, self.x_over_r, self.own_x_over_r)
        return series.v_rms - apply_design(x, self.theta, series.n_times)

    def excess_drop_v(self, series: TanSeries) -> np.ndarray:
        """Leave-one-out excess drop (T, N), volts; NaN where unavailable."""
        return loo_excess(self.residual_v(series), self.groups, self.mask(series))

    def relative_offset_v(self) -> np.ndarray:
        """``mean_{j != k} c_j - c_k`` within each group: how much lower meter k sits at zero
        current than its partners (gauge-free)."""
        out = np.full(len(self.meter_ids), np.nan)
        for g in self.groups:
            if len(g) < 2:
                continue
            c = self.offset_v[g]
            out[g] = (c.sum() - c) / (len(g) - 1) - c
        return out


def fit_radial(
    series: TanSeries,
    *,
    accuracy: MeterAccuracy | None = None,
    common_mode: str = "auto",
    config: DetectorConfig | None = None,
    x_over_r: float = 0.25,
) -> RadialModel:
    """Fit the radial drop model on ``series`` (all its rows: pass the baseline period).
    ``x_over_r``: reactance/resistance of the service lines (0.1-0.3 for triplex drops; it only
    weights the reactive current's small share of the drop)."""
    accuracy = accuracy or MeterAccuracy()
    config = config or DetectorConfig()
    if not (0 <= x_over_r < 10):
        raise ValueError(f"x_over_r must be in [0, 10), got {x_over_r}")
    mode, groups, coupling = _groups_and_coupling(series, common_mode)
    if any(len(g) < 2 for g in groups):
        raise ValueError("every group needs at least two meters (the others are the reference)")
    n = series.n_meters
    b = 2 + len(coupling)
    x = radial_design(series, coupling, x_over_r)
    mask = series.valid
    if coupling:
        mask = mask & np.all(mask, axis=1, keepdims=True)
    if mask.sum(axis=0).min() < 4 * b:
        raise ValueError(f"too few readings to fit the radial model ({int(mask.sum(axis=0).min())} for a meter)")
    theta, used = fit_within(series.v_rms, x, groups, mask, trim_sigma=config.trim_sigma)
    own_xr = None
    if config.estimate_x_over_r:
        own_xr = _estimate_own_x_over_r(
            series, theta.reshape(n, b)[:, 1], coupling, x_over_r, groups, mask, accuracy, config
        )
        x = radial_design(series, coupling, x_over_r, own_xr)
        theta, used = fit_within(series.v_rms, x, groups, mask, trim_sigma=config.trim_sigma)
    blocks = theta.reshape(n, b)
    offset, r = blocks[:, 0], blocks[:, 1]
    coup = blocks[:, 2:] if coupling else np.zeros((n, 0))
    ratio = x_over_r if own_xr is None else own_xr
    model = RadialModel(
        series.meter_ids,
        mode,
        groups,
        coupling,
        x_over_r,
        theta,
        offset,
        r,
        ratio * r,
        coup,
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.full(n, np.nan),
        series.v_nominal_v,
        series.n_times,
        own_x_over_r=own_xr,
    )
    exc = loo_excess(series.v_rms - apply_design(x, theta, series.n_times), groups, used)
    model.sigma_class_v = class_sigma_excess(series, accuracy, groups, r)
    model.sigma_v = residual_sigma(exc, model.sigma_class_v, config)
    # leverage and standard errors from each meter's own regressors [1, drop current (, q)]
    z = model.own_regressors(series)
    nb = z.shape[2]
    model.own_xtx_inv = np.zeros((n, nb, nb))
    prior = np.zeros((n, nb, nb))
    df_own = np.full(n, 2.0)
    if nb > 2:  # the X/R prior, as in _estimate_own_x_over_r
        tau = config.x_over_r_prior_sd * np.maximum(np.abs(r), max(config.min_service_r_ohm, 1e-6))
        prior[:, 2, 2] = accuracy.v_sigma_v(series.v_nominal_v) ** 2 / tau**2
    for k in range(n):
        zk = z[used[:, k], k]
        inv = np.linalg.pinv(zk.T @ zk + prior[k])
        model.own_xtx_inv[k] = inv
        s_k = model.sigma_v[k]
        model.offset_se_v[k] = s_k * math.sqrt(max(inv[0, 0], 0.0))
        model.r_se_ohm[k] = s_k * math.sqrt(max(inv[1, 1], 0.0)) if inv[1, 1] > 0 else np.inf
        if nb > 2:  # effective number of own parameters: 2, plus what the data add to the X/R beyond its prior
            df_own[k] = float(np.trace(inv @ (zk.T @ zk)))
    # parameters behind each meter's excess (its own block and 1/(n-1) of each partner's) per sample
    b_eff = (b - 2) + df_own
    model.params_per_sample = np.zeros(n)
    for g in groups:
        ng = len(g)
        partners = (b_eff[g].sum() - b_eff[g]) / (ng - 1) ** 2
        model.params_per_sample[g] = (b_eff[g] + partners) / np.maximum(used[:, g].sum(axis=0), 1)
    return model


def _estimate_own_x_over_r(
    series: TanSeries,
    r0: np.ndarray,
    coupling: list[str],
    x_over_r: float,
    groups: list[np.ndarray],
    mask: np.ndarray,
    accuracy: MeterAccuracy,
    config: DetectorConfig,
) -> np.ndarray:
    """Each service line's X/R from the baseline: the model refitted with each meter's reactive
    current as an extra regressor, whose coefficient (the reactance beyond ``x_over_r R``) has a
    Gaussian prior of standard deviation ``config.x_over_r_prior_sd * R`` (a ridge: household
    power factors move together with the active current, so without the prior the split
    between R and X is unstable; with it a line whose X/R differs from ``x_over_r`` is followed
    when the loads' power factors vary enough to show it). A fixed, wrong X/R leaves an error
    that lasts while a load of another power factor runs (an air conditioner against a heater),
    which the CUSUMs integrate once the voltage noise is small. Clipped to 0..x_over_r_max."""
    n = series.n_meters
    b = 3 + len(coupling)
    x = radial_design(series, coupling, x_over_r, separate_q=True)
    sv = accuracy.v_sigma_v(series.v_nominal_v)
    r_floor = max(config.min_service_r_ohm, 1e-6)
    tau = config.x_over_r_prior_sd * np.maximum(np.nan_to_num(np.abs(r0)), r_floor)
    ridge = np.zeros(n * b)
    ridge[np.arange(n) * b + 2] = sv**2 / tau**2
    theta, _ = fit_within(series.v_rms, x, groups, mask, trim_sigma=config.trim_sigma, ridge=ridge)
    blocks = theta.reshape(n, b)
    r1 = np.maximum(blocks[:, 1], r_floor)
    return np.clip(x_over_r + blocks[:, 2] / r1, 0.0, config.x_over_r_max)


def _tap_anomaly(
    series: TanSeries, model: RadialModel, excess: np.ndarray, ep, v_mean: np.ndarray, config: DetectorConfig
) -> Anomaly:
    k = ep.col
    mid = series.meter_ids[k]
    st = episode_stats(excess, float(model.sigma_v[k]), ep)
    r_eff = max(float(model.r_ohm[k]), config.min_service_r_ohm)
    i_tap = max(st["extra_drop_v"], 0.0) / r_eff
    kw = i_tap * float(v_mean[k]) / 1000.0
    conf = episode_confidence(st["z"], series.n_meters, series.n_times, st["samples"])
    t = series.time_s
    return Anomaly(
        AnomalyType.THEFT_SUSPICION,
        series.transformer_id,
        (mid,),
        int(t[ep.alarm_idx]),
        conf,
        Detail.TAP_STARTED,
        location=f"service line of meter {mid}, between transformer {series.transformer_id or '?'} and the meter",
        start_time_s=int(t[ep.onset_idx]),
        unaccounted_kw=kw,
        evidence={
            **st,
            "service_r_ohm": float(model.r_ohm[k]),
            "tap_current_min_a": i_tap,
            "unaccounted_kw_if_midline": 2 * kw,
            "sigma_v": float(model.sigma_v[k]),
            "cusum_k": ep.k,
            "cusum_h": ep.h,
            "end_time_s": int(t[min(ep.end_idx, series.n_times) - 1]),
        },
    )


def _offset_anomalies(
    series: TanSeries,
    model: RadialModel,
    accuracy: MeterAccuracy,
    config: DetectorConfig,
    at_s: int,
    v_mean: np.ndarray,
    i_mean: np.ndarray,
) -> list[Anomaly]:
    out = []
    tol = accuracy.offset_tolerance_v(model.v_nominal_v)
    rel = model.relative_offset_v()
    for k, mid in enumerate(model.meter_ids):
        d, se = rel[k], model.offset_se_v[k]
        if not np.isfinite(d) or not np.isfinite(se):
            continue
        if d > tol + config.offset_z * se:
            r_eff = max(float(model.r_ohm[k]), config.min_service_r_ohm)
            kw = d / r_eff * v_mean[k] / 1000.0
            conf = float(special.ndtr((d - tol) / se - config.offset_z + 2.0))  # ~0.98 at the threshold
            out.append(
                Anomaly(
                    AnomalyType.THEFT_SUSPICION,
                    series.transformer_id,
                    (mid,),
                    at_s,
                    conf,
                    Detail.TAP_OFFSET,
                    location=f"service line of meter {mid}",
                    start_time_s=int(series.time_s[0]),
                    unaccounted_kw=kw,
                    evidence={
                        "offset_below_others_v": float(d),
                        "calibration_tolerance_v": tol,
                        "offset_se_v": float(se),
                        "service_r_ohm": float(model.r_ohm[k]),
                        "unaccounted_kw_min": max(d - tol, 0.0) / r_eff * v_mean[k] / 1000.0,
                        "note": "a constant extra drop beyond what calibration errors explain: "
                        "a tap present from the start, or a meter out of its class",
                    },
                )
            )
    return out


def _impedance_anomalies(
    series: TanSeries, model: RadialModel, config: DetectorConfig, at_s: int, p_kw_mean: np.ndarray
) -> list[Anomaly]:
    out: list[Anomaly] = []
    lengths = np.array([m.service_length_m if m.service_length_m else np.nan for m in series.meters])
    if not np.isfinite(lengths).any():
        return out
    per_m = model.r_ohm / lengths
    for k, mid in enumerate(model.meter_ids):
        if not np.isfinite(per_m[k]):
            continue
        others = np.delete(per_m, k)
        others = others[np.isfinite(others) & (others > 0)]
        ref = float(np.median(others)) if others.size else np.nan
        thr = config.max_loop_ohm_per_m
        if np.isfinite(ref):
            thr = max(thr, config.impedance_ratio * ref)
        thr_ohm = thr * lengths[k]
        se = model.r_se_ohm[k]
        if model.r_ohm[k] > thr_ohm + 3.0 * se:
            expect = (ref if np.isfinite(ref) else config.max_loop_ohm_per_m) * lengths[k]
            frac = max(model.r_ohm[k] / expect - 1.0, 0.0)
            conf = float(special.ndtr((model.r_ohm[k] - thr_ohm) / se - 1.0)) if se > 0 else 0.9
            out.append(
                Anomaly(
                    AnomalyType.THEFT_SUSPICION,
                    series.transformer_id,
                    (mid,),
                    at_s,
                    min(conf, 0.99),
                    Detail.IMPEDANCE,
                    location=f"service line or meter base of meter {mid}",
                    unaccounted_kw=frac * max(p_kw_mean[k], 0.0),
                    evidence={
                        "service_r_ohm": float(model.r_ohm[k]),
                        "service_r_se_ohm": float(se),
                        "service_length_m": float(lengths[k]),
                        "ohm_per_m": float(per_m[k]),
                        "others_median_ohm_per_m": ref,
                        "threshold_ohm": thr_ohm,
                        "note": "the voltage falls faster with the meter's current than its line "
                        "explains: unmetered load drawing with the metered one (bypass)",
                    },
                )
            )
    return out


def analyse_radial(
    series: TanSeries,
    *,
    accuracy: MeterAccuracy | None = None,
    config: DetectorConfig | None = None,
    common_mode: str = "auto",
    model: RadialModel | None = None,
    x_over_r: float = 0.25,
) -> TanAnalysis:
    """Look for unmetered taps in a radial transformer area.

    The model is fitted on the baseline period (``config.baseline_s`` from the start, see
    :func:`.analysis.baseline_slice`) unless ``model`` is given (e.g. fitted on an earlier, clean
    period). The CUSUMs then run over the whole series. Returns a :class:`TanAnalysis` whose
    anomalies are THEFT_SUSPICION with detail ``tap_started``, ``tap_offset`` or
    ``impedance_implausible``.
    """
    accuracy = accuracy or MeterAccuracy()
    config = config or DetectorConfig()
    if series.n_meters < 2:
        raise ValueError("the radial analysis needs at least two meters")
    base = baseline_slice(series, config)
    warnings: list[str] = []
    if model is None:
        model = fit_radial(
            series.rows(base), accuracy=accuracy, common_mode=common_mode, config=config, x_over_r=x_over_r
        )
    excess = model.excess_drop_v(series)
    ratio = model.sigma_v / model.sigma_class_v
    for k in np.flatnonzero(ratio > 3.0):
        warnings.append(
            f"meter {model.meter_ids[k]}: residual {model.sigma_v[k]:.3f} V is {ratio[k]:.1f}x what its "
            f"accuracy class predicts (clocks not synchronised, wrong transformer or phase, or a tap "
            f"in the baseline)"
        )
    assert model.params_per_sample is not None  # fit_radial sets it on every model it returns
    z = standardise(
        excess, model.sigma_v, config, leverage=model.leverage(series), params_per_sample=model.params_per_sample
    )
    eps = config.bank.episodes(z, samples_per_day(series))
    with np.errstate(all="ignore"):
        v_mean = np.nanmean(series.v_rms, axis=0)
        i_mean = np.nanmean(series.i_rms, axis=0)
        p_kw = np.nanmean(series.v_rms * series.i_active_a, axis=0) / 1000.0
    anomalies = [_tap_anomaly(series, model, excess, ep, v_mean, config) for ep in eps]
    at_s = int(series.time_s[max(base.stop - 1, 0)])
    if config.offset_test:
        anomalies += _offset_anomalies(series, model, accuracy, config, at_s, v_mean, i_mean)
    if config.impedance_test:
        anomalies += _impedance_anomalies(series, model, config, at_s, p_kw)
    meters = [
        MeterEstimate(
            mid,
            float(model.offset_v[k]),
            float(model.r_ohm[k]),
            float(model.x_ohm[k]),
            float(model.sigma_v[k]),
            float(model.sigma_class_v[k]),
            {
                "offset_below_others_v": float(model.relative_offset_v()[k]),
                "offset_se_v": float(model.offset_se_v[k]),
                "r_se_ohm": float(model.r_se_ohm[k]),
            },
        )
        for k, mid in enumerate(model.meter_ids)
    ]
    anomalies.sort(key=lambda a: a.time_s)
    return TanAnalysis(series.transformer_id, "radial", anomalies, meters, warnings, series.time_s, excess, base, model)
