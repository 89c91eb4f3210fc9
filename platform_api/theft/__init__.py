"""Theft analysis of transformer area networks (issue [5/6]): unmetered taps, meter order, meter
swaps and moves, work orders and theft alerts.

A pure library (numpy and scipy only): a Remote Hub agent can host it, the simulator imports it
to produce TAN anomaly reports, and the Computing Platform runs it on the V/I series it holds
(scheduled reports, or AMI interval data read by :func:`read_ami_csv`).

Public API
----------
Data (:mod:`.data`)
    ``MeterInfo(meter_id, transformer_id="", phase="a", account="", address="", lat=None,
    lon=None, service_length_m=None, branch="", position=None)``
    ``MeterAccuracy(v_random_pct=0.1, v_fixed_pct=0.1, i_random_pct=0.25, i_fixed_pct=0.25,
    v_resolution_v=0.01, i_resolution_a=0.01, pf_resolution=0.01)``
    ``TanSeries(time_s, meters, v_rms, i_rms, pf, transformer_id="", transformer_lat=None,
    transformer_lon=None)`` -- (T, N) arrays, NaN = missing; ``TanSeries.from_readings(rows,
    meters, transformer_id=, period_s=)`` from ``(meter_id, time_s, v_rms, i_rms, pf)`` tuples.

Unmetered taps
    ``analyse_radial(series, *, accuracy=None, config=None, common_mode="auto", model=None,
    x_over_r=0.25) -> TanAnalysis`` -- radial areas (US style, each meter on its own service
    drop; per phase of a three-phase transformer). ``fit_radial(series, *, accuracy=None,
    common_mode="auto", config=None, x_over_r=0.25) -> RadialModel`` fits the drop model alone
    (secondary voltage per time step, service impedance per meter).
    ``analyse_bus(series, *, accuracy=None, config=None, order=None, stubs=True,
    period_s=86400, model=None, order_min_z=5.0, order_min_difference_v=0.05, x_over_r=0.25)
    -> TanAnalysis`` -- bus areas: voltage ordering, cumulative
    drop, excess drop localised to a segment or service connection, order changes.
    ``order_by_voltage(series, *, model=None) -> BusOrder``, ``fit_bus(series, *, order=None,
    stubs=True, accuracy=None, config=None, refine_order=True, x_over_r=0.25) -> BusModel``,
    ``compare_bus_orders(before, after, *, transformer_id="", min_z=5.0,
    min_difference_v=0.05) -> list[Anomaly]``.
    ``analyse_feeder(series, *, accuracy=None, config=None, model=None, x_over_r=0.25) ->
    TanAnalysis`` -- any topology (tree-shaped European feeders, three phases with a shared
    neutral), topology-agnostic sensitivity model, localisation by drop pattern;
    ``fit_feeder(series, *, accuracy=None, config=None, x_over_r=0.25) -> FeederModel``.
    ``DetectorConfig(baseline_s=86400, bank=CusumBank(), sigma_floor_from_class=True,
    offset_test=True, offset_z=4.0, impedance_test=True, max_loop_ohm_per_m=3.5e-3,
    impedance_ratio=3.0, min_service_r_ohm=1e-3, trim_sigma=5.0, bias_allowance_z=0.5,
    leverage_memory_samples=60.0)``; ``CusumBank(ks=(0.4, 0.2, 0.08),
    false_alarms_per_1000_meter_days=0.6, merge_gap_s=21600)``.
    ``TanAnalysis``: ``.anomalies``, ``.meters`` (``MeterEstimate``: offset, service R and X,
    residual sigma), ``.warnings``, ``.excess_drop_v`` (T, N), ``.model``.

Swaps and moves (:mod:`.swaps`)
    ``compare_sightings(before, after, *, geo_tolerance_m=25.0, time_s=None) -> list[Anomaly]``
    over ``MeterSighting(meter_id, transformer_id, phase="", position=None, branch="",
    lat=None, lon=None, time_s=0)``: moves and swaps between TANs, phase swaps, bus position
    changes, geolocation changes.
    ``swaps_from_membership_events(events, *, window_s=21600) -> list[Anomaly]`` over
    ``MembershipEvent(kind "new"|"lost", meter_id, transformer_id, time_s)`` (the hubs'
    PAIRING / PAIRING_LOSS messages).

Work orders and alerts (:mod:`.workorders`)
    ``WorkOrder(order_id, kind: WorkKind, start_s, end_s, meter_ids=(), transformer_ids=(),
    note="", explains=None)``, ``WorkOrderBook``; ``suppress_explained(anomalies, orders, *,
    margin_s=86400) -> (kept, [(anomaly, order_ids)])``; ``theft_alerts(anomalies, orders=(),
    *, directory=None, transformers=None, margin_s=86400) -> (list[TheftAlert], suppressed)``.
    ``TheftAlert.to_dict()`` is what the platform publishes on its event stream.

Anomalies (:mod:`.anomalies`)
    ``Anomaly(anomaly_type, transformer_id, meter_ids, time_s, confidence, detail, location="",
    start_time_s=None, unaccounted_kw=0.0, evidence={})``; ``AnomalyType`` has the values of
    ``dsp.air.messages.AnomalyType``; ``Anomaly.tan_anomaly_fields(tan_index_of)`` gives the fields
    of the TAN_ANOMALY message a hub sends. ``Detail`` lists the ``detail`` strings.

AMI interval data (:mod:`.ami_csv`)
    ``read_ami_csv(path_or_file, *, assume_utc=False) -> AmiData``, ``read_ami_csv_text``;
    ``AmiData.to_series(meters, *, transformer_id="", period_s=None) -> TanSeries``;
    ``AmiCsvError`` (``.line``, ``.column``). The format is documented in :mod:`.ami_csv`.

Minimal use::

    from platform_api.theft import MeterInfo, TanSeries, analyse_radial, theft_alerts
    series = TanSeries(time_s, [MeterInfo("M1", "T7", "ab"), ...], v_rms, i_rms, pf, transformer_id="T7")
    result = analyse_radial(series)
    alerts, suppressed = theft_alerts(result.anomalies, work_orders, directory=meters_by_id)

Units are in the names (``v_rms`` volts, ``i_rms`` amperes, ``*_ohm``, ``*_kw``, ``*_m``,
``*_s`` Unix seconds). What the detectors can and cannot see, and the evaluation on pandapower
power flows, are in ``benchmarks/theft_eval.py``.
"""

