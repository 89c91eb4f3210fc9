"""The chip pulse as the demodulator's kernels read it, and where the chips fall on the samples.

The root-raised-cosine chip pulse (:func:`dsp.tx.shaping.rrc`) is tabulated once, ``TAB_RES``
points per chip over +-``TAB_SPAN`` chips, and read by linear interpolation; a chip's matched
filter takes the samples within +-``SPAN`` chips of its centre. Two packed arguments keep the
kernels' argument lists short:

* the pulse (:data:`RRC_PULSE`, :func:`pulse_table`): ``(tab, td, tab_res, tab_span, span)``,
  the table as values (``tab``, for synthesis) and as values interleaved with slopes (``td``,
  :func:`interleave_steps`, for the matched filter), its points per chip, its start
  (-tab_span chips), and the half-width of a chip's window in chips;
* the chip grid (:func:`chip_grid`): ``(n_first, c0, spc, t0_samples, period, shift)``, the
  baseband index of the kernel's first sample r[0], the input index of baseband sample 0, input
  samples per chip (true time: the clock offset included), the delay of the second path (T0) in
  input samples, and the classes of chips that span a whole number of baseband samples (chips q
  and q + period lie ``shift`` samples apart; 0, 0: none, see
  :func:`dsp.rx.demod.matched_filter.chip_period`).

Both are plain tuples, unpacked by name at the top of each kernel: numba passes their fields as
it would separate arguments (no cost inside compiled code), and types a plain tuple at a call
from Python about as fast as separate arguments, a named tuple about 2 us slower per call (1.6 to
2 % of a burst's demodulation in all, measured).

Times are input-sample indices (at fs); baseband sample m sits at input index ``DEC m + c0``.
"""

from __future__ import annotations

import numpy as np

from dsp.air import params as P
from dsp.numba_settings import jit
from dsp.rx.channelizer import DECIMATION
from dsp.tx.shaping import rrc_many

TAB_RES = 1024  # table points per chip
TAB_SPAN = 7.0  # the table covers -TAB_SPAN .. +TAB_SPAN chips
SPAN = P.RRC_SPAN_CHIPS + 0.5  # a chip's matched filter takes the samples within +-SPAN chips of its centre
#: Input samples per baseband sample (the channelizer's decimation, in the kernels' arithmetic).
DEC = float(DECIMATION)


def _table() -> np.ndarray:
    x = np.arange(-TAB_SPAN * TAB_RES, TAB_SPAN * TAB_RES + 2) / TAB_RES
    return rrc_many(x, P.RRC_BETA)


@jit
def interleave_steps(tab):
    """td[2 j] = tab[j], td[2 j + 1] = tab[j + 1] - tab[j] (0 at the end): a table point and the
    slope after it in one cache line."""
    td = np.zeros(2 * tab.shape[0])
    for j in range(tab.shape[0]):
        td[2 * j] = tab[j]
        if j + 1 < tab.shape[0]:
            td[2 * j + 1] = tab[j + 1] - tab[j]
    return td


#: The packed pulse argument: (tab, td, tab_res, tab_span, span).
PulseTable = tuple[np.ndarray, np.ndarray, float, float, float]


def pulse_table(tab: np.ndarray, tab_res: float, tab_span: float, span: float) -> PulseTable:
    """The pulse argument of the kernels for the table ``tab`` (the pulse at x = -tab_span +
    j / tab_res chips) and chip windows of +-``span`` chips."""
    tab = np.ascontiguousarray(tab, dtype=np.float64)
    return tab, interleave_steps(tab), float(tab_res), float(tab_span), float(span)


RRC_TAB = _table()
#: The RRC chip pulse of the air interface, as every kernel of the demodulator reads it.
RRC_PULSE = pulse_table(RRC_TAB, TAB_RES, TAB_SPAN, SPAN)


#: The packed chip-grid argument: (n_first, c0, spc, t0_samples, period, shift).
ChipGrid = tuple[int, float, float, float, int, int]


def chip_grid(n_first: int, c0: float, spc: float, t0_samples: float, period: int = 0, shift: int = 0) -> ChipGrid:
    """The chip-grid argument of the kernels (see the module docstring), with the types they are
    compiled for."""
    return int(n_first), float(c0), float(spc), float(t0_samples), int(period), int(shift)
