"""Wire formats of the ZeroMQ sample streams (documented in ``docs/zmq-framing.md``).

Two formats are understood:

* **GLA framing, version 1** (ours): one ZeroMQ message = an 80-byte little-endian header (stream
  id, sequence number, first-sample index, UTC time of the first sample, sample rate, full scale,
  channel count, sample type, flags, frame count, session id, CRC-32) followed by interleaved
  samples (frame = one sample of every channel, frames one after another).
  :func:`pack_message` / :func:`unpack_message`.

* **GNU Radio raw** (what gr-zeromq ``push_sink`` / ``pub_sink`` send for a vector stream): the
  items themselves, optionally preceded by gr-zeromq's ``pass_tags`` header (magic 0x5FF0,
  version 1, offset of the first item, number of tags, then the tags as serialised PMTs).
  :func:`pack_gr_tag_header` / :func:`unpack_gr_tag_header`, with a PMT (de)serialiser for the
  tag values (:func:`pmt_serialize`, :func:`pmt_deserialize`).

Every unpack function raises :class:`FramingError` (a ValueError) naming the bad field; nothing
here logs or keeps state.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

__all__ = [
    "FramingError",
    "GlaHeader",
    "SAMPLE_TYPES",
    "SAMPLE_TYPE_CODES",
    "MAGIC",
    "VERSION",
    "HEADER_LEN",
    "FLAG_END_OF_STREAM",
    "FLAG_DISCONTINUITY",
    "FLAG_TIME_VALID",
    "pack_message",
    "unpack_message",
    "encode_samples",
    "decode_samples",
    "full_scale_value",
    "time_to_ns",
    "ns_to_time",
    "GR_HEADER_MAGIC",
    "GR_HEADER_VERSION",
    "GR_HEADER_MIN_LEN",
    "GrTag",
    "U64",
    "Pair",
    "pack_gr_tag_header",
    "unpack_gr_tag_header",
    "pmt_serialize",
    "pmt_deserialize",
]


class FramingError(ValueError):
    """A malformed or truncated message; the text names the offending field."""


# ------------------------------------------------------------------------------ GLA framing
MAGIC = b"GLAS"
VERSION = 1
HEADER_LEN = 80
#: struct layout of the fixed header; see docs/zmq-framing.md for the byte table
_HDR = struct.Struct("<4sBBH16sQQqddHHIII")
assert _HDR.size == HEADER_LEN
_CRC_AT = 76  # the CRC field: bytes 76..79

FLAG_END_OF_STREAM = 0x0001  #: the sender is done; this message may still carry samples
FLAG_DISCONTINUITY = 0x0002  #: the sender's sample clock does not continue its previous message
FLAG_TIME_VALID = 0x0004  #: ``time_ns`` holds the UTC time of the first sample

#: sample type code -> (name, numpy little-endian dtype)
SAMPLE_TYPES: dict[int, tuple[str, np.dtype]] = {
    1: ("int16", np.dtype("<i2")),
    2: ("int32", np.dtype("<i4")),
    3: ("float32", np.dtype("<f4")),
    4: ("float64", np.dtype("<f8")),
}
SAMPLE_TYPE_CODES: dict[str, int] = {name: code for code, (name, _) in SAMPLE_TYPES.items()}


@dataclass(frozen=True)
class GlaHeader:
    """The fields of a GLA v1 header (``header_len`` and ``crc32`` are computed by
    :func:`pack_message`)."""

    stream_id: str
    seq: int
    first_sample: int
    sample_rate_hz: float
    n_channels: int
    sample_type: str = "float32"  #: "int16" | "int32" | "float32" | "float64"
    full_scale: float = 1.0  #: physical value of a full-scale sample (see decode_samples)
    time_ns: int | None = None  #: UTC ns since 1970 of the first sample, None = unknown
    flags: int = 0  #: FLAG_* bits except FLAG_TIME_VALID (derived from time_ns)
    session: int = 0  #: random per sender start; a change = the sender restarted
    n_frames: int = 0  #: filled in by unpack_message
    header_len: int = HEADER_LEN

    @property
    def time_utc(self) -> datetime | None:
        return None if self.time_ns is None else ns_to_time(self.time_ns)

    @property
    def end_of_stream(self) -> bool:
        return bool(self.flags & FLAG_END_OF_STREAM)


def time_to_ns(t: datetime) -> int:
    """Aware datetime -> integer ns since 1970-01-01 UTC (exact to the microsecond)."""
    if t.tzinfo is None:
        raise ValueError("time must be timezone-aware (UTC)")
    d = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000


def ns_to_time(ns: int) -> datetime:
    """Integer ns since 1970 UTC -> aware datetime (truncated to the microsecond)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def full_scale_value(sample_type: str) -> float:
    """Integer value that stands for 1.0 of full scale: 2**15 for int16, 2**31 for int32; 1.0
    for floats."""
    return {"int16": 32768.0, "int32": 2147483648.0}.get(sample_type, 1.0)


