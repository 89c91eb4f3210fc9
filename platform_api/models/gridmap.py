"""The Grid Map: substation -> bus -> feeder -> (section) -> phase -> service transformer (TAN) -> meters.

Buses, feeders and phases are attributes; substations, feeder sections (laterals, the unit a
switch moves) and service transformers are rows. Where a hub and its meters sit is kept on the
hub (``map_*``, see :mod:`.inventory`), so the map is the join of these tables with the Inventory.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, IdType, Time, utcnow


class Substation(Base):
    __tablename__ = "substations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="import")
    created_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
    #: concentrator: last forward received from this substation's platform
    last_contact_at: Mapped[datetime | None] = mapped_column(Time)


class Feeder(Base):
    __tablename__ = "feeders"
    __table_args__ = (UniqueConstraint("substation_id", "feeder"),)
    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    substation_id: Mapped[str] = mapped_column(String(64), index=True)
    bus: Mapped[int] = mapped_column(Integer)
    feeder: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16), default="import")


class Section(Base):
    """A feeder section (lateral): the hubs a switch moves together."""

    __tablename__ = "sections"
    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    substation_id: Mapped[str] = mapped_column(String(64), index=True)
    normal_feeder: Mapped[int] = mapped_column(Integer)
    lateral: Mapped[int] = mapped_column("lateral_no", Integer)  # "lateral" is reserved in PostgreSQL
    bus: Mapped[int] = mapped_column(Integer)
    feeder: Mapped[int] = mapped_column(Integer, comment="feeder currently supplying the section")
    energized: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(Time, default=utcnow)


class Transformer(Base):
    """A service transformer; each phase of it with a Remote Hub is one TAN."""

    __tablename__ = "transformers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    substation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    section_id: Mapped[str | None] = mapped_column(String(96), index=True)
    bus: Mapped[int | None] = mapped_column(Integer)
    feeder: Mapped[int | None] = mapped_column(Integer)
    phases: Mapped[str | None] = mapped_column(String(3))
    name: Mapped[str | None] = mapped_column(String(200))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    topology: Mapped[str | None] = mapped_column(
        String(8), comment="radial | bus | feeder (theft analysis; null: radial)"
    )
    source: Mapped[str] = mapped_column(String(16), default="import")
    updated_at: Mapped[datetime] = mapped_column(Time, default=utcnow)
