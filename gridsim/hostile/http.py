"""HTTP surface: hostile bodies to the platform's bundle routes, and schemathesis over the OpenAPI.

:func:`mutations` makes hostile variants of real bundles (sealed frames of a small fleet, see
:func:`platform_api.testing.bundles_for`): a field replaced by NaN, +-Infinity, a huge integer, a
boolean, a wrong type, a long or odd unicode string, deep nesting; a field dropped or added; a
duplicate key; the JSON truncated; a wrong content type or encoding; the same sent in a batch.
:func:`check_post` posts one and returns the problems (5xx, or a value the contract says must be
refused that was not); :func:`lost_bundles` checks the bundles accepted before are still there,
unchanged. :func:`run_schemathesis` runs every OpenAPI operation with the credential it takes: a
registered receiver's token on the routes that authenticate a receiver or platform (bundles, a
receiver's health report, the concentrator's intake), the admin token on the rest (the operator
routes require it), so that each is exercised past its credential check.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from platform_api.testing import Harness, bundles_for, fleet, gridmodel, report, slot_time
from receiver.contracts.bundle import Bundle

from . import Problem

ADMIN_TOKEN = "hostile-admin-token-0123456789abcdef"
S0 = 448_826_400  # a slot of 2026-11-22
HUGE_INTS = [2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**30)]
NONFINITE = [math.nan, math.inf, -math.inf]


def hubs():
    return fleet(3)


def make_harness(database_url: str) -> Harness:
    """A platform with the admin token set, receiver rx-1 registered and the fleet imported."""
    h = Harness(database_url, admin_token=ADMIN_TOKEN)
    h.import_model(gridmodel(hubs()))
    return h


def base_bundles(n: int = 6) -> list[dict]:
    """``n`` valid bundles (scheduled reports of the fleet's hubs in successive slots)."""
    out: list[dict] = []
    hs = hubs()
    for i in range(n):
        h = hs[i % len(hs)]
        at = slot_time(S0 + 4 * i)
        out += bundles_for(h, report(h, at), at=at, seed=i)[:1]
    return out


BASE = base_bundles()


def paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) to a value inside ``obj``, inner values included."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths(v, prefix + (i,))
    return out


def get_at(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def set_at(obj: Any, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def deep(depth: int) -> Any:
    v: Any = 1
    for i in range(depth):
        v = [v] if i % 2 else {"a": v}
    return v


hostile_values = st.one_of(
    st.sampled_from(NONFINITE),
    st.sampled_from(HUGE_INTS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "x" * n),
    st.sampled_from(["\u202e\u0000", "𝔊𝔏𝔄", "\ufeff", "A" * 65, "é" * 33, "0" * 64, "", " "]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.integers(min_value=10, max_value=300).map(deep),  # deeper: the "nest" kind, as text
)


@dataclass
class Post:
    """One hostile request: ``body`` (bytes) to ``route`` with ``content_type``; ``must_refuse``
    says why the contract wants a 422 (None: any non-5xx answer will do)."""

    route: str
    body: bytes
    content_type: str
    must_refuse: str | None
    what: str

    def __repr__(self) -> str:  # the reproducer: what was done and the start of the body
        b = self.body[:120]
        return f"Post({self.what}, {self.route}, {self.content_type}, body[:120]={b!r}, len={len(self.body)})"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=True, ensure_ascii=False)


@st.composite
def mutations(draw) -> Post:
    b = json.loads(json.dumps(draw(st.sampled_from(BASE))))
    b["bundle_id"] = draw(st.binary(min_size=16, max_size=16)).hex()  # a new id: reach the ingest path
    kind = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add", "dup", "truncate", "nest", "ctype"]))
    must: str | None = None
    what = kind
    if kind in ("replace", "drop"):
        path = draw(st.sampled_from(paths(b)))
        old = get_at(b, path)
        what = f"{kind} {'.'.join(map(str, path))}"
        if kind == "drop":
            parent = get_at(b, path[:-1])
            del parent[path[-1]]
        else:
            new = draw(hostile_values)
            set_at(b, path, new)
            what += f" = {str(new)[:40]}"
            if isinstance(new, float) and not math.isfinite(new):
                must = "a non-finite number"
            elif isinstance(new, bool) and isinstance(old, int) and not isinstance(old, bool):
                must = "a boolean for an integer"
        text = _dumps(b)
    elif kind == "add":
        b[draw(st.text(min_size=1, max_size=20))] = draw(hostile_values)
        text = _dumps(b)
    elif kind == "dup":
        key = draw(st.sampled_from(sorted(k for k in b if k != "bundle_id")))
        text = _dumps(b)[:-1] + f", {json.dumps(key)}: {_dumps(draw(hostile_values))}}}"
        must, what = "a duplicate key", f"dup {key}"
    elif kind == "truncate":
        text = _dumps(b)
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif kind == "nest":
        d = draw(st.integers(1, 5000))
        text = "[" * d + _dumps(b) + "]" * d
        what = f"nest {d}"
    else:  # ctype
        text = _dumps(b)
    body = text.encode("utf-8", "surrogatepass")
    ctype = "application/json"
    if kind == "ctype":
        ctype = draw(st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "", "application/json"]))
        enc = draw(st.sampled_from(["utf-8", "utf-16", "latin-1", "utf-32"]))
        body = text.encode(enc, "replace")
        what = f"ctype {ctype!r} {enc}"
    route = "/api/v1/bundles"
    if draw(st.booleans()) and kind not in ("truncate", "nest", "ctype"):
        route = "/api/v1/bundles/batch"
        body = b'{"bundles": [' + body + b"]}"
    return Post(route, body, ctype, must, what)