def encode_samples(x: np.ndarray, sample_type: str, full_scale: float) -> tuple[np.ndarray, int]:
    """Physical ``(n, n_channels)`` samples -> wire samples of ``sample_type``;
    returns ``(raw, n_clipped)``.

    Integers: ``raw = round(x / full_scale * 2**(bits-1))``, saturated to the type's range
    (saturated values are counted). Floats: ``raw = x / full_scale`` (``full_scale`` 0 means 1:
    the floats are the physical values).
    """
    if sample_type not in SAMPLE_TYPE_CODES:
        raise ValueError(f"sample_type must be one of {sorted(SAMPLE_TYPE_CODES)}, got {sample_type!r}")
    dt = SAMPLE_TYPES[SAMPLE_TYPE_CODES[sample_type]][1]
    x = np.asarray(x, dtype=np.float64)
    if dt.kind == "f":
        fs = full_scale if full_scale else 1.0
        return (x / fs).astype(dt), 0
    if not (full_scale > 0):
        raise ValueError(f"full_scale must be > 0 for {sample_type}, got {full_scale!r}")
    info = np.iinfo(dt)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{sample_type} cannot carry NaN or infinite samples")
    y = np.rint(x / full_scale * full_scale_value(sample_type))
    over = (y > info.max) | (y < info.min)
    return np.clip(y, info.min, info.max).astype(dt), int(np.count_nonzero(over))


def decode_samples(raw: np.ndarray, full_scale: float) -> np.ndarray:
    """Wire samples -> physical float64: integers ``raw / 2**(bits-1) * full_scale``, floats
    ``raw * full_scale`` (``full_scale`` 0 for floats means 1)."""
    if raw.dtype.kind == "f":
        y = raw.astype(np.float64)
        if full_scale and full_scale != 1.0:
            y *= full_scale
        return y
    f = full_scale / (2.0 ** (8 * raw.dtype.itemsize - 1))
    return raw.astype(np.float64) * f


def pack_message(h: GlaHeader, samples: np.ndarray) -> bytes:
    """Header + interleaved samples -> one message. ``samples`` is ``(n, n_channels)`` of the
    header's sample type (see :func:`encode_samples`)."""
    st = h.sample_type
    if st not in SAMPLE_TYPE_CODES:
        raise FramingError(f"sample_type: must be one of {sorted(SAMPLE_TYPE_CODES)}, got {st!r}")
    code = SAMPLE_TYPE_CODES[st]
    dt = SAMPLE_TYPES[code][1]
    x = np.asarray(samples)
    if x.ndim == 1 and h.n_channels == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != h.n_channels:
        raise FramingError(f"samples: shape {x.shape} does not match n_channels={h.n_channels}")
    if x.dtype != dt:
        if x.dtype.kind != dt.kind or x.dtype.itemsize != dt.itemsize:
            raise FramingError(f"samples: dtype {x.dtype} does not match sample_type {st}")
        x = x.astype(dt)
    sid = h.stream_id.encode("utf-8")
    if len(sid) > 16 or b"\0" in sid:
        raise FramingError(f"stream_id: at most 16 UTF-8 bytes without NUL, got {h.stream_id!r}")
    if not (0 <= h.seq < 1 << 64):
        raise FramingError(f"seq: must fit in uint64, got {h.seq}")
    if not (0 <= h.first_sample < 1 << 64):
        raise FramingError(f"first_sample: must fit in uint64, got {h.first_sample}")
    if not (h.sample_rate_hz > 0 and np.isfinite(h.sample_rate_hz)):
        raise FramingError(f"sample_rate_hz: must be a positive number, got {h.sample_rate_hz}")
    if not (1 <= h.n_channels <= 0xFFFF):
        raise FramingError(f"n_channels: must be 1..65535, got {h.n_channels}")
    if not (np.isfinite(h.full_scale) and (h.full_scale > 0 or (h.full_scale == 0 and dt.kind == "f"))):
        raise FramingError(f"full_scale: must be > 0 (or 0 for floats), got {h.full_scale}")
    if not (0 <= h.session < 1 << 32):
        raise FramingError(f"session: must fit in uint32, got {h.session}")
    if x.shape[0] >= 1 << 32:
        raise FramingError("n_frames: too many frames for one message")
    flags = int(h.flags) & ~FLAG_TIME_VALID & 0xFFFF
    t = 0
    if h.time_ns is not None:
        flags |= FLAG_TIME_VALID
        t = int(h.time_ns)
    hdr = bytearray(
        _HDR.pack(
            MAGIC,
            VERSION,
            code,
            HEADER_LEN,
            sid,
            h.seq,
            h.first_sample,
            t,
            float(h.sample_rate_hz),
            float(h.full_scale),
            h.n_channels,
            flags,
            x.shape[0],
            h.session,
            0,
        )
    )
    payload = np.ascontiguousarray(x).tobytes()
    crc = zlib.crc32(payload, zlib.crc32(memoryview(hdr)[:_CRC_AT]))
    struct.pack_into("<I", hdr, _CRC_AT, crc)
    return bytes(hdr) + payload


