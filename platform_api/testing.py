"""Realistic bundles for tests, benchmarks and demos.

Frames are sealed with :func:`dsp.air.messages.encode_message` under each hub's key, and wrapped in
:class:`receiver.contracts.bundle.Bundle` models the way the receiver builds them: the copy on the true
feeder-phase input first, crosstalk copies on the other phases of the feeder weaker, the
inferred location with a confidence, ``bundle_id`` from :func:`receiver.contracts.bundle.make_bundle_id`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dsp.air import messages as M
from dsp.air import params as P
from receiver.contracts.bundle import Bundle, make_bundle_id

PHASES = "ABC"
FS = 48000


@dataclass
class FakeHub:
    hub_id: int
    key: bytes
    bus: int = 0
    feeder: int = 0
    phase: str = "A"
    lateral: int = 0
    transformer_id: str = "T-0"
    meter_ids: list[int] = field(default_factory=list)
    counter: int = 0

    def next(self, n: int = 1) -> int:
        c = self.counter
        self.counter = (self.counter + n) % 2**24
        return c


def fleet(
    n: int,
    *,
    seed: int = 7,
    feeders: int = 4,
    laterals: int = 3,
    meters: tuple[int, int] = (1, 4),
    first_id: int = 1_000_000,
) -> list[FakeHub]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        hid = first_id + i
        f = rng.randrange(feeders)
        out.append(
            FakeHub(
                hub_id=hid,
                key=M.hub_key(seed, hid),
                bus=0,
                feeder=f,
                phase=rng.choice(PHASES),
                lateral=rng.randrange(laterals),
                transformer_id=f"T-{hid}",
                meter_ids=[hid * 16 + j for j in range(rng.randint(*meters))],
                counter=rng.randrange(0, 1000),
            )
        )
    return out


def gridmodel(
    hubs: Iterable[FakeHub], substation_id: str = "sub-1", with_coords: bool = True, on_map: bool = True
) -> dict:
    """The GridModel JSON of these hubs (transformer coordinates on a small grid if asked)."""
    hubs = list(hubs)
    trs, out = [], []
    for i, h in enumerate(hubs):
        tr = {
            "transformer_id": h.transformer_id,
            "substation_id": substation_id,
            "bus": h.bus,
            "feeder": h.feeder,
            "lateral": h.lateral,
            "phases": h.phase,
        }
        if with_coords:
            tr.update(
                lat=37.5 + 0.001 * h.feeder + 0.0001 * (i % 50), lon=-77.4 - 0.001 * h.lateral - 0.0001 * (i // 50)
            )
        trs.append(tr)
        hd = {
            "hub_id": h.hub_id,
            "key_hex": h.key.hex(),
            "substation_id": substation_id,
            "transformer_id": h.transformer_id,
            "meters": [
                {"meter_id": m, "tan_index": j, "role": "hub" if j == 0 else "subordinate"}
                for j, m in enumerate(h.meter_ids)
            ],
        }
        if on_map:
            hd.update(bus=h.bus, feeder=h.feeder, lateral=h.lateral, phase=h.phase)
        out.append(hd)
    return {
        "format": "gla-gridmodel/1",
        "substations": [{"substation_id": substation_id, "name": "Test substation", "lat": 37.5, "lon": -77.4}],
        "transformers": trs if on_map else [],
        "hubs": out,
    }


def report(hub: FakeHub, t: datetime, n: int | None = None) -> M.ScheduledReport:
    n = len(hub.meter_ids) if n is None else n
    rs = [M.MeterReading(j, round(240.0 - 0.3 * j, 2), round(5.0 + j, 2), 0.95) for j in range(n)]
    return M.ScheduledReport(int(t.timestamp()) - 60, rs)


def slot_time(slot: int) -> datetime:
    return datetime.fromtimestamp(slot * P.SLOT_S + P.SLOT_START_OFFSET_S, tz=UTC)


def bundles_for(
    hub: FakeHub,
    msg,
    *,
    at: datetime,
    receiver_id: str = "rx-1",
    substation_id: str = "sub-1",
    channel: int | None = None,
    code: int | None = None,
    feeder: int | None = None,
    phase: str | None = None,
    bus: int | None = None,
    confidence: float = 0.97,
    ambiguous: bool = False,
    counter: int | None = None,
    frames: list[bytes] | None = None,
    copies: int = 3,
    crc_ok: bool = True,
    inferred: bool = True,
    seed: int = 0,
) -> list[dict]:
    """One bundle (as JSON) per frame of ``msg``; segments go in the following slots."""
    rng = random.Random(hash((hub.hub_id, seed, at.timestamp())) & 0xFFFFFFFF)
    if frames is None:
        c = hub.next(0) if counter is None else counter
        frames = M.encode_message(msg, hub_id=hub.hub_id, counter=c, key=hub.key)
        if counter is None:
            hub.next(len(frames))
    feeder = hub.feeder if feeder is None else feeder
    phase = hub.phase if phase is None else phase
    bus = hub.bus if bus is None else bus
    if channel is None:
        channel = 2 if not isinstance(msg, M.ScheduledReport) else 0
    slot0 = int((at.timestamp() - P.SLOT_START_OFFSET_S) // P.SLOT_S + 0.5)
    out = []
    for i, fr in enumerate(frames):
        slot = slot0 + i
        t = slot_time(slot) + timedelta(seconds=rng.uniform(-0.05, 0.05))
        cd = (slot % 2 if channel != 2 else rng.randrange(4)) if code is None else code
        start = int(t.timestamp() * FS) % 2**40
        lvl = rng.uniform(-104.0, -95.0)
        cps: list[dict[str, Any]] = []
        phases = [phase] + [p for p in PHASES if p != phase]
        for k, ph in enumerate(phases[: max(1, copies)]):
            lk = lvl - (0 if k == 0 else rng.uniform(8, 20))
            snr = 12.0 + (lk + 100.0)
            cps.append(
                {
                    "input_index": feeder * 3 + PHASES.index(ph),
                    "bus": bus,
                    "feeder": feeder,
                    "phase": ph,
                    "start_sample": start,
                    "arrival_utc": t.isoformat().replace("+00:00", "Z"),
                    "level_db": round(lk, 2),
                    "snr_db": round(snr, 2),
                    "ebn0_db": round(snr - 2.5, 2),
                    "evm_pct": round(max(1.0, 40 - snr), 2),
                    "corr_peak": round(30 + snr, 2),
                    "pre_fec_bit_errors": max(0, int(12 - snr)),
                    "carrier_offset_hz": round(rng.uniform(-0.1, 0.1), 4),
                    "clock_offset_ppm": round(rng.uniform(-50, 50), 2),
                    "polarity": 1 if k == 0 else -1,
                    "crc_ok": crc_ok and k == 0,
                    "band_amplitudes": [
                        {"freq_hz": 1170.0 + 960.0 * channel + d, "amplitude_db": round(lk + rng.uniform(-1, 1), 2)}
                        for d in (-300.0, 0.0, 300.0)
                    ],
                }
            )
        fhex = fr.hex() if crc_ok else None
        b = {
            "schema_version": "1",
            "bundle_id": make_bundle_id(receiver_id, channel, cd, start, fhex),
            "receiver_id": receiver_id,
            "substation_id": substation_id,
            "created_utc": (t + timedelta(seconds=3.6)).isoformat().replace("+00:00", "Z"),
            "channel": channel,
            "code": cd,
            "fc_hz": [1170.0, 2130.0, 3090.0][channel] if channel < 3 else 1000.0,
            "modulation": "bpsk",
            "fec": "1/2",
            "slot": slot,
            "crc_ok": crc_ok,
            "frame_hex": fhex,
            "hub_id": hub.hub_id if crc_ok else None,
            "kind": M.Kind(fr[0] >> 2 & 0xF).name.lower() if crc_ok else None,
            "counter": int.from_bytes(fr[5:8], "big") if crc_ok else None,
            "copies": cps,
            "inferred": None
            if not inferred
            else {
                "location": {"bus": bus, "feeder": feeder, "phase": phase},
                "confidence": confidence,
                "margin_db": round(-(cps[1]["level_db"] - cps[0]["level_db"]) if len(cps) > 1 else 20.0, 2),
                "ambiguous": ambiguous,
                "runner_up": {"bus": bus, "feeder": feeder, "phase": phases[1]} if len(cps) > 1 else None,
            },
        }
        Bundle.model_validate(b)  # what the receiver would post validates
        out.append(b)
    return out


# -- an app with a registered receiver, for tests ---------------------------------------------------
class Harness:
    """A TestClient on ``create_app`` with receiver ``rx-1`` of ``sub-1`` registered."""

    def __init__(
        self,
        database_url: str,
        *,
        receiver_id: str = "rx-1",
        substation_id: str = "sub-1",
        token: str = "test-token-rx-1-0123456789",
        **overrides,
    ) -> None:
        from fastapi.testclient import TestClient

        from .core.config import Settings
        from .main import create_app

        st = Settings(database_url=database_url, substation_id=substation_id, **{"background": False, **overrides})
        self.app = create_app(st)
        self.pf = self.app.state.platform
        self.client = TestClient(self.app)
        self.client.__enter__()
        #: the operators' header: GLA_ADMIN_TOKEN if the test set one, else the token the platform made
        self.admin = {"Authorization": f"Bearer {self.pf.admin_token}"}
        self.token = token
        self.receiver_id, self.substation_id = receiver_id, substation_id
        r = self.client.post(
            "/api/v1/receivers",
            json={"receiver_id": receiver_id, "substation_id": substation_id, "token": token},
            headers=self.admin,
        )
        assert r.status_code in (201, 409), r.text

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def post(self, bundle: dict, **kw):
        return self.client.post("/api/v1/bundles", json=bundle, headers=kw.pop("headers", self.auth), **kw)

    def send(self, hub: FakeHub, msg, **kw) -> list[dict]:
        """Post every segment of ``msg``; returns the JSON answers (asserting 201)."""
        out = []
        for b in bundles_for(hub, msg, receiver_id=self.receiver_id, substation_id=self.substation_id, **kw):
            r = self.post(b)
            assert r.status_code == 201, r.text
            out.append(r.json())
        return out

    def import_model(self, model: dict, **params):
        r = self.client.post("/api/v1/import/json", json=model, params=params, headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.pf.db.dispose()


# -- the anonymous walk: no state-changing route without a credential ------------------------------
#: GET routes whose answer carries customer data (meter accounts and addresses): the exports
CUSTOMER_DATA_PREFIXES = ("/api/v1/export/",)


def _plausible(schema: dict) -> str:
    """A value of a path parameter that passes its validation, so that only the credential can refuse."""
    types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    if "integer" in types or "number" in types:
        return str(max(int(schema.get("minimum", 1)), 1))
    return "rx-1"


def anonymous_probe(app) -> dict[str, int]:
    """``{"METHOD /path": status}`` of an anonymous request to every route of ``app.openapi()`` that
    changes state (any method but GET) and to every customer-data export (GET), with path
    parameters filled with plausible values and a plausible body (``{}`` for JSON, a header row for
    CSV), so that a refusal can only come from the credential check."""
    from fastapi.testclient import TestClient

    client = TestClient(app, raise_server_exceptions=False)
    out: dict[str, int] = {}
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            if method == "get" and not path.startswith(CUSTOMER_DATA_PREFIXES):
                continue
            url = path
            for p in op.get("parameters", []):
                if p.get("in") == "path":
                    url = url.replace("{" + p["name"] + "}", _plausible(p.get("schema", {})))
            kw: dict[str, Any] = {}
            content = op.get("requestBody", {}).get("content", {})
            if "text/csv" in content:
                kw = {"content": b"hub_id\n1\n", "headers": {"Content-Type": "text/csv"}}
            elif content or method in ("post", "put", "patch"):
                kw = {"json": {}}
            out[f"{method.upper()} {path}"] = client.request(method.upper(), url, **kw).status_code
    return out


def anonymous_state_changing_routes(app=None) -> list[str]:
    """The routes of :func:`anonymous_probe` that did not refuse (anything but 401/403), as
    ``"METHOD /path -> status"``; must be empty. Without ``app``, a platform with no configuration
    at all (a fresh SQLite file in a temporary directory) is made and walked."""
    import tempfile

    from .core.config import Settings
    from .main import create_app

    if app is not None:
        return [f"{k} -> {v}" for k, v in anonymous_probe(app).items() if v not in (401, 403)]
    with tempfile.TemporaryDirectory(prefix="gla-anon-") as d:
        app = create_app(Settings(database_url=f"sqlite:///{d}/platform.db", background=False))
        try:
            return anonymous_state_changing_routes(app)
        finally:
            app.state.platform.db.dispose()
