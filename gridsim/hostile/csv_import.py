"""CSV imports: hostile text to the platform's AMI (``POST /api/v1/ami/readings``) and Inventory
(``POST /api/v1/import/csv``) imports.

:func:`csv_bodies` starts from a valid file of each kind (the fleet's meters) and spoils it: a cell
replaced by hostile text (quotes, commas, NULs, spreadsheet formulas, NaN, huge numbers, odd
unicode), rows or the header cut, line endings CR LF or CR only, one huge field, or the whole body
replaced by random text or encoded as UTF-16 or Latin-1. ``cr_or_huge=False`` leaves lone CRs and
fields over 100,000 characters out, ``True`` makes every input have one (issue 17 item 6: these
answered 500). :func:`check_import` posts one; the property is no 5xx. :func:`lost_readings`
checks that readings imported before are still there, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from platform_api.testing import Harness

from . import Problem
from .http import hubs

AMI_HEADER = ["meter_id", "timestamp", "v_rms", "i_rms", "pf"]
GRID_HEADER = [
    "substation_id",
    "bus",
    "feeder",
    "lateral",
    "phase",
    "transformer_id",
    "transformer_lat",
    "transformer_lon",
    "hub_id",
    "hub_key_hex",
    "meter_id",
    "tan_index",
    "role",
    "meter_lat",
    "meter_lon",
]
T0 = 1_795_305_600  # 2026-11-22T00:00Z
FORMULAS = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "=cmd|' /C calc'!A0", '=HYPERLINK("http://x")']


def ami_rows(t0: int, n: int = 4) -> list[list[str]]:
    return [
        [str(m), str(t0 + 900 * k), f"{240 - 0.1 * k:.1f}", f"{5 + k:.1f}", "0.95"]
        for h in hubs()
        for m in h.meter_ids
        for k in range(n)
    ]


def grid_rows() -> list[list[str]]:
    out = []
    for h in hubs():
        for j, m in enumerate(h.meter_ids):
            out.append(
                [
                    "sub-1",
                    str(h.bus),
                    str(h.feeder),
                    str(h.lateral),
                    h.phase,
                    h.transformer_id,
                    "37.5",
                    "-77.4",
                    str(h.hub_id),
                    h.key.hex() if j == 0 else "",
                    str(m),
                    str(j),
                    "hub" if j == 0 else "subordinate",
                    "",
                    "",
                ]
            )
    return out


@dataclass
class CsvBody:
    route: str
    body: bytes
    what: str

    def __repr__(self) -> str:
        return f"CsvBody({self.route}, {self.what}, body[:160]={self.body[:160]!r}, len={len(self.body)})"


def _cells(cr_ok: bool) -> st.SearchStrategy[str]:
    alphabet = st.characters(codec="utf-8", exclude_characters=None if cr_ok else "\r")
    return st.one_of(
        st.text(alphabet=alphabet, max_size=30),
        st.sampled_from(FORMULAS + ["nan", "inf", "-inf", "1e400", str(2**64), "-0", '"', '""', ",", "\n", "\x00"]),
        st.integers(-(2**70), 2**70).map(str),
        st.floats().map(repr),
    )


@st.composite
def csv_bodies(draw, cr_or_huge: bool = False) -> CsvBody:
    ami = draw(st.booleans())
    route = "/api/v1/ami/readings" if ami else "/api/v1/import/csv"
    header = list(AMI_HEADER if ami else GRID_HEADER)
    rows = [list(r) for r in (ami_rows(T0 + 86400 * draw(st.integers(1, 30))) if ami else grid_rows())]
    kind = draw(st.sampled_from(["cell", "cell", "cell", "cut", "header", "random", "encoding"]))
    what = kind
    if kind == "cell":
        for _ in range(draw(st.integers(1, 3))):
            i, j = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(header) - 1))
            rows[i][j] = draw(_cells(cr_or_huge))
        what = "cells"
    elif kind == "cut":
        rows = rows[: draw(st.integers(0, len(rows)))]
    elif kind == "header":
        j = draw(st.integers(0, len(header) - 1))
        header[j] = draw(_cells(cr_or_huge))
    eol = draw(st.sampled_from(["\r"] if cr_or_huge else ["\n", "\r\n"]))
    text = eol.join(",".join(r) for r in [header, *rows]) + draw(st.sampled_from([eol, ""]))
    if kind == "random":
        alphabet = st.characters(codec="utf-8", exclude_characters=None if cr_or_huge else "\r")
        text = draw(st.text(alphabet=alphabet, max_size=400))
    if cr_or_huge:
        if draw(st.booleans()):  # one huge field instead of (or as well as) CR-only lines
            at = draw(st.integers(0, len(text)))
            text = text[:at] + "9" * draw(st.integers(131_073, 400_000)) + text[at:]
            what += " + a huge field"
        if "\r" not in text and draw(st.booleans()):
            text = text.replace("\n", "\r")
        what += f", line ends {eol!r}"
    body = text.encode("utf-8", "surrogatepass")
    if kind == "encoding":
        enc = draw(st.sampled_from(["utf-16", "latin-1", "utf-8-sig", "cp1252"]))
        body = text.encode(enc, "replace")
        what = f"encoded as {enc}"
    return CsvBody(route, body, what)


def check_import(h: Harness, c: CsvBody) -> list[Problem]:
    try:
        r = h.client.post(c.route, content=c.body, headers={**h.admin, "content-type": "text/csv"})
    except Exception as e:  # noqa: BLE001 - the TestClient re-raises what the app raised
        return [Problem("server_error", f"{type(e).__name__}: {e}")]
    if r.status_code >= 500:
        return [Problem("server_error", f"{r.status_code}: {r.text[:300]}")]
    return []


def import_base(h: Harness) -> list[dict]:
    """Import a day of readings (T0's day, which the hostile files never touch); returns them."""
    text = "\n".join(",".join(r) for r in [AMI_HEADER, *ami_rows(T0)]) + "\n"
    r = h.client.post("/api/v1/ami/readings", content=text.encode(), headers={**h.admin, "content-type": "text/csv"})
    assert r.status_code == 200, r.text
    return _readings(h)


def _readings(h: Harness) -> list[dict]:
    r = h.client.get("/api/v1/ami/readings", params={"until": "2026-11-22T23:59:59Z", "limit": 1000}, headers=h.admin)
    assert r.status_code == 200, r.text
    return r.json()


def lost_readings(h: Harness, before: list[dict]) -> list[Problem]:
    after = _readings(h)
    if after != before:
        return [Problem("lost", f"{len(before)} readings imported before, {len(after)} now or changed")]
    return []