def unpack_message(msg: bytes | memoryview, *, check_crc: bool = True) -> tuple[GlaHeader, np.ndarray]:
    """One message -> ``(header, samples)``; ``samples`` is a read-only ``(n_frames, n_channels)``
    view of the wire type. Raises :class:`FramingError` naming the bad field."""
    mv = memoryview(msg).cast("B")
    if len(mv) < HEADER_LEN:
        if len(mv) >= 4 and bytes(mv[:4]) != MAGIC:
            raise FramingError(f"magic: expected {MAGIC!r}, got {bytes(mv[:4])!r}")
        raise FramingError(f"header: truncated message of {len(mv)} bytes (the header alone is {HEADER_LEN})")
    (magic, version, code, hlen, sid, seq, first, t, fs, full, nch, flags, nfr, session, crc) = _HDR.unpack_from(mv, 0)
    if magic != MAGIC:
        raise FramingError(f"magic: expected {MAGIC!r}, got {magic!r}")
    if version != VERSION:
        raise FramingError(f"version: this receiver reads version {VERSION}, got {version}")
    if code not in SAMPLE_TYPES:
        raise FramingError(f"sample_type: unknown code {code} (known: {sorted(SAMPLE_TYPES)})")
    if hlen < HEADER_LEN:
        raise FramingError(f"header_len: must be >= {HEADER_LEN}, got {hlen}")
    if hlen > len(mv):
        raise FramingError(f"header_len: {hlen} is beyond the end of the {len(mv)}-byte message")
    try:
        stream_id = sid.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError as e:
        raise FramingError(f"stream_id: not UTF-8: {sid!r}") from e
    if "\0" in stream_id:
        raise FramingError(f"stream_id: NUL inside the id: {sid!r}")
    if not (fs > 0 and np.isfinite(fs)):
        raise FramingError(f"sample_rate_hz: must be a positive number, got {fs}")
    name, dt = SAMPLE_TYPES[code]
    if not (np.isfinite(full) and (full > 0 or (full == 0 and dt.kind == "f"))):
        raise FramingError(f"full_scale: must be > 0 (or 0 for floats), got {full}")
    if nch < 1:
        raise FramingError(f"n_channels: must be >= 1, got {nch}")
    want = nfr * nch * dt.itemsize
    have = len(mv) - hlen
    if have != want:
        raise FramingError(
            f"n_frames: {nfr} frames x {nch} channels of {name} need {want} payload bytes, the message has {have}"
        )
    if check_crc:
        c = zlib.crc32(mv[hlen:], zlib.crc32(mv[HEADER_LEN:hlen], zlib.crc32(mv[:_CRC_AT])))
        if c != crc:
            raise FramingError(f"crc32: computed {c:#010x}, header says {crc:#010x}")
    samples = np.frombuffer(mv, dtype=dt, count=nfr * nch, offset=hlen).reshape(nfr, nch)
    h = GlaHeader(
        stream_id=stream_id,
        seq=seq,
        first_sample=first,
        sample_rate_hz=fs,
        n_channels=nch,
        sample_type=name,
        full_scale=full,
        time_ns=t if flags & FLAG_TIME_VALID else None,
        flags=flags,
        session=session,
        n_frames=nfr,
        header_len=hlen,
    )
    return h, samples


