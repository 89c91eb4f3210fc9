"""One bad ZeroMQ message costs at most its own samples (issue 17, item 4 a, b, d; item 7's
GNU Radio raw clipping).

A real capture is sent by the project's sender (:class:`CaptureSender`), through the assembler
directly or over a real PUSH/PULL pair, with forged and stray messages slipped in between its
messages; the receiver must deliver exactly the clean stream's blocks (same samples, same
positions, same discontinuities) and, down the receive chains, the same bundles."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from gridsim.capture import CaptureWriter
from receiver.contracts import zmq_framing as zf
from receiver.forged_check import receive, run
from receiver.sources import CaptureSender, SampleBlock, StreamAssembler, ZmqSource
from receiver.sources.forgery import KINDS, forge

FS = 8000
SCALE = 0.25
NCH = 4
BLOCK = 800  # frames per message at block_s=0.1
N_MSG = 30
LOCAL = "tcp://127.0.0.1:*"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3 s, 4-input, 8 kHz capture (peaks of 1.5 per unit) and its per-unit samples."""
    stem = tmp_path_factory.mktemp("cap") / "tiny"
    rng = np.random.default_rng(5)
    t = np.arange(3 * FS) / FS
    x = 1.5 * np.sin(2 * np.pi * 60 * t)[:, None] * np.array([1.0, -0.8, 0.6, 0.3])
    x += 0.01 * rng.standard_normal((t.size, NCH))
    start = datetime(2025, 3, 3, 14, tzinfo=UTC)
    with CaptureWriter(
        stem, FS, NCH, [(0, 0, "A"), (0, 0, "B"), (0, 0, "C"), (0, 1, "A")], start_time_utc=start, scale=SCALE
    ) as w:
        w.write(x)
    ref, _ = sf.read(str(stem) + ".wav", dtype="float64")
    return stem, ref / SCALE


def clean_messages(stem, **kw) -> list[list[bytes]]:
    kw.setdefault("session", 0xC0FFEE)
    with CaptureSender(stem, LOCAL, block_s=0.1, **kw) as snd:
        return [list(parts) for _, parts, _ in snd.messages()]


def feed(asm: StreamAssembler, msgs) -> list[SampleBlock]:
    out = []
    for parts in msgs:
        out += asm.feed(parts)
    return out + asm.flush()


def same_blocks(a: list[SampleBlock], b: list[SampleBlock]) -> None:
    assert [(x.first_sample, x.n_frames, x.discontinuity, x.gap_fill) for x in a] == [
        (y.first_sample, y.n_frames, y.discontinuity, y.gap_fill) for y in b
    ]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.samples, y.samples)


def forged(h: zf.GlaHeader, raw: np.ndarray, **change) -> list[bytes]:
    """A well-formed message (valid CRC) built from a real header with some fields changed."""
    from dataclasses import replace

    h2 = replace(h, **change)
    nch = h2.n_channels
    x = np.resize(raw, (raw.shape[0], nch)).copy()
    return [zf.pack_message(h2, x[:, :nch])]


# ----------------------------------------------------------------------------- (a) new session
def test_one_message_of_another_session_costs_only_itself(tiny):
    stem, _ = tiny
    msgs = clean_messages(stem)
    want = feed(StreamAssembler(), msgs)
    h, raw = zf.unpack_message(msgs[10][0])
    bad = forged(h, raw, session=0xBAD, seq=0, first_sample=0)  # "the sender restarted"
    asm = StreamAssembler()
    got = feed(asm, msgs[:10] + [bad] + msgs[10:])
    same_blocks(got, want)  # before: two resyncs, and the stream's messages after it were lost
    s = asm.stats
    assert (s.resyncs, s.unconfirmed_dropped, s.duplicates, s.late_dropped, s.gaps) == (0, 1, 0, 0, 0)
    # two of them in a row, then the stream again: still nothing
    bad2 = forged(h, raw, session=0xBAD, seq=1, first_sample=BLOCK)
    asm = StreamAssembler()
    same_blocks(feed(asm, msgs[:10] + [bad, bad2] + msgs[10:20] + [bad2, bad] + msgs[20:]), want)
    assert asm.stats.resyncs == 0 and asm.stats.unconfirmed_dropped == 2 and asm.stats.duplicates == 2


