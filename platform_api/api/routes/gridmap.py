"""The Grid Map: tree, GeoJSON, CSV, and its import from a utility's model or the simulator."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ...core import csvsafe, strictjson
from ...models import ImportRun, Section
from ...schemas.imports import GRIDMODEL_EXAMPLE, GridModel, SimulatorTruth
from ...schemas.inventory import ImportCounts, ImportRunOut, SectionOut
from ...services import imports
from ...services.clock import iso
from ...services.inventory import section_dict
from ...services.publishing import events_csv, geojson, gridmap_csv, gridmap_tree, history_csv, hubs_csv
from ...services.redecode import redecode_unknown_hub
from ..deps import DB, PF, Limit, Offset, SubQ, invalid, require_admin
from ..strict_route import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute, tags=["gridmap"])
FeatureKind = Literal["substation", "transformer", "meter"]
ALL_KINDS: list[FeatureKind] = ["substation", "transformer", "meter"]
SubParam = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=r"^[A-Za-z0-9._:/@-]+$",
        description="substation the imported rows belong to when they do not say "
        "(default: the platform's GLA_SUBSTATION_ID)",
    ),
]

SIM_EXAMPLE = {
    "capture": {
        "hubs": [
            {
                "index": 0,
                "hub_id": 1654094957,
                "key_hex": "f22f459a230ca454bd1f1de311fff45f",
                "bus": 0,
                "feeder": 3,
                "phase": "A",
                "lateral": 0,
                "transformer_id": 100000,
                "meter_ids": [27018795, 29732184],
                "is_new": False,
            }
        ]
    },
    "transmissions": [],
}


@router.get(
    "/api/v1/gridmap",
    summary="The Grid Map as a tree",
    response_description="substation -> bus -> feeder -> phase -> TAN (service transformer) -> meters",
)
def get_gridmap(s: DB, substation_id: SubQ = None, include_inactive: bool = False) -> dict[str, Any]:
    """`substations[].buses[].feeders[].phases[].tans[].meters[]`, plus the feeder sections with
    their switch and energized state, and the hubs that are in the Inventory but not (yet) placed
    on the map. At the concentrator this is the utility-wide map."""
    return gridmap_tree(s, substation_id, include_inactive)


@router.get(
    "/api/v1/gridmap.geojson",
    summary="The Grid Map as GeoJSON for GIS",
    responses={200: {"content": {"application/geo+json": {}}}},
)
def get_geojson(
    s: DB,
    substation_id: SubQ = None,
    kinds: Annotated[list[FeatureKind], Query()] = ALL_KINDS,  # noqa: B006  (FastAPI copies defaults)
    include_unlocated: Annotated[bool, Query(description="also features without coordinates (geometry null)")] = False,
):
    """Points for substations, service transformers and meters with their electrical place
    (feeder, phase, section, TAN) as properties. Coordinates come from the imported model; a
    meter without its own takes its transformer's (`location_source`)."""
    data = geojson(s, substation_id, kinds, include_unlocated)
    return PlainTextResponse(json.dumps(data, separators=(",", ":")), media_type="application/geo+json")


@router.get(
    "/api/v1/gridmap/sections",
    response_model=list[SectionOut],
    summary="Feeder sections (laterals): where they are switched, whether energized",
)
def sections(s: DB, substation_id: SubQ = None) -> list[dict]:
    q = select(Section)
    if substation_id:
        q = q.where(Section.substation_id == substation_id)
    return [section_dict(x) for x in s.scalars(q.order_by(Section.id)).all()]


def _run_import(pf, model: GridModel, fmt: str, digest: str, sub: str) -> dict:
    try:
        with pf.db.write() as s:
            out = imports.apply(s, pf, model, fmt=fmt, sha256=digest, default_sub=sub)
    except imports.ImportProblem as e:
        raise invalid(e.loc, e.msg) from None
    # frames that arrived before their hub's key are decoded now (services/redecode.py)
    again = sum(redecode_unknown_hub(pf).values())
    if again:
        out["counts"] = {**out["counts"], "decoded_again": again}
    return out