# ------------------------------------------------------------------------ GNU Radio tag header
# gr-zeromq/lib/tag_headers.cc: gen_tag_header() writes, in host byte order (little-endian on
# every platform GNU Radio runs on in practice):
#   uint16 magic 0x5FF0, uint8 version 0x01, uint64 offset (nitems_read of the first item of the
#   message), uint64 ntags, then per tag: uint64 offset (absolute), pmt key, pmt value, pmt srcid
#   (pmt::serialize, big-endian).
GR_HEADER_MAGIC = 0x5FF0
GR_HEADER_VERSION = 1
_GR = struct.Struct("<HBQQ")
GR_HEADER_MIN_LEN = _GR.size  # 19


class U64(int):
    """An integer serialised as a PMT uint64 (PST_UINT64) rather than int32/int64."""


@dataclass(frozen=True)
class Pair:
    """A PMT pair (cons cell) that is not a proper list."""

    car: Any
    cdr: Any


@dataclass(frozen=True)
class GrTag:
    offset: int  #: absolute item index
    key: Any  #: usually a symbol (str)
    value: Any
    srcid: Any = False  #: PMT_F when the block set none


# PMT serial tags (gnuradio-runtime/include/pmt/pmt_serial_tags.h)
PST_TRUE, PST_FALSE, PST_SYMBOL, PST_INT32, PST_DOUBLE, PST_COMPLEX, PST_NULL = 0, 1, 2, 3, 4, 5, 6
PST_PAIR, PST_VECTOR, PST_DICT, PST_UNIFORM_VECTOR, PST_UINT64, PST_TUPLE, PST_INT64 = 7, 8, 9, 10, 11, 12, 13
PST_COMMENT = 0x3B
#: uniform vector subtype -> (big-endian numpy dtype, items per element)
_UVI: dict[int, tuple[str, int]] = {
    0: (">u1", 1),
    1: (">i1", 1),
    2: (">u2", 1),
    3: (">i2", 1),
    4: (">u4", 1),
    5: (">i4", 1),
    6: (">u8", 1),
    7: (">i8", 1),
    8: (">f4", 1),
    9: (">f8", 1),
    10: (">f4", 2),
    11: (">f8", 2),
}
_UVI_OF_DTYPE = {
    "u1": 0,
    "i1": 1,
    "u2": 2,
    "i2": 3,
    "u4": 4,
    "i4": 5,
    "u8": 6,
    "i8": 7,
    "f4": 8,
    "f8": 9,
    "c8": 10,
    "c16": 11,
}
_MAX_DEPTH = 64


def pmt_serialize(obj: Any) -> bytes:
    """Python value -> ``pmt::serialize`` bytes. Mapping: True/False -> #t/#f, None -> '(),
    str -> symbol, int -> int32 (int64 beyond), :class:`U64` -> uint64, float -> double,
    complex -> complex, tuple -> tuple, list -> vector, :class:`Pair` -> pair, numpy 1-d array
    -> uniform vector (f32/c32 elements as 4-byte floats, as current GNU Radio writes them)."""
    out = bytearray()
    _ser(obj, out, 0)
    return bytes(out)


