"""The detector bank: every chip code of every channel of one input, a block at a time.

``DetectorBank.process(bb)`` takes the channels' complex baseband at 1.5 kHz
(:mod:`dsp.rx.channelizer`), shape (channels, n), and returns each channel's detections
(:class:`dsp.rx.detect.state.Detection`). It cuts the stream into blocks of NFFT samples aligned
to the absolute sample index (overlap-save: consecutive blocks overlap by a template length, so
each yields ``hop`` lags), and per block does, for every channel at once:

1. the noise power and which channels are live (``noise_kernel``), the forward FFT of the live
   channels' blocks (:mod:`dsp.rx.detect.fft`) and the in-band tones out of them (``tone_rows``);
2. the product with every code's phase-0 template spectrum (``spectra_product``) and one inverse
   FFT of them all (3 channels x 4 codes), with the blocks that lost a tone;
3. the screen (``full_rows_kernel``): which codes are in a peak window or may reach LIM_FULL x T
   in the block; only those get their phase-1 (half-sample) correlation, by FFT;
4. the state machine of each of those codes (:class:`dsp.rx.detect.state.ChannelDetector`),
   hold-offs ending, and the release of detections whose burst has passed.

The half-sample phase without its FFT: the state machine sees, per lag, the larger of the two
phases' lambda (phase 0 on ties), and only its crossings of T matter: while a code is idle or
holding off and no lag of the block reaches T, the block changes nothing but the end of a
hold-off. So the phase-1 correlation is computed (by FFT, exactly as before) only for a code in a
peak window or whose statistic may reach LIM_FULL x T in the block (``state.full_rows`` counts
those code-blocks); the state machine then runs on both phases as it always did, and the
detections are the same ("may reach" is a bound: see :mod:`dsp.rx.detect.kernels`).

:class:`PreambleDetector` is a bank of one channel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dsp.air import params as P
from dsp.rx.channelizer import DECIMATION
from dsp.rx.detect.fft import shared_fft, shared_scratch
from dsp.rx.detect.kernels import (
    TONE_GROUP,
    TONE_K_LN2,
    full_rows_kernel,
    noise_kernel,
    restore_zeros,
    screen_rows,
    spectra_product,
    tone_rows,
    warm_up,
)
from dsp.rx.detect.state import THRESHOLD, ChannelDetector, Detection, DetectorState, DetState
from dsp.rx.detect.templates import NFFT, bank_spectra, interpolators

LIM_FULL = 0.99  # a code whose statistic may reach this x T in a block gets its phase-1 correlation in full


class DetectorBank:
    """Streaming detector for every channel of one input, the channels' blocks transformed together.

    ``process(bb)`` takes baseband of shape (channels, n) and returns a list of detections per
    channel; ``dets[c].state`` holds channel c's counters. Every channel needs the same template
    length (so the same blocks)."""

    def __init__(
        self,
        channels,
        grid_hz: float = 60.0,
        fs_bb: float = 48000.0 / DECIMATION,
        threshold: float = THRESHOLD,
        codes: tuple[int, ...] = tuple(range(P.CODES_PER_CHANNEL)),
    ) -> None:
        codes = tuple(codes)
        self.dets = [ChannelDetector(c, grid_hz, fs_bb, threshold, codes) for c in channels]
        if not self.dets:
            raise ValueError("no channel")
        self.L, self.hop, self.threshold = self.dets[0].L, self.dets[0].hop, float(threshold)
        if any(d.L != self.L for d in self.dets):
            raise ValueError("every channel of a bank needs the same template length")
        nch, ncode = len(self.dets), len(codes)
        self.ncode = ncode
        # (channel, code, N), one pair of arrays for every bank of these channels (cache-resident)
        self.T0, self.T1 = bank_spectra(tuple((c.index, c.fc_hz) for c in channels), codes, grid_hz, fs_bb)
        self.energy = np.stack([d.energy for d in self.dets])  # (channel, 2 code + phase)
        interp = [interpolators(c.index, c.fc_hz, codes, grid_hz, fs_bb) for c in channels]
        self.inband = np.stack([d.inband for d in self.dets])
        self.rowch = np.repeat(np.arange(nch), ncode)  # channel and code of each row (channel * ncode + code)
        self.rowcode = np.tile(np.arange(ncode), nch)
        # what the screen (full_rows_kernel) knows of each row
        self.screen = screen_rows(
            self.rowch,
            self.rowcode,
            np.concatenate([i[0] for i in interp]),
            np.concatenate([i[1] for i in interp]),
            np.concatenate([i[2] for i in interp]),
            self.energy[:, 1::2].ravel(),
        )
        self.product_kernel = warm_up()  # whether spectra_product gives numpy's product to the bit here
        self.reset()

    def __repr__(self) -> str:
        return (
            f"DetectorBank(channels {[d.channel.index for d in self.dets]}, codes {list(self.dets[0].codes)}, "
            f"NFFT {NFFT}, hop {self.hop}, threshold {self.threshold:g}; at baseband sample {self.buf_start}, "
            f"{self.tail - self.head} buffered, {len(self.active)} code rows active)"
        )

    def _scratch(self) -> None:
        nch = len(self.dets)
        self._n_live = np.empty(nch, np.int64)
        self._noise = np.empty(nch, np.float64)
        self._power = np.empty(nch, np.float64)
        self._p, self._sel = shared_scratch("p", (NFFT,), np.float32), shared_scratch("sel", (2, NFFT), np.float32)
        self._live = np.ones(nch, np.bool_)
        self._all_live = True  # (whether _live is all True)
        self._rows = list(range(nch * self.ncode))
        self._hit = np.empty((nch, NFFT), np.bool_)
        self._hits = np.empty(nch, np.int64)
        # the block's spectra; the correlations' spectra, then the spectra of blocks without a tone
        # (inverse-transformed together); phase-1 correlations
        self._fwd = shared_fft("block", nch, True)
        self._inv = shared_fft("corr", nch * (self.ncode + 1), False)
        self._inv1 = shared_fft("corr1", nch * self.ncode, False)
        self._prod = self._inv.inp
        self._dest = np.arange(nch)
        self._spare = np.empty(nch)

    def reset(self) -> None:
        for d in self.dets:
            d.reset()
        # samples not yet consumed by a full block: buf[:, head:tail], baseband index buf_start at head;
        self.buf = np.zeros((len(self.dets), 4 * NFFT), np.complex64)
        self.head = self.tail = 0
        self.buf_start = 0
        self.guess = np.zeros(len(self.dets))  # where each channel's noise median is looked for first
        self.evals = 0  # phase-1 estimates made by full_rows_kernel
        self.active: set[int] = set()  # rows (channel * ncode + code) whose state machine is not idle
        self._scratch()

    def copy(self) -> DetectorBank:
        b = DetectorBank.__new__(DetectorBank)
        b.__dict__.update(self.__dict__)
        b.dets = [d.copy() for d in self.dets]
        b.buf = self.buf.copy()
        b.guess = self.guess.copy()
        b.active = set(self.active)
        b._scratch()
        return b

    def process(self, bb: np.ndarray) -> list[list[Detection]]:
        bb = np.asarray(bb)
        nch = len(self.dets)
        if bb.ndim != 2 or bb.shape[0] != nch or bb.dtype.kind != "c":
            raise ValueError(f"the bank takes complex baseband of shape ({nch}, n), got {bb.dtype} {bb.shape}")
        n = bb.shape[1]
        if self.tail + n > self.buf.shape[1]:  # move what is left to the front, grow if need be
            keep = self.tail - self.head
            buf = (
                self.buf
                if keep + n <= self.buf.shape[1]
                else np.zeros((self.buf.shape[0], keep + n + NFFT), np.complex64)
            )
            buf[:, :keep] = self.buf[:, self.head : self.tail]
            self.buf, self.head, self.tail = buf, 0, keep
        self.buf[:nch, self.tail : self.tail + n] = bb
        self.tail += n
        out: list[list[Detection]] = [[] for _ in range(nch)]
        while self.tail - self.head >= NFFT:
            for c, found in self._block(self.buf[:, self.head : self.head + NFFT], self.buf_start):
                out[c].extend(found)
            self.head += self.hop
            self.buf_start += self.hop
            for d in self.dets:
                d.state.buf_start = self.buf_start
        return out

    def flush(self) -> list[list[Detection]]:
        """End of stream: release everything still pending, per channel."""
        out = [d.flush() for d in self.dets]
        self._sync_active(range(len(self.dets)))
        return out

    def _sync_active(self, channels) -> None:
        for c in channels:
            for ci, sm in enumerate(self.dets[c].state.sms):
                if sm.state == DetState.IDLE:
                    self.active.discard(c * self.ncode + ci)
                else:
                    self.active.add(c * self.ncode + ci)

    def _block(self, blk: np.ndarray, m0: int) -> list[tuple[int, list[Detection]]]:
        """One block of NFFT samples of every channel."""
        dets, nch, ncode, hop = self.dets, len(self.dets), self.ncode, self.hop
        n_live, noise, power = self._n_live, self._noise, self._power
        n_ok = noise_kernel(blk[:nch], self._dest, self._p, self._sel, self.guess, n_live, noise, power)
        out: list[tuple[int, list[Detection]]] = []  # (channel, detections released), when there are some
        live_mask = self._live
        live: Sequence[int]  # the channels with a block to detect on
        if n_ok == nch:
            live = range(nch)
            if not self._all_live:
                live_mask[:] = self._all_live = True
        else:
            self._all_live = False
            live = [c for c in range(nch) if n_live[c] >= NFFT // 2]
            for c in range(nch):
                live_mask[c] = c in live
                if not live_mask[c]:
                    dets[c].skip_block()  # mostly blanked or silent: nothing reliable to detect
            self._sync_active([c for c in range(nch) if not live_mask[c]])
            if not live:
                return out
        self._fwd.inp[:] = blk[:nch]
        X = self._fwd(nch)
        # narrowband interference (:func:`dsp.rx.detect.kernels.tone_bins`): out of X here, out of the
        # block and the noise below
        n_tone = tone_rows(X, self.inband, live_mask, TONE_GROUP, TONE_K_LN2, self._hit, self._hits)
        nrow = len(live) * ncode
        prod = self._prod
        if self.product_kernel:
            spectra_product(X, self.T0, self._dest if len(live) == nch else np.array(live), prod)
        elif len(live) == nch:
            np.multiply(X[:nch, None, :], self.T0, out=prod[:nrow].reshape(nch, ncode, NFFT))
        else:
            for j, c in enumerate(live):
                np.multiply(X[c][None, :], self.T0[c], out=prod[j * ncode : (j + 1) * ncode])
        row_of: Sequence[int] | dict[int, int]
        if len(live) == nch:
            rowch, rowcode, screen = self.rowch, self.rowcode, self.screen
            row_of = self._rows  # r0 row of each (channel, code) row
        else:
            rows = np.array([c * ncode + ci for c in live for ci in range(ncode)])
            rowch, rowcode, screen = self.rowch[rows], self.rowcode[rows], self.screen[rows]
            row_of = {int(gr): k for k, gr in enumerate(rows)}
        rows_b = {}  # channels whose block lost a tone: the block without it
        if n_tone:
            tone = np.array([c for c in live if self._hits[c]])
            # inverse-transformed with the correlations (and 1/N, exact)
            np.multiply(X[tone], np.float32(1.0 / NFFT), out=prod[nrow : nrow + tone.size])
            xt = self._inv(nrow + tone.size)[nrow:]
            restore_zeros(blk, tone, xt, power)
            noise_kernel(xt, tone, self._p, self._sel, self.guess, n_live, noise, self._spare)
            for j, c in enumerate(tone.tolist()):
                dets[c].state.tone_blocks += 1
                rows_b[c] = xt[j]
            r0 = self._inv.out[:nrow]
        else:
            r0 = self._inv(nrow)
        need = np.zeros(r0.shape[0], np.bool_)
        visit = []  # rows whose state machine is not idle: peak windows go on (every lag counts), hold-offs end
        for gr in self.active:
            if gr // ncode in live:
                visit.append(row_of[gr])
                if dets[gr // ncode].state.sms[gr % ncode].state == DetState.PEAK:
                    need[row_of[gr]] = True
        evals, n_need = full_rows_kernel(r0, hop, screen, self.energy, noise, power, LIM_FULL * self.threshold, need)
        self.evals += evals
        if n_need:  # the phase-1 correlations the state machines must see
            full = np.flatnonzero(need)
            p1 = self._inv1.inp
            for n, kf in enumerate(full):
                np.multiply(X[rowch[kf]], self.T1[rowch[kf], rowcode[kf]], out=p1[n])
            r1 = self._inv1(full.size)
            visit = sorted(set(visit) | set(full.tolist()))
        found: dict[int, list[Detection]] = {}
        for k in visit:  # in (channel, code) order, as detections are appended
            c, ci = int(rowch[k]), int(rowcode[k])
            d = dets[c]
            sm = d.state.sms[ci]
            if need[k]:
                d.state.full_rows += 1
                n = int(np.searchsorted(full, k))
                d.scan(
                    ci, m0, r0[k, :hop], r1[n, :hop], rows_b.get(c, blk[c]), float(noise[c]), found.setdefault(c, [])
                )
            elif sm.state == DetState.HOLDOFF and sm.holdoff_until - m0 < hop:
                sm.state = DetState.IDLE  # (no lag crosses the threshold: only a hold-off can end)
            if sm.state == DetState.IDLE:
                self.active.discard(c * ncode + ci)
            else:
                self.active.add(c * ncode + ci)
        for c in live:
            d = dets[c]
            d.state.n_tests += 2 * ncode * hop
            if c in found:
                d.state.pending.extend(found[c])
            if d.state.pending or d.state.recent:
                released = d.release(m0 + hop)
                if released:
                    out.append((c, released))
        return out


class PreambleDetector:
    """Streaming detector for one channel of one input (a :class:`DetectorBank` of one channel)."""

    def __init__(
        self,
        channel: P.Channel,
        grid_hz: float = 60.0,
        fs_bb: float = 48000.0 / DECIMATION,
        threshold: float = THRESHOLD,
        codes: tuple[int, ...] = tuple(range(P.CODES_PER_CHANNEL)),
    ) -> None:
        self.bank = DetectorBank([channel], grid_hz, fs_bb, threshold, codes)

    def __repr__(self) -> str:
        return f"PreambleDetector({self.bank.dets[0].describe()})"

    @property
    def state(self) -> DetectorState:
        return self.bank.dets[0].state

    def reset(self) -> None:
        self.bank.reset()

    def copy(self) -> PreambleDetector:
        d = PreambleDetector.__new__(PreambleDetector)
        d.bank = self.bank.copy()
        return d

    def start_sample(self, m: float, sub_phase: int) -> float:
        return self.bank.dets[0].start_sample(m, sub_phase)

    def process(self, x: np.ndarray) -> list[Detection]:
        x = np.asarray(x)
        if x.ndim != 1 or x.dtype.kind != "c":
            raise ValueError(f"the detector takes one channel of complex baseband, got {x.dtype} {x.shape}")
        return self.bank.process(x[None, :])[0]

    def flush(self) -> list[Detection]:
        return self.bank.flush()[0]
