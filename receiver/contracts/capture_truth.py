"""The ground-truth file of a simulated capture, ``<stem>.truth.json`` (part of the capture contract).

``{"capture": {...}, "transmissions": [{...}, ...]}``, written by the simulator (:func:`write_truth`)
and read to score a replay (:func:`read_truth`); :func:`jsonable` makes plain JSON of numpy values.
Re-exported by :mod:`receiver.contracts.capture` (``docs/capture-format.md``).
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from receiver.contracts.capture_paths import TRUTH_SUFFIX, CaptureError, capture_stem, load_json

__all__ = ["jsonable", "read_truth", "write_truth"]


def _iso_utc(t: datetime) -> str:
    """As :func:`receiver.contracts.capture.iso_utc` for a datetime (that module imports this one)."""
    if t.tzinfo is None:
        raise ValueError("start_time_utc must be timezone-aware (UTC)")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jsonable(obj: Any, where: str) -> Any:
    """Plain-JSON copy of ``obj`` (numpy scalars/arrays, datetimes, paths converted); a
    non-finite float raises ValueError naming where it is."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), where)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if not math.isfinite(v):
            raise ValueError(f"{where}: non-finite number {v} cannot be stored in JSON")
        return v
    if isinstance(obj, datetime):
        return _iso_utc(obj)
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "item"):
        return jsonable(obj.item(), where)
    raise ValueError(f"{where}: cannot store {type(obj).__name__} in JSON")


def write_truth(stem: str | os.PathLike, transmissions: list[dict], extra: dict | None = None) -> Path:
    """Write ``<stem>.truth.json`` = ``{"capture": extra, "transmissions": transmissions}``."""
    st = capture_stem(stem)
    path = st.with_name(st.name + TRUTH_SUFFIX)
    capture = {"stem": st.name}
    capture.update(extra or {})
    cap = jsonable(capture, "capture")
    txs = jsonable(list(transmissions), "transmissions")
    path.parent.mkdir(parents=True, exist_ok=True)
    # one transmission a line, each by json's C encoder (an indented dump goes through its
    # pure-Python encoder: ~2 s for the truth of a 120-s 36-input scenario)
    rows = ",\n".join(json.dumps(t, allow_nan=False) for t in txs)
    text = '{"capture": ' + json.dumps(cap, allow_nan=False) + ',\n"transmissions": [\n' + rows + "\n]}\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_truth(stem: str | os.PathLike) -> dict:
    """Read ``<stem>.truth.json`` (checks the two top-level keys); CaptureError otherwise."""
    st = capture_stem(stem)
    path = st.with_name(st.name + TRUTH_SUFFIX)
    if not path.exists():
        raise CaptureError(f"{path}: ground-truth file not found")
    obj = load_json(path)
    if not isinstance(obj, dict):
        raise CaptureError(f"{path}: top level must be a JSON object")
    if not isinstance(obj.get("capture"), dict):
        raise CaptureError(f"{path}: capture: missing or not an object")
    if not isinstance(obj.get("transmissions"), list):
        raise CaptureError(f"{path}: transmissions: missing or not a list")
    return obj