def _ser(obj: Any, out: bytearray, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("pmt: nesting too deep")
    if obj is True:
        out.append(PST_TRUE)
    elif obj is False:
        out.append(PST_FALSE)
    elif obj is None:
        out.append(PST_NULL)
    elif isinstance(obj, str):
        b = obj.encode("utf-8")
        if len(b) > 0xFFFF:
            raise ValueError("pmt: symbol too long")
        out += struct.pack(">BH", PST_SYMBOL, len(b)) + b
    elif isinstance(obj, U64):
        out += struct.pack(">BQ", PST_UINT64, int(obj))
    elif isinstance(obj, (int, np.integer)):
        i = int(obj)
        if -(1 << 31) <= i < 1 << 31:
            out += struct.pack(">Bi", PST_INT32, i)
        else:
            out += struct.pack(">Bq", PST_INT64, i)
    elif isinstance(obj, (float, np.floating)):
        out += struct.pack(">Bd", PST_DOUBLE, float(obj))
    elif isinstance(obj, (complex, np.complexfloating)):
        out += struct.pack(">Bdd", PST_COMPLEX, obj.real, obj.imag)
    elif isinstance(obj, Pair):
        out.append(PST_PAIR)
        _ser(obj.car, out, depth + 1)
        _ser(obj.cdr, out, depth + 1)
    elif isinstance(obj, tuple):
        out += struct.pack(">BI", PST_TUPLE, len(obj))
        for v in obj:
            _ser(v, out, depth + 1)
    elif isinstance(obj, list):
        out += struct.pack(">BI", PST_VECTOR, len(obj))
        for v in obj:
            _ser(v, out, depth + 1)
    elif isinstance(obj, np.ndarray) and obj.ndim == 1:
        key = obj.dtype.str[1:]
        if key not in _UVI_OF_DTYPE:
            raise ValueError(f"pmt: no uniform vector of {obj.dtype}")
        uvi = _UVI_OF_DTYPE[key]
        out += struct.pack(">BBIBB", PST_UNIFORM_VECTOR, uvi, obj.size, 1, 0)
        be, _ = _UVI[uvi]
        flat = obj.view(obj.real.dtype) if obj.dtype.kind == "c" else obj
        out += np.ascontiguousarray(flat, dtype=be).tobytes()
    else:
        raise ValueError(f"pmt: cannot serialise {type(obj).__name__}")


class _Reader:
    __slots__ = ("buf", "pos", "legacy_f32", "saw_f32")

    def __init__(self, buf: memoryview, pos: int, legacy_f32: bool):
        self.buf, self.pos, self.legacy_f32, self.saw_f32 = buf, pos, legacy_f32, False

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise FramingError(
                f"{what}: truncated (needs {n} bytes at offset {self.pos}, the message has {len(self.buf)})"
            )
        v = self.buf[self.pos : self.pos + n]
        self.pos += n
        return v

    def unpack(self, fmt: str, what: str) -> tuple:
        s = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(s, what))


