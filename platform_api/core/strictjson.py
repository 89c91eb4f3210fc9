"""Strict JSON for request bodies: what Python's ``json`` (and pydantic's parser) let through
silently is refused here with the place it was found.

* ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259 section 6), but ``json.loads``
  reads them as floats, which the database then stores as NULL or refuses at commit time.
* A key given twice in one object: ``json.loads`` and pydantic keep the last, so what is stored
  is not what a reviewer of the body would read (and two parsers of the same body may disagree).
* Bytes that are not UTF-8 (or the UTF-16/32 that ``json.loads`` detects), and nesting deep
  enough to exhaust the parser's recursion.

:func:`loads` raises :class:`Refused` with ``loc`` (``("body", "copies", 0, "level_db")``) and a
one-line message; routes turn it into a 422 in FastAPI's format. The first parse only detects the
problem (a hook per object); the place is found by a second parse, done only for refused bodies.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Refused", "loads"]


class Refused(ValueError):
    """A body that is not strict JSON; ``loc`` names where, ``type`` is FastAPI's error type."""

    def __init__(self, loc: tuple, msg: str, type_: str = "json_invalid") -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.type = type_


class _Dup(Exception):
    pass


class _Const(Exception):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) < len(pairs):
        raise _Dup
    return d


def _constant(name: str) -> Any:
    raise _Const


class _Mark:
    """What the locating parse puts where a problem was (found afterwards by a walk)."""

    __slots__ = ("msg",)

    def __init__(self, msg: str) -> None:
        self.msg = msg


def _mark_pairs(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            seen[k] = _Mark(f"duplicate key {k[:64]!r} in one object")
        else:
            seen[k] = v
    return seen


def _mark_constant(name: str) -> Any:
    return _Mark(f"{name} is not a JSON number (finite numbers only)")


def _find(x: Any, path: tuple) -> tuple[tuple, str] | None:
    """Depth-first, in document order: the first mark and its path."""
    stack = [(x, path)]
    while stack:
        v, p = stack.pop()
        if isinstance(v, _Mark):
            return p, v.msg
        if isinstance(v, dict):
            stack.extend(reversed([(w, p + (k,)) for k, w in v.items()]))
        elif isinstance(v, list):
            stack.extend(reversed([(w, p + (i,)) for i, w in enumerate(v)]))
    return None


def loads(raw: bytes | str, prefix: tuple = ("body",)) -> Any:
    """The parsed body, or :class:`Refused` naming where it is not strict JSON."""
    try:
        return json.loads(raw, object_pairs_hook=_pairs, parse_constant=_constant)
    except (_Dup, _Const):
        pass
    except json.JSONDecodeError as e:
        raise Refused(prefix, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError:
        raise Refused(prefix, "the body is not UTF-8 text") from None
    except RecursionError:
        raise Refused(prefix, "JSON nested too deeply") from None
    # refused: parse again, marking the place instead of stopping there
    try:
        hit = _find(json.loads(raw, object_pairs_hook=_mark_pairs, parse_constant=_mark_constant), prefix)
    except RecursionError:  # pragma: no cover - the first parse got through at the same depth
        raise Refused(prefix, "JSON nested too deeply") from None
    if hit is None:  # pragma: no cover - the first parse found one
        raise Refused(prefix, "not strict JSON")
    where, msg = hit
    raise Refused(where, msg, "value_error")
