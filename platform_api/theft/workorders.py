"""Work orders (planned grid work) and theft alerts.

The platform receives work orders from the utility's other applications (dispatches of field
crews). An anomaly that a work order explains is suppressed; every other one becomes a
:class:`TheftAlert` carrying what an investigator needs: account numbers and addresses of the
premises, transformer and meter ids with their coordinates, and the evidence (source document,
paragraph [0041]). Alerts are plain dataclasses with ``to_dict()``; the platform publishes them
on its event stream.

Which work explains what (:data:`EXPLAINS`): a meter exchange explains swap, order and location
anomalies of its meters and a step in their voltage (a new meter brings a new calibration
offset, which the tap detector sees as a change); work on a service line changes its impedance;
transformer work (tap change, replacement, re-phasing) explains everything on that transformer.
An order covers its time window plus ``margin_s`` after it (the analysis needs a new baseline
after the work), and the anomalies of its meters, or of all meters of its transformers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from .anomalies import Anomaly, AnomalyType
from .data import MeterInfo


class WorkKind(str, Enum):
    METER_EXCHANGE = "meter_exchange"  # meter replaced (new meter id or same id, new calibration)
    METER_INSTALL = "meter_install"
    METER_REMOVAL = "meter_removal"
    METER_RELOCATION = "meter_relocation"  # meter moved to another socket/premise/phase
    SERVICE_LINE = "service_line"  # service drop replaced or repaired
    PHASE_REBALANCE = "phase_rebalance"  # premises moved between phases
    TRANSFORMER = "transformer"  # transformer replaced, re-tapped, or its secondary rebuilt
    NEW_CONNECTION = "new_connection"  # a new premise connected (construction supply)
    OUTAGE_REPAIR = "outage_repair"
    OTHER = "other"


_ALL = frozenset(AnomalyType)
EXPLAINS: dict[WorkKind, frozenset[AnomalyType]] = {
    WorkKind.METER_EXCHANGE: _ALL,
    WorkKind.METER_INSTALL: _ALL,
    WorkKind.METER_REMOVAL: frozenset({AnomalyType.METER_SWAP, AnomalyType.METER_ORDER_CHANGE}),
    WorkKind.METER_RELOCATION: _ALL,
    WorkKind.SERVICE_LINE: frozenset({AnomalyType.THEFT_SUSPICION}),
    WorkKind.PHASE_REBALANCE: _ALL,
    WorkKind.TRANSFORMER: _ALL,
    WorkKind.NEW_CONNECTION: _ALL,
    WorkKind.OUTAGE_REPAIR: frozenset({AnomalyType.METER_ORDER_CHANGE, AnomalyType.THEFT_SUSPICION}),
    WorkKind.OTHER: frozenset(),
}


@dataclass(frozen=True)
class WorkOrder:
    """Planned (or completed) work: which meters and/or transformers, when, what kind.
    ``start_s``/``end_s`` Unix seconds; at least one meter or transformer id is required.
    ``explains`` overrides the kind's default set of anomaly types."""

    order_id: str
    kind: WorkKind
    start_s: int
    end_s: int
    meter_ids: tuple[str, ...] = ()
    transformer_ids: tuple[str, ...] = ()
    note: str = ""
    explains: frozenset[AnomalyType] | None = None

    def __post_init__(self):
        object.__setattr__(self, "kind", WorkKind(self.kind))
        object.__setattr__(self, "meter_ids", tuple(self.meter_ids))
        object.__setattr__(self, "transformer_ids", tuple(self.transformer_ids))
        if not self.order_id:
            raise ValueError("order_id must be non-empty")
        if not (isinstance(self.start_s, int) and isinstance(self.end_s, int)):
            raise ValueError("start_s and end_s must be integers (Unix seconds)")
        if self.end_s < self.start_s:
            raise ValueError(f"work order {self.order_id}: end_s {self.end_s} before start_s {self.start_s}")
        if not self.meter_ids and not self.transformer_ids:
            raise ValueError(f"work order {self.order_id}: name at least one meter or transformer")
        if self.explains is not None:
            object.__setattr__(self, "explains", frozenset(AnomalyType(x) for x in self.explains))

    def anomaly_types(self) -> frozenset[AnomalyType]:
        return self.explains if self.explains is not None else EXPLAINS[self.kind]

    def covers(self, anomaly: Anomaly, margin_s: int = 86400) -> bool:
        """Does this order explain ``anomaly``? Its type must be one the work explains; its meters
        must be among the order's (or its transformer among the order's transformers); its onset
        (``start_time_s``, else the detection time) must fall within [start_s - 1 h, end_s + margin_s]."""
        if anomaly.anomaly_type not in self.anomaly_types():
            return False
        hit = bool(set(anomaly.meter_ids) & set(self.meter_ids)) or anomaly.transformer_id in self.transformer_ids
        if not hit:
            return False
        t = anomaly.start_time_s if anomaly.start_time_s is not None else anomaly.time_s
        return self.start_s - 3600 <= t <= self.end_s + margin_s


