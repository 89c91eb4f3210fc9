"""Theft analysis: work orders, AMI interval data imports, analysis runs and their findings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .common import U32, Ident, Text

WORK_KINDS = [
    "meter_exchange",
    "meter_install",
    "meter_removal",
    "meter_relocation",
    "service_line",
    "phase_rebalance",
    "transformer",
    "new_connection",
    "outage_repair",
    "other",
]
WorkKindName = Literal[
    "meter_exchange",
    "meter_install",
    "meter_removal",
    "meter_relocation",
    "service_line",
    "phase_rebalance",
    "transformer",
    "new_connection",
    "outage_repair",
    "other",
]
AnomalyName = Literal["theft_suspicion", "meter_order_change", "meter_swap", "geolocation_change"]


class WorkOrderIn(BaseModel):
    """Planned (or completed) grid work. Anomalies it explains (by kind: see
    `platform_api.theft.workorders.EXPLAINS`) on its meters, or on every meter of its transformers,
    with an onset from one hour before `start_at` to one day after `end_at`, are suppressed instead
    of being raised as theft alerts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "order_id": "WO-2025-0412",
                "kind": "meter_exchange",
                "start_at": "2025-03-03T08:00:00Z",
                "end_at": "2025-03-03T12:00:00Z",
                "meter_ids": [50002],
                "transformer_ids": [],
                "note": "meter replaced after a customer complaint",
            }
        },
    )
    order_id: Ident | None = Field(default=None, description="the utility's id (default: generated)")
    kind: WorkKindName = Field(description=", ".join(WORK_KINDS))
    start_at: AwareDatetime
    end_at: AwareDatetime
    meter_ids: list[U32] = Field(default_factory=list, max_length=1000)
    transformer_ids: list[Ident] = Field(default_factory=list, max_length=1000)
    explains: list[AnomalyName] | None = Field(
        default=None, max_length=4, description="anomaly types it explains (default: the kind's)"
    )
    note: Text | None = None


class WorkOrderOut(BaseModel):
    order_id: str
    kind: str
    start_at: str
    end_at: str
    meter_ids: list[int]
    transformer_ids: list[str]
    explains: list[str] | None
    note: str | None
    status: str = Field(description="active | cancelled (cancelled orders suppress nothing)")
    created_at: str | None
    cancelled_at: str | None


class AmiImportOut(BaseModel):
    model_config = {
        "json_schema_extra": {
            "example": {
                "import_id": 12,
                "sha256": "9f2c…",
                "rows": 1152,
                "inserted": 1152,
                "updated": 0,
                "unchanged": 0,
                "meters": 4,
                "unknown_meter_ids": [],
                "first_time_s": 1795305600,
                "last_time_s": 1795564800,
            }
        }
    }
    import_id: int
    sha256: str
    rows: int = Field(description="readings in the file")
    inserted: int
    updated: int = Field(description="readings of the same meter and time with other values (replaced)")
    unchanged: int = Field(description="readings already stored as they are (a re-upload)")
    meters: int
    unknown_meter_ids: list[int] = Field(description="meters not (yet) in the Inventory (stored; first 100)")
    first_time_s: int
    last_time_s: int


class AmiReadingOut(BaseModel):
    meter_id: int
    measurement_time_s: int
    v_rms: float
    i_rms: float
    power_factor: float
    import_id: int


class TanRunOut(BaseModel):
    transformer_id: str
    analysis: str = Field(description="radial | bus | feeder")
    meters: int
    times: int
    first_time_s: int | None
    last_time_s: int | None
    anomalies: int
    alerts_new: int = Field(description="theft alerts published by this run")
    alerts_known: int = Field(description="alerts found again (already raised: not published twice)")
    suppressed: int = Field(description="anomalies explained by work orders")
    withdrawn: int = Field(description="alerts raised earlier that a work order now explains")
    warnings: list[str]
    skipped: str | None = Field(description="why the area was not analysed (too little data, ...)")


class TheftRunOut(BaseModel):
    model_config = {
        "json_schema_extra": {
            "example": {
                "transformers": 1,
                "analysed": 1,
                "alerts_new": 1,
                "alerts_known": 0,
                "suppressed": 0,
                "withdrawn": 0,
                "results": [
                    {
                        "transformer_id": "T-100",
                        "analysis": "radial",
                        "meters": 4,
                        "times": 288,
                        "first_time_s": 1795305600,
                        "last_time_s": 1795564800,
                        "anomalies": 1,
                        "alerts_new": 1,
                        "alerts_known": 0,
                        "suppressed": 0,
                        "withdrawn": 0,
                        "warnings": [],
                        "skipped": None,
                    }
                ],
            }
        }
    }
    transformers: int
    analysed: int
    alerts_new: int
    alerts_known: int
    suppressed: int
    withdrawn: int
    results: list[TanRunOut]


class TheftFindingOut(BaseModel):
    alert_id: str = Field(description="stable hash of the anomaly")
    status: str = Field(description="alert (raised as a theft_alert event) | suppressed (explained by work orders)")
    kind: str = Field(description="unmetered_load | meter_order_change | meter_swap | meter_geolocation_change")
    detail: str
    analysis: str
    transformer_id: str
    substation_id: str | None
    meter_ids: list[int]
    confidence: float
    unaccounted_kw: float
    detected_time_s: int
    start_time_s: int | None
    work_order_ids: list[str]
    event_id: int | None
    first_seen_at: str | None
    last_seen_at: str | None
    alert: dict[str, Any] = Field(
        description="what the theft_alert event carries: meters with account, address, "
        "coordinates; transformer with coordinates; evidence"
    )
