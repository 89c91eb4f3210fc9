"""Events (inferred changes) and the inference policy."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

EVENT_TYPES = [
    "new_hub",
    "hub_phase_change",
    "hub_feeder_change",
    "switch_state_change",
    "tan_member_added",
    "tan_member_lost",
    "meter_moved_tan",
    "suspected_outage",
    "restoration",
    "tan_anomaly",
    "tan_distress",
    "key_exhausting",
    "hub_provisioned",
    "provisioning_failed",
    "theft_alert",
]
STATUSES = ["candidate", "suspected", "open", "applied", "resolved", "info", "dismissed", "superseded", "withdrawn"]


class EventOut(BaseModel):
    model_config = {
        "json_schema_extra": {
            "example": {
                "id": 7,
                "substation_id": "sub-1",
                "type": "switch_state_change",
                "status": "applied",
                "confidence": 0.9964,
                "key": "switch:sub-1/f1/l2:sub-1:2",
                "subject_type": "section",
                "subject_id": "sub-1/f1/l2",
                "title": "feeder section sub-1/f1/l2 moved from feeder 1 to feeder 2 (3 of 5 hubs heard there)",
                "details": {"section_id": "sub-1/f1/l2", "from_feeder": 1, "to_feeder": 2, "hubs_heard": [11, 12, 13]},
                "evidence": ["b1", "b2", "b3"],
                "observations": 3,
                "occurred_at": "2025-03-03T14:05:02Z",
                "created_at": "2025-03-03T14:05:03Z",
                "updated_at": "2025-03-03T14:06:10Z",
                "superseded_by": None,
                "origin_substation": None,
                "origin_event_id": None,
            }
        }
    }
    id: int
    substation_id: str | None
    type: str = Field(description=", ".join(EVENT_TYPES))
    status: str = Field(
        description="candidate (below report_threshold, unpublished) | suspected | open | applied "
        "(the map was changed) | resolved | info | dismissed | superseded | withdrawn"
    )
    confidence: float = Field(ge=0, le=1)
    key: str | None
    subject_type: str | None
    subject_id: str | None
    title: str
    details: dict[str, Any]
    evidence: list[str] = Field(description="bundle ids the inference rests on")
    observations: int
    occurred_at: str | None
    created_at: str | None
    updated_at: str | None
    superseded_by: int | None
    origin_substation: str | None = Field(description="concentrator: the substation that raised it")
    origin_event_id: int | None


class EventAction(BaseModel):
    note: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class CheckMissedIn(BaseModel):
    substation_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._:/@-]+$")
    now: str | None = Field(
        default=None,
        description="ISO time to check at (default: the substation's data time)",
        examples=["2025-03-03T14:30:00Z"],
    )


class CheckMissedOut(BaseModel):
    substation_id: str
    now: str | None
    now_slot: int | None = None
    silent_hubs: list[int]
    events: list[int]


class LogEntry(BaseModel):
    seq: int
    event_id: int
    action: str
    at: str
    event: dict[str, Any]
