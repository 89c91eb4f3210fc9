#!/usr/bin/env python3
# -*- coding: utf-8 -*-

#
# SPDX-License-Identifier: GPL-3.0
#
# GNU Radio Python Flow Graph
# Title: GLA: capture file to ZeroMQ
# Description: A capture's WAV -> Streams to Vector -> (Throttle) -> rx_time tag -> ZMQ PUSH sink with pass_tags, for gla receive
# GNU Radio version: 3.10.5.1

from gnuradio import blocks
from gnuradio import gr
from gnuradio.filter import firdes
from gnuradio.fft import window
import sys
import signal
from argparse import ArgumentParser
from gnuradio.eng_arg import eng_float, intx
from gnuradio import eng_notation
from gnuradio import zeromq
import gla_file_to_zmq_epy_block_0 as epy_block_0  # embedded python block




class gla_file_to_zmq(gr.top_block):

    def __init__(self, capture='captures/demo_small.wav', address='tcp://127.0.0.1:5555', samp_rate=48000, speed=1.0, start_time='2025-03-03T14:00:00.000000Z'):
        gr.top_block.__init__(self, "GLA: capture file to ZeroMQ", catch_exceptions=True)

        ##################################################
        # Parameters
        ##################################################
        self.capture = capture
        self.address = address
        self.samp_rate = samp_rate
        self.speed = speed
        self.start_time = start_time

        ##################################################
        # Blocks
        ##################################################

        self.zeromq_push_sink_0 = zeromq.push_sink(gr.sizeof_float, 12, address, 100, True, (-1))
        self.epy_block_0 = epy_block_0.blk(vlen=12, start_time=start_time)
        self.blocks_wavfile_source_0 = blocks.wavfile_source(capture, False)
        self.blocks_throttle_0 = blocks.throttle(gr.sizeof_float*12, (samp_rate * speed),True)
        self.blocks_streams_to_vector_0 = blocks.streams_to_vector(gr.sizeof_float*1, 12)


        ##################################################
        # Connections
        ##################################################
        self.connect((self.blocks_streams_to_vector_0, 0), (self.blocks_throttle_0, 0))
        self.connect((self.blocks_throttle_0, 0), (self.epy_block_0, 0))
        self.connect((self.blocks_wavfile_source_0, 1), (self.blocks_streams_to_vector_0, 1))
        self.connect((self.blocks_wavfile_source_0, 0), (self.blocks_streams_to_vector_0, 0))
        self.connect((self.blocks_wavfile_source_0, 8), (self.blocks_streams_to_vector_0, 8))
        self.connect((self.blocks_wavfile_source_0, 7), (self.blocks_streams_to_vector_0, 7))
        self.connect((self.blocks_wavfile_source_0, 3), (self.blocks_streams_to_vector_0, 3))
        self.connect((self.blocks_wavfile_source_0, 11), (self.blocks_streams_to_vector_0, 11))
        self.connect((self.blocks_wavfile_source_0, 4), (self.blocks_streams_to_vector_0, 4))
        self.connect((self.blocks_wavfile_source_0, 6), (self.blocks_streams_to_vector_0, 6))
        self.connect((self.blocks_wavfile_source_0, 9), (self.blocks_streams_to_vector_0, 9))
        self.connect((self.blocks_wavfile_source_0, 10), (self.blocks_streams_to_vector_0, 10))
        self.connect((self.blocks_wavfile_source_0, 2), (self.blocks_streams_to_vector_0, 2))
        self.connect((self.blocks_wavfile_source_0, 5), (self.blocks_streams_to_vector_0, 5))
        self.connect((self.epy_block_0, 0), (self.zeromq_push_sink_0, 0))


    def get_capture(self):
        return self.capture

    def set_capture(self, capture):
        self.capture = capture

    def get_address(self):
        return self.address

    def set_address(self, address):
        self.address = address

    def get_samp_rate(self):
        return self.samp_rate

    def set_samp_rate(self, samp_rate):
        self.samp_rate = samp_rate
        self.blocks_throttle_0.set_sample_rate((self.samp_rate * self.speed))

    def get_speed(self):
        return self.speed

    def set_speed(self, speed):
        self.speed = speed
        self.blocks_throttle_0.set_sample_rate((self.samp_rate * self.speed))

    def get_start_time(self):
        return self.start_time

    def set_start_time(self, start_time):
        self.start_time = start_time
        self.epy_block_0.start_time = self.start_time



def argument_parser():
    description = "A capture's WAV -> Streams to Vector -> (Throttle) -> rx_time tag -> ZMQ PUSH sink with pass_tags, for gla receive"
    parser = ArgumentParser(description=description)
    parser.add_argument(
        "-c", "--capture", dest="capture", type=str, default='captures/demo_small.wav',
        help="Set Capture WAV [default=%(default)r]")
    parser.add_argument(
        "-a", "--address", dest="address", type=str, default='tcp://127.0.0.1:5555',
        help="Set ZMQ address (the sink binds) [default=%(default)r]")
    parser.add_argument(
        "-r", "--samp-rate", dest="samp_rate", type=eng_float, default=eng_notation.num_to_str(float(48000)),
        help="Set Sample rate (Hz) [default=%(default)r]")
    parser.add_argument(
        "-s", "--speed", dest="speed", type=eng_float, default=eng_notation.num_to_str(float(1.0)),
        help="Set Speed (x real time) [default=%(default)r]")
    parser.add_argument(
        "-t", "--start-time", dest="start_time", type=str, default='2025-03-03T14:00:00.000000Z',
        help="Set Capture start (UTC, ISO 8601; empty: no rx_time tag) [default=%(default)r]")
    return parser


def main(top_block_cls=gla_file_to_zmq, options=None):
    if options is None:
        options = argument_parser().parse_args()
    tb = top_block_cls(capture=options.capture, address=options.address, samp_rate=options.samp_rate, speed=options.speed, start_time=options.start_time)

    def sig_handler(sig=None, frame=None):
        tb.stop()
        tb.wait()

        sys.exit(0)

    signal.signal(signal.SIGINT, sig_handler)
    signal.signal(signal.SIGTERM, sig_handler)

    tb.start()

    tb.wait()


if __name__ == '__main__':
    main()
