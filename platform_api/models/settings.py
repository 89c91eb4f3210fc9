"""Small named documents the operators change at run time (e.g. the inference policy)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Json, Time, utcnow


class KeyValue(Base):
    __tablename__ = "settings_kv"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(Json)
    updated_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
