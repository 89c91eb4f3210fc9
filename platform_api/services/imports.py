"""Import of a utility's model (JSON GridModel or CSV) or of the simulator's ground truth.

Everything becomes a :class:`GridModel` first, then one transaction upserts substations, feeders,
feeder sections, transformers, hubs (with keys) and meters. New rows get one ``created`` history
row each, changed attributes one row per attribute; the evidence is ``import:<id>``. Keys are
never written to the history (only that one was set or changed).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.csvsafe import CsvProblem, records, restore
from ..models import Feeder, History, Hub, ImportRun, Meter, Section, Substation, Transformer
from ..schemas.imports import GridModel, HubIn, MeterIn, SimulatorTruth, TransformerIn
from . import antireplay
from .changes import bump_tan, change, mark_hub_dirty, record
from .clock import utcnow
from .context import Platform
from .inventory import section_key


class ImportProblem(ValueError):
    def __init__(self, loc: list, msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def from_simulator(truth: SimulatorTruth, substation_id: str, new_hubs_in_map: bool = False) -> GridModel:
    """The simulator's hubs as a GridModel: transformer ``str(transformer_id)``, section = lateral of
    the feeder, meter ``meter_ids[i]`` at TAN index i (0 = the hub's own). Hubs marked ``is_new``
    enter the Inventory with their key but not the Grid Map (unless ``new_hubs_in_map``), so the
    platform has something to discover."""
    hubs, trs = [], {}
    for h in truth.capture.hubs:
        on_map = new_hubs_in_map or not h.is_new
        tid = str(h.transformer_id)
        if on_map:
            trs[tid] = TransformerIn(
                transformer_id=tid,
                substation_id=substation_id,
                bus=h.bus,
                feeder=h.feeder,
                lateral=h.lateral,
                phases=h.phase,
            )
        meters = [
            MeterIn(meter_id=m, tan_index=i, role="hub" if i == 0 else "subordinate") for i, m in enumerate(h.meter_ids)
        ]
        hubs.append(
            HubIn(
                hub_id=h.hub_id,
                key_hex=h.key_hex,
                substation_id=substation_id,
                bus=h.bus if on_map else None,
                feeder=h.feeder if on_map else None,
                lateral=h.lateral if on_map else None,
                phase=h.phase if on_map else None,
                transformer_id=tid if on_map else None,
                meters=meters if on_map else meters[:1],
            )
        )
    return GridModel(hubs=hubs, transformers=list(trs.values()))


CSV_COLUMNS = [
    "substation_id",
    "bus",
    "feeder",
    "lateral",
    "phase",
    "transformer_id",
    "transformer_lat",
    "transformer_lon",
    "transformer_topology",
    "hub_id",
    "hub_key_hex",
    "hub_mode",
    "meter_id",
    "tan_index",
    "role",
    "meter_lat",
    "meter_lon",
    "meter_account",
    "meter_address",
    "service_length_m",
]


def from_csv(text: str, substation_id: str) -> GridModel:
    """One row per meter (see README); ``hub_id`` is required, the rest optional. Every row has
    the header's number of fields (422 naming the line otherwise)."""
    try:
        return _from_csv(text)
    except CsvProblem as e:
        raise ImportProblem(e.loc, e.msg) from None


def _from_csv(text: str) -> GridModel:
    rd = records(text)
    fieldnames = next((row for _, row in rd if row), None)  # blank lines before the header skipped
    if fieldnames is None or "hub_id" not in [f.strip() for f in fieldnames]:
        raise ImportProblem(["body", "header"], "the CSV header must name at least the column hub_id")
    unknown = [f for f in fieldnames if f.strip() not in CSV_COLUMNS + ["section_id", "active", "last_seen_at"]]
    if unknown:
        raise ImportProblem(["body", "header"], f"unknown columns {unknown}; known: {CSV_COLUMNS}")
    names = [f.strip() for f in fieldnames]
    hubs: dict[int, dict] = {}
    trs: dict[str, dict] = {}
    for n, fields in rd:
        if not fields:
            continue  # a blank line
        loc = ["body", f"line {n}"]
        if len(fields) != len(names):
            raise ImportProblem(loc, f"{len(fields)} fields, the header has {len(names)}")
        row = {k: restore(v.strip()) for k, v in zip(names, fields) if k}
        row = {k: v for k, v in row.items() if v}
        try:
            hub_id = int(row["hub_id"])
        except (KeyError, ValueError):
            raise ImportProblem(loc + ["hub_id"], "hub_id must be an integer") from None
        h = hubs.setdefault(hub_id, {"hub_id": hub_id, "meters": []})
        for src, dst in (
            ("substation_id", "substation_id"),
            ("bus", "bus"),
            ("feeder", "feeder"),
            ("lateral", "lateral"),
            ("phase", "phase"),
            ("transformer_id", "transformer_id"),
            ("hub_key_hex", "key_hex"),
            ("hub_mode", "mode"),
        ):
            if src in row:
                if dst in h and h[dst] != row[src]:
                    raise ImportProblem(
                        loc + [src], f"{src} {row[src]!r} contradicts {h[dst]!r} on an earlier line of hub {hub_id}"
                    )
                h[dst] = row[src]
        if "meter_id" in row:
            m = {"meter_id": row["meter_id"]}
            for src, dst in (
                ("tan_index", "tan_index"),
                ("role", "role"),
                ("meter_lat", "lat"),
                ("meter_lon", "lon"),
                ("meter_account", "account"),
                ("meter_address", "address"),
                ("service_length_m", "service_length_m"),
            ):
                if src in row:
                    m[dst] = row[src]
            h["meters"].append(m)
        tid = row.get("transformer_id")
        if tid and (
            "transformer_lat" in row or "transformer_lon" in row or "feeder" in row or "transformer_topology" in row
        ):
            t = trs.setdefault(tid, {"transformer_id": tid})
            for src, dst in (
                ("transformer_lat", "lat"),
                ("transformer_lon", "lon"),
                ("substation_id", "substation_id"),
                ("bus", "bus"),
                ("feeder", "feeder"),
                ("lateral", "lateral"),
                ("transformer_topology", "topology"),
            ):
                if src in row:
                    t[dst] = row[src]
    try:
        return GridModel.model_validate({"hubs": list(hubs.values()), "transformers": list(trs.values())})
    except ValidationError as e:
        err = e.errors()[0]
        raise ImportProblem(["body"] + list(err["loc"]), err["msg"]) from None


def _check(model: GridModel, default_sub: str) -> None:
    seen_meters: dict[int, tuple] = {}
    seen_hubs: dict[int, int] = {}
    for i, h in enumerate(model.hubs):
        if h.hub_id in seen_hubs:
            raise ImportProblem(
                ["body", "hubs", i, "hub_id"], f"hub {h.hub_id} listed twice (also hubs[{seen_hubs[h.hub_id]}])"
            )
        seen_hubs[h.hub_id] = i
        if h.feeder is not None and h.phase is None:
            raise ImportProblem(["body", "hubs", i, "phase"], "a hub placed on a feeder needs its phase")
        if h.phase is not None and h.feeder is None:
            raise ImportProblem(["body", "hubs", i, "feeder"], "a hub with a phase needs its feeder")
        idx: set[int] = set()
        for j, m in enumerate(h.meters):
            if m.meter_id in seen_meters:
                raise ImportProblem(
                    ["body", "hubs", i, "meters", j, "meter_id"],
                    f"meter {m.meter_id} is already in the TAN of hub {seen_meters[m.meter_id][0]}",
                )
            seen_meters[m.meter_id] = (h.hub_id,)
            if m.tan_index is not None:
                if m.tan_index in idx:
                    raise ImportProblem(
                        ["body", "hubs", i, "meters", j, "tan_index"],
                        f"TAN index {m.tan_index} used twice in hub {h.hub_id}",
                    )
                idx.add(m.tan_index)


def apply(
    s: Session, pf: Platform, model: GridModel, *, fmt: str, sha256: str, default_sub: str, note: str | None = None
) -> dict:
    _check(model, default_sub)
    now = utcnow()
    run = ImportRun(at=now, format=fmt, substation_id=default_sub, sha256=sha256, counts={}, note=note)
    s.add(run)
    s.flush()
    ev = [f"import:{run.id}"]
    counts = {
        "substations": 0,
        "feeders": 0,
        "sections": 0,
        "transformers": 0,
        "hubs_created": 0,
        "hubs_updated": 0,
        "meters_created": 0,
        "meters_updated": 0,
        "history": 0,
    }

    subs = {x.id: x for x in s.scalars(select(Substation)).all()}

    def sub_row(sid: str) -> Substation:
        if sid not in subs:
            subs[sid] = Substation(id=sid, source="import", created_at=now)
            s.add(subs[sid])
            record(
                s,
                entity="substation",
                entity_id=sid,
                field="created",
                old=None,
                new={"source": "import"},
                cause="import",
                evidence=ev,
                substation_id=sid,
            )
            counts["substations"] += 1
        pf.known_substations.add(sid)
        return subs[sid]

    feeders = {(f.substation_id, f.feeder): f for f in s.scalars(select(Feeder)).all()}

    def feeder_row(sid: str, bus: int, feeder: int, name: str | None = None) -> None:
        f = feeders.get((sid, feeder))
        if f is None:
            f = Feeder(substation_id=sid, bus=bus, feeder=feeder, name=name, source="import")
            s.add(f)
            feeders[(sid, feeder)] = f
            counts["feeders"] += 1
        else:
            if name:
                f.name = name
            change(
                s,
                f,
                "bus",
                bus,
                entity="feeder",
                entity_id=f"{sid}/f{feeder}",
                cause="import",
                evidence=ev,
                substation_id=sid,
            )

    sections = {x.id: x for x in s.scalars(select(Section)).all()}

    def section_row(sid: str, bus: int, feeder: int, lateral: int | None) -> str | None:
        if lateral is None:
            return None
        key = section_key(sid, feeder, lateral)
        if key not in sections:
            sections[key] = Section(
                id=key,
                substation_id=sid,
                normal_feeder=feeder,
                lateral=lateral,
                bus=bus,
                feeder=feeder,
                energized=True,
                updated_at=now,
            )
            s.add(sections[key])
            counts["sections"] += 1
        return key

    for x in model.substations:
        row = sub_row(x.substation_id)
        for f in ("name", "lat", "lon"):
            change(
                s,
                row,
                f,
                getattr(x, f),
                entity="substation",
                entity_id=x.substation_id,
                cause="import",
                evidence=ev,
                substation_id=x.substation_id,
            )
        for fd in x.feeders:
            feeder_row(x.substation_id, fd.bus, fd.feeder, fd.name)

    trs = {
        t.id: t
        for t in s.scalars(
            select(Transformer).where(Transformer.id.in_([t.transformer_id for t in model.transformers] or ["-"]))
        ).all()
    }
    for t in model.transformers:
        sid = t.substation_id or default_sub
        sub_row(sid)
        bus = t.bus if t.bus is not None else 0
        sec = section_row(sid, bus, t.feeder, t.lateral) if t.feeder is not None else None
        if t.feeder is not None:
            feeder_row(sid, bus, t.feeder)
        tr_row = trs.get(t.transformer_id)
        tr_vals = {
            "substation_id": sid,
            "section_id": sec,
            "bus": bus if t.feeder is not None else t.bus,
            "feeder": t.feeder,
            "phases": t.phases,
            "name": t.name,
            "lat": t.lat,
            "lon": t.lon,
            "topology": t.topology,
        }
        if tr_row is None:
            tr_row = Transformer(id=t.transformer_id, source="import", updated_at=now, **tr_vals)
            s.add(tr_row)
            trs[t.transformer_id] = tr_row
            record(
                s,
                entity="transformer",
                entity_id=t.transformer_id,
                field="created",
                old=None,
                new=tr_vals,
                cause="import",
                evidence=ev,
                substation_id=sid,
            )
            counts["transformers"] += 1
        else:
            for f, v in tr_vals.items():
                if v is not None or f in ("section_id",):
                    change(
                        s,
                        tr_row,
                        f,
                        v,
                        entity="transformer",
                        entity_id=tr_row.id,
                        cause="import",
                        evidence=ev,
                        substation_id=sid,
                    )

    hub_ids = [h.hub_id for h in model.hubs]
    existing: dict[int, Hub] = {}
    for i in range(0, len(hub_ids), 900):
        for hub in s.scalars(select(Hub).where(Hub.hub_id.in_(hub_ids[i : i + 900]))).all():
            existing[hub.hub_id] = hub
    meter_ids = [m.meter_id for h in model.hubs for m in h.meters]
    meters: dict[int, Meter] = {}
    for i in range(0, len(meter_ids), 900):
        for meter in s.scalars(select(Meter).where(Meter.meter_id.in_(meter_ids[i : i + 900]))).all():
            meters[meter.meter_id] = meter

    touched: set[int] = set()
    for h in model.hubs:
        sid = (
            h.substation_id or (trs[h.transformer_id].substation_id if h.transformer_id in trs else None) or default_sub
        )
        sub_row(sid)
        bus = h.bus if h.bus is not None else 0
        sec = None
        if h.feeder is not None:
            feeder_row(sid, bus, h.feeder)
            lateral = h.lateral
            if lateral is None and h.transformer_id in trs and trs[h.transformer_id].section_id:
                sec = trs[h.transformer_id].section_id
            else:
                sec = section_row(sid, bus, h.feeder, lateral)
        if h.transformer_id and h.transformer_id not in trs:
            trs[h.transformer_id] = Transformer(
                id=h.transformer_id,
                substation_id=sid,
                section_id=sec,
                bus=bus if h.feeder is not None else None,
                feeder=h.feeder,
                phases=h.phase,
                source="import",
                updated_at=now,
            )
            s.add(trs[h.transformer_id])
            counts["transformers"] += 1
        own = next((m.meter_id for m in h.meters if m.tan_index == 0 or m.role == "hub"), None)
        vals: dict[str, Any] = {"substation_id": sid, "mode": h.mode, "lat": h.lat, "lon": h.lon}
        if own is not None:
            vals["own_meter_id"] = own
        if h.feeder is not None:
            vals.update(
                map_bus=bus,
                map_feeder=h.feeder,
                map_phase=h.phase,
                map_source="import",
                section_id=sec,
                transformer_id=h.transformer_id,
            )
        elif h.transformer_id:
            vals["transformer_id"] = h.transformer_id
        hub_row = existing.get(h.hub_id)
        if hub_row is None:
            hub_row = Hub(
                hub_id=h.hub_id,
                key_hex=h.key_hex.lower() if h.key_hex else None,
                status="inventory",
                created_at=now,
                updated_at=now,
                cand_observations=0,
                **vals,
            )
            s.add(hub_row)
            existing[h.hub_id] = hub_row
            snap = {k: v for k, v in vals.items()}
            snap["key"] = "set" if h.key_hex else None
            record(
                s,
                entity="hub",
                entity_id=h.hub_id,
                field="created",
                old=None,
                new=snap,
                cause="import",
                evidence=ev,
                substation_id=sid,
            )
            counts["hubs_created"] += 1
        else:
            changed = False
            if (
                h.key_hex
                and (hub_row.key_hex or "").lower() != h.key_hex.lower()
                and not antireplay.is_retired(hub_row, h.key_hex)  # a model older than a key rotation
            ):
                record(
                    s,
                    entity="hub",
                    entity_id=h.hub_id,
                    field="key",
                    old="set" if hub_row.key_hex else None,
                    new="changed" if hub_row.key_hex else "set",
                    cause="import",
                    evidence=ev,
                    substation_id=sid,
                )
                antireplay.replace_current(hub_row, h.key_hex)
                changed = True
            for f, v in vals.items():
                if v is None and f in ("lat", "lon"):
                    continue
                changed |= change(
                    s, hub_row, f, v, entity="hub", entity_id=h.hub_id, cause="import", evidence=ev, substation_id=sid
                )
            if h.feeder is not None:
                hub_row.cand_substation = hub_row.cand_bus = hub_row.cand_feeder = hub_row.cand_phase = None
                hub_row.cand_confidence, hub_row.cand_observations, hub_row.cand_evidence = None, 0, None
            if changed:
                hub_row.updated_at = now
                counts["hubs_updated"] += 1
        mark_hub_dirty(s, h.hub_id)
        touched.add(h.hub_id)
        for m in h.meters:
            role = "hub" if m.tan_index == 0 and m.role == "subordinate" else m.role
            mv: dict[str, Any] = {
                "hub_id": h.hub_id,
                "tan_index": m.tan_index,
                "role": role,
                "active": True,
                "substation_id": sid,
            }
            if m.lat is not None:
                mv["lat"], mv["lon"] = m.lat, m.lon
            for f in ("account", "address", "service_length_m"):
                if getattr(m, f) is not None:
                    mv[f] = getattr(m, f)
            mr = meters.get(m.meter_id)
            if mr is not None and mr.hub_id is not None:
                touched.add(mr.hub_id)
            if mr is None:
                mr = Meter(meter_id=m.meter_id, source="import", created_at=now, paired_at=now, **mv)
                s.add(mr)
                meters[m.meter_id] = mr
                record(
                    s,
                    entity="meter",
                    entity_id=m.meter_id,
                    field="created",
                    old=None,
                    new={k: v for k, v in mv.items()},
                    cause="import",
                    evidence=ev,
                    substation_id=sid,
                )
                counts["meters_created"] += 1
            else:
                ch = False
                for f, v in mv.items():
                    ch |= change(
                        s,
                        mr,
                        f,
                        v,
                        entity="meter",
                        entity_id=m.meter_id,
                        cause="import",
                        evidence=ev,
                        substation_id=sid,
                    )
                counts["meters_updated"] += int(ch)
    s.flush()
    bump_tan(s, *touched)
    counts["history"] = sum(1 for o in s.new if isinstance(o, History))
    run.counts = counts
    return {"import_id": run.id, "format": fmt, "substation_id": default_sub, "sha256": sha256, "counts": counts}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
