"""The receive chain of one CT input: comb -> channelizer -> detectors -> demodulator -> decoder.

``InputChain.process(block)`` takes samples of one input (any block size) and returns one
:class:`ChainOutput`: the bursts whose last sample has arrived (:class:`dsp.rx.demod.BurstResult`
records), the baseband the call added, the release horizon, the grid-frequency estimates of the
cycles completed and the chain's counters. That record is all a consumer (the receiver's workers
and grouper) reads of a chain. Each channel keeps a ring of its baseband (long enough for one
burst after its detection); a detection waits until its whole burst is in the ring, then it is
demodulated, unless a burst decoded earlier on its channel explains it as its own correlation
(:mod:`dsp.rx.ghosts`: a strong burst re-triggers the detectors inside itself). Samples
before the comb has locked (:data:`dsp.rx.comb.LOCK_S`) are not used for detection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft as sfft

from dsp.air import params as P
from dsp.numba_settings import jit, jit_enabled
from dsp.rx import excise as _excise
from dsp.rx.channelizer import DECIMATION, Channelizer
from dsp.rx.comb import LOCK_S, HarmonicComb
from dsp.rx.demod import BurstDemodulator, BurstResult
from dsp.rx.demod import measure as _measure
from dsp.rx.detect import Detection, DetectorBank
from dsp.rx.ghosts import DecodedSpan

KEEP_S = 8.0  # baseband history per channel
END_OF_STREAM = 10**18  # ChainOutput.horizon_sample after flush(): beyond any input sample


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
                grown[:, :n] = self.buf[:, self.lo : self.hi]
                self.buf = grown
            else:
                self.buf[:, :n] = self.buf[:, self.lo : self.hi]
            self.first += self.lo
            self.lo, self.hi = 0, n
        self.buf[:, self.hi : self.hi + k] = bb
        self.hi += k

    def trim(self) -> None:
        """Forget all but the newest ``keep`` samples."""
        self.lo = max(self.lo, self.hi - self.keep)

    def span(self, c: int, a: int, b: int) -> np.ndarray:
        """Channel c's samples a .. b - 1 (absolute indices, clipped to what is held); a view."""
        a = max(a, self.start) - self.first
        return self.buf[c, a : max(a, min(b, self.end) - self.first)]

    def channel(self, c: int) -> np.ndarray:
        return self.buf[c, self.lo : self.hi]

    def __repr__(self) -> str:
        return (
            f"BasebandRing({self.buf.shape[0]} channels, keeps {self.keep} samples; "
            f"holds baseband {self.start}..{self.end})"
        )

    def copy(self) -> BasebandRing:
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
    """The counters of one :class:`InputChain` since its last reset."""

    samples_in: int = 0  # input samples taken
    nonfinite: int = 0  # of them NaN/inf (the comb replaced them)
    detections: int = 0  # detections released by the detector bank
    crc_ok: int = 0  # bursts demodulated whose frame passed its CRC
    crc_fail: int = 0  # bursts demodulated whose frame did not
    truncated: int = 0  # detections dropped at flush(): the stream ended inside their burst
    ghosts: int = 0  # detections not demodulated: a decoded burst's own correlation explains them (dsp.rx.ghosts)

    def copy(self) -> ChainStats:
        return ChainStats(**self.__dict__)


@dataclass(slots=True)
class ChainOutput:
    """What one call of :meth:`InputChain.process` (or :meth:`InputChain.flush`) produced: the
    one record a consumer reads of a chain (the receiver's workers ship it to the grouper).
    Read-only by convention (not ``frozen``: a frozen dataclass takes ~2 us more to make, per
    input and block).

    Baseband indices count samples at fs / 32 per channel from the chain's last reset; baseband
    sample m is the value at input sample :meth:`dsp.rx.channelizer.Channelizer.input_index`
    (m). Input samples count from the last reset too."""

    input_index: int  # which CT input (InputChain.input_index)
    bursts: list[BurstResult]  # demodulated in this call, in the order they were completed
    baseband: np.ndarray  # (channels, m) complex64: every channel's baseband this call added (blanked)
    baseband_start: int  # baseband index of baseband[:, 0]
    # every detection of a burst that ended before this input sample has been released (bursts
    # of this call or earlier ones); END_OF_STREAM after flush()
    horizon_sample: int
    grid_block_start: int  # comb block (one nominal grid cycle, fs / grid_hz samples) of grid_f0_hz[0]
    grid_f0_hz: list[float]  # the comb's grid frequency at the end of each block completed in this call
    grid_fund_rms: list[float]  # the fundamental's RMS (input units) at the same block ends
    stats: ChainStats  # the chain's counters after this call (a copy)

    @property
    def baseband_end(self) -> int:
        """One past the baseband index of the last column."""
        return self.baseband_start + self.baseband.shape[1]

    def __repr__(self) -> str:
        h = "end of stream" if self.horizon_sample == END_OF_STREAM else f"sample {self.horizon_sample}"
        return (
            f"ChainOutput(input {self.input_index}: {len(self.bursts)} bursts, baseband "
            f"{self.baseband_start}..{self.baseband_end} x {self.baseband.shape[0]} channels, "
            f"{len(self.grid_f0_hz)} grid blocks from {self.grid_block_start}, "
            f"released to {h}, {self.stats.samples_in} samples in)"
        )


