"""Inventory, Grid Map and history as the API shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .common import Ident, KeyHex, Lat, Lon, Mode, Phase, Small


class MapPlace(BaseModel):
    bus: int | None
    feeder: int | None
    phase: str | None
    source: str | None = Field(default=None, description="import | inference | operator | forward")


class Heard(BaseModel):
    substation_id: str | None
    bus: int | None
    feeder: int | None
    phase: str | None
    confidence: float | None


class Candidate(Heard):
    observations: int
    since: str | None
    event_id: int | None


class MeterOut(BaseModel):
    meter_id: int
    substation_id: str | None
    hub_id: int | None = Field(description="the hub whose TAN the meter belongs to")
    tan_index: int | None
    role: str = Field(description="hub | subordinate | spare_hub | proxy_hub | subordinate_other_phase")
    active: bool = Field(description="false after a pairing loss")
    lat: float | None
    lon: float | None
    paired_at: str | None
    unpaired_at: str | None
    unpair_reason: str | None
    last_seen_at: str | None
    last_v_rms: float | None
    last_i_rms: float | None
    last_power_factor: float | None
    account: str | None = Field(default=None, description="customer account (theft alerts)")
    address: str | None = Field(default=None, description="premise address (theft alerts)")
    service_length_m: float | None = Field(default=None, description="service line length (theft analysis)")
    source: str


class HubOut(BaseModel):
    hub_id: int
    substation_id: str | None
    has_key: bool
    mode: str
    status: str = Field(description="inventory (never heard) | new | active | silent")
    own_meter_id: int | None
    transformer_id: str | None
    section_id: str | None
    map: MapPlace | None = Field(description="where the Grid Map puts the hub (null: not on the map)")
    heard: Heard | None = Field(description="where the last bundle was inferred to come from")
    lat: float | None
    lon: float | None
    hw_version: int | None
    fw_version: int | None
    capabilities: int | None
    first_seen_at: str | None
    last_seen_at: str | None
    last_counter: int | None = Field(description="highest counter accepted under the current key")
    key_epoch: int = Field(description="epoch of the current key: 0 for the first, +1 at each rotation")
    has_next_key: bool = Field(description="a next key is installed and the hub has not used it yet")
    previous_key_until: str | None = Field(description="end of the previous key's grace (after a rotation)")
    last_report_at: str | None
    last_report_slot: int | None
    candidate: Candidate | None = Field(description="evidence for another location, not yet acted on")
    updated_at: str | None
    tan: list[MeterOut] | None = Field(default=None, description="the meters of the hub's TAN")


class HubPut(BaseModel):
    """Operator entry or correction of one hub (recorded with cause ``operator``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "key_hex": "000102030405060708090a0b0c0d0e0f",
                "substation_id": "sub-1",
                "bus": 0,
                "feeder": 2,
                "phase": "B",
            }
        },
    )
    key_hex: KeyHex | None = None
    substation_id: Ident | None = None
    bus: Small | None = None
    feeder: Small | None = None
    phase: Phase | None = None
    transformer_id: Ident | None = None
    mode: Mode | None = None
    lat: Lat | None = None
    lon: Lon | None = None


class HistoryOut(BaseModel):
    id: int
    at: str
    substation_id: str | None
    entity: str = Field(description="hub | meter | transformer | section | feeder | substation | policy | plan")
    entity_id: str
    field: str
    old: Any
    new: Any
    cause: str = Field(
        description="import | inference | pairing | pairing_loss | provisioning_request | "
        "provisioning | operator | forward"
    )
    event_id: int | None
    evidence: list[str] = Field(description="bundle ids, or import:<id>, forward:<origin>:<item>")


class SubstationOut(BaseModel):
    substation_id: str
    name: str | None
    lat: float | None
    lon: float | None
    source: str
    hubs: int
    hubs_on_map: int
    data_time: str | None = Field(description="latest arrival time of a bundle (the data clock)")
    last_contact_at: str | None = Field(description="concentrator: last forward from its platform")


class SectionOut(BaseModel):
    section_id: str
    substation_id: str
    normal_feeder: int
    lateral: int
    bus: int
    feeder: int
    energized: bool
    switched: bool
    updated_at: str | None


class ImportCounts(BaseModel):
    import_id: int
    format: str
    substation_id: str | None
    sha256: str
    counts: dict[str, int]


class ImportRunOut(ImportCounts):
    at: str
    note: str | None


class NextKeyPut(BaseModel):
    """The key a hub will switch to (docs/air-interface.md section 13, key life cycle)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"key_hex": "f0e1d2c3b4a5968778695a4b3c2d1e0f"}}
    )
    key_hex: KeyHex = Field(description="AES-128 key, 32 hex digits; never one the hub used before")


class KeyStateOut(BaseModel):
    """A hub's key life cycle; keys themselves are never returned."""

    hub_id: int
    key_epoch: int = Field(description="epoch of the current key")
    has_key: bool
    has_next_key: bool
    previous_key_until: str | None = Field(description="end of the previous key's grace, if any")
    last_counter: int | None = Field(description="highest counter accepted under the current key")
