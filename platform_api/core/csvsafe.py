"""CSV in and out, safely: the one reader of posted CSV text and the one writer of CSV exports.

Reading (:func:`decode`, :func:`records`): every problem is a :class:`CsvProblem` naming the line
(1 = the header), never a ``csv.Error`` or ``UnicodeDecodeError`` escaping as a 500. Line ends
are LF or CRLF; a posted file whose lines end in CR alone (classic Mac OS) is refused at its first
line with a message saying how to save it, rather than guessed at (a CR inside a quoted cell is
text, and a file mixing both cannot be split safely). A field above ``csv.field_size_limit`` (128 KiB),
a quote left open, bytes that are not UTF-8 and NUL characters are refused naming their line; a
row with another number of fields than the header is refused by the callers (``ragged``).

Writing (:func:`write`): OWASP's CSV-injection rule. A spreadsheet opening the export runs a
cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a CR as a formula; such a *text* cell
is written with a leading single quote (``'=1+2``), which the spreadsheet shows and does not run.
Numbers are left as they are, whether written from ``int``/``float`` values or held as text that
is one plain decimal number (``-3.5``, ``+1e-3``, a JSON number in the history's ``old``/``new``):
a negative power factor or longitude stays a number a spreadsheet computes with, and a constant
cannot carry a formula. Any other text starting with those characters (``-2+3``, ``=HYPERLINK(..)``,
``@SUM(..)``) is neutralised. Every CSV export of the platform goes through :func:`write`; the
Grid Map import reverses it (:func:`restore`), so an export re-imports unchanged.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TextIO

__all__ = ["CsvProblem", "decode", "neutral", "records", "restore", "write"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


class CsvProblem(ValueError):
    """What is wrong with posted CSV text, and on which line (None: the whole body)."""

    def __init__(self, msg: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {msg}" if line is not None else msg)
        self.msg = msg
        self.line = line

    @property
    def loc(self) -> list:
        return ["body"] + ([f"line {self.line}"] if self.line is not None else [])


def decode(raw: bytes) -> str:
    """The text of a posted CSV body: UTF-8 (an optional BOM), no NUL characters."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise CsvProblem(f"not UTF-8 (byte 0x{raw[e.start]:02x}); the CSV must be UTF-8", line) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise CsvProblem("NUL characters are not allowed", text.count("\n", 0, nul) + 1)
    cr, lf = text.find("\r"), text.find("\n")
    if cr >= 0 and (lf < 0 or cr < lf) and not text.startswith("\r\n", cr):
        raise CsvProblem("lines end in CR alone (classic Mac OS); save the file with LF or CRLF line ends", 1)
    return text


def records(source: str | TextIO) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` of each record of a text or a file (opened with ``newline=""``); the
    line is where the record ends."""
    reader = csv.reader(io.StringIO(source, newline="") if isinstance(source, str) else source, strict=True)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise CsvProblem(f"unreadable CSV: {e}", reader.line_num) from None
        yield reader.line_num, row


def neutral(value: Any) -> Any:
    """A cell as :func:`write` writes it: text starting like a formula gets a leading quote;
    numbers (values, or text that is one plain decimal number), booleans and None are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def restore(cell: str) -> str:
    """The inverse of :func:`neutral` for an import of the platform's own export: a quote
    followed by a formula character is dropped, so the Grid Map CSV re-imports unchanged."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_START) and neutral(cell[1:]) == cell:
        return cell[1:]
    return cell


def write(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *, header: bool = True) -> str:
    """CSV text of ``rows`` (dicts; keys other than ``columns`` are ignored), every text cell
    through :func:`neutral`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow([neutral(c) for c in columns])
    for r in rows:
        w.writerow([neutral(r.get(c)) for c in columns])
    return buf.getvalue()
