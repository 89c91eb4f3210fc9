"""Pieces shared by the radial, bus and feeder analyses: configuration, results, the monitor that
turns excess-drop series into alarm episodes, and the evidence of an episode."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .anomalies import Anomaly
from .changedetect import CusumBank, Episode, bonferroni_confidence, robust_sigma
from .data import MeterAccuracy, TanSeries

DAY_S = 86400


@dataclass(frozen=True)
class DetectorConfig:
    """Settings common to the analyses.

    ``baseline_s``: length of the period the drop model is fitted on, from the start of the series
    (default one day). If the series is shorter than ``2 * baseline_s`` the whole series is used
    (in-sample). ``bank``: the CUSUMs and their false-alarm design rate. ``sigma_floor_from_class``:
    the residual's standard deviation is never taken below the one the accuracy class predicts.
    ``offset_test``/``impedance_test``: the two tests for taps present from the start of the
    record. ``offset_z``: how many standard errors above the calibration tolerance a constant
    offset must lie. ``max_loop_ohm_per_m``: largest plausible service-line loop resistance per
    metre (default 3.5 mOhm/m: #4 AWG aluminium there and back, 2 x 1.35 mOhm/m, with 30 %
    margin); ``impedance_ratio``: how far above the median of the other meters (per metre) a
    meter's impedance must lie to be flagged. ``min_service_r_ohm``: impedance floor used when an
    estimated service impedance is too small to convert a drop into a current.
    ``bias_allowance_z``: the model's impedances are estimated from the baseline, so its
    predictions carry an error that changes slowly with the loads (standard deviation about
    ``sqrt(p / n)`` residual sigmas for p parameters per meter and n baseline samples); the
    CUSUMs' references are raised by this many of those standard deviations so that the error
    does not accumulate into false alarms. Longer baselines make it smaller. The default 0.5 is
    the size of that error measured on clean out-of-sample data (the pandapower benchmark's US
    areas, one-day baseline): the day-mean of the standardised excess drop has a standard
    deviation of 0.038 sigma against 0.026 for white noise, i.e. a slow component of about
    0.027 sigma, 0.6 ``sqrt(p / n)`` (p/n ~ 0.0018); a full ``sqrt(p / n)`` would take a quarter of
    a 1 kW tap's 0.18-sigma shift on a weak service drop and keep it from being seen within a day.
    ``leverage_memory_samples``: when the currents leave the range the baseline covered (high
    leverage h, e.g. a house that was quiet on the baseline day runs its cooker), the model
    extrapolates and its error persists while the load lasts; such samples are discounted as if
    their error were shared by this many consecutive samples: variance ``sigma^2 (1 + h + L
    max(0, h - p/n))``.
    ``estimate_x_over_r`` (radial areas): estimate each service line's reactance/resistance on
    the baseline, with a prior of standard deviation ``x_over_r_prior_sd`` around the analysis'
    ``x_over_r`` (clipped to 0..``x_over_r_max``), instead of assuming ``x_over_r`` for every line.
    """

    baseline_s: int = DAY_S
    bank: CusumBank = field(default_factory=CusumBank)
    sigma_floor_from_class: bool = True
    offset_test: bool = True
    offset_z: float = 4.0
    impedance_test: bool = True
    max_loop_ohm_per_m: float = 3.5e-3
    impedance_ratio: float = 3.0
    min_service_r_ohm: float = 1e-3
    trim_sigma: float = 5.0
    bias_allowance_z: float = 0.5
    leverage_memory_samples: float = 60.0
    estimate_x_over_r: bool = True
    x_over_r_prior_sd: float = 0.1
    x_over_r_max: float = 1.0

    def __post_init__(self):
        if not (self.baseline_s > 0):
            raise ValueError(f"baseline_s must be > 0, got {self.baseline_s}")
        if not (self.bias_allowance_z >= 0):
            raise ValueError(f"DetectorConfig.bias_allowance_z must be >= 0, got {self.bias_allowance_z}")
        for name in (
            "offset_z",
            "max_loop_ohm_per_m",
            "impedance_ratio",
            "min_service_r_ohm",
            "trim_sigma",
            "leverage_memory_samples",
            "x_over_r_prior_sd",
            "x_over_r_max",
        ):
            if not (getattr(self, name) > 0):
                raise ValueError(f"DetectorConfig.{name} must be > 0, got {getattr(self, name)}")


@dataclass
class MeterEstimate:
    """Per-meter result of a drop-model fit. ``offset_v``: the meter's voltage at zero current
    relative to the others of its group (calibration offset, or a constant unmetered drop);
    ``service_r_ohm``/``service_x_ohm``: resistance and reactance of its own service line (loop);
    ``sigma_v``: standard deviation of its excess-drop residual; ``sigma_class_v``: what the
    accuracy class predicts for it."""

    meter_id: str
    offset_v: float = 0.0
    service_r_ohm: float = float("nan")
    service_x_ohm: float = float("nan")
    sigma_v: float = float("nan")
    sigma_class_v: float = float("nan")
    extra: dict = field(default_factory=dict)


@dataclass
class TanAnalysis:
    """Result of analysing one transformer area: the anomalies, per-meter estimates, warnings
    (e.g. residuals far above what the accuracy class predicts: unsynchronised clocks or a wrong
    topology), and the excess-drop series (T, N) volts, for plots and further checks."""

    transformer_id: str
    topology: str
    anomalies: list[Anomaly]
    meters: list[MeterEstimate]
    warnings: list[str]
    time_s: np.ndarray
    excess_drop_v: np.ndarray
    baseline_rows: slice
    model: object = None

    def anomalies_for(self, meter_id: str) -> list[Anomaly]:
        return [a for a in self.anomalies if a.meter_ids and a.meter_ids[0] == meter_id]


def baseline_slice(series: TanSeries, config: DetectorConfig) -> slice:
    """Rows the model is fitted on: the first ``baseline_s`` seconds, or everything if the
    record is shorter than twice that. A record of N readings covers N sampling periods (two
    days of 1-minute readings span two days less one minute between the first and the last
    time stamp, and must still count as two days)."""
    t = series.time_s
    if t.size == 0:
        raise ValueError("empty series")
    step = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    if t[-1] - t[0] + step < 2 * config.baseline_s:
        return slice(0, t.size)
    return slice(0, int(np.searchsorted(t, t[0] + config.baseline_s)))


def class_sigma_excess(
    series: TanSeries, accuracy: MeterAccuracy, groups: list[np.ndarray], r_ohm: np.ndarray | None = None
) -> np.ndarray:
    """Standard deviation of each meter's leave-one-out excess drop predicted by the accuracy
    class: the meter's own voltage error plus the mean of its partners', plus the drop error
    that the current error causes through the estimated service resistance."""
    n = series.n_meters
    v_nom = series.v_nominal_v
    sv = accuracy.v_sigma_v(v_nom)
    i_typ = np.nanmedian(np.where(series.valid, series.i_rms, np.nan), axis=0)
    i_typ = np.nan_to_num(i_typ, nan=0.0)
    r = np.zeros(n) if r_ohm is None else np.nan_to_num(np.abs(r_ohm))
    own = np.sqrt(sv**2 + (r * accuracy.i_sigma_a(i_typ)) ** 2)
    out = np.full(n, sv)
    for g in groups:
        ng = len(g)
        if ng < 2:
            out[g] = np.inf
            continue
        tot = np.sum(own[g] ** 2)
        for k in g:
            out[k] = math.sqrt(own[k] ** 2 + (tot - own[k] ** 2) / (ng - 1) ** 2)
    return out


def residual_sigma(excess_base: np.ndarray, sigma_class: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """Standard deviation used to standardise each meter's excess drop: the larger of the robust
    spread of the baseline residual's first differences (which steps, e.g. of an intermittent
    tap already present in the baseline, do not inflate) and the class prediction. Slowly varying
    model errors are handled by the leverage and bias allowance of :func:`standardise`."""
    with np.errstate(all="ignore"):
        s = np.nan_to_num(robust_sigma(excess_base), nan=0.0)
    if config.sigma_floor_from_class:
        s = np.fmax(s, sigma_class)
    return np.where(s > 0, s, sigma_class)


def standardise(
    excess: np.ndarray,
    sigma: np.ndarray,
    config: DetectorConfig,
    *,
    leverage: np.ndarray | None = None,
    params_per_sample: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Excess drop in units of its standard deviation, less the bias allowance: ``x / (sigma
    sqrt(1 + h + L max(0, h - p/n))) - bias_allowance_z * sqrt(p / n)`` (h the leverage). Feeding this to a CUSUM with
    reference k is a CUSUM with reference ``k + allowance`` on the plain z-score."""
    pn = np.broadcast_to(np.asarray(params_per_sample, float), sigma.shape)[None, :]
    z = excess / sigma[None, :]
    if leverage is not None:
        extra = config.leverage_memory_samples * np.clip(leverage - pn, 0.0, None)
        z = z / np.sqrt(1.0 + leverage + extra)
    return z - config.bias_allowance_z * np.sqrt(pn)


