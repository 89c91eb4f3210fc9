"""Strict inputs, clear refusals (bundles): NaN and infinities, booleans where numbers belong,
duplicate keys and absurd values are a 422 naming the field, on the single and the batch route,
with the fast path on or off, and nothing is stored."""

from __future__ import annotations

import copy
import json
import math

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from platform_api.core import strictjson
from platform_api.models import BundleRow
from platform_api.testing import bundles_for, fleet, gridmodel, report, slot_time
from receiver.contracts.bundle import Bundle

T0 = slot_time(448_826_400)

FLOAT_FIELDS = [
    ["fc_hz"],
    ["copies", 0, "level_db"],
    ["copies", 0, "snr_db"],
    ["copies", 0, "ebn0_db"],
    ["copies", 0, "evm_pct"],
    ["copies", 0, "corr_peak"],
    ["copies", 0, "carrier_offset_hz"],
    ["copies", 0, "clock_offset_ppm"],
    ["copies", 1, "band_amplitudes", 2, "freq_hz"],
    ["copies", 0, "band_amplitudes", 0, "amplitude_db"],
    ["inferred", "confidence"],
    ["inferred", "margin_db"],
]
INT_FIELDS = [
    ["channel"],
    ["code"],
    ["slot"],
    ["hub_id"],
    ["counter"],
    ["copies", 0, "input_index"],
    ["copies", 0, "bus"],
    ["copies", 1, "feeder"],
    ["copies", 0, "start_sample"],
    ["copies", 0, "pre_fec_bit_errors"],
    ["copies", 2, "polarity"],
    ["inferred", "location", "feeder"],
]
BOOL_FIELDS = [["crc_ok"], ["copies", 0, "crc_ok"], ["inferred", "ambiguous"]]
ABSURD = [
    (["copies", 0, "start_sample"], 2**63),
    (["copies", 0, "start_sample"], 2**64 + 5),
    (["copies", 0, "start_sample"], -1),
    (["copies", 0, "polarity"], 0),
    (["copies", 1, "polarity"], 2),
    (["copies", 0, "level_db"], 1e6),
    (["copies", 0, "snr_db"], -1e9),
    (["copies", 0, "band_amplitudes", 0, "amplitude_db"], 1e300),
    (["copies", 0, "band_amplitudes", 0, "freq_hz"], -1.0),
    (["copies", 0, "band_amplitudes", 0, "freq_hz"], 1e12),
    (["fc_hz"], 5e9),
    (["copies", 0, "carrier_offset_hz"], -1e8),
    (["copies", 0, "clock_offset_ppm"], 1e7),
    (["inferred", "margin_db"], 1e4),
    (["inferred", "confidence"], 1.5),
]


@pytest.fixture
def plat(platform):
    hubs = fleet(2, meters=(2, 2), seed=5)
    platform.import_model(gridmodel(hubs))
    platform.hubs = hubs
    return platform


def _bundle(p) -> dict:
    h = p.hubs[0]
    return bundles_for(h, report(h, T0, 2), at=T0)[0]


def _set(b: dict, path: list, v) -> dict:
    b = copy.deepcopy(b)
    x = b
    for k in path[:-1]:
        x = x[k]
    x[path[-1]] = v
    return b


def _stored(p) -> int:
    with p.pf.db.session() as s:
        return s.scalar(select(func.count()).select_from(BundleRow))


def _post_raw(p, raw: bytes, batch: bool = False):
    url = "/api/v1/bundles/batch" if batch else "/api/v1/bundles"
    return p.client.post(url, content=raw, headers={**p.auth, "Content-Type": "application/json"})


def _refused(p, text: str, loc: list) -> None:
    """``text`` (one bundle's JSON) is a 422 naming ``loc`` alone and in a batch, fast path or not."""
    answers = []
    for fast in (True, False):
        p.pf.fast_path = fast
        r = _post_raw(p, text.encode())
        assert r.status_code == 422, (loc, r.text)
        detail = r.json()["detail"]
        assert any(list(d["loc"]) == ["body", *loc] for d in detail), (loc, detail)
        answers.append(detail)
        rb = _post_raw(p, b'{"bundles": [' + text.encode() + b"]}", batch=True)
        assert rb.status_code == 422, (loc, rb.text)
        assert any(list(d["loc"]) == ["body", "bundles", 0, *loc] for d in rb.json()["detail"]), rb.text
    assert answers[0] == answers[1]  # the same answer on either path
    p.pf.fast_path = True


def test_nan_and_infinities_are_refused_naming_the_field(plat):
    base = _bundle(plat)
    assert _post_raw(plat, json.dumps(base).encode()).status_code == 201  # the unmodified bundle passes
    n0 = _stored(plat)
    for path in FLOAT_FIELDS:
        for v in (math.nan, math.inf, -math.inf):
            text = json.dumps(_set(base, path, v))  # json.dumps writes NaN / Infinity / -Infinity
            assert ("NaN" in text) or ("Infinity" in text)
            _refused(plat, text, path)
        # 1e400 is valid JSON but no finite double: refused by the contract (allow_inf_nan=False)
        text = json.dumps(_set(base, path, 12345.5)).replace("12345.5", "1e400")
        _refused(plat, text, path)
    assert _stored(plat) == n0


def test_nan_literal_anywhere_is_refused_at_parse(plat):
    base = _bundle(plat)
    text = json.dumps(_set(base, ["kind"], math.nan))  # not a float field: refused all the same
    _refused(plat, text, ["kind"])
    r = _post_raw(plat, json.dumps(_set(base, ["copies", 2, "band_amplitudes", 1, "amplitude_db"], -math.inf)).encode())
    assert r.status_code == 422 and "-Infinity" in r.json()["detail"][0]["msg"]


