"""Channel plans and per-hub policies, each versioned with an activation time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, IdType, Json, Time, Uint32, utcnow


class PlanVersion(Base):
    __tablename__ = "plan_versions"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    substation_id: Mapped[str] = mapped_column(String(64), index=True)
    plan: Mapped[dict] = mapped_column(Json)
    reports_per_day: Mapped[float] = mapped_column(Float)
    activation_at: Mapped[datetime] = mapped_column(Time)
    activation_slot: Mapped[int] = mapped_column(Uint32)
    created_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    note: Mapped[str | None] = mapped_column(String(300))


class HubPolicy(Base):
    __tablename__ = "hub_policies"
    __table_args__ = (UniqueConstraint("hub_id", "version"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    hub_id: Mapped[int] = mapped_column(Uint32, index=True)
    substation_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    channel: Mapped[int] = mapped_column(Integer)
    slot_offset: Mapped[int] = mapped_column(Integer, comment="first slot within each report period")
    slots_per_report: Mapped[int] = mapped_column(Integer, comment="consecutive slots: one per segment")
    period_slots: Mapped[int] = mapped_column(Integer)
    reports_per_day: Mapped[float] = mapped_column(Float)
    modulation: Mapped[str] = mapped_column(String(8), default="bpsk")
    fec: Mapped[str] = mapped_column(String(4), default="1/2")
    alt_channel: Mapped[int | None] = mapped_column(Integer, comment="odd-numbered reports go here (rotation)")
    alt_slot_offset: Mapped[int | None] = mapped_column(Integer)
    activation_at: Mapped[datetime] = mapped_column(Time)
    activation_slot: Mapped[int] = mapped_column(Uint32)
    created_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    reason: Mapped[str | None] = mapped_column(String(200))
