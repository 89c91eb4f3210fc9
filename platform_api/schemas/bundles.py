"""Ingest answers and stored bundles/messages."""
from __future__ import annotations

from typing import Any, Literal, Optional

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

    model_config = {"json_schema_extra": {"example": {
        "bundle_id": "3f1c0a9e5b7d4c21a8e6f0b2c4d6e8fa", "status": "accepted", "reason": None, "detail": None,
        "hub_id": 12648430, "counter": 258, "kind": "scheduled_report",
        "message": {"measurement_time_s": 1795305600, "readings": [
            {"tan_index": 0, "v_rms": 241.37, "i_rms": 18.42, "power_factor": 0.97}]},
        "report": {"report_id": 1, "first_counter": 258, "seg_count": 1, "segments_received": 1, "complete": True,
                   "measurement_time_s": 1795305600},
        "effects": None, "events": []}}}
    bundle_id: str
    status: Status = Field(description="accepted: decoded and applied; duplicate: identical to an accepted frame "
                                       "(counted only); rejected: see reason; no_frame: no copy passed CRC")
    reason: Optional[Reason] = Field(default=None, description="why the frame was rejected")
    detail: Optional[str] = None
    hub_id: Optional[int] = None
    counter: Optional[int] = None
    kind: Optional[str] = None
    message: Optional[dict[str, Any]] = Field(default=None, description="decoded fields of the message")
    report: Optional[ReportState] = Field(default=None, description="reassembly state of a scheduled report")
    effects: Optional[dict[str, Any]] = Field(default=None, description="what the message changed (pairing, provisioning)")
    events: list[int] = Field(default_factory=list, description="ids of events created or updated")


class BatchIn(BaseModel):
    bundles: list[Bundle] = Field(min_length=1, max_length=1000)


class BatchItem(BaseModel):
    bundle_id: str
    http_status: int = Field(description="what a single POST would have answered (201, 403, 409, 422)")
    replayed: bool = False
    result: Optional[IngestResult] = None
    error: Optional[str] = None


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
    slot: Optional[int]
    crc_ok: bool
    hub_id: Optional[int]
    counter: Optional[int]
    kind: Optional[str]
    status: Status
    reason: Optional[str]
    message_id: Optional[int]
    body_sha256: str
    response: dict[str, Any]
    bundle: Optional[dict[str, Any]] = Field(default=None, description="the bundle as posted (with ?body=true)")


class MessageOut(BaseModel):
    id: int
    hub_id: int
    counter: int
    seg_index: int
    seg_count: int
    kind: str
    bundle_id: str
    substation_id: str
    arrival_utc: str
    slot: Optional[int]
    fields: dict[str, Any]
    bus: Optional[int]
    feeder: Optional[int]
    phase: Optional[str]
    confidence: Optional[float]
    receptions: int
    late: bool


class RejectionOut(BaseModel):
    id: int
    bundle_id: str
    receiver_id: str
    substation_id: str
    hub_id: Optional[int]
    counter: Optional[int]
    kind: Optional[str]
    reason: str
    detail: str
    at: str


class ReportOut(BaseModel):
    id: int
    hub_id: int
    first_counter: int
    seg_count: int
    segments_received: int
    complete: bool
    measurement_time_s: int
    slot: Optional[int]
    readings: list[dict[str, Any]]
    first_arrival_utc: str
    completed_at: Optional[str]