def test_booleans_are_not_numbers_and_numbers_not_booleans(plat):
    base = _bundle(plat)
    for path in INT_FIELDS + FLOAT_FIELDS:
        for v in (True, False):
            _refused(plat, json.dumps(_set(base, path, v)), path)
    for path in BOOL_FIELDS:
        for v in (1, 0, "true"):
            _refused(plat, json.dumps(_set(base, path, v)), path)
    assert _stored(plat) == 0


def test_duplicate_keys_are_refused_naming_the_key(plat):
    base = _bundle(plat)
    text = json.dumps(base)
    # the same key twice: at the top, in a copy, in a band amplitude (the last value would win)
    top = text.replace('"channel": ', '"channel": 1, "channel": ', 1)
    _refused(plat, top, ["channel"])
    lvl = f'"level_db": {base["copies"][0]["level_db"]}'
    _refused(plat, text.replace(lvl, f"{lvl}, {lvl}", 1), ["copies", 0, "level_db"])
    band = json.dumps(base["copies"][1]["band_amplitudes"][1])
    dup = band[:-1] + ', "freq_hz": 1.0}'
    _refused(plat, text.replace(band, dup, 1), ["copies", 1, "band_amplitudes", 1, "freq_hz"])
    assert _stored(plat) == 0


def test_absurd_values_are_refused(plat):
    base = _bundle(plat)
    for path, v in ABSURD:
        _refused(plat, json.dumps(_set(base, path, v)), path)
    assert _stored(plat) == 0
    # the edges that real data reaches are accepted
    ok = _set(base, ["copies", 1, "level_db"], -200.0)  # the receiver's floor for an unknown level
    ok = _set(ok, ["copies", 2, "snr_db"], -99.0)  # the demodulator's floor
    assert _post_raw(plat, json.dumps(ok).encode()).status_code == 201


def test_a_receiver_cannot_build_what_the_platform_refuses():
    """The contract itself refuses NaN, booleans as integers and absurd values: a receiver
    building a bundle fails where it is built, not at the platform."""
    h = fleet(1, meters=(1, 1), seed=2)[0]
    good = bundles_for(h, report(h, T0, 1), at=T0)[0]
    Bundle.model_validate(good)
    for path, v in [(FLOAT_FIELDS[1], math.nan), (FLOAT_FIELDS[2], math.inf), (INT_FIELDS[0], True), *ABSURD]:
        with pytest.raises(ValidationError):
            Bundle.model_validate(_set(good, path, v))


def test_strict_json_names_the_place():
    assert strictjson.loads(b'{"a": [1, {"b": 2.5}]}') == {"a": [1, {"b": 2.5}]}
    cases = [
        (b'{"a": [1, {"b": NaN}]}', ("body", "a", 1, "b")),
        (b'{"a": 1, "a": 2}', ("body", "a")),
        (b'[{"x": 1}, {"y": -Infinity}]', ("body", 1, "y")),
        (b'{"a": {"b": 1, "c": {"d": 1, "d": 1}}}', ("body", "a", "c", "d")),
        (b'{"a": 1', ("body",)),
        (b"\xff\xfe\xfd", ("body",)),
        (b"[" * 100_000 + b"]" * 100_000, ("body",)),
    ]
    for raw, loc in cases:
        with pytest.raises(strictjson.Refused) as e:
            strictjson.loads(raw)
        assert e.value.loc == loc, (raw[:40], e.value.loc)
        assert "\n" not in e.value.msg


def test_grid_model_json_import_is_strict_too(plat):
    model = gridmodel(fleet(1, meters=(1, 1), seed=9))
    text = json.dumps(model)
    nan = text.replace('"lat": 37.5,', '"lat": NaN,', 1)
    assert nan != text
    dup = text.replace('"format": ', '"format": "x", "format": ', 1)
    for body, loc in ((nan, ["body", "substations", 0, "lat"]), (dup, ["body", "format"])):
        r = plat.client.post(
            "/api/v1/import/json", content=body.encode(), headers={**plat.admin, "Content-Type": "application/json"}
        )
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == loc, r.text


def test_every_json_route_refuses_nan_and_duplicate_keys_naming_the_place(platform):
    """Not only the bundles: every operation with a JSON body (operator routes included, with the
    admin credential) refuses NaN, infinities and a key given twice before its schema sees them."""
    spec = platform.app.openapi()
    tried = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" not in content or path.startswith("/api/v1/bundles"):
                continue
            url = path.replace("{", "").replace("}", "")  # path parameters: their own names (a 404 or 422 later)
            url = "/".join("1" if "id" in part.lower() and part != "api" else part for part in url.split("/"))
            for body, words, loc in (
                (b'{"x": NaN}', "NaN is not a JSON number", ["body", "x"]),
                (b'{"x": [1, -Infinity]}', "-Infinity is not a JSON number", ["body", "x", 1]),
                (b'{"x": 1, "x": 2}', "duplicate key 'x'", ["body", "x"]),
            ):
                headers = {**platform.admin, "content-type": "application/json"}
                r = platform.client.request(method.upper(), url, content=body, headers=headers)
                assert r.status_code == 422, (method, path, r.status_code, r.text)
                (err,) = r.json()["detail"]
                assert words in err["msg"] and err["loc"] == loc, (method, path, err)
                tried += 1
    assert tried >= 30  # every JSON operation, three bodies each