def samples_per_day(series: TanSeries) -> float:
    return DAY_S / series.sample_period_s


def cluster_episodes(eps: list[Episode], gap: int = 0) -> list[list[Episode]]:
    """Group episodes of any columns whose intervals overlap (or are within ``gap`` samples): on
    a bus or feeder one unmetered load raises the excess drop of several meters at once. Each
    group is sorted by alarm time."""
    out: list[list[Episode]] = []
    end = -1
    for e in sorted(eps, key=lambda e: e.onset_idx):
        if out and e.onset_idx < end + gap:
            out[-1].append(e)
            end = max(end, e.end_idx)
        else:
            out.append([e])
            end = e.end_idx
    return [sorted(c, key=lambda e: e.alarm_idx) for c in out]


def episode_stats(excess: np.ndarray, sigma: float, ep: Episode, upto_alarm: bool = False) -> dict:
    """Mean extra drop over an episode (onset to its end, or to the alarm), its standard error
    and z-score."""
    stop = ep.alarm_idx + 1 if upto_alarm else ep.end_idx
    w = excess[ep.onset_idx : stop, ep.col]
    w = w[np.isfinite(w)]
    n = max(int(w.size), 1)
    shift = float(np.mean(w)) if w.size else 0.0
    se = sigma / math.sqrt(n)
    return {
        "extra_drop_v": shift,
        "extra_drop_se_v": se,
        "z": shift / se if se > 0 else float("inf"),
        "samples": int(w.size),
    }


def episode_confidence(z: float, n_meters: int, n_times: int, n_samples: int) -> float:
    """Confidence of a tap episode: Bonferroni over meters, over non-overlapping windows of the
    episode's length in the record, and over ~log2(T) window lengths."""
    n_tests = n_meters * max(1.0, n_times / max(n_samples, 1)) * max(1.0, math.log2(max(n_times, 2)))
    return bonferroni_confidence(z, n_tests)
