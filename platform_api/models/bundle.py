"""What arrives: bundles as posted, the messages decoded from them, reports, readings, rejections."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, IdType, Json, Time, Uint32, utcnow


class BundleRow(Base):
    """One posted bundle, stored once (``bundle_id`` is the idempotency key)."""

    __tablename__ = "bundles"
    __table_args__ = (
        Index("ix_bundles_sub_chan_code", "substation_id", "channel", "code"),
        Index("ix_bundles_sub_arrival", "substation_id", "arrival_utc"),
    )
    bundle_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    receiver_id: Mapped[str] = mapped_column(String(64))
    substation_id: Mapped[str] = mapped_column(String(64))
    body_sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, comment="the bundle as validated (canonical JSON)")
    received_at: Mapped[datetime] = mapped_column(Time, default=utcnow, index=True)
    created_utc: Mapped[datetime] = mapped_column(Time)
    arrival_utc: Mapped[datetime] = mapped_column(Time, comment="best copy's time of chip 0")
    channel: Mapped[int] = mapped_column(Integer)
    code: Mapped[int] = mapped_column(Integer)
    slot: Mapped[int | None] = mapped_column(Uint32)
    crc_ok: Mapped[bool] = mapped_column(Boolean)
    hub_id: Mapped[int | None] = mapped_column(Uint32, index=True)
    counter: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), comment="accepted | duplicate | rejected | no_frame")
    reason: Mapped[str | None] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(Integer)
    best_snr_db: Mapped[float | None] = mapped_column(Float)
    inferred_bus: Mapped[int | None] = mapped_column(Integer)
    inferred_feeder: Mapped[int | None] = mapped_column(Integer)
    inferred_phase: Mapped[str | None] = mapped_column(String(1))
    inferred_confidence: Mapped[float | None] = mapped_column(Float)
    ambiguous: Mapped[bool | None] = mapped_column(Boolean)
    response: Mapped[dict] = mapped_column(Json, comment="the answer given, repeated verbatim on a re-post")


class Message(Base):
    """A frame that decrypted and verified under its hub's key; one row per (hub, key epoch, counter)."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("hub_id", "key_epoch", "counter"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    hub_id: Mapped[int] = mapped_column(Uint32)
    key_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0", comment="the key it verified under")
    counter: Mapped[int] = mapped_column(Integer)
    seg_index: Mapped[int] = mapped_column(Integer, default=0)
    seg_count: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(32))
    frame_hex: Mapped[str] = mapped_column(String(64))
    bundle_id: Mapped[str] = mapped_column(String(64))
    substation_id: Mapped[str] = mapped_column(String(64))
    arrival_utc: Mapped[datetime] = mapped_column(Time)
    slot: Mapped[int | None] = mapped_column(Uint32)
    fields: Mapped[dict] = mapped_column(Json)
    bus: Mapped[int | None] = mapped_column(Integer)
    feeder: Mapped[int | None] = mapped_column(Integer)
    phase: Mapped[str | None] = mapped_column(String(1))
    confidence: Mapped[float | None] = mapped_column(Float)
    receptions: Mapped[int] = mapped_column(Integer, default=1, comment="identical copies received (alert repeats)")
    late: Mapped[bool] = mapped_column(Boolean, default=False, comment="accepted inside the replay window")


class Report(Base):
    """A scheduled report, reassembled from its segments (first counter = counter - seg_index)."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("hub_id", "key_epoch", "first_counter"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    hub_id: Mapped[int] = mapped_column(Uint32)
    key_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    first_counter: Mapped[int] = mapped_column(Integer)
    seg_count: Mapped[int] = mapped_column(Integer)
    received_mask: Mapped[int] = mapped_column(Integer, default=0)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    measurement_time_s: Mapped[int] = mapped_column(Uint32)
    slot: Mapped[int | None] = mapped_column(Uint32)
    readings: Mapped[list] = mapped_column(Json)
    first_arrival_utc: Mapped[datetime] = mapped_column(Time)
    completed_at: Mapped[datetime | None] = mapped_column(Time)


class Reading(Base):
    """One meter's V, I and power factor from a scheduled report (input of the theft analysis)."""

    __tablename__ = "readings"
    __table_args__ = (Index("ix_readings_hub_time", "hub_id", "measurement_time_s"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(Integer)
    substation_id: Mapped[str] = mapped_column(String(64))
    hub_id: Mapped[int] = mapped_column(Uint32)
    meter_id: Mapped[int | None] = mapped_column(Uint32, index=True)
    tan_index: Mapped[int] = mapped_column(Integer)
    measurement_time_s: Mapped[int] = mapped_column(Uint32)
    v_rms: Mapped[float] = mapped_column(Float)
    i_rms: Mapped[float] = mapped_column(Float)
    power_factor: Mapped[float] = mapped_column(Float)


class Rejection(Base):
    """A frame the semantic decode refused, and why."""

    __tablename__ = "rejections"
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    bundle_id: Mapped[str] = mapped_column(String(64), index=True)
    receiver_id: Mapped[str] = mapped_column(String(64))
    substation_id: Mapped[str] = mapped_column(String(64))
    hub_id: Mapped[int | None] = mapped_column(Uint32, index=True)
    counter: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(Time, default=utcnow)
