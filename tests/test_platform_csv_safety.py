"""CSV in and out: imports never answer 500 (CR-only line ends, oversized fields, bad encodings,
ragged rows: a 422 naming the line), and no CSV export carries a cell a spreadsheet would run as
a formula (OWASP's CSV-injection rule)."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_api.core import csvsafe
from platform_api.testing import fleet, gridmodel

EXPORTS = ["gridmap.csv", "hubs.csv", "events.csv", "history.csv"]
GRID_HEADER = "substation_id,bus,feeder,lateral,phase,transformer_id,hub_id,meter_id,tan_index,meter_account\n"
GRID_ROWS = "sub-1,0,1,2,A,T-100,12648430,50001,0,acct-1\nsub-1,0,1,2,A,T-100,12648430,50002,1,acct-2\n"
AMI = "meter_id,timestamp,v_rms,i_rms,pf\n50001,1795305600,240.1,3.2,0.97\n50002,1795305600,239.0,1.5,-0.5\n"


def _post(p, path: str, body: bytes):
    return p.client.post(path, content=body, headers={**p.admin, "Content-Type": "text/csv"})


@pytest.fixture
def lenient(platform):
    """The harness with a client that answers 500 rather than raising the server's exception."""
    platform.client = TestClient(platform.app, raise_server_exceptions=False)
    platform.client.__enter__()
    return platform


# -- imports -------------------------------------------------------------------------------------
def test_cr_only_line_ends_are_a_422_naming_line_1_and_import_nothing(lenient):
    p = lenient
    for path, body in (("/api/v1/import/csv", GRID_HEADER + GRID_ROWS), ("/api/v1/ami/readings", AMI)):
        r = _post(p, path, body.replace("\n", "\r").encode())
        assert r.status_code == 422, r.text
        (err,) = r.json()["detail"]
        assert err["loc"][:2] == ["body", "line 1"] and "CR alone" in err["msg"], err
        r = _post(p, path, body.replace("\n", "\r\n").encode())  # CRLF is fine
        assert r.status_code == 200, r.text
    assert p.client.get("/api/v1/meters").status_code == 200


BAD = [
    # (body, line named, words in the message)
    (GRID_HEADER + "sub-1,0,1,2,A," + "x" * 200_000 + ",12648430,50001,0,a\n", 2, "field limit"),
    (GRID_HEADER + GRID_ROWS + "sub-1,0,1,2,A,T-100,12648430,50003,2,a,extra\n", 4, "fields"),
    (GRID_HEADER + "sub-1,0,1\n", 2, "fields"),
    (GRID_HEADER + "sub-1,0,1,2\rA,T-100,12648430,50001,0,a\n", 2, "fields"),  # a stray CR
    (GRID_HEADER + GRID_ROWS + 'sub-1,"0,1\n', 4, "unexpected end of data"),
    ((GRID_HEADER + GRID_ROWS).encode() + b"sub-1,0,1,2,A,T-\xe9,12648430,50003,2,a\n", 4, "UTF-8"),
    (GRID_HEADER + "sub-1,0,1,2,A,T-100,12648430,50001,0,a\x00\n", 2, "NUL"),
]
BAD_AMI = [
    (AMI + "50003," + "1" * 200_000 + ",240,3,0.9\n", 4, "field limit"),
    (AMI + "50003,1795305700,240.1,3.2,0.97,9\n", 4, "fields"),
    ("meter_id,timestamp,v_rms,i_rms,pf\n50001,17953\r05600,240.1,3.2,0.97\n", 2, "fields"),
    (AMI.encode() + b"5000\xe9,1795305700,240.1,3.2,0.97\n", 4, "UTF-8"),
    (AMI + '"50003,1795305700,240.1,3.2,0.97\n', 4, "unexpected end of data"),
]


@pytest.mark.parametrize(
    ("path", "body", "line", "words"),
    [("/api/v1/import/csv", *c) for c in BAD] + [("/api/v1/ami/readings", *c) for c in BAD_AMI],
)
def test_bad_csv_is_a_422_naming_the_line(lenient, path, body, line, words):
    r = _post(lenient, path, body if isinstance(body, bytes) else body.encode())
    assert r.status_code == 422, r.text
    (err,) = r.json()["detail"]
    assert err["loc"][:2] == ["body", f"line {line}"] and words in err["msg"], err
    assert "\n" not in err["msg"]


