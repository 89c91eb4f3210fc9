"""Webhooks, forwarding and the concentrator."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Ident


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "url": "https://gis.example/hooks/gla",
                "secret": "s3cret",
                "event_types": ["switch_state_change", "suspected_outage"],
                "min_confidence": 0.5,
            }
        },
    )
    url: str = Field(max_length=500, pattern=r"^https?://[^\s\x00-\x1f]+$")
    secret: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="HMAC-SHA256 key: each delivery carries X-GLA-Signature: sha256=<hex>",
    )
    event_types: list[str] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=50, description='event types to deliver, or ["*"]'
    )
    min_confidence: float = Field(0.0, ge=0, le=1)


class WebhookOut(BaseModel):
    id: int
    url: str
    event_types: list[str]
    min_confidence: float
    active: bool
    has_secret: bool
    created_at: str | None


class DeliveryOut(BaseModel):
    id: int
    webhook_id: int
    seq: int
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: str | None


class ForwardItem(BaseModel):
    id: int = Field(ge=0, le=2**62)
    type: Literal["event", "map", "readings"]
    payload: dict[str, Any]


class ForwardBatch(BaseModel):
    """What a substation platform posts to the concentrator."""

    model_config = ConfigDict(extra="forbid")
    origin: Ident = Field(description="the sending platform's identity (its credential id)")
    substation_id: Ident
    sent_at: str | None = Field(default=None, max_length=40)
    items: list[ForwardItem] = Field(max_length=5000)


class ForwardResult(BaseModel):
    applied: int
    duplicates: int


class ForwardingStatus(BaseModel):
    enabled: bool
    concentrator_url: str | None
    identity: str
    policy: list[str]
    pending: int
    sent: int
    last_error: str | None


class FlushOut(BaseModel):
    webhooks: dict[str, Any]
    forwarding: dict[str, Any]
