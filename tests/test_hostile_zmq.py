"""Hostile ZeroMQ messages fed to the receiver's StreamAssembler (issue 17 item 8): malformed ones
alone and interleaved with a real stream, forged ones (valid framing, a header field changed).
Generators and properties: gridsim/hostile/zmq.py."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given

from gridsim.hostile import ci_settings, zmq
from receiver.contracts import zmq_framing as zf
from receiver.sources.assembler import StreamAssembler

MALFORMED = ("garbage", "truncated", "flipped", "parts")


@ci_settings(300)
@given(hs=zmq.interleavings(MALFORMED))
def test_malformed_messages_in_a_live_stream_cost_nothing(hs):
    assert zmq.check_interleaved(hs) == []


@ci_settings(200)
@given(x=zmq.gr_inputs())
def test_gnu_radio_raw_random_bytes_are_counted_not_raised(x):
    assert zmq.check_gr(x) == []


@ci_settings(200, shrink=False)
@given(hs=zmq.interleavings(("forged",)))
def test_one_forged_message_costs_at_most_its_own_samples(hs):
    assert zmq.check_interleaved(hs) == []


def _with_flags(j: int, flags: int) -> bytes:
    """Clean message ``j`` with its flags set to ``flags`` and the CRC recomputed (a forger's)."""
    b = bytearray(zmq.CLEAN[j])
    struct.pack_into("<H", b, zmq.FIELDS["flags"][0], flags)
    return zmq.reseal(bytes(b))


@pytest.mark.parametrize("flags", [zf.FLAG_END_OF_STREAM, zf.FLAG_END_OF_STREAM | zf.FLAG_DISCONTINUITY])
def test_a_forged_end_of_stream_copy_ends_nothing(flags):
    """A copy of any message of a live stream with END_OF_STREAM (and DISCONTINUITY) set and the
    CRC recomputed, slipped in anywhere: an end-of-stream is honoured only in sequence, and the
    genuine message with the same sequence number arriving after it shows it was not the
    sender's, so the stream goes on. Every clean sample comes out, no block goes back, and the
    flags cost at most the one resynchronisation a DISCONTINUITY asks for."""
    for after in range(zmq.N_MSG):
        for j in range(zmq.N_MSG):
            stream = []
            for i, m in enumerate(zmq.CLEAN):
                stream.append([m])
                if i == after:
                    stream.append([_with_flags(j, flags)])
            blocks, a = zmq.assemble(stream)
            y = zmq.delivered(blocks)
            assert np.array_equal(y, zmq.REFERENCE, equal_nan=True), (after, j)
            starts = [b.first_sample for b in blocks]
            assert starts == sorted(starts), (after, j, starts)
            extra = zmq.resyncs(blocks) - zmq.REF_RESYNCS
            assert extra <= (1 if flags & zf.FLAG_DISCONTINUITY and j > after else 0), (after, j, a.stats)
            assert not a.end_of_stream, (after, j)


def test_a_genuine_end_of_stream_still_ends_and_a_restart_starts_at_once():
    """The sender's own end-of-stream (on its last message, in sequence) ends the stream, a copy of
    it changes nothing, and a restarted sender (another session) is followed from its first
    message."""
    last = len(zmq.CLEAN) - 1
    eos = _with_flags(last, zf.FLAG_END_OF_STREAM)
    a = StreamAssembler()
    for m in [*zmq.CLEAN[:last], eos, eos]:
        a.feed([m])
    assert a.end_of_stream and a.stats.duplicates == 1
    h = zf.GlaHeader("rx-test", 0, 0, zmq.FS, zmq.NCH, "float32", 1.0, None, 0, 0xBEEF)
    out = a.feed([zf.pack_message(h, np.zeros((zmq.PER, zmq.NCH), np.float32))])
    assert not a.end_of_stream and [(b.first_sample, b.discontinuity) for b in out] == [(0, True)]


def test_forged_end_of_stream_and_sequence_numbers_together_cost_their_own_samples():
    """Found by the reliability benchmark: an END_OF_STREAM|DISCONTINUITY copy of a message far
    ahead, then two copies with their sequence number forged to 0. Honouring the end at once
    gave up the 13 messages before it and let the forged ones anchor the stream: 1920 clean
    samples were lost."""
    b = [bytearray(zmq.CLEAN[8]), bytearray(zmq.CLEAN[2])]
    for x in b:
        struct.pack_into("<Q", x, zmq.FIELDS["seq"][0], 0)
    eos = _with_flags(17, zf.FLAG_END_OF_STREAM | zf.FLAG_DISCONTINUITY)
    hs = [zmq.Hostile(3, "forged", [eos], "eos|disc copy of 17", zmq.PER)]
    hs += [zmq.Hostile(3, "forged", [zmq.reseal(bytes(x))], "seq -> 0", zmq.PER) for x in b]
    assert zmq.check_interleaved(hs) == []
