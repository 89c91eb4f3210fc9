"""The transmit side (what an edge transmitter does with a frame): coding and symbols
(:mod:`dsp.tx.burst`), the chip pulse and harmonic-null comb (:mod:`dsp.tx.shaping`), spreading
and modulation onto the mains (:mod:`dsp.tx.modulator`)."""