@pytest.mark.parametrize("flagged", [False, True])
def test_a_real_restart_is_adopted_at_its_third_message_with_nothing_lost(tiny, flagged):
    stem, ref = tiny
    first = clean_messages(stem, session=1, duration_s=1.0, eos=False)  # no end-of-stream: it died
    second = clean_messages(stem, session=2)
    if flagged:  # the restarted sender flags its first message DISCONTINUITY: still one resync
        h, raw = zf.unpack_message(second[0][0])
        second[0] = forged(h, raw, flags=zf.FLAG_DISCONTINUITY)
    asm = StreamAssembler(adopt_after=3)
    blocks = []
    for k, parts in enumerate(first + second):
        got = asm.feed(parts)
        if k in (len(first), len(first) + 1):
            assert got == [] and asm.held_aside == k - len(first) + 1  # held aside, not lost
        blocks += got
    blocks += asm.flush()
    assert [b.first_sample for b in blocks if b.discontinuity] == [0, 0]
    new = blocks[[b.discontinuity for b in blocks].index(True, 1) :]
    assert sum(b.n_frames for b in new) == 3 * FS  # every message of the new session delivered
    np.testing.assert_array_equal(np.concatenate([b.samples for b in new]), ref)
    s = asm.stats
    assert (s.resyncs, s.unconfirmed_dropped, s.duplicates, s.samples) == (1, 0, 0, 4 * FS)


def test_a_new_session_that_is_never_confirmed_leaves_the_stream_untouched(tiny):
    stem, _ = tiny
    msgs = clean_messages(stem)
    want = feed(StreamAssembler(), msgs)
    other = clean_messages(stem, session=7)
    # another sender on the same socket, two of its messages at a time between the stream's
    mixed = msgs[:5] + [m for k in range(5, 25) for m in ([msgs[k]] + other[2 * k : 2 * k + 2])] + msgs[25:]
    asm = StreamAssembler()
    same_blocks(feed(asm, mixed), want)
    assert asm.stats.resyncs == 0 and asm.stats.unconfirmed_dropped == len(mixed) - len(msgs)
    assert asm.held_aside == 0  # the final flush dropped (and counted) what was held


# ------------------------------------------------------- (b) rejected messages consume nothing
def test_a_wrong_shape_message_does_not_take_the_sequence_number(tiny):
    stem, _ = tiny
    msgs = clean_messages(stem)
    want = feed(StreamAssembler(), msgs)
    for pinned in (None, NCH):
        h, raw = zf.unpack_message(msgs[12][0])
        bad = forged(h, raw, n_channels=2)  # the live session and the very seq the stream awaits
        asm = StreamAssembler(n_channels=pinned)
        got = feed(asm, msgs[:12] + [bad] + msgs[12:])
        same_blocks(got, want)  # before: message 12 was dropped as a duplicate, a NaN hole
        s = asm.stats
        assert (s.wrong_shape_dropped, s.duplicates, s.gaps, s.channel_count_changes) == (1, 0, 0, 0)


def test_replayed_and_reused_sequence_numbers_never_restart_the_stream(tiny):
    stem, _ = tiny
    msgs = clean_messages(stem)
    want = feed(StreamAssembler(), msgs)
    replays = msgs[0:20]  # twenty delivered messages sent again, in a row
    h, raw = zf.unpack_message(msgs[3][0])
    reused = forged(h, -raw)  # the live session, a delivered seq, other samples
    asm = StreamAssembler()
    got = feed(asm, msgs[:22] + replays + [reused] + msgs[22:])
    same_blocks(got, want)  # before: 16 messages going back in a row restarted the stream
    s = asm.stats
    assert (s.duplicates, s.unconfirmed_dropped, s.resyncs, s.late_dropped) == (20, 1, 0, 0)


