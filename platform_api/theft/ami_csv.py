"""Import of AMI interval data (CSV) for the theft analysis.

Format
------
UTF-8 text, comma-separated, one header line, then one reading per line::

    meter_id,timestamp,v_rms,i_rms,pf
    M-0001,2026-11-22T00:01:00Z,241.37,18.42,0.97
    M-0002,1795305660,238.90,2.05,-0.88

Columns (by header name, in any order; other columns are ignored; names are case-insensitive):

==========  =============================================================================
meter_id    the meter's id as in the inventory (non-empty text)
timestamp   end of the interval: Unix seconds (integer or decimal), or ISO 8601 with a
            time zone (``Z`` or ``+hh:mm``); an ISO time without zone is an error unless
            ``assume_utc=True``
v_rms       RMS voltage of the interval, volts, > 0 and < 1000
i_rms       RMS current of the interval, amperes, >= 0 and < 10000
pf          signed power factor, -1..1 (negative: the premise exports active power)
==========  =============================================================================

Blank lines and lines starting with ``#`` are skipped. A (meter_id, timestamp) pair may appear
only once. Every line has the header's number of fields; lines may end in LF, CRLF or CR; a
field above 128 KiB or an unclosed quote is an error naming its line. Any problem raises
:class:`AmiCsvError`, whose message names the line number (1 = the header) and the column;
``.line`` and ``.column`` carry them too.

:meth:`AmiData.to_series` assembles the readings of one transformer's meters into a
:class:`.TanSeries` (times snapped to the interval when ``period_s`` is given).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import numpy as np

from ..core import csvsafe
from .data import MeterInfo, TanSeries

REQUIRED = ("meter_id", "timestamp", "v_rms", "i_rms", "pf")
LIMITS = {"v_rms": (0.0, 1000.0, False), "i_rms": (0.0, 10000.0, True), "pf": (-1.0, 1.0, True)}


class AmiCsvError(ValueError):
    """A problem in an AMI CSV file; ``line`` is 1-based (the header is line 1), ``column`` the
    column name (or None for whole-line problems)."""

    def __init__(self, message: str, line: int | None = None, column: str | None = None):
        where = []
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.line = line
        self.column = column


@dataclass
class AmiData:
    """Readings in long format, in file order; ``line`` is each reading's line number in the file
    (1 = the header), for messages about a reading found wrong later (e.g. an unknown meter)."""

    meter_id: list[str]
    time_s: np.ndarray
    v_rms: np.ndarray
    i_rms: np.ndarray
    pf: np.ndarray
    line: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.meter_id)

    def meter_ids(self) -> list[str]:
        return sorted(set(self.meter_id))

    def to_series(
        self,
        meters: Sequence[MeterInfo],
        *,
        transformer_id: str = "",
        period_s: int | None = None,
        transformer_lat: float | None = None,
        transformer_lon: float | None = None,
    ) -> TanSeries:
        """The readings of ``meters`` (others ignored) as a time-aligned :class:`.TanSeries`."""
        meters = list(meters)
        missing = [m.meter_id for m in meters if m.meter_id not in set(self.meter_id)]
        if missing:
            raise ValueError(f"no readings for meters {missing}")
        rows = zip(self.meter_id, self.time_s.tolist(), self.v_rms.tolist(), self.i_rms.tolist(), self.pf.tolist())
        return TanSeries.from_readings(
            rows,
            meters,
            transformer_id=transformer_id,
            period_s=period_s,
            transformer_lat=transformer_lat,
            transformer_lon=transformer_lon,
        )


def parse_timestamp(text: str, *, assume_utc: bool = False) -> int:
    """Unix seconds from Unix seconds or ISO 8601 text; raises ValueError with the reason."""
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    try:
        x = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(x):
            raise ValueError(f"timestamp {s!r} is not finite")
        if abs(x) >= 2.0**62:
            raise ValueError(f"timestamp {s!r} is out of range")
        return int(round(x))
    iso = s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"timestamp {s!r} is neither Unix seconds nor ISO 8601") from None
    if dt.tzinfo is None:
        if not assume_utc:
            raise ValueError(f"timestamp {s!r} has no time zone (add Z or +hh:mm, or pass assume_utc=True)")
        dt = dt.replace(tzinfo=UTC)
    return int(round(dt.timestamp()))


def read_ami_csv(source: str | os.PathLike | TextIO, *, assume_utc: bool = False) -> AmiData:
    """Read AMI interval data (see the module doc for the format). ``source`` is a path, or an
    open text file / file-like object."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, newline="", encoding="utf-8") as f:
            return _read(f, assume_utc)
    return _read(source, assume_utc)


def read_ami_csv_text(text: str, *, assume_utc: bool = False) -> AmiData:
    """Same as :func:`read_ami_csv` on a string."""
    return _read(text, assume_utc)


def _read(f: str | TextIO, assume_utc: bool) -> AmiData:
    try:
        return _read_records(csvsafe.records(f), assume_utc)
    except csvsafe.CsvProblem as e:
        raise AmiCsvError(e.msg, e.line) from None


def _read_records(reader: Iterator[tuple[int, list[str]]], assume_utc: bool) -> AmiData:
    header = None
    line = 0
    for n, row in reader:
        if not row or not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        header, line = [c.strip().lower() for c in row], n
        break
    if header is None:
        raise AmiCsvError("no header line; expected columns " + ",".join(REQUIRED))
    header_line = line
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise AmiCsvError(f"header lacks column(s) {', '.join(missing)}; expected {','.join(REQUIRED)}", header_line)
    dup = sorted({c for c in header if header.count(c) > 1 and c in REQUIRED})
    if dup:
        raise AmiCsvError(f"header repeats column(s) {', '.join(dup)}", header_line)
    col = {c: header.index(c) for c in REQUIRED}
    ids: list[str] = []
    ts: list[int] = []
    lines: list[int] = []
    vals: dict[str, list[float]] = {"v_rms": [], "i_rms": [], "pf": []}
    seen: dict[tuple[str, int], int] = {}
    for line, row in reader:
        if not row or not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if len(row) != len(header):
            raise AmiCsvError(f"{len(row)} fields, the header has {len(header)}", line)
        mid = row[col["meter_id"]].strip()
        if not mid:
            raise AmiCsvError("empty meter id", line, "meter_id")
        try:
            t = parse_timestamp(row[col["timestamp"]], assume_utc=assume_utc)
        except ValueError as e:
            raise AmiCsvError(str(e), line, "timestamp") from None
        for name in ("v_rms", "i_rms", "pf"):
            text = row[col[name]].strip()
            try:
                x = float(text)
            except ValueError:
                raise AmiCsvError(f"{text!r} is not a number", line, name) from None
            lo, hi, lo_ok = LIMITS[name]
            if not math.isfinite(x) or x > hi or x < lo or (x == lo and not lo_ok):
                rng = f"{'[' if lo_ok else '('}{lo:g}, {hi:g}]"
                raise AmiCsvError(f"{x!r} outside the valid range {rng}", line, name)
            vals[name].append(x)
        key = (mid, t)
        if key in seen:
            raise AmiCsvError(f"meter {mid} at time {t} already read on line {seen[key]}", line, "timestamp")
        seen[key] = line
        ids.append(mid)
        ts.append(t)
        lines.append(line)
    return AmiData(
        ids,
        np.asarray(ts, dtype=np.int64),
        np.asarray(vals["v_rms"]),
        np.asarray(vals["i_rms"]),
        np.asarray(vals["pf"]),
        np.asarray(lines, dtype=np.int64),
    )
