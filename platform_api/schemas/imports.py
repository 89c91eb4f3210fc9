"""Import formats of the Inventory and Grid Map (see platform_api/README.md for the CSV form)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import U32, Ident, KeyHex, Lat, Lon, Mode, Phase, Role, Small, TanIndex, Text


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeederIn(_In):
    feeder: Small = Field(description="feeder number within the substation (as the receiver's CT map names it)")
    bus: Small = 0
    name: Text | None = None


class SubstationIn(_In):
    substation_id: Ident
    name: Text | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    feeders: list[FeederIn] = Field(default_factory=list, max_length=1000)


class TransformerIn(_In):
    transformer_id: Ident
    substation_id: Ident | None = None
    bus: Small | None = None
    feeder: Small | None = None
    lateral: Small | None = Field(default=None, description="feeder section (lateral) number within the feeder")
    phases: str | None = Field(default=None, pattern=r"^[ABC]{1,3}$")
    name: Text | None = None
    lat: Lat | None = None
    lon: Lon | None = None
    topology: Literal["radial", "bus", "feeder"] | None = Field(
        default=None,
        description="low-voltage network for the theft analysis: radial (each meter on its own "
        "service drop; the default), bus (meters along one secondary), feeder (any tree, "
        "three phases with a shared neutral)",
    )


class MeterIn(_In):
    meter_id: U32
    tan_index: TanIndex | None = Field(default=None, description="0 = the hub's own meter")
    role: Role = "subordinate"
    lat: Lat | None = None
    lon: Lon | None = None
    account: Text | None = Field(default=None, max_length=64, description="customer account (theft alerts)")
    address: Text | None = Field(default=None, description="premise address (theft alerts)")
    service_length_m: float | None = Field(
        default=None, gt=0, le=10_000, description="service line length, metres (theft analysis)"
    )


class HubIn(_In):
    """A Remote Hub; without ``feeder`` it enters the Inventory only (e.g. a key list)."""

    hub_id: U32
    key_hex: KeyHex | None = None
    substation_id: Ident | None = None
    bus: Small | None = None
    feeder: Small | None = None
    lateral: Small | None = None
    phase: Phase | None = None
    transformer_id: Ident | None = None
    mode: Mode = "hub"
    lat: Lat | None = None
    lon: Lon | None = None
    meters: list[MeterIn] = Field(default_factory=list, max_length=255)


# the example of the GridModel schema, also shown by the Grid Map's import route
GRIDMODEL_EXAMPLE: dict[str, Any] = {
    "format": "gla-gridmodel/1",
    "substations": [
        {
            "substation_id": "sub-1",
            "name": "Elm Street",
            "lat": 37.54,
            "lon": -77.43,
            "feeders": [{"feeder": 0, "bus": 0, "name": "F0"}, {"feeder": 1, "bus": 0, "name": "F1"}],
        }
    ],
    "transformers": [
        {
            "transformer_id": "T-100",
            "substation_id": "sub-1",
            "bus": 0,
            "feeder": 1,
            "lateral": 2,
            "phases": "A",
            "lat": 37.55,
            "lon": -77.44,
        }
    ],
    "hubs": [
        {
            "hub_id": 12648430,
            "key_hex": "000102030405060708090a0b0c0d0e0f",
            "substation_id": "sub-1",
            "bus": 0,
            "feeder": 1,
            "lateral": 2,
            "phase": "A",
            "transformer_id": "T-100",
            "meters": [
                {"meter_id": 50001, "tan_index": 0, "role": "hub"},
                {"meter_id": 50002, "tan_index": 1, "role": "subordinate", "lat": 37.5501, "lon": -77.4402},
            ],
        }
    ],
}


class GridModel(_In):
    """A utility's existing model (LNM/PNM extract) or a key list."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": GRIDMODEL_EXAMPLE})
    format: Literal["gla-gridmodel/1"] = "gla-gridmodel/1"
    substations: list[SubstationIn] = Field(default_factory=list, max_length=10_000)
    transformers: list[TransformerIn] = Field(default_factory=list, max_length=500_000)
    hubs: list[HubIn] = Field(default_factory=list, max_length=500_000)


class SimHub(BaseModel):
    """A hub as the simulator's ground truth lists it (``capture.hubs``)."""

    model_config = ConfigDict(extra="ignore")
    hub_id: U32
    key_hex: KeyHex
    bus: Small
    feeder: Small
    phase: Phase
    lateral: Small = 0
    transformer_id: U32
    meter_ids: list[U32] = Field(min_length=1, max_length=255)
    is_new: bool = False


class SimCapture(BaseModel):
    model_config = ConfigDict(extra="ignore")
    hubs: list[SimHub] = Field(max_length=500_000)


class SimulatorTruth(BaseModel):
    """``gla simulate``'s ``STEM.truth.json`` (only ``capture.hubs`` is read)."""

    model_config = ConfigDict(extra="ignore")
    capture: SimCapture


class ImportResult(BaseModel):
    import_id: int
    format: str
    substation_id: str | None
    sha256: str
    counts: dict[str, int]
