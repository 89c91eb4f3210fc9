"""Ingest answers and stored bundles/messages."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from receiver.contracts.bundle import Bundle

Status = Literal["accepted", "duplicate", "rejected", "no_frame"]
Reason = Literal["crc", "version", "kind", "unknown_hub", "auth", "segment", "malformed", "replay"]


class ReportState(BaseModel):
    report_id: int
    first_counter: int = Field(description="counter of segment 0 (counter - seg_index)")
    seg_count: int
    segments_received: int
    complete: bool
    measurement_time_s: int


class IngestResult(BaseModel):
    """What the platform made of one bundle. Repeated verbatim when the same bundle is re-posted."""

    model_config = {
        "json_schema_extra": {
            "example": {
                "bundle_id": "3f1c0a9e5b7d4c21a8e6f0b2c4d6e8fa",
                "status": "accepted",
                "reason": None,
                "detail": None,
                "hub_id": 12648430,
                "counter": 258,
                "kind": "scheduled_report",
                "message": {
                    "measurement_time_s": 1795305600,
                    "readings": [{"tan_index": 0, "v_rms": 241.37, "i_rms": 18.42, "power_factor": 0.97}],
                },
                "report": {
                    "report_id": 1,
                    "first_counter": 258,
                    "seg_count": 1,
                    "segments_received": 1,
                    "complete": True,
                    "measurement_time_s": 1795305600,
                },
                "effects": None,
                "events": [],
            }
        }
    }
    bundle_id: str
    status: Status = Field(
        description="accepted: decoded and applied; duplicate: identical to an accepted frame "
        "(counted only); rejected: see reason; no_frame: no copy passed CRC"
    )
    reason: Reason | None = Field(default=None, description="why the frame was rejected")
    detail: str | None = None
    hub_id: int | None = None
    counter: int | None = None
    kind: str | None = None
    message: dict[str, Any] | None = Field(default=None, description="decoded fields of the message")
    report: ReportState | None = Field(default=None, description="reassembly state of a scheduled report")
    effects: dict[str, Any] | None = Field(default=None, description="what the message changed (pairing, provisioning)")
    events: list[int] = Field(default_factory=list, description="ids of events created or updated")


class BatchIn(BaseModel):
    bundles: list[Bundle] = Field(min_length=1, max_length=1000)


class BatchItem(BaseModel):
    bundle_id: str
    http_status: int = Field(description="what a single POST would have answered (201, 403, 409, 422)")
    replayed: bool = False
    result: IngestResult | None = None
    error: str | None = None


class BatchOut(BaseModel):
    results: list[BatchItem]


class StoredBundle(BaseModel):
    bundle_id: str
    receiver_id: str
    substation_id: str
    received_at: str
    arrival_utc: str
    channel: int
    code: int
    slot: int | None
    crc_ok: bool
    hub_id: int | None
    counter: int | None
    kind: str | None
    status: Status
    reason: str | None
    message_id: int | None
    body_sha256: str
    response: dict[str, Any]
    bundle: dict[str, Any] | None = Field(default=None, description="the bundle as posted (with ?body=true)")


class MessageOut(BaseModel):
    id: int
    hub_id: int
    key_epoch: int = Field(description="the hub's key epoch the frame verified under (its counter counts within it)")
    counter: int
    seg_index: int
    seg_count: int
    kind: str
    bundle_id: str
    substation_id: str
    arrival_utc: str
    slot: int | None
    fields: dict[str, Any]
    bus: int | None
    feeder: int | None
    phase: str | None
    confidence: float | None
    receptions: int
    late: bool


class RejectionOut(BaseModel):
    id: int
    bundle_id: str
    receiver_id: str
    substation_id: str
    hub_id: int | None
    counter: int | None
    kind: str | None
    reason: str
    detail: str
    at: str


class ReportOut(BaseModel):
    id: int
    hub_id: int
    key_epoch: int = Field(description="the hub's key epoch of its segments")
    first_counter: int
    seg_count: int
    segments_received: int
    complete: bool
    measurement_time_s: int
    slot: int | None
    readings: list[dict[str, Any]]
    first_arrival_utc: str
    completed_at: str | None
