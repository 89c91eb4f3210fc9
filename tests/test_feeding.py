"""The service's input hand-over (receiver/feeding.py): the source read in its own thread, so that
the loop can gather messages into larger blocks and still feed what it holds when the input
pauses; and the malloc setting that keeps freed heap for the next blocks."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from receiver.feeding import SourceReader, keep_freed_heap
from receiver.service import ReceiverConfig


def test_the_reader_hands_over_every_block_in_order_then_says_it_ended():
    reader = SourceReader(iter(range(40)), max_blocks=4)  # (more blocks than the hand-over holds)
    got = []
    while not reader.ended:
        item = reader.get(1.0)
        if item is not None:
            got.append(item)
    assert got == list(range(40)) and reader.get(0.0) is None
    reader.stop()


def test_the_reader_returns_none_when_the_input_pauses():
    gate = threading.Event()

    def paused():
        yield "first"
        gate.wait(10)
        yield "after the pause"

    reader = SourceReader(paused())
    assert reader.get(2.0) == "first"
    t0 = time.monotonic()
    assert reader.get(0.2) is None and not reader.ended  # (the loop then feeds what it holds)
    assert 0.15 < time.monotonic() - t0 < 2.0
    gate.set()
    assert reader.get(2.0) == "after the pause"
    assert reader.get(2.0) is None and reader.ended
    reader.stop()


def test_the_sources_error_is_raised_in_the_loop():
    def broken():
        yield 1
        raise OSError("the socket went away")

    reader = SourceReader(broken())
    assert reader.get(2.0) == 1
    with pytest.raises(OSError, match="went away"):
        reader.get(2.0)
    assert reader.ended


def test_stop_ends_a_reader_whose_loop_no_longer_takes_blocks():
    reader = SourceReader(iter(np.arange(100)), max_blocks=2)
    assert reader.get(2.0) == 0
    reader.stop(timeout_s=2.0)
    assert not reader._thread.is_alive()


def test_malloc_keeps_freed_heap_on_glibc():
    assert keep_freed_heap() is True  # (Linux with glibc: what the service runs on)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_feed_block_s_is_checked(bad):
    with pytest.raises(ValueError, match="feed_block_s"):
        ReceiverConfig.model_validate(
            {
                "receiver": {"id": "r", "substation_id": "s", "feed_block_s": bad},
                "input": {"endpoint": "tcp://127.0.0.1:1", "n_channels": 1, "channels": []},
            }
        )