CSV_CHARS = st.sampled_from(list(',"\r\n\t ;#=-+@') + ["a", "Z", "0", "1", "9", ".", "e", "\x00", "é", "\u2028"])
FIELDS = st.one_of(
    st.text(CSV_CHARS, max_size=12),
    st.sampled_from(["12648430", "50001", "1795305600", "240.1", "-0.5", "A", "sub-1", "T-100", "1e400", "nan"]),
    st.just("x" * 140_000),
)


@st.composite
def csv_bodies(draw, header: str) -> bytes:
    """Header-like first line, then rows of random width and random fields, random line ends,
    sometimes a byte that is not UTF-8."""
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    rows = [header.rstrip("\n")]
    for _ in range(draw(st.integers(0, 4))):
        rows.append(",".join(draw(st.lists(FIELDS, min_size=0, max_size=12))))
    body = end.join(rows).encode("utf-8", "surrogatepass")
    if draw(st.booleans()) and body:
        k = draw(st.integers(0, len(body) - 1))
        body = body[:k] + draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3", b"\x00"])) + body[k:]
    return body


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@FUZZ
@given(body=st.one_of(csv_bodies(GRID_HEADER), csv_bodies("hub_id,meter_id"), st.binary(max_size=200)))
def test_grid_csv_import_never_answers_500(lenient, body):
    r = _post(lenient, "/api/v1/import/csv", body)
    assert r.status_code in (200, 422), (r.status_code, body[:200], r.text[:300])
    if r.status_code == 422:
        assert r.json()["detail"][0]["loc"][0] == "body"


@FUZZ
@given(body=st.one_of(csv_bodies("meter_id,timestamp,v_rms,i_rms,pf"), st.binary(max_size=200)))
def test_ami_import_never_answers_500(lenient, body):
    r = _post(lenient, "/api/v1/ami/readings", body)
    assert r.status_code in (200, 422), (r.status_code, body[:200], r.text[:300])
    if r.status_code == 422:
        assert r.json()["detail"][0]["loc"][0] == "body"


# -- exports -------------------------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://x","y")', "+1-555-0100", "-2+3", "@SUM(A1:A9)", "=cmd|' /C calc'!A0"]


def test_neutral_cells():
    for v in FORMULAS + ["\tx", "\rx", "-", "-1\n"]:
        assert csvsafe.neutral(v) == "'" + v
        assert csvsafe.restore(csvsafe.neutral(v)) == v
    assert csvsafe.restore("'quoted") == "'quoted" and csvsafe.restore("'-3.5") == "'-3.5"
    for v in ["-3.5", "+1e-3", "-.5", "12", "abc", "a=b", -3.5, 0, None, True]:
        assert csvsafe.neutral(v) == v
    text = csvsafe.write(["a", "b"], [{"a": "=1+2", "b": -77.4}, {"a": "x", "c": "ignored"}])
    assert list(csv.reader(io.StringIO(text))) == [["a", "b"], ["'=1+2", "-77.4"], ["x", ""]]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_no_csv_export_carries_a_formula(platform):
    hubs = fleet(3, meters=(3, 3), seed=8)
    model = gridmodel(hubs)
    k = 0
    for h in model["hubs"]:
        for m in h["meters"]:
            m["account"] = FORMULAS[k % len(FORMULAS)]
            m["address"] = FORMULAS[(k + 2) % len(FORMULAS)]
            k += 1
    platform.import_model(model)
    # change an account: the history carries the old and new text
    model["hubs"][0]["meters"][0]["account"] = "@evil()"
    platform.import_model(model)
    seen_quoted = set()
    for name in EXPORTS:
        r = platform.client.get(f"/api/v1/export/{name}", headers=platform.admin)
        assert r.status_code == 200, (name, r.text)
        for row in csv.reader(io.StringIO(r.text)):
            for cell in row:
                if cell.startswith(csvsafe.FORMULA_START):
                    assert _is_number(cell), (name, cell)
                if cell.startswith("'"):
                    seen_quoted.add(cell[1:])
    gridmap = platform.client.get("/api/v1/export/gridmap.csv", headers=platform.admin).text
    assert "-77.4" in gridmap  # negative numbers stay numbers
    assert set(FORMULAS) <= seen_quoted, seen_quoted
    assert any("@evil()" in c for c in seen_quoted)
    # the export re-imports unchanged: the quotes are dropped again, nothing differs
    history = len(platform.client.get("/api/v1/history", params={"limit": 1000}).json())
    r = _post(platform, "/api/v1/import/csv", gridmap.encode())
    assert r.status_code == 200, r.text
    assert len(platform.client.get("/api/v1/history", params={"limit": 1000}).json()) == history