class InputChain:
    """Comb, channelizer (with the impulse blanker), detector bank and a demodulator per channel
    for one CT input; ``process`` / ``flush`` return a :class:`ChainOutput` per call."""

    def __init__(
        self,
        plan: P.ChannelPlan,
        input_index: int = 0,
        fs_hz: float = 48000.0,
        threshold: float | None = None,
        iterations: int = 3,
        excise_tones: bool = True,
    ) -> None:
        self.plan, self.input_index, self.fs_hz = plan, input_index, fs_hz
        self.excise_tones = excise_tones  # narrowband-interference excision on each burst's span (dsp.rx.excise)
        self.comb = HarmonicComb(fs_hz, plan.grid_hz)
        self.chan = Channelizer(plan, fs_hz)
        kw: dict[str, Any] = {} if threshold is None else {"threshold": threshold}
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
        # per channel: the bursts decoded lately (CRC ok), for the ghost check (dsp.rx.ghosts)
        self.decoded: list[list[DecodedSpan]] = [[] for _ in range(nch)]
        self.stats = ChainStats()
        self.det_time_s = 0.0
        self._grid_next = 0  # comb block of the first grid-frequency estimate not yet in a ChainOutput

    def copy(self) -> InputChain:
        c = InputChain.__new__(InputChain)
        c.__dict__.update(self.__dict__)
        c.comb, c.chan = self.comb.copy(), self.chan.copy()
        c.bank = self.bank.copy()
        c.dets = c.bank.dets
        c.bb_ring = self.bb_ring.copy()
        c.pending = [list(p) for p in self.pending]
        c.decoded = [list(d) for d in self.decoded]
        c.stats = self.stats.copy()
        return c

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"InputChain(input {self.input_index}, {len(self.plan.channels)} channels, {self.fs_hz:g} Hz; "
            f"{s.samples_in} samples in, {s.detections} detections, {s.crc_ok} CRC ok, "
            f"{s.crc_fail} CRC failed, {sum(map(len, self.pending))} pending)"
        )

    def process(self, x: np.ndarray) -> ChainOutput:
        """Samples ``x`` of this input (1-d, any length): what they completed (see :class:`ChainOutput`)."""
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

    def process_baseband(self, bb: np.ndarray) -> ChainOutput:
        """Everything after the channelizer: detectors, rings, demodulation of complete bursts.
        (``det_time_s`` accumulates the detectors' share, for the throughput benchmark.)"""
        grid = self._grid_blocks()
        bursts = self._baseband(bb)
        return self._output(bb, bursts, int(Channelizer.input_index(self.bank.buf_start)), grid)

    def _grid_blocks(self) -> tuple[int, list[float], list[float]]:
        """The comb's per-block estimates not yet reported (taken before the log is trimmed)."""
        k = self._grid_next - self.comb.log_start
        first, f0s, funds = self._grid_next, self.comb.f0_log[k:], self.comb.fund_log[k:]
        self._grid_next += len(f0s)
        return first, f0s, funds

    def _output(
        self, bb: np.ndarray, bursts: list[BurstResult], horizon: int, grid: tuple[int, list[float], list[float]]
    ) -> ChainOutput:
        """The record of one call, ``bb`` (just appended to the ring) its baseband: the
        channelizer's own fresh array, not copied (complex64; the blanker's flush gives
        complex128, converted here, the ring's values exactly)."""
        return ChainOutput(
            self.input_index,
            bursts,
            bb.astype(np.complex64, copy=False),
            self.bb_ring.end - bb.shape[1],
            horizon,
            grid[0],
            grid[1],
            grid[2],
            self.stats.copy(),
        )

    def _baseband(self, bb: np.ndarray) -> list[BurstResult]:
        """Detectors, rings and demodulation of ``bb``: the bursts completed."""
        out: list[BurstResult] = []
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
                        self._demod_unless_ghost(c, p, out)
                    else:
                        still.append(p)
                self.pending[c] = still
        self.comb.trim_log(self.log_keep)
        self.bb_ring.trim()
        return out

    def flush(self) -> ChainOutput:
        """End of stream: demodulate what is still pending if its burst is complete (a burst cut
        off by the end of the stream is counted in ``stats.truncated`` and dropped). The baseband
        the impulse blanker still holds back (0.15 s) goes through the detectors first."""
        bb = self.chan.flush()
        grid = self._grid_blocks()
        out = self._baseband(bb)
        for c, found in enumerate(self.bank.flush()):
            for d in found:
                self.stats.detections += 1
                end = d.start_sample + self.demods[c].span_samples(self.plan.grid_hz)
                need = int(np.ceil((end - Channelizer.input_index(0)) / DECIMATION)) + 2
                self.pending[c].append(_Pending(d, need))
            have = self.bb_ring.end
            for p in self.pending[c]:
                if p.need_m <= have:
                    self._demod_unless_ghost(c, p, out)
                else:
                    self.stats.truncated += 1
            self.pending[c] = []
        return self._output(bb, out, END_OF_STREAM, grid)

    def _demod_unless_ghost(self, c: int, p: _Pending, out: list[BurstResult]) -> None:
        """Demodulate ``p`` into ``out``, unless a burst decoded before on its channel explains it
        (:meth:`dsp.rx.ghosts.DecodedSpan.explains`; counted in ``stats.ghosts``). A detection is
        demodulated only once its whole burst is in the ring, and a burst that starts earlier on
        the same channel is complete earlier, so the bursts that could explain ``p`` have always
        been demodulated before it, whatever the chunking. A CRC-ok result is kept for the check
        (the spans of the last KEEP_S seconds)."""
        d = p.det
        if any(s.explains(d) for s in self.decoded[c]):
            self.stats.ghosts += 1
            return
        res = self._demod(c, d, p.need_m)
        out.append(res)
        if res.crc_ok and res.frame is not None:
            span = DecodedSpan.of(
                d.channel,
                d.code,
                res.start_sample,
                res.frame,
                res.clock_offset_ppm,
                self.plan,
                d.lambda_peak * d.noise_power,
            )
            horizon = span.start_sample - KEEP_S * self.fs_hz
            self.decoded[c] = [s for s in self.decoded[c] if s.end_sample > horizon] + [span]

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


