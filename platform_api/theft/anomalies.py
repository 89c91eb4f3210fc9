"""Anomalies found by the analysis: the common output of the tap, order, swap and move detectors.

``AnomalyType`` has the numeric values of ``dsp.air.messages.AnomalyType`` (the ``anomaly_type``
field of a TAN_ANOMALY message, docs/air-interface.md kind 5); it is repeated here so that this
package imports nothing but numpy and scipy. :meth:`Anomaly.tan_anomaly_fields` gives the fields
of the message a Remote Hub sends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any


class AnomalyType(IntEnum):
    """Same values as ``dsp.air.messages.AnomalyType``."""

    THEFT_SUSPICION = 1
    METER_ORDER_CHANGE = 2
    METER_SWAP = 3
    GEOLOCATION_CHANGE = 4


class Detail:
    """The ``detail`` strings of :class:`Anomaly` (what exactly was seen)."""

    TAP_STARTED = "tap_started"  # extra drop appeared during the record (change detection)
    TAP_OFFSET = "tap_offset"  # constant extra drop beyond the calibration tolerance (tap present from the start)
    IMPEDANCE = "impedance_implausible"  # service impedance implausible for the line: bypass or tap tracking the load
    BUS_EXCESS_DROP = "bus_excess_drop"  # bus TAN: drop larger than the downstream currents explain
    ORDER_CHANGE = "order_change"  # bus TAN: meters changed position between periods
    SWAP_BETWEEN_TANS = "swap_between_tans"  # a new and a lost meter reported together by two TANs
    PHASE_CHANGE = "phase_change"  # meters changed phase
    MOVED_BETWEEN_TANS = "moved_between_tans"  # one meter moved to another TAN (no partner found)
    GEOLOCATION = "geolocation_change"  # reported coordinates moved


@dataclass
class Anomaly:
    """One anomaly of one transformer area.

    ``meter_ids``: the meters concerned, the most likely one first. ``time_s``: when it was
    detected (Unix s); ``start_time_s``: estimated onset, if known. ``confidence`` in 0..1 (see
    the detector for its meaning). ``unaccounted_kw``: estimated unmetered power (lower bound for
    taps: the tap assumed at the meter end of its line, where the least current explains the drop).
    ``location``: where, in words (which service line, which bus segment). ``evidence``: numbers
    an investigator can check (drops in volts, impedances in ohms, z-scores, ...).
    """

    anomaly_type: AnomalyType
    transformer_id: str
    meter_ids: tuple[str, ...]
    time_s: int
    confidence: float
    detail: str
    location: str = ""
    start_time_s: int | None = None
    unaccounted_kw: float = 0.0
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.anomaly_type = AnomalyType(self.anomaly_type)
        self.meter_ids = tuple(self.meter_ids)
        c = float(self.confidence)
        if not (math.isfinite(c) and 0.0 <= c <= 1.0):
            raise ValueError(f"confidence must be in 0..1, got {self.confidence}")
        self.confidence = c

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (enum as its name, tuples as lists)."""
        d = asdict(self)
        d["anomaly_type"] = self.anomaly_type.name.lower()
        d["meter_ids"] = list(self.meter_ids)
        return d

    def tan_anomaly_fields(self, tan_index_of: Mapping[str, int]) -> dict[str, Any]:
        """Fields of ``dsp.air.messages.TanAnomaly`` for a hub to send: ``anomaly_type``,
        ``tan_index`` (of the first meter), ``time_s``, ``unaccounted_w`` (clipped to the
        16-bit field) and ``confidence``. ``tan_index_of`` maps meter ids to TAN indices."""
        first = self.meter_ids[0] if self.meter_ids else None
        if first is None or first not in tan_index_of:
            raise KeyError(f"no TAN index for meter {first!r}")
        return {
            "anomaly_type": int(self.anomaly_type),
            "tan_index": int(tan_index_of[first]),
            "time_s": int(self.time_s),
            "unaccounted_w": float(min(max(round(self.unaccounted_kw * 1000.0), 0), 0xFFFF)),
            "confidence": self.confidence,
        }