def test_a_forged_first_message_does_not_capture_the_receiver(tiny):
    stem, _ = tiny
    msgs = clean_messages(stem)
    h, raw = zf.unpack_message(msgs[0][0])
    evil = forged(h, raw, stream_id="evil", session=99)
    asm = StreamAssembler()
    got = feed(asm, [evil] + msgs)
    real = [b for b in got if b.stream_id == h.stream_id]
    same_blocks(real, feed(StreamAssembler(), msgs))  # adopted at its 3rd message, all delivered
    assert asm.stream_id == h.stream_id and asm.stats.resyncs == 1


# ------------------------------------------------------------- all kinds, over a real socket
def test_forged_messages_of_every_kind_over_a_real_socket(tiny):
    stem, _ = tiny
    want, _ = receive(stem)
    plan, tried = forge(clean_messages(stem, session=0x5EED), seed=3, per_kind=4)
    assert set(tried) == set(KINDS) and sum(tried.values()) >= 40
    got, stats = receive(stem, plan)
    same_blocks(got, want)
    assert stats["resyncs"] == 0 and stats["gaps"] == 0 and stats["samples"] == 3 * FS
    assert stats["messages"] == N_MSG + 1 + sum(tried.values())
    rejected = sum(
        stats[k] for k in ("bad_frames", "duplicates", "foreign_dropped", "wrong_shape_dropped", "unconfirmed_dropped")
    )
    assert rejected == sum(tried.values())  # every forged message counted once, none left held


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), per_kind=st.integers(1, 6), window=st.integers(0, 8))
def test_any_forged_messages_leave_the_blocks_unchanged(tiny, seed, per_kind, window):
    """Whatever the forged messages and where they land (at most two of one identity in a row),
    the assembler gives the clean stream's blocks, and counts every forged message once."""
    stem, _ = tiny
    msgs = _CLEAN.setdefault("gla", clean_messages(stem))
    want = feed(StreamAssembler(reorder_window=window), msgs)
    plan, tried = forge(msgs, seed=seed, per_kind=per_kind)
    asm = StreamAssembler(reorder_window=window)
    got = feed(asm, [m for i, real in enumerate(msgs) for m in plan.get(i, []) + [real]])
    same_blocks(got, want)
    s = asm.stats
    rejected = s.bad_frames + s.duplicates + s.foreign_dropped + s.wrong_shape_dropped + s.unconfirmed_dropped
    assert rejected == sum(tried.values()) and s.resyncs == 0 and asm.held_aside == 0


_CLEAN: dict[str, list[list[bytes]]] = {}


def test_gr_tagged_stray_messages_leave_the_stream_untouched(tiny):
    stem, ref = tiny
    items = ref.astype("<f4")

    def gr(a, n):
        return [zf.pack_gr_tag_header(a) + items[a : a + n].tobytes()]

    msgs = [gr(a, 400) for a in range(0, 24000, 400)]
    want = feed(StreamAssembler(framing="gr", n_channels=NCH, sample_rate_hz=FS, pass_tags=True), msgs)
    # a replay 0.35 s back: a duplicate; two "restarted flowgraph" messages 2.5 s back: held aside,
    # never confirmed, dropped; garbage behind the tag magic: a bad frame
    mixed = msgs[:12] + [gr(2000, 1)] + msgs[12:50] + [gr(0, 400), gr(400, 400)] + msgs[50:55]
    mixed += [[b"\xf0\x5f\x01garbage"]] + msgs[55:]
    asm = StreamAssembler(framing="gr", n_channels=NCH, sample_rate_hz=FS, pass_tags=True)
    same_blocks(feed(asm, mixed), want)
    s = asm.stats
    assert (s.resyncs, s.unconfirmed_dropped, s.bad_frames, s.duplicates) == (0, 2, 1, 1)


