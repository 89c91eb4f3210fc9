"""Channel plan, hub policies, capacity and channel statistics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .common import Text


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0, le=14)
    fc_hz: float = Field(gt=0, le=20000, description="carrier; keep it half-way between two harmonics")
    role: Literal["scheduled", "alert"]
    modulation: Literal["bpsk", "qpsk"] = "bpsk"
    fec: Literal["1/2", "2/3"] = "1/2"


class PlanIn(BaseModel):
    """A new channel plan, announced ahead of ``activation_time``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "grid_hz": 60,
                "transformer_cutoff_hz": 3600,
                "reports_per_day": 2,
                "channels": [
                    {"index": 0, "fc_hz": 1170, "role": "scheduled"},
                    {"index": 1, "fc_hz": 2130, "role": "scheduled"},
                    {"index": 2, "fc_hz": 3090, "role": "alert"},
                ],
                "activation_time": "2030-01-01T00:00:00Z",
                "note": "default plan",
            }
        },
    )
    grid_hz: Literal[50, 60] = 60
    transformer_cutoff_hz: float = Field(3600.0, gt=0, le=20000)
    reports_per_day: float = Field(2.0, gt=0, le=720, description="scheduled reports per hub per day")
    channels: list[ChannelIn] | None = Field(
        default=None, min_length=1, max_length=15, description="default: the standard three channels for grid_hz"
    )
    activation_time: AwareDatetime | None = Field(
        default=None, description="when hubs and receiver switch (default: the minimum notice from now)"
    )
    note: Text | None = None


class PlanOut(BaseModel):
    substation_id: str
    active: dict[str, Any] = Field(description="the plan in force (version null: the built-in default)")
    pending: dict[str, Any] | None = Field(description="an announced plan and its activation time")
    alert_channel: dict[str, Any]


class PlanChange(BaseModel):
    version: int
    activation_time: str
    policies_changed: int


class PolicyOut(BaseModel):
    version: int
    channel: int
    code_rule: str
    slot_offset: int
    slots_per_report: int
    period_slots: int
    reports_per_day: float
    slots_of_day: list[int] = Field(description="slot-in-day indices the hub owns (first 64)")
    rotation: dict[str, int] | None
    modulation: str
    fec: str
    activation_time: str
    activation_slot: int
    next_report_slots: list[int]
    reason: str | None


class HubPolicyOut(BaseModel):
    model_config = {
        "json_schema_extra": {
            "example": {
                "hub_id": 12648430,
                "substation_id": "sub-1",
                "provisioned": True,
                "current": {
                    "version": 1,
                    "channel": 0,
                    "code_rule": "slot_index mod 2",
                    "slot_offset": 17,
                    "slots_per_report": 2,
                    "period_slots": 10800,
                    "reports_per_day": 2.0,
                    "slots_of_day": [17, 18, 10817, 10818],
                    "rotation": None,
                    "modulation": "bpsk",
                    "fec": "1/2",
                    "activation_time": "2025-03-03T14:00:00Z",
                    "activation_slot": 435258000,
                    "next_report_slots": [435268817],
                    "reason": "provisioning request",
                },
                "pending": None,
                "channel_plan": {},
                "alert": {},
            }
        }
    }
    hub_id: int
    substation_id: str | None
    provisioned: bool = Field(description="false: the hub uses the default policy (alert channel only)")
    current: PolicyOut | None
    pending: PolicyOut | None = Field(description="announced change and its activation time")
    channel_plan: dict[str, Any]
    alert: dict[str, Any] = Field(description="alert channel rules: slotted ALOHA, random code, repeats")


class PolicyIn(BaseModel):
    """Change a hub's policy from ``activation_time`` (at least the minimum notice ahead)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"channel": 1, "modulation": "bpsk", "fec": "1/2", "activation_time": "2030-01-01T00:00:00Z"}
        },
    )
    channel: int | None = Field(default=None, ge=0, le=14)
    slot_offset: int | None = Field(default=None, ge=0, le=21599)
    modulation: Literal["bpsk", "qpsk"] | None = None
    fec: Literal["1/2", "2/3"] | None = None
    activation_time: AwareDatetime | None = None
    reason: Text | None = None


class AssignIn(BaseModel):
    substation_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._:/@-]+$")
    hub_ids: list[Annotated[int, Field(ge=0, le=2**32 - 1)]] | None = Field(
        default=None, max_length=100_000, description="default: every hub of the substation without a policy"
    )


class AssignOut(BaseModel):
    substation_id: str
    assigned: int
    policies: list[dict[str, Any]] = Field(description="hub_id, version, channel, slot_offset (first 100)")
    capacity: dict[str, Any]


class RebalanceIn(BaseModel):
    substation_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._:/@-]+$")
    action: Literal["auto", "alternate", "move"] = "auto"
    activation_time: AwareDatetime | None = None
    since: AwareDatetime | None = None


class RebalanceOut(BaseModel):
    substation_id: str
    action: str
    recommendation: dict[str, Any]
    policies_changed: int
    activation_time: str | None