def _deser(r: _Reader, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise FramingError("pmt: nesting too deep")
    (tag,) = r.unpack(">B", "pmt tag")
    if tag == PST_TRUE:
        return True
    if tag == PST_FALSE:
        return False
    if tag == PST_NULL:
        return None
    if tag == PST_SYMBOL:
        (n,) = r.unpack(">H", "pmt symbol length")
        return bytes(r.take(n, "pmt symbol")).decode("utf-8", "replace")
    if tag == PST_INT32:
        return r.unpack(">i", "pmt int32")[0]
    if tag == PST_INT64:
        return r.unpack(">q", "pmt int64")[0]
    if tag == PST_UINT64:
        return U64(r.unpack(">Q", "pmt uint64")[0])
    if tag == PST_DOUBLE:
        return r.unpack(">d", "pmt double")[0]
    if tag == PST_COMPLEX:
        re, im = r.unpack(">dd", "pmt complex")
        return complex(re, im)
    if tag in (PST_PAIR, PST_DICT):
        # a list: car, then the cdr's tag; PST_PAIR/PST_DICT continue the list, PST_NULL ends it
        items = []
        while True:
            items.append(_deser(r, depth + 1))
            (t,) = r.unpack(">B", "pmt pair cdr tag")
            if t in (PST_PAIR, PST_DICT):
                if len(items) > 1 << 20:
                    raise FramingError("pmt: list too long")
                continue
            if t == PST_NULL:
                return items
            r.pos -= 1
            cdr = _deser(r, depth + 1)
            p: Any = cdr
            for it in reversed(items):
                p = Pair(it, p)
            return p
    if tag in (PST_TUPLE, PST_VECTOR):
        (n,) = r.unpack(">I", "pmt tuple/vector length")
        if n > len(r.buf) - r.pos:
            raise FramingError(f"pmt tuple/vector length: {n} items cannot fit in the message")
        vals = [_deser(r, depth + 1) for _ in range(n)]
        return tuple(vals) if tag == PST_TUPLE else vals
    if tag == PST_UNIFORM_VECTOR:
        uvi, n, npad = r.unpack(">BIB", "pmt uniform vector header")
        r.take(npad, "pmt uniform vector padding")
        sub = uvi & 0x7F
        if sub not in _UVI:
            raise FramingError(f"pmt uniform vector: unknown subtype {uvi:#x}")
        be, per = _UVI[sub]
        if be == ">f4":
            r.saw_f32 = True
            if r.legacy_f32:  # GNU Radio 3.7 wrote f32/c32 elements as 8-byte doubles
                be = ">f8"
        itemsize = int(be[2:])
        raw = r.take(n * per * itemsize, "pmt uniform vector data")
        a = np.frombuffer(raw, dtype=be).astype(be.replace(">", "="))
        if per == 2:
            a = a.astype(np.float64).view(np.complex128) if itemsize == 8 else a.view(np.complex64)
        return a
    raise FramingError(f"pmt tag: unknown or unsupported serial tag {tag:#04x}")


def pmt_deserialize(buf: bytes | memoryview, pos: int = 0, *, legacy_f32: bool = False) -> tuple[Any, int]:
    """``pmt::deserialize`` of one value at ``buf[pos:]`` -> ``(value, end_position)``.

    Proper lists come back as Python lists and PMT vectors too (a list and a vector are not told
    apart), dicts as lists of :class:`Pair`. ``legacy_f32``: f32/c32 uniform vector elements are
    8-byte doubles (GNU Radio 3.7's ``pmt_serialize.cc``) instead of 4-byte floats (current)."""
    r = _Reader(memoryview(buf).cast("B"), pos, legacy_f32)
    return _deser(r, 0), r.pos


def pack_gr_tag_header(offset: int, tags: Sequence[GrTag] = ()) -> bytes:
    """The bytes gr-zeromq's ``gen_tag_header(offset, tags)`` produces (little-endian host)."""
    out = bytearray(_GR.pack(GR_HEADER_MAGIC, GR_HEADER_VERSION, offset, len(tags)))
    for t in tags:
        out += struct.pack("<Q", t.offset)
        for v in (t.key, t.value, t.srcid):
            _ser(v, out, 0)
    return bytes(out)


def _parse_gr(r: _Reader) -> tuple[int, list[GrTag]]:
    magic, version, offset, ntags = _GR.unpack_from(r.buf, 0)
    if magic != GR_HEADER_MAGIC:
        raise FramingError(f"gr magic: expected {GR_HEADER_MAGIC:#06x}, got {magic:#06x}")
    if version != GR_HEADER_VERSION:
        raise FramingError(f"gr version: expected {GR_HEADER_VERSION}, got {version}")
    # each tag needs at least 8 (offset) + 3 (three one-byte PMTs) bytes
    if ntags > (len(r.buf) - _GR.size) // 11:
        raise FramingError(f"gr ntags: {ntags} tags cannot fit in a {len(r.buf)}-byte message")
    r.pos = _GR.size
    tags = []
    for i in range(ntags):
        (toff,) = r.unpack("<Q", f"gr tag[{i}] offset")
        key = _deser(r, 0)
        value = _deser(r, 0)
        srcid = _deser(r, 0)
        tags.append(GrTag(toff, key, value, srcid))
    return offset, tags


def unpack_gr_tag_header(msg: bytes | memoryview, item_size: int | None = None) -> tuple[int, list[GrTag], int]:
    """Parse gr-zeromq's ``pass_tags`` header -> ``(offset, tags, header_length)``; the items
    follow at ``msg[header_length:]``.

    With ``item_size`` (bytes per item: 4 * n_channels for a float32 vector stream) the parse is
    checked: the payload must be a whole number of items and every tag must lie on an item of
    this message (gr-zeromq sends exactly the tags in ``[offset, offset + n_items)``). Tags with
    f32/c32 uniform vectors are tried with both element sizes GNU Radio has used (4-byte floats
    in current releases, 8-byte doubles in 3.7) and the layout that passes the check wins.
    Anything else malformed raises :class:`FramingError` naming the field."""
    mv = memoryview(msg).cast("B")
    if len(mv) < _GR.size:
        raise FramingError(f"gr header: truncated message of {len(mv)} bytes (the tag header alone is {_GR.size})")
    first: FramingError | None = None
    for legacy in (False, True):
        r = _Reader(mv, 0, legacy)
        try:
            offset, tags = _parse_gr(r)
            if item_size is not None:
                payload = len(mv) - r.pos
                if payload % item_size:
                    raise FramingError(
                        f"gr payload: {payload} bytes after the tag header is not a "
                        f"multiple of the item size {item_size}"
                    )
                n = payload // item_size
                for t in tags:
                    if not (offset <= t.offset < offset + n):
                        raise FramingError(
                            f"gr tag offset: {t.offset} outside the message's items [{offset}, {offset + n})"
                        )
            return offset, tags, r.pos
        except FramingError as e:
            first = first or e
            if not r.saw_f32:  # the other element size cannot change anything
                break
    assert first is not None
    raise first
