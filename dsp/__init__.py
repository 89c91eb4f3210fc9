"""Signal processing of the GLA edge-to-substation link.

- :mod:`dsp.air`: the air interface as a contract (plan, frame codec, messages, codes); no numba.
- :mod:`dsp.fec`: the convolutional code, encoder and Viterbi decoder.
- :mod:`dsp.tx`: the transmit side (burst coding, pulse shaping, modulation).
- :mod:`dsp.rx`: the receive side (comb, channelizer, detector, demodulator, the per-input chain).
- :mod:`dsp.numba_settings`: every numba option, fastmath flags included, in one place.

The normative description is docs/air-interface.md.
"""
