"""Data types of the theft analysis: meters, their accuracy class, and time-aligned TAN series.

Units are in the names: ``v_rms`` volts, ``i_rms`` amperes, ``pf`` dimensionless (-1..1),
``time_s`` Unix seconds, ``*_ohm`` ohms, ``*_kw`` kilowatts, ``*_m`` metres.

Sign conventions
----------------
* ``pf`` is the signed power factor P / (V I). A negative value means the meter exports active
  power (e.g. rooftop PV). The sign of the reactive power is not carried by the readings; it is
  taken as lagging (inductive), the usual case for residential loads.
* The *active current* of a meter is ``i_rms * pf`` and its *reactive current* is
  ``i_rms * sqrt(1 - pf**2)``. The drop a current causes on a line of resistance R and
  reactance X is, to first order, ``R * i_active + X * i_reactive``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

PHASES = ("a", "b", "c")


@dataclass(frozen=True)
class MeterInfo:
    """What the grid map knows about one meter.

    ``phase``: the transformer phase (``"a"``, ``"b"``, ``"c"``) the meter is supplied from. A US
    split-phase 120/240 V meter (Form 2S, measuring L1-L2) uses ``"ab"`` or any one label shared by
    all meters of the transformer: meters are grouped by the label, the value itself is free.
    ``branch``: the feeder strand of a bus-topology TAN (meters on different strands are ordered
    separately). ``position``: known order along the bus, 1 = nearest the transformer (optional).
    ``service_length_m``: length of the meter's service line, when the grid map has it; it makes
    the impedance plausibility test possible.
    """

    meter_id: str
    transformer_id: str = ""
    phase: str = "a"
    account: str = ""
    address: str = ""
    lat: float | None = None
    lon: float | None = None
    service_length_m: float | None = None
    branch: str = ""
    position: int | None = None

    def __post_init__(self):
        if not isinstance(self.meter_id, str) or not self.meter_id:
            raise ValueError(f"meter_id must be a non-empty string, got {self.meter_id!r}")
        if self.service_length_m is not None and not (self.service_length_m > 0):
            raise ValueError(f"meter {self.meter_id}: service_length_m must be > 0, got {self.service_length_m}")
        for name in ("lat", "lon"):
            x = getattr(self, name)
            if x is not None and not math.isfinite(x):
                raise ValueError(f"meter {self.meter_id}: {name} must be finite")
        if self.lat is not None and not -90 <= self.lat <= 90:
            raise ValueError(f"meter {self.meter_id}: lat {self.lat} outside -90..90")
        if self.lon is not None and not -180 <= self.lon <= 180:
            raise ValueError(f"meter {self.meter_id}: lon {self.lon} outside -180..180")


@dataclass(frozen=True)
class MeterAccuracy:
    """Accuracy class of the meters; the detection tolerances are derived from it.

    ``*_random_pct`` is the standard deviation of the independent error of one reading, in percent
    of the reading (the conservative reading of "0.1 % random": one sigma). ``*_fixed_pct`` is the
    largest calibration (gain) error of a meter, constant over time, uniformly distributed in
    +-fixed_pct. Resolutions are the quantisation steps of the readings (the scheduled report of
    docs/air-interface.md carries 0.01 V, 0.01 A and 0.01 of power factor).
    """

    v_random_pct: float = 0.1
    v_fixed_pct: float = 0.1
    i_random_pct: float = 0.25
    i_fixed_pct: float = 0.25
    v_resolution_v: float = 0.01
    i_resolution_a: float = 0.01
    pf_resolution: float = 0.01

    def __post_init__(self):
        for name in (
            "v_random_pct",
            "v_fixed_pct",
            "i_random_pct",
            "i_fixed_pct",
            "v_resolution_v",
            "i_resolution_a",
            "pf_resolution",
        ):
            x = getattr(self, name)
            if not (isinstance(x, (int, float)) and math.isfinite(x) and 0 <= x < 100):
                raise ValueError(f"MeterAccuracy.{name} must be a finite number in [0, 100), got {x!r}")

    def v_sigma_v(self, v_nominal_v: float) -> float:
        """Standard deviation of one voltage reading (random error and quantisation), volts."""
        return math.hypot(self.v_random_pct / 100.0 * v_nominal_v, self.v_resolution_v / math.sqrt(12.0))

    def i_sigma_a(self, i_a: np.ndarray | float) -> np.ndarray | float:
        """Standard deviation of one current reading of ``i_a`` amperes, amperes."""
        return np.hypot(self.i_random_pct / 100.0 * np.asarray(i_a), self.i_resolution_a / math.sqrt(12.0))

    def offset_tolerance_v(self, v_nominal_v: float) -> float:
        """Largest difference between two meters' constant voltage offsets that calibration alone
        explains (both at opposite ends of +-v_fixed_pct), volts."""
        return 2.0 * self.v_fixed_pct / 100.0 * v_nominal_v


@dataclass
class TanSeries:
    """Time-synchronised readings of the meters of one transformer area (or one phase of it).

    ``v_rms``, ``i_rms`` and ``pf`` have shape (T, N): one row per measurement time
    (``time_s``, strictly increasing), one column per meter (``meters``). Missing readings are
    NaN (all three quantities of a reading are then ignored).
    """

    time_s: np.ndarray
    meters: tuple[MeterInfo, ...]
    v_rms: np.ndarray
    i_rms: np.ndarray
    pf: np.ndarray
    transformer_id: str = ""
    transformer_lat: float | None = None
    transformer_lon: float | None = None

    def __post_init__(self):
        self.meters = tuple(self.meters)
        self.time_s = np.asarray(self.time_s, dtype=np.int64)
        self.v_rms = np.array(self.v_rms, dtype=float)
        self.i_rms = np.array(self.i_rms, dtype=float)
        self.pf = np.array(self.pf, dtype=float)
        t, n = self.time_s.shape[0], len(self.meters)
        if self.time_s.ndim != 1:
            raise ValueError("time_s must be one-dimensional")
        for name in ("v_rms", "i_rms", "pf"):
            a = getattr(self, name)
            if a.shape != (t, n):
                raise ValueError(f"{name} has shape {a.shape}, expected (len(time_s), len(meters)) = {(t, n)}")
        if n == 0:
            raise ValueError("a TanSeries needs at least one meter")
        ids = [m.meter_id for m in self.meters]
        if len(set(ids)) != n:
            raise ValueError(f"duplicate meter ids in {ids}")
        if t > 1 and np.any(np.diff(self.time_s) <= 0):
            raise ValueError("time_s must be strictly increasing")
        # a reading is missing when any of its quantities is NaN
        bad = ~(np.isfinite(self.v_rms) & np.isfinite(self.i_rms) & np.isfinite(self.pf))
        self.v_rms[bad] = np.nan
        self.i_rms[bad] = np.nan
        self.pf[bad] = np.nan
        ok = ~bad
        if np.any(self.v_rms[ok] <= 0):
            raise ValueError("v_rms must be > 0 volts")
        if np.any(self.i_rms[ok] < 0):
            raise ValueError("i_rms must be >= 0 amperes")
        if np.any(np.abs(self.pf[ok]) > 1.0 + 1e-9):
            raise ValueError("pf must lie in -1..1")

    # ------------------------------------------------------------------ views
    @property
    def n_meters(self) -> int:
        return len(self.meters)

    @property
    def n_times(self) -> int:
        return int(self.time_s.shape[0])

    @property
    def meter_ids(self) -> list[str]:
        return [m.meter_id for m in self.meters]

    @property
    def valid(self) -> np.ndarray:
        """(T, N) bool: the reading is present."""
        return np.isfinite(self.v_rms)

    @property
    def i_active_a(self) -> np.ndarray:
        """Active current ``i_rms * pf`` (A); NaN where missing."""
        return self.i_rms * self.pf

    @property
    def i_reactive_a(self) -> np.ndarray:
        """Reactive current ``i_rms * sqrt(1 - pf^2)`` (A, lagging assumed); NaN where missing."""
        return self.i_rms * np.sqrt(np.clip(1.0 - self.pf**2, 0.0, None))

    @property
    def v_nominal_v(self) -> float:
        """Median of all voltage readings: the voltage the percentage accuracies refer to."""
        v = self.v_rms[self.valid]
        if v.size == 0:
            raise ValueError("no valid readings")
        return float(np.median(v))

    @property
    def sample_period_s(self) -> float:
        """Median spacing of the measurement times (s); 60 if there is one time only."""
        if self.n_times < 2:
            return 60.0
        return float(np.median(np.diff(self.time_s)))

    def phase_groups(self) -> dict[str, np.ndarray]:
        """Column indices of the meters of each phase label, in first-seen order."""
        out: dict[str, list[int]] = {}
        for k, m in enumerate(self.meters):
            out.setdefault(m.phase, []).append(k)
        return {p: np.asarray(ix) for p, ix in out.items()}

    def index_of(self, meter_id: str) -> int:
        for k, m in enumerate(self.meters):
            if m.meter_id == meter_id:
                return k
        raise KeyError(f"meter {meter_id!r} not in this series")

    # ------------------------------------------------------------ selections
    def slice_time(self, start_s: int | None = None, stop_s: int | None = None) -> TanSeries:
        """Rows with ``start_s <= time_s < stop_s`` (either bound may be None)."""
        sel = np.ones(self.n_times, bool)
        if start_s is not None:
            sel &= self.time_s >= start_s
        if stop_s is not None:
            sel &= self.time_s < stop_s
        return replace(self, time_s=self.time_s[sel], v_rms=self.v_rms[sel], i_rms=self.i_rms[sel], pf=self.pf[sel])

    def rows(self, sel) -> TanSeries:
        """Rows selected by an index, slice or boolean mask."""
        return replace(self, time_s=self.time_s[sel], v_rms=self.v_rms[sel], i_rms=self.i_rms[sel], pf=self.pf[sel])

    def select(self, meter_ids: Iterable[str]) -> TanSeries:
        """Columns of the given meters, in the given order."""
        ix = [self.index_of(m) for m in meter_ids]
        return replace(
            self,
            meters=tuple(self.meters[k] for k in ix),
            v_rms=self.v_rms[:, ix],
            i_rms=self.i_rms[:, ix],
            pf=self.pf[:, ix],
        )

    @classmethod
    def from_readings(
        cls,
        readings: Iterable[tuple[str, int, float, float, float]],
        meters: Sequence[MeterInfo],
        *,
        transformer_id: str = "",
        period_s: int | None = None,
        transformer_lat: float | None = None,
        transformer_lon: float | None = None,
    ) -> TanSeries:
        """Assemble a series from long-format readings ``(meter_id, time_s, v_rms, i_rms, pf)``.

        Readings of meters not in ``meters`` are ignored. With ``period_s`` the times are snapped to
        the nearest multiple of the period (meters' clocks are synchronised only within a
        tolerance); a later reading of the same meter and slot replaces an earlier one.
        """
        meters = tuple(meters)
        col = {m.meter_id: k for k, m in enumerate(meters)}
        rows = [r for r in readings if r[0] in col]
        if period_s is not None and period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        ts = np.array([r[1] for r in rows], dtype=np.int64)
        if period_s:
            ts = (np.round(ts / period_s) * period_s).astype(np.int64)
        times = np.unique(ts)
        row_of = {int(t): i for i, t in enumerate(times)}
        shape = (times.size, len(meters))
        v, i, pf = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
        for (mid, _, vv, ii, pp), t in zip(rows, ts):
            r, c = row_of[int(t)], col[mid]
            v[r, c], i[r, c], pf[r, c] = vv, ii, pp
        return cls(
            times,
            meters,
            v,
            i,
            pf,
            transformer_id=transformer_id,
            transformer_lat=transformer_lat,
            transformer_lon=transformer_lon,
        )


PHASE_ANGLE_DEG = {"a": 0.0, "b": -120.0, "c": 120.0}


def phase_angle_rad(label: str) -> float:
    """Angle of a phase's voltage: a 0, b -120, c +120 degrees; other labels (split-phase "ab",
    custom names) 0."""
    return math.radians(PHASE_ANGLE_DEG.get(label, 0.0))


def drop_current_a(
    p_a: np.ndarray, q_a: np.ndarray, delta_rad: np.ndarray | float, x_over_r: np.ndarray | float
) -> np.ndarray:
    """The current that causes a drop on a line of resistance R and reactance ``x_over_r * R``,
    per ohm of R, seen on a phase ``delta_rad`` behind the current's own phase:
    ``p cos D + q sin D + x_over_r (q cos D - p sin D)`` (``D = delta_rad``). With ``D = 0`` it is
    ``p + x_over_r q``: the drop is ``R (p + (X/R) q)``. Using one regressor per line, with X/R
    fixed, instead of separate R and X, avoids their collinearity: household power factors stay
    within a narrow band, so the active and reactive currents move together and separate R and X
    estimates are unstable (their combination is what matters, and it is well determined)."""
    c, s = np.cos(delta_rad), np.sin(delta_rad)
    return p_a * c + q_a * s + x_over_r * (q_a * c - p_a * s)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two WGS-84 points, metres (spherical Earth, R = 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371000.0 * math.asin(min(1.0, math.sqrt(a)))


__all__ = [
    "MeterInfo",
    "MeterAccuracy",
    "TanSeries",
    "PHASES",
    "PHASE_ANGLE_DEG",
    "drop_current_a",
    "haversine_m",
    "phase_angle_rad",
]
