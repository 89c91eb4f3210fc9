"""Inferred changes (events), their publication log, and the history of every change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, IdType, Json, Time, utcnow


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_key_status", "key", "status"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    substation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    key: Mapped[str | None] = mapped_column(String(160), comment="what the event is about, for updates")
    subject_type: Mapped[str | None] = mapped_column(String(24))
    subject_id: Mapped[str | None] = mapped_column(String(96))
    title: Mapped[str] = mapped_column(String(300))
    details: Mapped[dict] = mapped_column(Json)
    evidence: Mapped[list] = mapped_column(Json, comment="bundle ids")
    observations: Mapped[int] = mapped_column(Integer, default=1)
    occurred_at: Mapped[datetime | None] = mapped_column(Time, comment="data time of the first evidence")
    created_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    superseded_by: Mapped[int | None] = mapped_column(Integer)
    published: Mapped[bool] = mapped_column(default=False, comment="has reached report_threshold once")
    origin_substation: Mapped[str | None] = mapped_column(String(64))
    origin_event_id: Mapped[int | None] = mapped_column(Integer)


class EventLog(Base):
    """Every publication of an event (created, raised, applied, resolved, ...): what SSE, webhooks
    and the concentrator forwarder consume, in ``seq`` order."""

    __tablename__ = "event_log"
    seq: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    snapshot: Mapped[dict] = mapped_column(Json)


class History(Base):
    """One changed attribute of the Inventory / Grid Map / provisioning, with time and evidence."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_entity", "entity", "entity_id"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    substation_id: Mapped[str | None] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(24))
    entity_id: Mapped[str] = mapped_column(String(96))
    field: Mapped[str] = mapped_column(String(40))
    old: Mapped[object | None] = mapped_column(Json)
    new: Mapped[object | None] = mapped_column(Json)
    cause: Mapped[str] = mapped_column(String(24))
    event_id: Mapped[int | None] = mapped_column(Integer)
    evidence: Mapped[list] = mapped_column(Json, comment="bundle ids, or import:<id>, event:<id>, operator")


class ImportRun(Base):
    __tablename__ = "imports"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    format: Mapped[str] = mapped_column(String(24))
    substation_id: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict] = mapped_column(Json)
    note: Mapped[str | None] = mapped_column(Text)
