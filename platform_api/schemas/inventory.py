"""Inventory, Grid Map and history as the API shows them."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from .common import Ident, KeyHex, Lat, Lon, Mode, Phase, Small


class MapPlace(BaseModel):
    bus: Optional[int]
    feeder: Optional[int]
    phase: Optional[str]
    source: Optional[str] = Field(default=None, description="import | inference | operator | forward")


class Heard(BaseModel):
    substation_id: Optional[str]
    bus: Optional[int]
    feeder: Optional[int]
    phase: Optional[str]
    confidence: Optional[float]


class Candidate(Heard):
    observations: int
    since: Optional[str]
    event_id: Optional[int]


class MeterOut(BaseModel):
    meter_id: int
    substation_id: Optional[str]
    hub_id: Optional[int] = Field(description="the hub whose TAN the meter belongs to")
    tan_index: Optional[int]
    role: str = Field(description="hub | subordinate | spare_hub | proxy_hub | subordinate_other_phase")
    active: bool = Field(description="false after a pairing loss")
    lat: Optional[float]
    lon: Optional[float]
    paired_at: Optional[str]
    unpaired_at: Optional[str]
    unpair_reason: Optional[str]
    last_seen_at: Optional[str]
    last_v_rms: Optional[float]
    last_i_rms: Optional[float]
    last_power_factor: Optional[float]
    account: Optional[str] = Field(default=None, description="customer account (theft alerts)")
    address: Optional[str] = Field(default=None, description="premise address (theft alerts)")
    service_length_m: Optional[float] = Field(default=None, description="service line length (theft analysis)")
    source: str


class HubOut(BaseModel):
    hub_id: int
    substation_id: Optional[str]
    has_key: bool
    mode: str
    status: str = Field(description="inventory (never heard) | new | active | silent")
    own_meter_id: Optional[int]
    transformer_id: Optional[str]
    section_id: Optional[str]
    map: Optional[MapPlace] = Field(description="where the Grid Map puts the hub (null: not on the map)")
    heard: Optional[Heard] = Field(description="where the last bundle was inferred to come from")
    lat: Optional[float]
    lon: Optional[float]
    hw_version: Optional[int]
    fw_version: Optional[int]
    capabilities: Optional[int]
    first_seen_at: Optional[str]
    last_seen_at: Optional[str]
    last_counter: Optional[int]
    last_report_at: Optional[str]
    last_report_slot: Optional[int]
    candidate: Optional[Candidate] = Field(description="evidence for another location, not yet acted on")
    updated_at: Optional[str]
    tan: Optional[list[MeterOut]] = Field(default=None, description="the meters of the hub's TAN")


class HubPut(BaseModel):
    """Operator entry or correction of one hub (recorded with cause ``operator``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "key_hex": "000102030405060708090a0b0c0d0e0f", "substation_id": "sub-1", "bus": 0, "feeder": 2, "phase": "B"}})
    key_hex: Optional[KeyHex] = None
    substation_id: Optional[Ident] = None
    bus: Optional[Small] = None
    feeder: Optional[Small] = None
    phase: Optional[Phase] = None
    transformer_id: Optional[Ident] = None
    mode: Optional[Mode] = None
    lat: Optional[Lat] = None
    lon: Optional[Lon] = None


class HistoryOut(BaseModel):
    id: int
    at: str
    substation_id: Optional[str]
    entity: str = Field(description="hub | meter | transformer | section | feeder | substation | policy | plan")
    entity_id: str
    field: str
    old: Any
    new: Any
    cause: str = Field(description="import | inference | pairing | pairing_loss | provisioning_request | "
                                   "provisioning | operator | forward")
    event_id: Optional[int]
    evidence: list[str] = Field(description="bundle ids, or import:<id>, forward:<origin>:<item>")


class SubstationOut(BaseModel):
    substation_id: str
    name: Optional[str]
    lat: Optional[float]
    lon: Optional[float]
    source: str
    hubs: int
    hubs_on_map: int
    data_time: Optional[str] = Field(description="latest arrival time of a bundle (the data clock)")
    last_contact_at: Optional[str] = Field(description="concentrator: last forward from its platform")


class SectionOut(BaseModel):
    section_id: str
    substation_id: str
    normal_feeder: int
    lateral: int
    bus: int
    feeder: int
    energized: bool
    switched: bool
    updated_at: Optional[str]


class ImportCounts(BaseModel):
    import_id: int
    format: str
    substation_id: Optional[str]
    sha256: str
    counts: dict[str, int]


class ImportRunOut(ImportCounts):
    at: str
    note: Optional[str]