_warmed: set[tuple[P.ChannelPlan, float]] = set()


def warm_up(plan: P.ChannelPlan, fs_hz: float = 48000.0) -> None:
    """Make, once in this process, everything a chain of ``plan`` at ``fs_hz`` loads or builds on
    first use: every kernel it runs (from numba's on-disk cache, ~20 ms each), the detector's
    templates and interpolators, the channelizer's tables and the FFT plans (cached per process
    and shared by every chain), the measurements' kernels. A throwaway chain takes 2 s of low
    noise and its flush (comb, channelizer, blanker, the detector's kernels) and the tone
    excision one span; the demodulator warms itself up when the chain makes it; a measurement
    of noise on two inputs loads the measurements' kernels. The receiver's pipeline calls this
    before it forks its workers, which then start with all of it made instead of each making it
    again (tests/test_startup.py checks that a worker's chains then load no kernel). Nothing
    without JIT (plain Python would take seconds)."""
    key = (plan, float(fs_hz))
    if key in _warmed or not jit_enabled():
        return
    _warmed.add(key)
    noise = np.random.default_rng(0).standard_normal(int(2 * fs_hz)).astype(np.float32) * np.float32(1e-3)
    rows = deinterleave(noise[:, None])  # (as the pipeline's workers take their blocks)
    chain = InputChain(plan, 0, fs_hz)
    chain.process(rows[0])
    chain.flush()  # (the blanker's flush takes complex128)
    _excise.excise_tones(np.random.default_rng(1).standard_normal(2 * 1024).view(np.complex128))
    # the ghost check re-encodes a decoded frame (dsp.rx.ghosts): the burst coding's kernels
    DecodedSpan.of(0, 0, 0.0, bytes(P.FRAME_BYTES), 0.0, plan).predicted_ratio(0, 1000.0)
    # the workers measure decoded bursts on their inputs (receiver.measuring): those kernels too
    _measure.warm_up(plan.channels[0], fs_hz)
