"""receiver.sources / receiver.contracts.zmq_framing: the sample sources.

Framing round trips and malformed messages; the stream rules (gaps, duplicates, reordering,
shape changes, NaN, clipping, restarts) with exact counts and exact sample alignment, first
without sockets, then over real ZeroMQ sockets on 127.0.0.1 (PUSH/PULL, PUB/SUB, GNU Radio raw
with and without the pass_tags header); capture replay, including a truncated capture."""

from __future__ import annotations

import logging
import shutil
import struct
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from gridsim.capture import CaptureWriter
from receiver.contracts import zmq_framing as zf
from receiver.sources import (
    CaptureSender,
    CaptureSource,
    CaptureTruncatedError,
    SampleBlock,
    SendReport,
    Source,
    SourceStats,
    StreamAssembler,
    ZmqSource,
    stream_capture,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "captures" / "demo_small"
FS = 8000
SCALE = 0.25
NCH = 4
BLOCK = 800  # frames per message at block_s=0.1
N_MSG = 30
START = datetime(2025, 3, 3, 14, tzinfo=UTC)
LOCAL = "tcp://127.0.0.1:*"


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3 s, 4-input, 8 kHz PCM_24 capture and its per-unit samples as read back."""
    stem = tmp_path_factory.mktemp("cap") / "tiny"
    rng = np.random.default_rng(5)
    t = np.arange(3 * FS) / FS
    x = 1.5 * np.sin(2 * np.pi * 60 * t)[:, None] * np.array([1.0, -0.8, 0.6, 0.3])
    x += 0.01 * rng.standard_normal((t.size, NCH))
    with CaptureWriter(
        stem, FS, NCH, [(0, 0, "A"), (0, 0, "B"), (0, 0, "C"), (0, 1, "A")], start_time_utc=START, scale=SCALE
    ) as w:
        w.write(x)
    ref, _ = sf.read(str(stem) + ".wav", dtype="float64")
    return stem, ref / SCALE


def feed_all(asm: StreamAssembler, messages) -> list[SampleBlock]:
    out = []
    for _, parts, _ in messages:
        out += asm.feed(parts)
    return out + asm.flush()


def reassemble(blocks: list[SampleBlock], n: int, nch: int) -> np.ndarray:
    """Place every block at its first_sample; checks that consecutive blocks follow each other
    exactly unless a discontinuity is flagged (no silent shift)."""
    y = np.full((n, nch), np.nan)
    prev = None
    for b in blocks:
        assert b.samples.dtype == np.float64 and b.samples.ndim == 2
        if prev is not None and not b.discontinuity:
            assert b.first_sample == prev.end_sample, (prev.first_sample, b.first_sample)
        y[b.first_sample : b.end_sample] = b.samples
        prev = b
    return y


def nan_runs(y: np.ndarray) -> list[tuple[int, int]]:
    bad = np.isnan(y).all(axis=1).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bad, [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def sender(stem, **kw) -> CaptureSender:
    kw.setdefault("block_s", 0.1)
    return CaptureSender(stem, LOCAL, **kw)


def counts(stats: SourceStats, **want):
    got = {k: getattr(stats, k) for k in want}
    assert got == want


# ------------------------------------------------------------------------------- GLA framing
@pytest.mark.parametrize("stype", ["int16", "int32", "float32", "float64"])
def test_gla_round_trip(stype):
    rng = np.random.default_rng(1)
    x = rng.uniform(-3.9, 3.9, (37, 5))
    raw, clipped = zf.encode_samples(x, stype, 4.0)
    assert clipped == 0
    h = zf.GlaHeader(
        "sub-7", 123456789012, 2**40 + 5, 48000.0, 5, stype, 4.0, 1741010400123456000, zf.FLAG_DISCONTINUITY, 0xDEADBEEF
    )
    msg = zf.pack_message(h, raw)
    assert len(msg) == zf.HEADER_LEN + raw.nbytes
    h2, raw2 = zf.unpack_message(msg)
    assert (
        h2.stream_id,
        h2.seq,
        h2.first_sample,
        h2.sample_rate_hz,
        h2.n_channels,
        h2.sample_type,
        h2.full_scale,
        h2.time_ns,
        h2.session,
        h2.n_frames,
    ) == ("sub-7", 123456789012, 2**40 + 5, 48000.0, 5, stype, 4.0, 1741010400123456000, 0xDEADBEEF, 37)
    assert h2.flags == zf.FLAG_DISCONTINUITY | zf.FLAG_TIME_VALID and not h2.end_of_stream
    assert h2.time_utc == datetime(2025, 3, 3, 14, 0, 0, 123456, tzinfo=UTC)
    np.testing.assert_array_equal(raw2, raw)
    tol = {"int16": 4.0 / 32768, "int32": 4.0 / 2**31, "float32": 4e-7 * 4, "float64": 1e-15}[stype]
    np.testing.assert_allclose(zf.decode_samples(raw2, h2.full_scale), x, atol=tol, rtol=0)
    h3, _ = zf.unpack_message(zf.pack_message(zf.GlaHeader("s", 0, 0, 1.0, 5, stype, 4.0), raw))
    assert h3.time_ns is None and h3.flags == 0


def test_gla_integer_saturation_and_float_passthrough():
    raw, clipped = zf.encode_samples(np.array([[4.0, -4.0, 5.0, 1.0]]), "int16", 4.0)
    assert raw.tolist() == [[32767, -32768, 32767, 8192]] and clipped == 2
    raw, _ = zf.encode_samples(np.array([[7.5]]), "float32", 0.0)  # full scale 0: physical floats
    assert zf.decode_samples(raw, 0.0).tolist() == [[7.5]]


def test_gla_worked_example_of_the_doc():
    t = datetime(2025, 3, 3, 14, 0, 0, 700000, tzinfo=UTC)
    raw, clipped = zf.encode_samples(np.array([[0.5, -1.0], [4.0, -4.0]]), "int16", 4.0)
    msg = zf.pack_message(
        zf.GlaHeader("sub01", 7, 33600, 48000.0, 2, "int16", 4.0, zf.time_to_ns(t), 0, 0x1234ABCD), raw
    )
    doc = (ROOT / "docs" / "zmq-framing.md").read_text()
    block = doc.split("### Worked example")[1].split("```")[1]
    hexbytes = bytes.fromhex("".join(line[6:53] for line in block.strip().splitlines()))
    assert msg == hexbytes and clipped == 1


@settings(max_examples=60, deadline=None)
@given(
    seq=st.integers(0, 2**64 - 1),
    first=st.integers(0, 2**64 - 1),
    nch=st.integers(1, 9),
    n=st.integers(0, 20),
    sid=st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=4),
    fs=st.floats(1.0, 1e7),
    t=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    session=st.integers(0, 2**32 - 1),
    seed=st.integers(0, 1000),
)
def test_gla_round_trip_property(seq, first, nch, n, sid, fs, t, session, seed):
    x = np.random.default_rng(seed).standard_normal((n, nch))
    h = zf.GlaHeader(sid, seq, first, fs, nch, "float64", 1.0, t, zf.FLAG_END_OF_STREAM, session)
    h2, raw = zf.unpack_message(zf.pack_message(h, x))
    assert (h2.stream_id, h2.seq, h2.first_sample, h2.sample_rate_hz, h2.time_ns, h2.session, h2.n_frames) == (
        sid,
        seq,
        first,
        fs,
        t,
        session,
        n,
    )
    assert h2.end_of_stream
    np.testing.assert_array_equal(raw, x)


def _good_msg() -> bytes:
    return zf.pack_message(zf.GlaHeader("s1", 3, 100, 8000.0, 2, "int16", 4.0), np.zeros((4, 2), np.int16))


def _patch(msg: bytes, off: int, fmt: str, value) -> bytes:
    b = bytearray(msg)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda m: m[:50], "header"),
        (lambda m: b"", "header"),
        (lambda m: b"XXXX" + m[4:], "magic"),
        (lambda m: b"XXXX" + m[4:20], "magic"),
        (lambda m: _patch(m, 4, "<B", 2), "version"),
        (lambda m: _patch(m, 5, "<B", 9), "sample_type"),
        (lambda m: _patch(m, 6, "<H", 40), "header_len"),
        (lambda m: _patch(m, 6, "<H", 4000), "header_len"),
        (lambda m: _patch(m, 8, "<2s", b"\xff\xfe"), "stream_id"),
        (lambda m: _patch(m, 48, "<d", 0.0), "sample_rate_hz"),
        (lambda m: _patch(m, 48, "<d", float("nan")), "sample_rate_hz"),
        (lambda m: _patch(m, 56, "<d", -1.0), "full_scale"),
        (lambda m: _patch(m, 56, "<d", 0.0), "full_scale"),  # 0 is for floats only
        (lambda m: _patch(m, 64, "<H", 0), "n_channels"),
        (lambda m: _patch(m, 68, "<I", 5), "n_frames"),
        (lambda m: m[:-1], "n_frames"),
        (lambda m: m + b"\0\0", "n_frames"),
        (lambda m: m[:-2] + b"\x01\x00", "crc32"),
        (lambda m: _patch(m, 24, "<Q", 4), "crc32"),
    ],
)
def test_gla_malformed_names_the_field(mutate, field):
    with pytest.raises(zf.FramingError, match=field) as ei:
        zf.unpack_message(mutate(_good_msg()))
    assert isinstance(ei.value, ValueError)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_gla_garbage_raises_framing_error_only(data):
    m = bytearray(_good_msg())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(m) - 1))
        m[i] = data.draw(st.integers(0, 255))
    m = bytes(m[: data.draw(st.integers(0, len(m)))])
    try:
        zf.unpack_message(m)
    except zf.FramingError:
        pass


def test_pack_rejects_bad_headers():
    x = np.zeros((2, 2), np.float32)
    with pytest.raises(zf.FramingError, match="stream_id"):
        zf.pack_message(zf.GlaHeader("a-very-long-stream-id", 0, 0, 1.0, 2), x)
    with pytest.raises(zf.FramingError, match="n_channels"):
        zf.pack_message(zf.GlaHeader("s", 0, 0, 1.0, 3), x)
    with pytest.raises(zf.FramingError, match="samples"):
        zf.pack_message(zf.GlaHeader("s", 0, 0, 1.0, 2, "int16"), x)
    with pytest.raises(zf.FramingError, match="seq"):
        zf.pack_message(zf.GlaHeader("s", -1, 0, 1.0, 2), x)


# --------------------------------------------------------------------- GNU Radio tag header
def test_gr_tag_header_bytes_match_gr_zeromq():
    # gen_tag_header: uint16 magic, uint8 version, uint64 offset, uint64 ntags, host order
    assert zf.pack_gr_tag_header(1000) == struct.pack("<HBQQ", 0x5FF0, 1, 1000, 0)
    assert zf.pack_gr_tag_header(1000)[:3] == b"\xf0\x5f\x01"
    # one UHD-style tag, PMTs serialised by hand after pmt_serialize.cc (big-endian)
    tag = zf.GrTag(1003, "rx_time", (zf.U64(1741010400), 0.7), False)
    by_hand = (
        struct.pack("<HBQQ", 0x5FF0, 1, 1000, 1)
        + struct.pack("<Q", 1003)
        + b"\x02"
        + struct.pack(">H", 7)
        + b"rx_time"
        + b"\x0c"
        + struct.pack(">I", 2)
        + b"\x0b"
        + struct.pack(">Q", 1741010400)
        + b"\x04"
        + struct.pack(">d", 0.7)
        + b"\x01"
    )
    assert zf.pack_gr_tag_header(1000, [tag]) == by_hand
    payload = np.arange(8, dtype="<f4").tobytes()  # 4 items of 2 channels
    off, tags, hlen = zf.unpack_gr_tag_header(by_hand + payload, item_size=8)
    assert (off, hlen) == (1000, len(by_hand)) and tags == [tag]
    assert isinstance(tags[0].value[0], zf.U64)


def test_gr_tag_pmt_types_and_legacy_float_vectors():
    values = [
        None,
        True,
        -5,
        1 << 40,
        2.5,
        1 - 2j,
        "sym",
        [1, "a", 2.0],
        zf.Pair("k", 3),
        (zf.U64(7), (1, 2)),
        np.arange(3, dtype=np.int16),
        np.array([1.5, -2.0], np.float32),
        np.array([1 + 1j], np.complex64),
        np.array([3.0], np.float64),
    ]
    tags = [zf.GrTag(10, f"k{i}", v, "src") for i, v in enumerate(values)]
    hdr = zf.pack_gr_tag_header(10, tags)
    _, got, hlen = zf.unpack_gr_tag_header(hdr + bytes(16), item_size=16)
    assert hlen == len(hdr)
    for a, b in zip(got, tags):
        if isinstance(b.value, np.ndarray):
            np.testing.assert_array_equal(a.value, b.value)
        else:
            assert a.value == b.value
    # GNU Radio 3.7 wrote f32 vector elements as doubles: 'x' -> f32vector [1.5, -2.0] (8 bytes each)
    old = (
        struct.pack("<HBQQ", 0x5FF0, 1, 50, 1)
        + struct.pack("<Q", 51)
        + b"\x02\x00\x01x"
        + b"\x0a\x08"
        + struct.pack(">I", 2)
        + b"\x01\x00"
        + struct.pack(">dd", 1.5, -2.0)
        + b"\x01"
    )
    off, got, hlen = zf.unpack_gr_tag_header(old + bytes(4 * 3 * 2), item_size=8)
    assert (off, hlen) == (50, len(old)) and got[0].value.tolist() == [1.5, -2.0]


@pytest.mark.parametrize(
    "msg,field",
    [
        (b"\xf0\x5f\x01" + bytes(10), "gr header"),
        (struct.pack("<HBQQ", 0x1234, 1, 0, 0), "gr magic"),
        (struct.pack("<HBQQ", 0x5FF0, 2, 0, 0), "gr version"),
        (struct.pack("<HBQQ", 0x5FF0, 1, 0, 10**6) + bytes(40), "gr ntags"),
        (struct.pack("<HBQQ", 0x5FF0, 1, 0, 1) + struct.pack("<Q", 0) + b"\x02\x00\x09ab", "pmt symbol"),
        (struct.pack("<HBQQ", 0x5FF0, 1, 0, 1) + struct.pack("<Q", 0) + b"\x42" + bytes(16), "pmt tag"),
        (struct.pack("<HBQQ", 0x5FF0, 1, 0, 0) + bytes(6), "gr payload"),
        (zf.pack_gr_tag_header(0, [zf.GrTag(99, "k", 1)]) + bytes(16), "gr tag offset"),
    ],
)
def test_gr_tag_header_malformed(msg, field):
    with pytest.raises(zf.FramingError, match=field):
        zf.unpack_gr_tag_header(msg, item_size=8)


# ------------------------------------------------------------ stream rules, without sockets
def test_clean_stream_is_exact(tiny):
    stem, ref = tiny
    snd = sender(stem)
    asm = StreamAssembler()
    blocks = feed_all(asm, snd.messages())
    snd.close()
    y = reassemble(blocks, ref.shape[0], NCH)
    np.testing.assert_array_equal(y, ref)  # PCM_24 -> float32 x 4.0 is exact
    assert [b.discontinuity for b in blocks] == [True] + [False] * (len(blocks) - 1)
    assert blocks[3].time_utc == START + timedelta(seconds=0.3) and blocks[0].stream_id == "tiny"
    assert asm.end_of_stream and asm.n_channels == NCH and asm.sample_rate_hz == FS
    assert asm.stats == SourceStats(blocks=N_MSG, samples=3 * FS, messages=N_MSG + 1)


def test_drop_duplicate_reorder_corrupt_exact_counts(tiny):
    stem, ref = tiny
    snd = sender(stem, drop=[3], duplicate=[5, 20], reorder={7: 1, 12: 3}, corrupt=[9])
    asm = StreamAssembler()
    blocks = feed_all(asm, snd.messages())
    y = reassemble(blocks, ref.shape[0], NCH)
    assert nan_runs(y) == [(3 * BLOCK, 4 * BLOCK), (9 * BLOCK, 10 * BLOCK)]
    ok = ~np.isnan(y).any(axis=1)
    np.testing.assert_array_equal(y[ok], ref[ok])
    counts(
        asm.stats,
        gaps=2,
        gap_samples=2 * BLOCK,
        duplicates=2,
        reordered=2,
        late_dropped=0,
        bad_frames=1,
        resyncs=0,
        samples=(N_MSG - 2) * BLOCK,
        nonfinite=0,
        clipped=0,
    )
    assert [b.gap_fill for b in blocks].count(True) == 2


def test_too_late_is_dropped(tiny):
    stem, ref = tiny
    snd = sender(stem, reorder={4: 10})  # 10 positions late, the window holds 8
    asm = StreamAssembler(reorder_window=8)
    y = reassemble(feed_all(asm, snd.messages()), ref.shape[0], NCH)
    assert nan_runs(y) == [(4 * BLOCK, 5 * BLOCK)]
    counts(asm.stats, gaps=1, gap_samples=BLOCK, late_dropped=1, duplicates=0, reordered=0)
    asm = StreamAssembler(reorder_window=10)  # a wider window waits for it
    y = reassemble(feed_all(asm, sender(stem, reorder={4: 10}).messages()), ref.shape[0], NCH)
    np.testing.assert_array_equal(y, ref)
    counts(asm.stats, gaps=0, late_dropped=0, reordered=1)


def test_channel_count_change_dropped_then_adopted(tiny):
    stem, ref = tiny
    # messages 5 and 6 carry 2 channels: held aside, never confirmed, dropped; the hole NaN-filled
    asm = StreamAssembler()
    y = reassemble(feed_all(asm, sender(stem, reshape={5: 2, 6: 2}).messages()), ref.shape[0], NCH)
    assert nan_runs(y) == [(5 * BLOCK, 7 * BLOCK)]
    counts(asm.stats, channel_count_changes=0, wrong_shape_dropped=2, gaps=1, gap_samples=2 * BLOCK, resyncs=0)
    # from message 8 on, 2 channels: confirmed by the 3rd such message in a row (index 10) and
    # adopted from the first one (8): nothing of the new shape is lost, one discontinuity
    snd = sender(stem, reshape={i: 2 for i in range(8, N_MSG + 1)})
    asm = StreamAssembler(adopt_after=3)
    blocks = feed_all(asm, snd.messages())
    counts(asm.stats, channel_count_changes=1, wrong_shape_dropped=0, resyncs=1, gaps=0)
    assert asm.n_channels == 2
    after = [b for b in blocks if b.n_channels == 2]
    assert after[0].discontinuity and after[0].first_sample == 8 * BLOCK
    np.testing.assert_array_equal(reassemble(after, ref.shape[0], 2)[8 * BLOCK :], ref[8 * BLOCK :, :2])
    np.testing.assert_array_equal(reassemble(blocks[:8], ref.shape[0], NCH)[: 8 * BLOCK], ref[: 8 * BLOCK])
    # a configured (pinned) channel count that the stream does not have: never adopted
    asm = StreamAssembler(n_channels=6, adopt_after=3)
    assert feed_all(asm, sender(stem).messages()) == []
    counts(asm.stats, channel_count_changes=0, wrong_shape_dropped=N_MSG)  # not the empty end-of-stream message


@pytest.mark.parametrize("stype", ["float32", "int16"])
def test_nan_and_clipping_are_counted_and_passed(tiny, stype):
    stem, ref = tiny

    def mutate(i, x):
        if i == 2:
            x[10, 1] = x[11, 1] = np.nan if stype == "float32" else 0.0
            x[12, 3] = np.inf if stype == "float32" else 0.0
        if i == 4:
            x[0, 0], x[1, 2], x[2, 2] = 4.0, -4.5, 3.9  # full scale is 1/0.25 = 4
        return x

    asm = StreamAssembler()
    y = reassemble(feed_all(asm, sender(stem, mutate=mutate, sample_type=stype).messages()), ref.shape[0], NCH)
    if stype == "float32":
        counts(asm.stats, nonfinite=3, clipped=2, gaps=0)
        assert np.isnan(y[2 * BLOCK + 10, 1]) and np.isinf(y[2 * BLOCK + 12, 3])
        assert y[4 * BLOCK, 0] == 4.0 and y[4 * BLOCK + 1, 2] == -4.5
    else:
        counts(asm.stats, nonfinite=0, clipped=2, gaps=0)
        assert y[4 * BLOCK, 0] == 4.0 * 32767 / 32768 and y[4 * BLOCK + 1, 2] == -4.0


def test_long_gap_restart_and_foreign_stream(tiny):
    stem, ref = tiny
    # 6 messages (0.6 s) lost with max_gap_fill_s=0.5: resync, continue at the right index
    asm = StreamAssembler(max_gap_fill_s=0.5)
    blocks = feed_all(asm, sender(stem, drop=range(10, 16)).messages())
    counts(asm.stats, gaps=1, gap_samples=6 * BLOCK, resyncs=1)  # skipped, not filled, but counted
    b = next(b for b in blocks if b.first_sample == 16 * BLOCK)
    assert b.discontinuity and not any(x.gap_fill for x in blocks)
    np.testing.assert_array_equal(b.samples, ref[16 * BLOCK : 17 * BLOCK])
    # a restarted sender (new session, seq and samples from 0 again): resync, nothing dropped
    asm = StreamAssembler()
    first = list(sender(stem, session=1, duration_s=1.0, eos=False).messages())
    second = list(sender(stem, session=2, duration_s=1.0).messages())
    blocks = feed_all(asm, first + second)
    counts(asm.stats, resyncs=1, duplicates=0, late_dropped=0, samples=2 * FS)
    assert [b.first_sample for b in blocks if b.discontinuity] == [0, 0]
    # another stream id on the same socket is dropped
    asm = StreamAssembler()
    mixed = [
        m for pair in zip(sender(stem, stream_id="a").messages(), sender(stem, stream_id="b").messages()) for m in pair
    ]
    y = reassemble(feed_all(asm, mixed), ref.shape[0], NCH)
    np.testing.assert_array_equal(y, ref)
    counts(asm.stats, foreign_dropped=N_MSG + 1, duplicates=0)
    assert asm.stream_id == "a"


def test_gr_raw_rules(tiny):
    stem, ref = tiny
    ref32 = ref.astype(np.float32).astype(np.float64)
    # untagged: consecutive indices; a wrong size is a bad frame, and since nothing can show what
    # it held, the next block starts a new segment (discontinuity) instead of joining end to end
    asm = StreamAssembler(framing="gr", n_channels=NCH, sample_rate_hz=FS)
    msgs = [[ref[a : a + 500].astype("<f4").tobytes()] for a in range(0, 2000, 500)]
    msgs.insert(2, [b"\0" * 10])
    blocks = [b for m in msgs for b in asm.feed(m)]
    np.testing.assert_array_equal(reassemble(blocks, 2000, NCH), ref32[:2000])
    assert [b.discontinuity for b in blocks] == [True, False, True, False]
    counts(asm.stats, bad_frames=1, gaps=1, gap_samples=0, resyncs=1, samples=2000)
    # tagged: offsets place the items; a jump is a gap, a repeat a duplicate, a far jump back a restart
    asm = StreamAssembler(
        framing="gr", n_channels=NCH, sample_rate_hz=FS, pass_tags=True, reorder_window=2, max_gap_fill_s=0.1
    )

    def gr(a, n):
        return [zf.pack_gr_tag_header(a) + ref[a : a + n].astype("<f4").tobytes()]

    order = [
        gr(0, 500),
        gr(500, 500),
        gr(1500, 500),
        gr(2000, 500),
        gr(2500, 500),
        gr(2500, 500),
        gr(3000, 300),
        gr(3300, 200),
    ]
    blocks = [b for m in order for b in asm.feed(m)] + asm.flush()
    y = reassemble(blocks, 3500, NCH)
    assert nan_runs(y) == [(1000, 1500)]
    ok = ~np.isnan(y).any(axis=1)
    np.testing.assert_array_equal(y[ok], ref32[:3500][ok])
    counts(asm.stats, gaps=1, gap_samples=500, duplicates=1, resyncs=0)
    # the flowgraph restarted (back by more than max_gap_fill_s): held aside until 3 in a row confirm it
    assert asm.feed(gr(0, 100)) == [] and asm.feed(gr(100, 100)) == [] and asm.held_aside == 2
    blocks = asm.feed(gr(200, 100))
    assert asm.stats.resyncs == 1 and blocks[0].discontinuity and blocks[0].first_sample == 0
    np.testing.assert_array_equal(reassemble(blocks, 300, NCH), ref32[:300])
    with pytest.raises(ValueError, match="n_channels"):
        StreamAssembler(framing="gr", sample_rate_hz=FS)


@pytest.fixture(scope="module")
def clean_messages(tiny):
    """The tiny capture as GLA messages (end-of-stream excluded) and as gr-zeromq tagged messages."""
    stem, ref = tiny
    gla = [parts for _, parts, n in sender(stem, eos=False).messages()]
    cuts = [0, 300, 1000, 1100, 2400, 4000, 4100, 6000, 9000, 12000, 15000, 18000, 21000, 24000]
    gr = [[zf.pack_gr_tag_header(a) + ref[a:b].astype("<f4").tobytes()] for a, b in zip(cuts, cuts[1:])]
    return {"gla": gla, "gr": gr}


@pytest.mark.parametrize("framing", ["gla", "gr"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_delivery_order_never_shifts_samples(tiny, clean_messages, framing, data):
    """Whatever arrives (any order, repeats, omissions, garbage), every delivered sample sits at its
    true index, blocks follow each other unless a discontinuity is flagged, and the counters add up."""
    _, ref = tiny
    msgs = clean_messages[framing]
    order = data.draw(st.lists(st.one_of(st.integers(0, len(msgs) - 1), st.just(-1)), max_size=3 * len(msgs)))
    window = data.draw(st.integers(0, 6))
    fill = data.draw(st.sampled_from([0.0, 0.2, 2.0]))
    if framing == "gla":
        asm = StreamAssembler(reorder_window=window, max_gap_fill_s=fill)
    else:
        asm = StreamAssembler(
            framing="gr", n_channels=NCH, sample_rate_hz=FS, pass_tags=True, reorder_window=window, max_gap_fill_s=fill
        )
    blocks = []
    for i in order:
        blocks += asm.feed([b"garbage" * 3] if i < 0 else msgs[i])
    blocks += asm.flush()
    prev = None
    for b in blocks:
        if b.gap_fill:
            assert np.isnan(b.samples).all()
        else:
            np.testing.assert_array_equal(b.samples, ref[b.first_sample : b.end_sample].astype(np.float32))
        if prev is not None and not b.discontinuity:
            assert b.first_sample == prev.end_sample
        prev = b
    s = asm.stats
    assert s.samples == sum(b.n_frames for b in blocks if not b.gap_fill)
    # every sample missing in a gap is counted: filled with NaN, or skipped at a discontinuity
    filled = sum(b.n_frames for b in blocks if b.gap_fill)
    jumps = sum(max(0, b.first_sample - a.end_sample) for a, b in zip(blocks, blocks[1:]) if b.discontinuity)
    assert filled <= s.gap_samples <= filled + jumps
    assert s.bad_frames == order.count(-1) and s.blocks == len(blocks) and s.messages == len(order)
    if order and -1 not in order and order == sorted(set(order)):  # in order, no repeats
        runs = sum(1 for x, y in zip(order, order[1:]) if y > x + 1)  # holes between delivered messages
        filled = sum(1 for b in blocks if b.gap_fill)  # each hole is either filled or a resync
        counts(s, gaps=runs, resyncs=runs - filled, duplicates=0, late_dropped=0, reordered=0)


# ----------------------------------------------------------------------- over real sockets
def _receive(src: ZmqSource, snd: CaptureSender) -> tuple[list[SampleBlock], object]:
    rep: dict[str, SendReport] = {}
    th = threading.Thread(target=lambda: rep.setdefault("r", snd.run()))
    th.start()
    with src:
        blocks = list(src)
    th.join(10)
    assert not th.is_alive()
    return blocks, rep.get("r")


def test_push_pull_demo_small_with_faults():
    ref, _ = sf.read(str(DEMO) + ".wav", dtype="float64")
    ref /= 0.25
    src = ZmqSource(LOCAL, bind=True, stop_at_eos=True, idle_timeout_s=10)
    snd = CaptureSender(
        DEMO, src.endpoint, bind=False, block_s=0.1, drop=[3, 40, 41], duplicate=[5], reorder={7: 2, 60: 1}
    )
    blocks, rep = _receive(src, snd)
    assert rep.messages == 80 - 3 + 1 + 1
    y = reassemble(blocks, ref.shape[0], 12)
    assert nan_runs(y) == [(3 * 4800, 4 * 4800), (40 * 4800, 42 * 4800)]
    ok = ~np.isnan(y).any(axis=1)
    np.testing.assert_array_equal(y[ok], ref[ok])
    counts(
        src.stats,
        gaps=2,
        gap_samples=3 * 4800,
        duplicates=1,
        reordered=2,
        late_dropped=0,
        bad_frames=0,
        resyncs=0,
        messages=rep.messages,
    )
    assert src.n_channels == 12 and src.sample_rate_hz == 48000 and src.stream_id == "demo_small"


def test_pub_sub_with_topic(tiny):
    stem, ref = tiny
    src = ZmqSource(LOCAL, pattern="sub", topic=b"sub01", bind=True, stop_at_eos=True, idle_timeout_s=10)
    snd = CaptureSender(
        stem, src.endpoint, pattern="pub", bind=False, topic=b"sub01", block_s=0.1, sample_type="int32", drop=[11]
    )
    blocks, rep = _receive(src, snd)
    assert rep.subscribed
    y = reassemble(blocks, ref.shape[0], NCH)
    assert nan_runs(y) == [(11 * BLOCK, 12 * BLOCK)]
    ok = ~np.isnan(y).any(axis=1)
    np.testing.assert_array_equal(y[ok], ref[ok])  # PCM_24 -> int32 x 4 / 2^31 is exact too
    counts(src.stats, gaps=1, gap_samples=BLOCK, bad_frames=0, messages=N_MSG)


def test_pub_sub_other_topic_gets_nothing(tiny):
    stem, _ = tiny
    src = ZmqSource(LOCAL, pattern="sub", topic=b"other", bind=True, idle_timeout_s=0.5, rcv_timeout_ms=200)
    snd = CaptureSender(stem, src.endpoint, pattern="pub", bind=False, topic=b"sub01", wait_subscriber_s=0.3)
    blocks, rep = _receive(src, snd)
    assert blocks == [] and src.stats.messages == 0 and src.stats.stalls == 1


@pytest.mark.parametrize("pass_tags", [False, True])
def test_gnu_radio_raw_over_push_pull(tiny, pass_tags):
    """Messages built as gr-zeromq push_sink sends them (float32 vector items, optional tag header)."""
    _, ref = tiny
    ctx = zmq.Context.instance()
    src = ZmqSource(
        LOCAL,
        bind=True,
        framing="gr",
        n_channels=NCH,
        sample_rate_hz=FS,
        pass_tags=pass_tags,
        idle_timeout_s=0.6,
        rcv_timeout_ms=200,
    )
    push = ctx.socket(zmq.PUSH)
    push.connect(src.endpoint)
    items = ref.astype("<f4")
    sizes = [512, 512, 1024, 333, 700, 919]  # like work() calls of varying length
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for k, (a, n) in enumerate(zip(starts, sizes)):
        if k == 3 and pass_tags:
            continue  # the sink's items 2048..2381 never arrive (HWM drop, say)
        payload = items[a : a + n].tobytes()
        if pass_tags:
            tags = [zf.GrTag(int(a), "rx_time", (zf.U64(1741010400), a / FS), "usrp")] if k == 4 else []
            hdr = struct.pack("<HBQQ", 0x5FF0, 1, int(a), len(tags))
            if tags:
                hdr = zf.pack_gr_tag_header(int(a), tags)
            payload = hdr + payload
        push.send(payload)
    push.send(b"\0" * 7)  # not a whole number of items: a bad frame
    with src:
        blocks = list(src)
    push.close(0)
    total = int(starts[-1])
    y = reassemble(blocks, total, NCH)
    want = items[:total].astype(np.float64)
    if pass_tags:
        assert nan_runs(y) == [(2048, 2381)]
        counts(src.stats, gaps=1, gap_samples=333, bad_frames=1)
        ok = ~np.isnan(y).any(axis=1)
        np.testing.assert_array_equal(y[ok], want[ok])
    else:
        # no offsets: the loss cannot be measured, indices count what arrived; the malformed
        # message is counted as a gap of unknown length (the next block would be a discontinuity)
        np.testing.assert_array_equal(y, want)
        counts(src.stats, gaps=1, gap_samples=0, resyncs=1, bad_frames=1, samples=total)


def test_stop_event_and_close_end_iteration_promptly():
    ev = threading.Event()
    src = ZmqSource(LOCAL, bind=True, stop_event=ev, rcv_timeout_ms=1000)
    done = threading.Event()
    th = threading.Thread(target=lambda: (list(src), done.set()))
    th.start()
    time.sleep(0.2)
    t = time.monotonic()
    ev.set()
    assert done.wait(2.0) and time.monotonic() - t < 0.8  # checked every 100 ms
    th.join()
    src.close()
    src2 = ZmqSource(LOCAL, bind=True, pattern="sub")
    done.clear()
    th = threading.Thread(target=lambda: (list(src2), done.set()))
    th.start()
    time.sleep(0.2)
    t = time.monotonic()
    src2.close()  # from another thread
    assert done.wait(2.0) and time.monotonic() - t < 0.8
    th.join()
    with pytest.raises(ValueError, match="closed"):
        iter(src2)
    with CaptureSource(DEMO) as cs:
        assert isinstance(src2, Source) and isinstance(cs, Source)


def test_push_send_timeout_without_receiver(tiny):
    stem, _ = tiny
    snd = CaptureSender(stem, LOCAL, send_timeout_ms=100)
    with pytest.raises(TimeoutError, match="no receiver"):
        snd.run()


# -------------------------------------------------------------------------- capture replay
def test_capture_source_demo_small():
    ref, fs = sf.read(str(DEMO) + ".wav", dtype="float64")
    src = CaptureSource(DEMO, block_s=0.75)
    assert (src.n_channels, src.sample_rate_hz, src.total_frames) == (12, 48000.0, 384000)
    assert [c["phase"] for c in src.channels][:3] == ["A", "B", "C"] and src.meta.scale == 0.25
    with src:
        blocks = list(src)
    assert [b.n_frames for b in blocks] == [36000] * 10 + [24000]
    y = reassemble(blocks, ref.shape[0], 12)
    np.testing.assert_array_equal(y, ref / 0.25)
    assert blocks[0].discontinuity and not blocks[1].discontinuity
    assert blocks[2].time_utc == datetime(2025, 3, 3, 14, 0, 1, 500000, tzinfo=UTC)
    assert src.stats == SourceStats(blocks=11, samples=384000)
    part = list(CaptureSource(DEMO.with_suffix(".sigmf-meta"), block_s=1.0, start_s=2.5, duration_s=1.2))
    assert [(b.first_sample, b.n_frames) for b in part] == [(120000, 48000), (168000, 9600)]
    np.testing.assert_array_equal(part[1].samples, ref[168000:177600] / 0.25)


def test_capture_source_truncated(tmp_path, caplog):
    for suffix in (".sigmf-meta", ".wav"):  # the sidecar names its audio file: keep the stem
        shutil.copy(str(DEMO) + suffix, tmp_path / ("demo_small" + suffix))
    wav = tmp_path / "demo_small.wav"
    with open(wav, "r+b") as fh:
        fh.truncate(104 + 36 * 100_000 + 17)  # 100000 whole frames and a piece of one
    with caplog.at_level(logging.WARNING, "gla.ingest"):
        src = CaptureSource(tmp_path / "demo_small", block_s=0.5)
    assert src.truncated and "truncated" in caplog.text
    ref, _ = sf.read(str(DEMO) + ".wav", dtype="float64", frames=100_000)
    blocks = []
    with pytest.raises(CaptureTruncatedError, match=r"demo_small\.wav: truncated: only 100000 of 384000 frames"):
        for b in src:
            blocks.append(b)
    np.testing.assert_array_equal(reassemble(blocks, 100_000, 12), ref / 0.25)
    assert [b.n_frames for b in blocks] == [24000] * 4 + [4000]
    # strict=False: the same blocks, the error only logged
    caplog.clear()
    with caplog.at_level(logging.ERROR, "gla.ingest"):
        assert sum(b.n_frames for b in CaptureSource(tmp_path / "demo_small", strict=False)) == 100_000
    assert "only 100000 of 384000" in caplog.text
    # a replay that ends before the cut is fine
    assert sum(b.n_frames for b in CaptureSource(tmp_path / "demo_small", duration_s=1.0)) == 48000


def test_capture_source_bad_files(tmp_path):
    with pytest.raises(ValueError, match="sidecar not found"):
        CaptureSource(tmp_path / "nothing")
    shutil.copy(str(DEMO) + ".sigmf-meta", tmp_path / "x.sigmf-meta")
    with pytest.raises(ValueError, match=r"demo_small\.wav: audio file named by x\.sigmf-meta not found"):
        CaptureSource(tmp_path / "x")
    (tmp_path / "demo_small.wav").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match=r"demo_small\.wav: cannot open"):
        CaptureSource(tmp_path / "x")
    with pytest.raises(ValueError, match="block_s"):
        CaptureSource(DEMO, block_s=0)


def test_capture_source_clipping_realtime_and_stop(tmp_path):
    stem = tmp_path / "clip"
    x = np.zeros((800, 2))
    x[5, 0], x[6, 1], x[7, 1] = 9.0, -9.0, 3.9  # beyond full scale (4): written saturated
    with CaptureWriter(
        stem, FS, 2, [(0, 0, "A"), (0, 0, "B")], subtype="PCM_16", start_time_utc=START, scale=SCALE
    ) as w:
        w.write(x)
    assert w.clipped == 2
    src = CaptureSource(stem, block_s=0.025, realtime=True)
    t = time.monotonic()
    blocks = list(src)
    assert time.monotonic() - t >= 0.09 and len(blocks) == 4  # 0.1 s of samples, paced
    assert src.stats.clipped == 2
    src = CaptureSource(stem, clip_level=3.0)
    list(src)
    assert src.stats.clipped == 3
    ev = threading.Event()
    src = CaptureSource(stem, block_s=0.01, realtime=True, speed=0.5, stop_event=ev)
    got = []
    for b in src:
        got.append(b)
        ev.set()
    assert len(got) == 1


def test_stream_capture_function(tiny):
    stem, ref = tiny
    src = ZmqSource(LOCAL, bind=True, stop_at_eos=True, idle_timeout_s=10)
    out = {}
    th = threading.Thread(
        target=lambda: out.setdefault(
            "r", stream_capture(stem, src.endpoint, bind=False, block_s=0.25, realtime=True, speed=10.0)
        )
    )
    t = time.monotonic()
    th.start()
    with src:
        blocks = list(src)
    th.join()
    assert time.monotonic() - t >= 0.25  # 3 s of samples at 10x real time
    np.testing.assert_array_equal(reassemble(blocks, ref.shape[0], NCH), ref)
    assert out["r"].messages == 13 and out["r"].frames == 3 * FS


def test_reprs_say_what_it_is_and_where_in_the_stream(tiny):
    """One line each: file or endpoint, channels, rate, position in the stream."""
    stem, _ = tiny
    src = CaptureSource(stem, block_s=1.0)
    it = iter(src)
    next(it)
    assert repr(src) == (
        f"CaptureSource({str(stem) + '.wav'!r}, 4 ch at 8000 Hz, frames 0..24000 of 24000, next 8000, blocks of 8000)"
    )
    src.close()
    assert repr(src).endswith(", closed)")

    asm = StreamAssembler()
    assert repr(asm) == "StreamAssembler(gla, (? ch, ?, ? Hz), waiting for the first message)"
    snd = sender(stem, block_s=0.25, session=1)
    msgs = list(snd.messages())
    feed_all(asm, msgs[:3])
    assert repr(asm) == (
        "StreamAssembler(gla, stream 'tiny', (4 ch, float32, 8000.0 Hz), next seq 3, next sample 6000, 0 held)"
    )
    asm = StreamAssembler()
    for _, parts, _ in [msgs[0], msgs[2]]:
        asm.feed(parts)
    assert repr(asm) == (
        "StreamAssembler(gla, stream 'tiny', (4 ch, float32, 8000.0 Hz), next seq 1, next sample 2000, 1 held)"
    )
    assert repr(snd).startswith(
        f"CaptureSender(push {snd.endpoint}, gla float32, {str(stem) + '.wav'!r}, "
        "4 ch at 8000 Hz, 2000 frames per message, next message 12 (frame 24000)"
    )
    snd.close()
    assert repr(snd).endswith(", closed)")

    zs = ZmqSource(LOCAL, bind=True, stop_at_eos=True, idle_timeout_s=10)
    assert repr(zs) == f"ZmqSource(pull {zs.endpoint}, gla, (? ch, ?, ? Hz), waiting for the first message, 0 messages)"
    stream_capture(stem, zs.endpoint, bind=False, block_s=0.25, duration_s=1.0)
    with zs:
        assert len(list(zs)) == 4
    assert repr(zs) == (
        f"ZmqSource(pull {zs.endpoint}, gla, stream 'tiny', (4 ch, float32, 8000.0 Hz), "
        "ended (end-of-stream message), 5 messages, closed)"
    )
    assert all("\n" not in repr(o) for o in (src, asm, snd, zs))