def check_post(h: Harness, p: Post) -> list[Problem]:
    try:
        r = h.client.post(p.route, content=p.body, headers={**h.auth, "content-type": p.content_type})
    except Exception as e:  # noqa: BLE001 - the TestClient re-raises what the app raised
        return [Problem("server_error", f"{type(e).__name__}: {e}")]
    if r.status_code >= 500:
        return [Problem("server_error", f"{r.status_code}: {r.text[:300]}")]
    if p.must_refuse is None:
        return []
    code = r.status_code
    if p.route.endswith("/batch") and code == 200:
        code = r.json()["results"][0]["http_status"]
    if code not in (413, 422):
        return [Problem("not_refused", f"{p.must_refuse}: answered {code}, not 422: {r.text[:200]}")]
    return []


def post_base(h: Harness) -> list[dict]:
    """Post the valid bundles (201 each); returns them, to be checked by :func:`lost_bundles`."""
    for b in BASE:
        r = h.post(b)
        assert r.status_code == 201, r.text
    return BASE


def lost_bundles(h: Harness, accepted: list[dict]) -> list[Problem]:
    """Every accepted bundle is still stored, with the body it was posted with."""
    out = []
    for b in accepted:
        r = h.client.get(f"/api/v1/bundles/{b['bundle_id']}", params={"body": True}, headers=h.admin)
        if r.status_code != 200:
            out.append(Problem("lost", f"bundle {b['bundle_id']}: GET answered {r.status_code}"))
        elif Bundle.model_validate(r.json()["bundle"]) != Bundle.model_validate(b):
            out.append(Problem("lost", f"bundle {b['bundle_id']}: the stored body changed"))
    return out


SKIP_OPS = {"/api/v1/events/stream"}  # endless by design


def run_schemathesis(h: Harness, per_op: int, tally, statuses: dict | None = None) -> list[str]:
    """Every OpenAPI operation (but the endless event stream), ``per_op`` positive and as many
    negative cases each, with the credential the operation takes (see the module docstring);
    schemathesis's ``not_a_server_error`` check. Counts into ``tally``; ``statuses`` (if given)
    collects ``{"METHOD /path": {status: count}}``; returns the failures (operation, mode,
    schemathesis's text)."""
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", h.app)
    receiver_ops = receiver_operations(h.app)
    pin = {"receiver_id": h.receiver_id, "substation_id": h.substation_id}  # itself: past the 403
    failures: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()  # type: ignore[union-attr]  # an invalid schema raises here
        if op.path in SKIP_OPS:
            continue
        mine = op.path.startswith("/api/v1/bundles") or (op.method.lower(), op.path) in receiver_ops
        headers = h.auth if mine else h.admin
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            seen = None if statuses is None else statuses.setdefault(f"{op.method.upper()} {op.path}", {})
            run = _case_runner(op, mode, headers, per_op, tally, pin if mine else None, seen)
            try:
                run()
            except Unsatisfiable:
                pass  # nothing to make invalid (an operation without parameters)
            except Exception as e:  # noqa: BLE001 - collect every failing operation
                failures.append(f"{op.method.upper()} {op.path} [{mode.value}]: {str(e)[:2000]}")
    return failures


def receiver_operations(app) -> set[tuple[str, str]]:
    """``(method, path)`` of the routes that take a receiver's or platform's token through the
    ``principal`` dependency (the bundle routes authenticate in their handler: not listed)."""
    from fastapi.routing import APIRoute

    from platform_api.api.deps import principal

    def uses(dep) -> bool:
        return any(d.call is principal or uses(d) for d in dep.dependencies)

    def walk(routes, prefix: str = "") -> set[tuple[str, str]]:
        out = set()
        for r in routes:
            if isinstance(r, APIRoute):
                if uses(r.dependant):
                    out |= {(m.lower(), prefix + r.path) for m in r.methods or ()}
            elif hasattr(r, "original_router"):  # an included router (FastAPI >= 0.16x keeps it whole)
                ctx = getattr(r, "include_context", None)
                out |= walk(r.original_router.routes, prefix + (getattr(ctx, "prefix", "") or ""))
        return out

    return walk(app.routes)


def _case_runner(op, mode, headers: dict, n: int, tally, pin: dict | None = None, seen: dict | None = None):
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        tally.tried += 1
        for k, v in (pin or {}).items():  # path parameters and body fields naming the credential's owner
            if mode.value != "positive":
                continue
            if k in (case.path_parameters or {}):
                case.path_parameters[k] = v
            if isinstance(case.body, dict) and k in case.body:
                case.body[k] = v
        try:
            r = case.call_and_validate(headers=headers, checks=[not_a_server_error])
            if seen is not None:
                seen[r.status_code] = seen.get(r.status_code, 0) + 1
        except Exception as e:
            tally.record(case, [Problem("server_error", f"{op.method.upper()} {op.path}: {str(e)[:400]}")])
            raise

    return run
