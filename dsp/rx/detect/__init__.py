"""Preamble detector: every chip code of every channel of one input, CFAR threshold, explicit state machine.

One concern per module, in the order a block of baseband flows through them:

* :mod:`dsp.rx.detect.templates`: what is correlated against: each code's received preamble at
  two sub-sample phases, their spectra over an NFFT block, the phase-1-from-phase-0 interpolators
  and the sidelobe bound (made once per channel, cached read-only);
* :mod:`dsp.rx.detect.fft`: the row FFTs (FFTW) and the buffers every bank of a thread shares;
* :mod:`dsp.rx.detect.kernels`: the numba kernels of a block: noise power, tone excision,
  spectra product, the screen that decides which codes need their phase-1 correlation, the
  two-phase statistic;
* :mod:`dsp.rx.detect.state`: per channel, the state machine of each code (IDLE -> PEAK ->
  HOLDOFF), the second CFAR stage (:mod:`dsp.rx.cfar_gate`) and the release of
  :class:`Detection` records (each carries ``start_sample``);
* :mod:`dsp.rx.detect.bank`: :class:`DetectorBank`, which runs a block of every channel of an
  input through all of the above (noise -> forward FFT -> tones out -> product -> inverse FFT ->
  screen -> phase-1 FFT where needed -> state machines -> release), and
  :class:`PreambleDetector`, a bank of one channel.
"""

from dsp.rx.detect.bank import LIM_FULL, DetectorBank, PreambleDetector
from dsp.rx.detect.kernels import TONE_DB, TONE_GROUP, TONE_K, tone_bins
from dsp.rx.detect.state import PEAK_SPAN, THRESHOLD, ChannelDetector, Detection, DetectorState, DetState
from dsp.rx.detect.templates import NFFT, PRE_CHIPS, SIDELOBE_DB, sidelobe_bound, template

__all__ = [
    "LIM_FULL",
    "NFFT",
    "PEAK_SPAN",
    "PRE_CHIPS",
    "SIDELOBE_DB",
    "THRESHOLD",
    "TONE_DB",
    "TONE_GROUP",
    "TONE_K",
    "ChannelDetector",
    "DetState",
    "Detection",
    "DetectorBank",
    "DetectorState",
    "PreambleDetector",
    "sidelobe_bound",
    "template",
    "tone_bins",
]