class WorkOrderBook:
    """The work orders the platform knows; :meth:`explaining` finds the ones covering an anomaly."""

    def __init__(self, orders: Iterable[WorkOrder] = ()):
        self._orders: dict[str, WorkOrder] = {}
        for o in orders:
            self.add(o)

    def add(self, order: WorkOrder) -> None:
        if order.order_id in self._orders:
            raise ValueError(f"work order {order.order_id} already recorded")
        self._orders[order.order_id] = order

    def remove(self, order_id: str) -> WorkOrder:
        return self._orders.pop(order_id)

    def __iter__(self):
        return iter(self._orders.values())

    def __len__(self):
        return len(self._orders)

    def explaining(self, anomaly: Anomaly, margin_s: int = 86400) -> list[WorkOrder]:
        return [o for o in self._orders.values() if o.covers(anomaly, margin_s)]


def suppress_explained(
    anomalies: Iterable[Anomaly], orders: Iterable[WorkOrder] | WorkOrderBook, *, margin_s: int = 86400
) -> tuple[list[Anomaly], list[tuple[Anomaly, list[str]]]]:
    """Split anomalies into (unexplained, [(explained, ids of the orders explaining it)])."""
    book = orders if isinstance(orders, WorkOrderBook) else WorkOrderBook(orders)
    keep, gone = [], []
    for a in anomalies:
        why = book.explaining(a, margin_s)
        if why:
            gone.append((a, [o.order_id for o in why]))
        else:
            keep.append(a)
    return keep, gone


ALERT_KIND = {
    AnomalyType.THEFT_SUSPICION: "unmetered_load",
    AnomalyType.METER_ORDER_CHANGE: "meter_order_change",
    AnomalyType.METER_SWAP: "meter_swap",
    AnomalyType.GEOLOCATION_CHANGE: "meter_geolocation_change",
}


@dataclass
class AlertMeter:
    meter_id: str
    account: str = ""
    address: str = ""
    lat: float | None = None
    lon: float | None = None


@dataclass
class TheftAlert:
    """A potential theft, for the platform's event stream. ``alert_id`` is a stable hash of the
    anomaly (the same anomaly gives the same id: publishing is idempotent)."""

    alert_id: str
    kind: str
    anomaly_type: int
    detail: str
    transformer_id: str
    transformer_lat: float | None
    transformer_lon: float | None
    meters: list[AlertMeter]
    time_s: int
    start_time_s: int | None
    confidence: float
    unaccounted_kw: float
    location: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _alert_id(a: Anomaly) -> str:
    key = f"{int(a.anomaly_type)}|{a.detail}|{a.transformer_id}|{','.join(a.meter_ids)}|{a.start_time_s}|{a.time_s}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def theft_alerts(
    anomalies: Iterable[Anomaly],
    orders: Iterable[WorkOrder] | WorkOrderBook = (),
    *,
    directory: Mapping[str, MeterInfo] | None = None,
    transformers: Mapping[str, tuple[float, float]] | None = None,
    margin_s: int = 86400,
) -> tuple[list[TheftAlert], list[tuple[Anomaly, list[str]]]]:
    """Turn the anomalies no work order explains into theft alerts.

    ``directory``: meter id -> :class:`MeterInfo` (account, address, coordinates);
    ``transformers``: transformer id -> (lat, lon). Returns ``(alerts, suppressed)`` where
    ``suppressed`` lists each explained anomaly with the ids of the orders explaining it.
    """
    directory = directory or {}
    transformers = transformers or {}
    keep, gone = suppress_explained(anomalies, orders, margin_s=margin_s)
    alerts = []
    for a in keep:
        meters = []
        for mid in a.meter_ids:
            info = directory.get(mid)
            meters.append(AlertMeter(mid, info.account, info.address, info.lat, info.lon) if info else AlertMeter(mid))
        tlat, tlon = transformers.get(a.transformer_id, (None, None))
        alerts.append(
            TheftAlert(
                _alert_id(a),
                ALERT_KIND[a.anomaly_type],
                int(a.anomaly_type),
                a.detail,
                a.transformer_id,
                tlat,
                tlon,
                meters,
                a.time_s,
                a.start_time_s,
                a.confidence,
                a.unaccounted_kw,
                a.location,
                dict(a.evidence),
            )
        )
    return alerts, gone
