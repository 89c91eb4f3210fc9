"""Numba-accelerated signal stages of the GLA edge-to-substation link.

Transmit side: :mod:`dsp.crc`, :mod:`dsp.conv`, :mod:`dsp.interleave`, :mod:`dsp.codes`,
:mod:`dsp.shaping`, :mod:`dsp.modulator`, :mod:`dsp.frame`, :mod:`dsp.messages`.
The normative description is docs/air-interface.md; constants are in :mod:`dsp.params`.
"""
