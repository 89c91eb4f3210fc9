"""Theft analysis on the platform: AMI interval readings, work orders, and the findings of each run.

AMI readings get their own table rather than rows of ``readings``: a scheduled-report reading
belongs to a report and a TAN position (``report_id``, ``hub_id``, ``tan_index``), while an AMI
interval reading is keyed by meter and time only, which is also what makes a re-upload
idempotent (``UNIQUE (meter_id, measurement_time_s)``). The theft analysis reads both.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, IdType, Json, Time, Uint32, utcnow


class AmiReading(Base):
    """One meter's V, I and power factor over one AMI interval (imported from CSV)."""

    __tablename__ = "ami_readings"
    __table_args__ = (UniqueConstraint("meter_id", "measurement_time_s"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    meter_id: Mapped[int] = mapped_column(Uint32)
    measurement_time_s: Mapped[int] = mapped_column(Uint32, comment="end of the interval, Unix seconds")
    v_rms: Mapped[float] = mapped_column(Float)
    i_rms: Mapped[float] = mapped_column(Float)
    power_factor: Mapped[float] = mapped_column(Float, comment="signed: negative exports active power")
    import_id: Mapped[int] = mapped_column(Integer, index=True, comment="the import (imports.id) that last wrote it")


class WorkOrderRow(Base):
    """Planned or completed grid work; anomalies it explains are not raised as theft alerts."""

    __tablename__ = "work_orders"
    __table_args__ = (Index("ix_work_orders_window", "start_at", "end_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True, comment="the utility's order id")
    kind: Mapped[str] = mapped_column(String(24))
    start_at: Mapped[datetime] = mapped_column(Time)
    end_at: Mapped[datetime] = mapped_column(Time)
    meter_ids: Mapped[list] = mapped_column(Json)
    transformer_ids: Mapped[list] = mapped_column(Json)
    explains: Mapped[list | None] = mapped_column(Json, comment="anomaly types it explains (null: the kind's)")
    note: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active", comment="active | cancelled")
    created_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(Time)


class TheftFinding(Base):
    """An anomaly of the theft analysis: raised as a ``theft_alert`` event, or suppressed by work
    orders. ``alert_id`` is the library's stable hash of the anomaly (one row however often the
    analysis runs)."""

    __tablename__ = "theft_findings"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True, comment="alert | suppressed")
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(40))
    analysis: Mapped[str] = mapped_column(String(8), comment="radial | bus | feeder")
    transformer_id: Mapped[str] = mapped_column(String(64), index=True)
    substation_id: Mapped[str | None] = mapped_column(String(64))
    meter_ids: Mapped[list] = mapped_column(Json)
    confidence: Mapped[float] = mapped_column(Float)
    unaccounted_kw: Mapped[float] = mapped_column(Float)
    detected_time_s: Mapped[int] = mapped_column(Uint32)
    start_time_s: Mapped[int | None] = mapped_column(Uint32)
    alert: Mapped[dict] = mapped_column(Json, comment="what the theft_alert event carries")
    work_order_ids: Mapped[list] = mapped_column(Json, comment="the orders explaining it (suppressed)")
    event_id: Mapped[int | None] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
