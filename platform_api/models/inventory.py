"""The Inventory: Remote Hubs and the meters (with their Subordinate Remotes) of their TANs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Json, Time, Uint32, utcnow


class Hub(Base):
    __tablename__ = "hubs"
    hub_id: Mapped[int] = mapped_column(Uint32, primary_key=True, autoincrement=False)
    substation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    key_hex: Mapped[str | None] = mapped_column(String(32), comment="AES-128 key (not forwarded)")
    # key life cycle and anti-replay window (docs/air-interface.md section 13)
    key_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0", comment="epoch of key_hex")
    next_key_hex: Mapped[str | None] = mapped_column(String(32), comment="installed, not yet used by the hub")
    prev_key_hex: Mapped[str | None] = mapped_column(String(32), comment="the key before key_hex (grace)")
    prev_key_until: Mapped[datetime | None] = mapped_column(Time, comment="end of the previous key's grace")
    prev_last_counter: Mapped[int | None] = mapped_column(Integer, comment="window of the previous epoch")
    prev_replay_bitmap: Mapped[int | None] = mapped_column(BigInteger)
    retired_keys: Mapped[list | None] = mapped_column(Json, comment="SHA-256 of keys the hub used before")
    mode: Mapped[str] = mapped_column(String(16), default="hub")
    own_meter_id: Mapped[int | None] = mapped_column(Uint32)
    transformer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    section_id: Mapped[str | None] = mapped_column(String(96), index=True)
    # where the Grid Map puts the hub (null: not on the map yet)
    map_bus: Mapped[int | None] = mapped_column(Integer)
    map_feeder: Mapped[int | None] = mapped_column(Integer)
    map_phase: Mapped[str | None] = mapped_column(String(1))
    map_source: Mapped[str | None] = mapped_column(String(16))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    # from its provisioning request
    hw_version: Mapped[int | None] = mapped_column(Integer)
    fw_version: Mapped[int | None] = mapped_column(Integer)
    capabilities: Mapped[int | None] = mapped_column(Integer)
    provision_requested_at: Mapped[datetime | None] = mapped_column(Time)
    # reception state
    first_seen_at: Mapped[datetime | None] = mapped_column(Time)
    last_seen_at: Mapped[datetime | None] = mapped_column(Time)
    last_counter: Mapped[int | None] = mapped_column(Integer, comment="highest accepted counter of this epoch")
    replay_bitmap: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default="0", comment="bit i: counter last_counter - i accepted"
    )
    last_bundle_id: Mapped[str | None] = mapped_column(String(64))
    heard_substation: Mapped[str | None] = mapped_column(String(64))
    heard_bus: Mapped[int | None] = mapped_column(Integer)
    heard_feeder: Mapped[int | None] = mapped_column(Integer)
    heard_phase: Mapped[str | None] = mapped_column(String(1))
    heard_confidence: Mapped[float | None] = mapped_column(Float)
    last_confirmed_at: Mapped[datetime | None] = mapped_column(Time, comment="last heard where the map says")
    last_report_at: Mapped[datetime | None] = mapped_column(Time)
    last_report_slot: Mapped[int | None] = mapped_column(Uint32)
    # evidence for a location other than the map's (change inference)
    cand_substation: Mapped[str | None] = mapped_column(String(64))
    cand_bus: Mapped[int | None] = mapped_column(Integer)
    cand_feeder: Mapped[int | None] = mapped_column(Integer)
    cand_phase: Mapped[str | None] = mapped_column(String(1))
    cand_confidence: Mapped[float | None] = mapped_column(Float)
    cand_observations: Mapped[int] = mapped_column(Integer, default=0)
    cand_since: Mapped[datetime | None] = mapped_column(Time)
    cand_evidence: Mapped[list | None] = mapped_column(Json)
    cand_event_id: Mapped[int | None] = mapped_column(Integer)
    tan_version: Mapped[int] = mapped_column(Integer, default=0, comment="bumped when TAN membership changes")
    status: Mapped[str] = mapped_column(String(16), default="inventory")
    created_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Time, default=utcnow)


class Meter(Base):
    """A meter and the Remote in it; ``hub_id`` + ``tan_index`` is its TAN membership."""

    __tablename__ = "meters"
    __table_args__ = (Index("ix_meters_hub_tan", "hub_id", "tan_index"),)
    meter_id: Mapped[int] = mapped_column(Uint32, primary_key=True, autoincrement=False)
    substation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    hub_id: Mapped[int | None] = mapped_column(Uint32)
    tan_index: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32), default="subordinate")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    paired_at: Mapped[datetime | None] = mapped_column(Time)
    unpaired_at: Mapped[datetime | None] = mapped_column(Time)
    unpair_reason: Mapped[str | None] = mapped_column(String(32))
    last_seen_at: Mapped[datetime | None] = mapped_column(Time)
    last_v_rms: Mapped[float | None] = mapped_column(Float)
    last_i_rms: Mapped[float | None] = mapped_column(Float)
    last_power_factor: Mapped[float | None] = mapped_column(Float)
    account: Mapped[str | None] = mapped_column(String(64), comment="customer account (theft alerts)")
    address: Mapped[str | None] = mapped_column(String(200), comment="premise address (theft alerts)")
    service_length_m: Mapped[float | None] = mapped_column(Float, comment="service line length (theft analysis)")
    source: Mapped[str] = mapped_column(String(16), default="import")
    created_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
