"""The receive chain of one CT input: comb -> channelizer -> detectors -> demodulator -> decoder.

``InputChain.process(block)`` takes samples of one input (any block size) and returns the
bursts whose last sample has arrived, as :class:`dsp.rx.despread.BurstResult` records tagged with
the input. Each channel keeps a ring of its baseband (long enough for one burst after its
detection); a detection waits until its whole burst is in the ring, then it is demodulated.
Samples before the comb has locked (:data:`dsp.rx.comb.LOCK_S`) are not used for detection.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from dsp.air import params as P
from dsp.rx.channelizer import DECIMATION, Channelizer
from dsp.rx.comb import LOCK_S, HarmonicComb
from dsp.rx.demod import BurstDemodulator, BurstResult
from dsp.rx.detector import Detection, DetectorBank
from dsp.rx import excise as _excise
from dsp.numba_settings import jit

KEEP_S = 8.0  # baseband history per channel


def deinterleave(block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A block of a multichannel stream, (samples, inputs) as captures and ZeroMQ frames carry it,
    as one contiguous row per input, (inputs, samples): one pass, instead of a strided copy per
    input (which costs ~7 ns per sample here). Rows are float32 when every value of the block's
    type is one exactly (float32, 8- and 16-bit integers: half the memory to write and for the
    comb to read), float64 otherwise. ``out`` is reused when its shape and type fit."""
    block = np.asarray(block)
    if block.ndim != 2 or block.dtype.kind not in "fiu":
        raise ValueError(f"expected a real (samples, inputs) block, got {block.dtype} {block.shape}")
    exact32 = block.dtype == np.float32 or (block.dtype.kind in "iu" and block.dtype.itemsize <= 2)
    dtype = np.float32 if exact32 else np.float64
    if out is None or out.shape != block.shape[::-1] or out.dtype != dtype:
        out = np.empty(block.shape[::-1], dtype)
    _deinterleave_kernel(block.astype(dtype, copy=False), out)
    return out


@jit
def _deinterleave_kernel(x, out):
    """``out[c, i] = x[i, c]`` (reads in order, one write stream per input)."""
    n, m = x.shape
    for i in range(n):
        for c in range(m):
            out[c, i] = x[i, c]


def _touched(shape: tuple[int, int]) -> np.ndarray:
    """Zeros, complex64 (the channelizer's type), written once here: ``np.zeros`` of a large
    array maps its pages lazily, and the first append to each page would then take a page fault
    (one ring of 8 s is ~0.6 MB: ~17 us per append in the first 16 s of a stream instead of ~4)."""
    buf = np.empty(shape, np.complex64)
    buf.fill(0)
    return buf


class BasebandRing:
    """The newest baseband of every channel (all channels in step), appended in place: a buffer
    with room for ``keep`` samples plus one block, compacted (the newest ``keep`` moved to the
    front) only when an append would overflow it, so a sample is copied about twice in all
    instead of once per block. ``start`` is the absolute baseband index of the oldest sample
    held, ``end`` one past the newest. Held as complex64, the channelizer's type (its values
    exactly; a consumer that wants double precision converts its span)."""

    def __init__(self, n_channels: int, keep: int) -> None:
        self.keep = int(keep)
        self.buf = _touched((n_channels, 2 * self.keep))
        self.first = 0  # absolute index of buf[:, 0]
        self.lo = 0  # buf[:, lo:hi] is the content
        self.hi = 0

    @property
    def start(self) -> int:
        return self.first + self.lo

    @property
    def end(self) -> int:
        return self.first + self.hi

    def append(self, bb: np.ndarray) -> None:
        k = bb.shape[1]
        if self.hi + k > self.buf.shape[1]:
            n = self.hi - self.lo
            if n + k > self.buf.shape[1]:  # a block longer than the spare room: grow
                grown = _touched((self.buf.shape[0], n + k + self.keep))
                grown[:, :n] = self.buf[:, self.lo:self.hi]
                self.buf = grown
            else:
                self.buf[:, :n] = self.buf[:, self.lo:self.hi]
            self.first += self.lo
            self.lo, self.hi = 0, n
        self.buf[:, self.hi:self.hi + k] = bb
        self.hi += k

    def trim(self) -> None:
        """Forget all but the newest ``keep`` samples."""
        self.lo = max(self.lo, self.hi - self.keep)

    def span(self, c: int, a: int, b: int) -> np.ndarray:
        """Channel c's samples a .. b - 1 (absolute indices, clipped to what is held); a view."""
        a = max(a, self.start) - self.first
        return self.buf[c, a:max(a, min(b, self.end) - self.first)]

    def channel(self, c: int) -> np.ndarray:
        return self.buf[c, self.lo:self.hi]

    def copy(self) -> "BasebandRing":
        r = BasebandRing.__new__(BasebandRing)
        r.keep, r.first, r.lo, r.hi = self.keep, self.first, self.lo, self.hi
        r.buf = self.buf.copy()
        return r


@dataclass
class _Pending:
    det: Detection
    need_m: int  # baseband index that must be in the ring before demodulation


@dataclass
class ChainStats:
    samples_in: int = 0
    nonfinite: int = 0
    detections: int = 0
    crc_ok: int = 0
    crc_fail: int = 0
    truncated: int = 0


