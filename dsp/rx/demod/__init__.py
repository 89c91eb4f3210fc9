"""Despreader and demodulator of one detected burst, and its decoding to a frame.

Signal model (docs/air-interface.md): at the channel's baseband the burst is
    r(t) = H e^{j 2 pi df t} [U(t') + w2 U(t' - T0)],   U(t) = sum_k a_k g(t/Tc - k),
t' = (1 + eps)(t - t_start) the transmitter's clock, w2 = -exp(-j 2 pi fc T0), and the carrier
offset df = eps fc because carrier and chips come from the same crystal.

The steps, in the order a burst goes through them (:class:`BurstDemodulator` in
:mod:`~dsp.rx.demod.demodulator` runs them):

1. Timing (:mod:`~dsp.rx.demod.timing`): the detector's start is refined by maximising the
   preamble correlation over +-0.3 chip (13 offsets, parabolic interpolation), all offsets in
   one kernel.
2. Chip matched filter (:mod:`~dsp.rx.demod.matched_filter`, the pulse table and the packed
   kernel arguments in :mod:`~dsp.rx.demod.pulse`): the RRC evaluated at the true position of
   every chip of both paths (0 and T0), by classes of chips or chip by chip.
3. Two-finger RAKE and despreading (:mod:`~dsp.rx.demod.rake`): the paths combined with the
   known weight conj(w2), the chips despread by the Gold code into symbols.
4. Carrier (:mod:`~dsp.rx.demod.carrier`): df from a DFT of the modulation-stripped symbols of
   the whole burst within the crystals' +-150 ppm; eps = df / fc sets the chip clock, and
   steps 2 and 3 run again on the baseband derotated by df.
5. Phase and amplitude (:mod:`~dsp.rx.demod.phase`): the phase tracked over the data by a
   smoothed decision-free estimate from the preamble's phase; amplitude and noise fitted.
6. Soft decisions (:mod:`~dsp.rx.demod.soft`): weighted soft symbols -> deinterleave ->
   depuncture in one kernel, then the soft Viterbi decoder (:mod:`dsp.fec.viterbi`) and the CRC.
7. Data-aided pass (:mod:`~dsp.rx.demod.cancel`): the decided frame re-encoded, the
   self-interference of the T0 path removed from the symbols, the phase re-estimated from the
   known symbols (:mod:`~dsp.rx.demod.phase`) and the frame decoded again (step 6), up to
   ``iterations`` passes while the CRC fails.
8. Figures of merit (:mod:`~dsp.rx.demod.demodulator`): SNR, Eb/N0, EVM, carrier and clock
   offsets, level, pre-FEC bit errors, in a :class:`BurstResult`.

And for a burst decoded on one input, its measurement on another input where it may be far
below detection (:mod:`~dsp.rx.demod.measure`: :func:`measure_known`, :class:`KnownMeasurement`).
"""

from dsp.rx.demod.demodulator import BurstDemodulator, BurstResult
from dsp.rx.demod.measure import KnownMeasurement, measure_known

__all__ = ["BurstDemodulator", "BurstResult", "KnownMeasurement", "measure_known"]
