"""The SigMF side of the capture contract: datatypes, the ``gla`` extension, old sidecars.

A capture's sidecar is SigMF 1.2 metadata (spec 1.2.x, checked with the ``sigmf`` package's
validator in the tests). Two kinds of recording are read (``docs/capture-format.md``):

* **the simulator's captures**: a *non-conforming dataset* (NCD): ``core:dataset`` names the
  WAV/RF64/W64/FLAC file next to the sidecar, and the ``gla`` extension (declared in
  ``core:extensions`` with ``optional: false``) says what container and sample format it is
  (``gla:format``, ``gla:subtype``). ``core:datatype`` is the legal SigMF type the samples are
  read as (a 24-bit WAV sample is read left-justified in 32 bits: ``ri32_le``).
* **a real SigMF recording**: ``STEM.sigmf-data`` (no ``core:dataset``), any real datatype
  (``ri8``, ``ru8``, ``ri16``, ``ru16``, ``ri32``, ``ru32``, ``rf32``, ``rf64``, little or big
  endian; read by :mod:`receiver.contracts.sigmf_data`), ``core:num_channels`` interleaved
  inputs. The ``gla`` extension is optional there: see :data:`DEFAULTS`.

Sidecars written before the extension was declared (``gla:channels`` at the top level,
``core:datatype: ri24_le``) are still read: :func:`upgrade_sidecar` turns one into the current
layout, in memory for reading and in place with ``gla capture upgrade STEM``.

Needs nothing but the standard library.
"""

from __future__ import annotations

import copy
import re
from typing import Any

__all__ = [
    "DEFAULTS",
    "GLA_EXTENSION",
    "SIGMF_VERSION",
    "default_channels",
    "declare_gla",
    "is_old_layout",
    "ncd_datatype",
    "raw_subtype",
    "upgrade_sidecar",
]

#: The SigMF specification version the sidecars follow (``core:version``).
SIGMF_VERSION = "1.2.6"
#: The project's extension namespace and the version of its keys.
GLA_EXTENSION = "gla"
GLA_EXTENSION_VERSION = "1.0.0"

#: What a SigMF recording without the gla extension is read with (key -> value).
DEFAULTS: dict[str, Any] = {
    "gla:scale": 1.0,  # file value = per-unit current * scale: the samples are per-unit current
    "gla:grid_hz": 60.0,  # as the receiver's config defaults to
    # gla:channels: default_channels(n): input i on bus 0, feeder i // 3, phase "ABC"[i % 3], polarity 1
}

#: soundfile subtype -> the SigMF datatype a WAV/RF64/W64/FLAC sample is read as (NCD layout)
_NCD_DATATYPES = {
    "PCM_16": "ri16_le",
    "PCM_24": "ri32_le",  # 3 bytes on disk, read left-justified in 32 bits (gla:subtype says which)
    "PCM_32": "ri32_le",
    "FLOAT": "rf32_le",
    "DOUBLE": "rf64_le",
}
#: what the old layout wrote as core:datatype (ri24_le is no SigMF type)
_OLD_DATATYPES = {"ri16_le", "ri24_le", "ri32_le", "rf32_le", "rf64_le"}

#: SigMF sample type (without endianness) -> libsndfile RAW subtype
_RAW_SUBTYPES = {
    "i8": "PCM_S8",
    "u8": "PCM_U8",
    "i16": "PCM_16",
    "i32": "PCM_32",
    "u16": "PCM_U16",  # no libsndfile subtype: names for receiver.contracts.sigmf_data
    "u32": "PCM_U32",
    "f32": "FLOAT",
    "f64": "DOUBLE",
}
_DATATYPE = re.compile(r"^(c|r)(f32|f64|i32|i16|u32|u16|i8|u8)(_le|_be)?$")


def ncd_datatype(subtype: str) -> str:
    """The ``core:datatype`` of a simulator capture with this soundfile subtype."""
    return _NCD_DATATYPES[subtype]


def raw_subtype(datatype: str) -> tuple[str, str]:
    """``(subtype, endian)`` of a ``.sigmf-data`` file of ``datatype`` (libsndfile's subtype names,
    ``PCM_U16``/``PCM_U32`` added); ValueError (one line) for a complex or malformed type."""
    m = _DATATYPE.match(datatype)
    if m is None:
        raise ValueError(f"{datatype!r} is not a SigMF datatype (e.g. rf32_le, ri16_le, ri8)")
    kind, base, endian = m.groups()
    if kind == "c":
        raise ValueError(
            f"{datatype!r} is complex (I/Q); the receiver reads real samples of CT-loop currents "
            f"(r{base}{endian or ''}), one per input and time step"
        )
    if base in ("i8", "u8"):
        if endian:
            raise ValueError(f"{datatype!r}: 8-bit types take no endianness (r{base})")
        return _RAW_SUBTYPES[base], "FILE"
    if not endian:
        raise ValueError(f"{datatype!r}: a {base[1:]}-bit type needs _le or _be")
    return _RAW_SUBTYPES[base], "LITTLE" if endian == "_le" else "BIG"


def default_channels(n: int) -> list[dict]:
    """The channel map of a recording without ``gla:channels``: every input its own feeder
    phase, three to a feeder, all on bus 0, polarity as wired."""
    return [
        {"index": i, "bus": 0, "feeder": i // 3, "feeder_in_bus": i // 3, "phase": "ABC"[i % 3], "ct_polarity": 1}
        for i in range(n)
    ]


def declare_gla(glob: dict, optional: bool) -> None:
    """Declare the gla extension in ``glob["core:extensions"]`` (kept if already declared)."""
    exts = glob.setdefault("core:extensions", [])
    if not any(isinstance(e, dict) and e.get("name") == GLA_EXTENSION for e in exts):
        exts.append({"name": GLA_EXTENSION, "version": GLA_EXTENSION_VERSION, "optional": optional})


def is_old_layout(raw: dict) -> bool:
    """A sidecar of the layout before SigMF 1.2 conformance (top-level ``gla:channels``)."""
    return "gla:channels" in raw


def upgrade_sidecar(raw: dict, dataset: str | None = None) -> dict:
    """A copy of an old-layout sidecar in the current layout: ``gla:channels`` moved into
    ``global``, the datatype a legal SigMF one, ``core:version`` 1.2.x, the extension declared,
    ``core:dataset`` set to ``dataset`` where the old sidecar left it out (it was optional then).
    The audio file and its ``gla:sha256`` are untouched; a current sidecar comes back as is."""
    new = copy.deepcopy(raw)
    if not is_old_layout(new) or not isinstance(new.get("global"), dict):
        return new
    g = new["global"]
    if dataset is not None:
        g.setdefault("core:dataset", dataset)
    g["gla:channels"] = new.pop("gla:channels")
    subtype = g.get("gla:subtype")
    if g.get("core:datatype") in _OLD_DATATYPES and subtype in _NCD_DATATYPES:
        g["core:datatype"] = _NCD_DATATYPES[subtype]
    g["core:version"] = SIGMF_VERSION
    declare_gla(g, optional=False)
    # keep the SigMF key order readable: core first, then the extension's
    ordered = {k: g[k] for k in g if k.startswith("core:")}
    ordered.update({k: g[k] for k in g if not k.startswith("core:")})
    new["global"] = ordered
    return {"global": ordered, **{k: v for k, v in new.items() if k != "global"}}