from .ami_csv import AmiCsvError, AmiData, read_ami_csv, read_ami_csv_text
from .analysis import DetectorConfig, MeterEstimate, TanAnalysis
from .anomalies import Anomaly, AnomalyType, Detail
from .bus import BusModel, BusOrder, analyse_bus, compare_bus_orders, fit_bus, order_by_voltage
from .changedetect import CusumBank
from .data import MeterAccuracy, MeterInfo, TanSeries
from .feeder import FeederModel, analyse_feeder, fit_feeder
from .radial import RadialModel, analyse_radial, fit_radial
from .swaps import MembershipEvent, MeterSighting, compare_sightings, swaps_from_membership_events
from .workorders import AlertMeter, TheftAlert, WorkKind, WorkOrder, WorkOrderBook, suppress_explained, theft_alerts

__all__ = [
    "AlertMeter",
    "AmiCsvError",
    "AmiData",
    "Anomaly",
    "AnomalyType",
    "BusModel",
    "BusOrder",
    "CusumBank",
    "Detail",
    "DetectorConfig",
    "FeederModel",
    "MembershipEvent",
    "MeterAccuracy",
    "MeterEstimate",
    "MeterInfo",
    "MeterSighting",
    "RadialModel",
    "TanAnalysis",
    "TanSeries",
    "TheftAlert",
    "WorkKind",
    "WorkOrder",
    "WorkOrderBook",
    "analyse_bus",
    "analyse_feeder",
    "analyse_radial",
    "compare_bus_orders",
    "compare_sightings",
    "fit_bus",
    "fit_feeder",
    "fit_radial",
    "order_by_voltage",
    "read_ami_csv",
    "read_ami_csv_text",
    "suppress_explained",
    "swaps_from_membership_events",
    "theft_alerts",
]
