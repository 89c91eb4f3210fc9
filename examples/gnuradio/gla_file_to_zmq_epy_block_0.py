"""rx_time at the first item: dates the stream the way an SDR source (UHD) does.

A file source knows no time, so this block tags item 0 with the capture's start (a tuple of
uint64 whole seconds and double fractional seconds since 1970 UTC, UHD's rx_time convention).
The receiver dates every sample from the latest rx_time tag. An empty start_time adds no tag
(the receiver then dates the stream by its own clock when the first samples arrive).
"""

import calendar
from datetime import datetime

import numpy as np
import pmt
from gnuradio import gr


class blk(gr.sync_block):
    """Pass vectors through; tag item 0 with rx_time = start_time (ISO 8601, UTC)."""

    def __init__(self, vlen=12, start_time="2025-03-03T14:00:00.000000Z"):
        gr.sync_block.__init__(
            self,
            name="rx_time at start",
            in_sig=[(np.float32, vlen)],
            out_sig=[(np.float32, vlen)],
        )
        self.vlen = vlen
        self.start_time = start_time

    def work(self, input_items, output_items):
        n = len(input_items[0])
        if n and self.start_time and self.nitems_written(0) == 0:
            t = datetime.fromisoformat(self.start_time.replace("Z", "+00:00"))
            secs = calendar.timegm(t.utctimetuple())
            when = pmt.make_tuple(pmt.from_uint64(secs), pmt.from_double(t.microsecond / 1e6))
            self.add_item_tag(0, 0, pmt.intern("rx_time"), when)
        output_items[0][:] = input_items[0]
        return n