def test_forged_messages_cost_no_bundle():
    """demo_small (12 inputs, 8 s, four transmissions) through the receive chains and the grouping:
    the bundles of the clean and of the forged stream are the same."""
    res = run(seed=1, per_kind=8)
    assert res["bundles_lost_to_forged_zmq_messages"] == 0 and res["bundles_extra_in_forged_stream"] == 0
    assert res["bundles_clean_stream"] == 4 and res["forged_zmq_messages_tried"] >= 80
    assert res["blocks_identical"]


# -------------------------------------------------------------------- (d) GNU Radio raw, no tags
def test_gr_untagged_malformed_message_is_a_discontinuity_and_sub_warns(tiny, caplog):
    stem, ref = tiny
    asm = StreamAssembler(framing="gr", n_channels=NCH, sample_rate_hz=FS)
    items = ref.astype("<f4")
    msgs = [[items[a : a + 400].tobytes()] for a in range(0, 2400, 400)]
    msgs.insert(3, [items[1200:1400].tobytes()[:-3]])  # a cut-short message: its items are lost
    blocks = feed(asm, msgs)
    assert [b.discontinuity for b in blocks] == [True, False, False, True, False, False]
    assert asm.stats.bad_frames == 1 and asm.stats.gaps == 1 and asm.stats.resyncs == 1
    with caplog.at_level(logging.WARNING, logger="gla.ingest"):
        for pattern, tags in (("sub", False), ("sub", True), ("pull", False)):
            ZmqSource(
                LOCAL, bind=True, pattern=pattern, framing="gr", n_channels=NCH, sample_rate_hz=FS, pass_tags=tags
            ).close()
    warned = [r for r in caplog.records if getattr(r, "event", "") == "lossy_without_tags"]
    assert len(warned) == 1 and "pass_tags" in warned[0].getMessage()


# -------------------------------------------------------------------- item 7: raw-mode clipping
def test_gr_raw_floats_in_physical_units_are_not_clipped(tiny):
    """The service gives gr_scale = 1 / input.scale (1.0 by default): float items are physical
    values, and |x| > 1 per unit is no clipping (the capture peaks at 1.5)."""
    stem, ref = tiny
    assert np.count_nonzero(np.abs(ref) >= 1.0) > 1000
    for tags in (False, True):
        asm = StreamAssembler(framing="gr", n_channels=NCH, sample_rate_hz=FS, pass_tags=tags, gr_scale=1.0)
        with CaptureSender(stem, LOCAL, framing="gr", pass_tags=tags) as snd:
            blocks = feed(asm, [p for _, p, _ in snd.messages()])
        assert asm.stats.clipped == 0 and asm.stats.samples == 3 * FS
        np.testing.assert_allclose(np.concatenate([b.samples for b in blocks]), ref, rtol=1e-6)
    # an explicit clip level still counts, and integer items at the ends of their range do
    asm = StreamAssembler(framing="gr", n_channels=NCH, sample_rate_hz=FS, gr_scale=1.0, clip_level=1.4)
    with CaptureSender(stem, LOCAL, framing="gr") as snd:
        feed(asm, [p for _, p, _ in snd.messages()])
    assert asm.stats.clipped == np.count_nonzero(np.abs(ref.astype(np.float32)) >= 1.4) > 0
    asm = StreamAssembler(framing="gr", n_channels=NCH, sample_rate_hz=FS, sample_type="int16", gr_scale=SCALE)

    def saturate(i, x):
        if i == 2:
            x[0, 0], x[1, 1] = 10.0, -10.0
        return x

    with CaptureSender(stem, LOCAL, framing="gr", sample_type="int16", mutate=saturate) as snd:
        feed(asm, [p for _, p, _ in snd.messages()])
    assert asm.stats.clipped == 2
