"""Credentials of the receivers (and substation platforms) allowed to post."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Time, utcnow


class Receiver(Base):
    """A credential: a Substation Receiver (role ``receiver``) posting bundles for its substation,
    or a substation Computing Platform (role ``platform``) forwarding to the concentrator."""

    __tablename__ = "receivers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    substation_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16), default="receiver")
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(Time)