class InputChain:
    def __init__(self, plan: P.ChannelPlan, input_index: int = 0, fs_hz: float = 48000.0,
                 threshold: float | None = None, iterations: int = 3, excise_tones: bool = True) -> None:
        self.plan, self.input_index, self.fs_hz = plan, input_index, fs_hz
        self.excise_tones = excise_tones  # narrowband-interference excision on each burst's span (dsp.rx.excise)
        self.comb = HarmonicComb(fs_hz, plan.grid_hz)
        self.chan = Channelizer(plan, fs_hz)
        kw = {} if threshold is None else {"threshold": threshold}
        self.bank = DetectorBank(plan.channels, plan.grid_hz, fs_hz / DECIMATION, **kw)
        self.dets = self.bank.dets  # per channel: its state machines and counters (``state``)
        self.demods = [BurstDemodulator(c, fs_hz, iterations) for c in plan.channels]
        self.keep = int(KEEP_S * fs_hz / DECIMATION)
        self.log_keep = int(2 * KEEP_S * plan.grid_hz)  # the comb's per-block estimates kept (for _demod)
        self.lock_samples = int(LOCK_S * fs_hz)
        self.reset()

    def reset(self) -> None:
        self.comb.reset()
        self.chan.reset()
        self.bank.reset()
        nch = len(self.plan.channels)
        self.bb_ring = BasebandRing(nch, self.keep)
        self.pending: list[list[_Pending]] = [[] for _ in range(nch)]
        self.stats = ChainStats()
        self.det_time_s = 0.0

    def copy(self) -> "InputChain":
        c = InputChain.__new__(InputChain)
        c.__dict__.update(self.__dict__)
        c.comb, c.chan = self.comb.copy(), self.chan.copy()
        c.bank = self.bank.copy()
        c.dets = c.bank.dets
        c.bb_ring = self.bb_ring.copy()
        c.pending = [list(p) for p in self.pending]
        c.stats = ChainStats(**vars(self.stats))
        return c

    @property
    def ring(self) -> list[np.ndarray]:
        """The baseband each channel holds (views, oldest first)."""
        return [self.bb_ring.channel(c) for c in range(len(self.dets))]

    def process(self, x: np.ndarray) -> list[tuple[int, BurstResult]]:
        return self.process_baseband(self.chan.process(self.process_comb(x)))

    def process_comb(self, x: np.ndarray) -> np.ndarray:
        """The comb's share of :meth:`process` (with the lock gate and the bad-sample count)."""
        x = np.asarray(x)
        if x.ndim != 1:
            raise ValueError(f"one input at a time: got shape {x.shape}")
        n0 = self.comb.state.n
        bad0 = self.comb.state.nonfinite
        y = self.comb.process(x)
        self.stats.samples_in += x.size
        self.stats.nonfinite += self.comb.state.nonfinite - bad0
        if n0 < self.lock_samples:  # not locked yet: nothing before LOCK_S reaches the detectors
            y[: max(0, min(y.size, self.lock_samples - n0))] = 0.0
        return y

    def process_baseband(self, bb: np.ndarray) -> list[tuple[int, BurstResult]]:
        """Everything after the channelizer: detectors, rings, demodulation of complete bursts.
        (``det_time_s`` accumulates the detectors' share, for the throughput benchmark.)"""
        out = []
        self.bb_ring.append(bb)
        t = time.perf_counter()
        found_all = self.bank.process(bb)
        self.det_time_s += time.perf_counter() - t
        have = self.bb_ring.end
        for c, found in enumerate(found_all):
            for d in found:
                self.stats.detections += 1
                end = d.start_sample + self.demods[c].span_samples(self.plan.grid_hz)
                need = int(np.ceil((end - Channelizer.input_index(0)) / DECIMATION)) + 2
                self.pending[c].append(_Pending(d, need))
            if self.pending[c]:
                still = []
                for p in self.pending[c]:
                    if p.need_m <= have:
                        out.append((self.input_index, self._demod(c, p.det, p.need_m)))
                    else:
                        still.append(p)
                self.pending[c] = still
        self.comb.trim_log(self.log_keep)
        self.bb_ring.trim()
        return out

    def flush(self) -> list[tuple[int, BurstResult]]:
        """End of stream: demodulate what is still pending if its burst is complete (a burst cut
        off by the end of the stream is counted in ``stats.truncated`` and dropped). The baseband
        the impulse blanker still holds back (0.15 s) goes through the detectors first."""
        out = self.process_baseband(self.chan.flush())
        for c, found in enumerate(self.bank.flush()):
            for d in found:
                self.stats.detections += 1
                end = d.start_sample + self.demods[c].span_samples(self.plan.grid_hz)
                need = int(np.ceil((end - Channelizer.input_index(0)) / DECIMATION)) + 2
                self.pending[c].append(_Pending(d, need))
            have = self.bb_ring.end
            for p in self.pending[c]:
                if p.need_m <= have:
                    out.append((self.input_index, self._demod(c, p.det, p.need_m)))
                else:
                    self.stats.truncated += 1
            self.pending[c] = []
        return out

    def _demod(self, c: int, d: Detection, need_m: int) -> BurstResult:
        first = int((d.start_sample - Channelizer.input_index(0)) / DECIMATION) - 16
        # the span reaches a little further back, to a length the excision's FFT takes fast
        # (~4965 = 3 * 5 * 331 samples -> 5000: ~40 us against ~200); the demodulator reads
        # samples by absolute index, so the extra ones in front change nothing else
        first = need_m - sfft.next_fast_len(need_m - first) if need_m > first else first
        first = max(first, self.bb_ring.start)
        # the burst's span only (the ring may hold more, depending on how the stream was cut)
        r = self.bb_ring.span(c, first, need_m)
        if self.excise_tones:
            r, _ = _excise.excise_tones(r)
        f0, fund = self.comb.at(d.start_sample)
        res = self.demods[c].demodulate(r, first, d.start_sample, d.code, f0, d.lambda_peak, fund)
        if res.crc_ok:
            self.stats.crc_ok += 1
        else:
            self.stats.crc_fail += 1
        return res
