"""FFT plumbing of the detector bank: row FFTs by FFTW, and what every bank of a thread shares.

Correlation runs by overlap-save FFTs (single precision) in fixed blocks of NFFT samples aligned
to the absolute sample index, so results do not depend on how the stream is cut. A bank does
every channel of an input at once: one forward FFT of the channels' blocks, one inverse FFT of
the phase-0 correlations (3 channels x 4 codes), one of the phase-1 correlations the state
machines need, each by :class:`RowFFT`. Its plans and buffers, and the bank's scratch arrays,
are made once per thread (:func:`shared_fft`, :func:`shared_scratch`) and shared by every bank
of that thread: the receiver runs many banks one block after another, and one copy stays in the
cache where one per bank would not. (The template spectra are shared the same way:
:func:`dsp.rx.detect.templates.bank_spectra`.)
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from dsp.rx.detect.templates import NFFT

try:  # FFTW (pyFFTW): ~2.5x pocketfft's speed on these transforms, see RowFFT
    import pyfftw
except ImportError:  # pragma: no cover - then scipy.fft's own pocketfft binding
    pyfftw = None
    from scipy.fft._pocketfft.pypocketfft import c2c as _c2c


class RowFFT:
    """FFTs of the first n rows of ``inp`` (rows, NFFT; complex64) into ``out``, unnormalised
    both ways (the bank's template spectra carry the inverse's 1/N: a power of two, exact).

    FFTW plans made with FFTW_ESTIMATE: chosen by FFTW's rules, not by timing, so every run on a
    machine makes the same plan and the same bits. Out of place (in place, FFTW's estimated plans
    were 2.5x slower here). Measured on this project's machine (AMD EPYC, AVX-512, one thread):
    12 inverse rows of 2048 points 32 us against pocketfft's 83 us, 4 forward rows 7.7 against 24.
    Without pyFFTW, pocketfft does the same transforms (a few ulp apart)."""

    def __init__(self, rows: int, forward: bool) -> None:
        alloc = pyfftw.empty_aligned if pyfftw is not None else np.empty
        self.inp, self.out = alloc((rows, NFFT), np.complex64), alloc((rows, NFFT), np.complex64)
        self.inp[:] = 0
        self.out[:] = 0
        self.forward = forward
        self.plans: dict[int, Any] = {}  # pyfftw.FFTW plans by row count

    def __repr__(self) -> str:
        return (
            f"RowFFT({'forward' if self.forward else 'inverse'}, up to {self.inp.shape[0]} rows of {NFFT}, "
            f"{'FFTW' if pyfftw is not None else 'pocketfft'}, plans for {sorted(self.plans)} rows)"
        )

    def __call__(self, n: int) -> np.ndarray:
        if pyfftw is None:
            return _c2c(self.inp[:n], (1,), self.forward, 0, self.out[:n], 1)
        plan = self.plans.get(n)
        if plan is None:
            plan = self.plans[n] = pyfftw.FFTW(
                self.inp[:n],
                self.out[:n],
                axes=(1,),
                threads=1,
                direction="FFTW_FORWARD" if self.forward else "FFTW_BACKWARD",
                flags=("FFTW_ESTIMATE",),
            )
        plan.execute()
        return self.out[:n]


_tls = threading.local()


def _per_thread(key: tuple, make):
    """The object under ``key`` that every bank of this thread uses, made by ``make()`` the first
    time: fewer bytes for the cache to hold than one per bank (scratch whose content lives within
    a block; FFTW plans, made once per thread)."""
    d = _tls.__dict__.setdefault("shared", {})
    if key not in d:
        d[key] = make()
    return d[key]


def shared_scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Scratch array ``name`` of this thread (zeros when made; its content lives within a block)."""
    return _per_thread(("scratch", name, shape, np.dtype(dtype).str), lambda: np.zeros(shape, dtype))


def shared_fft(name: str, rows: int, forward: bool) -> RowFFT:
    """Row FFT ``name`` of this thread (its buffers and plans)."""
    return _per_thread(("fft", name, rows, forward), lambda: RowFFT(rows, forward))