@router.post(
    "/api/v1/import/json",
    response_model=ImportCounts,
    dependencies=[Depends(require_admin)],
    summary="Import the Inventory / Grid Map from JSON (GridModel or the simulator's truth)",
    responses={401: {"description": "admin token required"}, 422: {"description": "names the bad field"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/GridModel"},
                            {"$ref": "#/components/schemas/SimulatorTruth"},
                        ]
                    },
                    "examples": {
                        "gridmodel": {
                            "summary": "a utility model",
                            "value": GRIDMODEL_EXAMPLE,
                        },
                        "simulator": {"summary": "gla simulate's STEM.truth.json", "value": SIM_EXAMPLE},
                    },
                }
            },
        }
    },
)
async def import_json(
    request: Request,
    pf: PF,
    substation_id: SubParam = None,
    new_hubs_in_map: Annotated[bool, Query(description="simulator: also place hubs marked is_new")] = False,
):
    """Two forms are accepted:

    - **GridModel** (`format: gla-gridmodel/1`): substations with feeders, transformers (with the
      feeder section = lateral), hubs with keys, location and TAN meters. A hub without `feeder`
      enters the Inventory only (e.g. a manufacturer's key list).
    - **Simulator truth** (`{"capture": {"hubs": [...]}}`): the hubs of `gla simulate` with their
      keys; hubs marked `is_new` enter the Inventory but not the map, so the platform discovers them.

    Upserts; every change is kept in the history with evidence `import:<id>`."""
    raw = await request.body()
    try:
        data = strictjson.loads(raw)  # no NaN, no key given twice
    except strictjson.Refused as e:
        raise invalid(list(e.loc), e.msg) from None
    sub = substation_id or pf.settings.substation_id
    try:
        if isinstance(data, dict) and "capture" in data:
            model = imports.from_simulator(SimulatorTruth.model_validate(data), sub, new_hubs_in_map)
            fmt = "simulator"
        else:
            model = GridModel.model_validate(data)
            fmt = "gridmodel"
    except ValidationError as e:
        err = e.errors()[0]
        raise invalid(["body"] + list(err["loc"]), err["msg"]) from None
    return await run_in_threadpool(_run_import, pf, model, fmt, imports.sha(raw), sub)


CSV_EXAMPLE = (
    "substation_id,bus,feeder,lateral,phase,transformer_id,transformer_lat,transformer_lon,hub_id,"
    "hub_key_hex,meter_id,tan_index,role,meter_lat,meter_lon\n"
    "sub-1,0,1,2,A,T-100,37.55,-77.44,12648430,000102030405060708090a0b0c0d0e0f,50001,0,hub,,\n"
    "sub-1,0,1,2,A,T-100,37.55,-77.44,12648430,,50002,1,subordinate,37.5501,-77.4402\n"
)


@router.post(
    "/api/v1/import/csv",
    response_model=ImportCounts,
    dependencies=[Depends(require_admin)],
    summary="Import the Inventory / Grid Map from CSV (one row per meter)",
    responses={401: {"description": "admin token required"}, 422: {"description": "names line and column"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}},
        }
    },
)
async def import_csv(request: Request, pf: PF, substation_id: SubParam = None):
    """Columns (header row; any subset with `hub_id`): `substation_id, bus, feeder, lateral, phase,
    transformer_id, transformer_lat, transformer_lon, hub_id, hub_key_hex, hub_mode, meter_id,
    tan_index, role, meter_lat, meter_lon`. Rows of one hub must agree on the hub's columns. The
    export `GET /api/v1/export/gridmap.csv` writes the same columns (without keys)."""
    raw = await request.body()
    try:
        text = csvsafe.decode(raw)
    except csvsafe.CsvProblem as e:
        raise invalid(e.loc, e.msg) from None
    sub = substation_id or pf.settings.substation_id
    try:
        model = imports.from_csv(text, sub)
    except imports.ImportProblem as e:
        raise invalid(e.loc, e.msg) from None
    return await run_in_threadpool(_run_import, pf, model, "csv", imports.sha(raw), sub)


@router.get("/api/v1/imports", response_model=list[ImportRunOut], summary="Imports done so far")
def list_imports(s: DB, limit: Limit = 100, offset: Offset = 0) -> list[dict]:
    rows = s.scalars(select(ImportRun).order_by(ImportRun.id.desc()).offset(offset).limit(limit)).all()
    return [
        {
            "import_id": r.id,
            "format": r.format,
            "substation_id": r.substation_id,
            "sha256": r.sha256,
            "counts": r.counts,
            "at": iso(r.at),
            "note": r.note,
        }
        for r in rows
    ]


CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}},
    401: {"description": "admin token required: the exports carry customer data (accounts, addresses)"},
}


@router.get(
    "/api/v1/export/gridmap.csv",
    tags=["publishing"],
    dependencies=[Depends(require_admin)],
    summary="The Grid Map as CSV (one row per meter)",
    responses=CSV,
    response_class=PlainTextResponse,
)
def export_gridmap(s: DB, substation_id: SubQ = None):
    return PlainTextResponse(gridmap_csv(s, substation_id), media_type="text/csv")


@router.get(
    "/api/v1/export/hubs.csv",
    tags=["publishing"],
    dependencies=[Depends(require_admin)],
    summary="The hubs as CSV",
    responses=CSV,
    response_class=PlainTextResponse,
)
def export_hubs(s: DB, substation_id: SubQ = None):
    return PlainTextResponse(hubs_csv(s, substation_id), media_type="text/csv")


@router.get(
    "/api/v1/export/events.csv",
    tags=["publishing"],
    dependencies=[Depends(require_admin)],
    summary="The events as CSV",
    responses=CSV,
    response_class=PlainTextResponse,
)
def export_events(s: DB, substation_id: SubQ = None):
    return PlainTextResponse(events_csv(s, substation_id), media_type="text/csv")


@router.get(
    "/api/v1/export/history.csv",
    tags=["publishing"],
    dependencies=[Depends(require_admin)],
    summary="The change history as CSV",
    responses=CSV,
    response_class=PlainTextResponse,
)
def export_history(s: DB):
    return PlainTextResponse(history_csv(s), media_type="text/csv")
