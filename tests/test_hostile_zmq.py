"""Hostile ZeroMQ messages fed to the receiver's StreamAssembler (issue 17 item 8): malformed ones
alone and interleaved with a real stream, forged ones (valid framing, a header field changed).
Generators and properties: gridsim/hostile/zmq.py."""

from __future__ import annotations

import pytest
from hypothesis import given

from gridsim.hostile import ci_settings, zmq

MALFORMED = ("garbage", "truncated", "flipped", "parts")


@ci_settings(300)
@given(hs=zmq.interleavings(MALFORMED))
def test_malformed_messages_in_a_live_stream_cost_nothing(hs):
    assert zmq.check_interleaved(hs) == []


@ci_settings(200)
@given(x=zmq.gr_inputs())
def test_gnu_radio_raw_random_bytes_are_counted_not_raised(x):
    assert zmq.check_gr(x) == []


@pytest.mark.xfail(
    strict=True,
    reason="issue 17 item 4: fixed on another branch (a forged session or shape is adopted at once, "
    "a dropped wrong-shape message consumes its sequence number)",
)
@ci_settings(200, shrink=False)
@given(hs=zmq.interleavings(("forged",)))
def test_one_forged_message_costs_at_most_its_own_samples(hs):
    assert zmq.check_interleaved(hs) == []
