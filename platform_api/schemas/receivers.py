"""Receiver (and platform) credentials."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Ident, Text


class ReceiverIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "receiver_id": "rx-elm-1",
                "substation_id": "sub-1",
                "role": "receiver",
                "description": "CT rack 1",
            }
        },
    )
    receiver_id: Ident
    substation_id: Ident
    role: Literal["receiver", "platform"] = Field(
        "receiver", description="platform: a substation platform forwarding to this concentrator"
    )
    description: Text | None = None
    token: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        pattern=r"^[A-Za-z0-9._~+/=-]+$",
        description="set a known token (default: a random one is generated)",
    )


class ReceiverOut(BaseModel):
    receiver_id: str
    substation_id: str
    role: str
    enabled: bool
    description: str | None
    created_at: str | None
    last_used_at: str | None


class ReceiverToken(ReceiverOut):
    token: str = Field(description="shown once; the platform stores only its SHA-256")
