"""The threshold policy of change inference, stored in the database and cached per process."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from ..models import KeyValue
from .clock import utcnow

KEY = "inference_policy"


class InferencePolicy(BaseModel):
    """When an inferred change is published, and when the platform acts on it.

    Every event carries a confidence in 0..1. Below ``report_threshold`` it is kept as a
    *candidate* (visible with ``GET /api/v1/events?status=candidate``, not published). From
    ``report_threshold`` it is published as *suspected* (SSE, webhooks, concentrator). From
    ``act_threshold``, with at least ``min_observations`` independent bundles of evidence, the
    platform applies it to the Grid Map itself (*applied*); an operator can also confirm or dismiss
    a suspected event.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "report_threshold": 0.5,
                "act_threshold": 0.9,
                "min_observations": 2,
                "switch_min_hubs": 2,
                "switch_window_s": 86400,
                "outage_min_hubs": 2,
                "outage_min_fraction": 0.5,
                "missed_grace_slots": 3,
                "restoration_window_s": 900,
                "type_act_threshold": {"hub_feeder_change": 0.95},
            }
        },
    )

    report_threshold: float = Field(0.5, ge=0, le=1, description="publish events at or above this confidence")
    act_threshold: float = Field(0.9, ge=0, le=1, description="apply changes to the Grid Map at or above this")
    min_observations: int = Field(2, ge=1, le=100, description="bundles of evidence needed before acting")
    switch_min_hubs: int = Field(
        2, ge=2, le=1000, description="hubs of one feeder section that must move together to call it a switch"
    )
    switch_window_s: float = Field(
        86400.0, gt=0, description="hubs heard on the new feeder within this window are grouped"
    )
    outage_min_hubs: int = Field(2, ge=1, description="silent hubs of a section needed for a suspected outage")
    outage_min_fraction: float = Field(0.5, gt=0, le=1, description="fraction of a section's hubs that must be silent")
    missed_grace_slots: int = Field(
        3, ge=0, le=21600, description="slots after a due slot before a report counts as missed"
    )
    restoration_window_s: float = Field(
        900.0, gt=0, description="restoration alerts this close together form one event"
    )
    type_act_threshold: dict[str, float] = Field(
        default_factory=dict, description="per event type override of act_threshold"
    )

    def act_for(self, event_type: str) -> float:
        return self.type_act_threshold.get(event_type, self.act_threshold)


class PolicyStore:
    """Per-process cache (5 s) of the policy row, so the ingest path does not read it every time."""

    TTL_S = 5.0

    def __init__(self) -> None:
        self._cached: InferencePolicy | None = None
        self._at = 0.0

    def get(self, s: Session) -> InferencePolicy:
        if self._cached is not None and time.monotonic() - self._at < self.TTL_S:
            return self._cached
        row = s.get(KeyValue, KEY)
        pol = InferencePolicy.model_validate(row.value) if row is not None else InferencePolicy()
        self._cached, self._at = pol, time.monotonic()
        return pol

    def put(self, s: Session, pol: InferencePolicy) -> InferencePolicy:
        row = s.get(KeyValue, KEY)
        if row is None:
            s.add(KeyValue(key=KEY, value=pol.model_dump(), updated_at=utcnow()))
        else:
            row.value = pol.model_dump()
            row.updated_at = utcnow()
        self._cached, self._at = pol, time.monotonic()
        return pol
