"""The detector's state machine: per code of a channel, from the CFAR statistic to detections.

CFAR, two stages. First: lambda = |r|^2 / (E_p sigma^2) with sigma^2 the noise power per sample
of the block (median of |x|^2 / ln 2, robust to a burst in the block); the state machine runs on it.
Were the noise white, lambda would be exponential with mean 1 and a threshold T would give a
false-alarm probability exp(-T) per test: T = 21 for about 6.5e7 tests per input-hour (3 channels
x 4 codes x 1500 lags/s x 3600 s), ~0.05 false alarms per input-hour. It is not: the comb and the
channelizer colour the noise the way the template is coloured (on white input noise lambda has
mean 1.26, and the false detections were 2.3 per input-hour, all on plain Gaussian noise).
Second stage (:mod:`dsp.rx.cfar_gate`, applied to the peak before it is emitted): lambda / kappa > T,
with kappa >= 1 the noise as this template sees it (the median of its own correlator output
over the block, and the window's mean power against the block's), which restores exp(-T) and
turns down crossings carried by a transient or a few strong samples (impulse residue); it cannot
turn down a decodable burst (see that module).

State machine per code (:class:`DetState`): IDLE -> (lambda > T) -> PEAK (follow the maximum for
PEAK_SPAN samples, a template length: a strong burst has correlation sidelobes (the code repeats
every 127 chips, the T0 path echoes the template one grid period either side) that can cross T
before the true peak) -> emit the maximum -> HOLDOFF (PEAK_SPAN samples past the peak, covering
its +T0 echo) -> IDLE. The machine sees, per lag, the larger of the two template phases' lambda
(phase 0 on ties). A detection is released once its burst has passed, and dropped if a detection
on the same channel (any code, this one included) whose burst overlaps it is strong enough to
explain it as a sidelobe (:func:`dsp.rx.detect.templates.sidelobe_bound`: the data of a strong
burst re-triggers its own and the other codes' correlators; no long hold-off, so a sidelobe can
never mask a real burst) (a real burst 10 dB under another on a spreading factor of 4 could not
be decoded anyway). The bound is a fixed margin and some of a strong burst's sidelobes pass it;
once the burst is decoded the chain computes them from its chips (:mod:`dsp.rx.ghosts`).

:class:`ChannelDetector` holds one channel's machines (one per code), counters
(:class:`DetectorState`) and pending detections; the bank (:mod:`dsp.rx.detect.bank`) calls its
:meth:`ChannelDetector.scan` for the codes that need it, :meth:`ChannelDetector.skip_block` for
a block it cannot use, and :meth:`ChannelDetector.release` after each block. Every
:class:`Detection` carries ``start_sample``, the input-rate index of the centre of its chip 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import scipy.fft as sfft

from dsp.air import params as P
from dsp.rx.cfar_gate import gated_statistic
from dsp.rx.channelizer import DECIMATION, Channelizer
from dsp.rx.detect.kernels import statistic
from dsp.rx.detect.templates import NFFT, PRE_CHIPS, cached_template, sidelobe_bound, spectra

THRESHOLD = 21.0
PEAK_SPAN = 640  # follow the maximum for a template length after the first crossing (0.43 s)


class DetState(IntEnum):
    IDLE = 0
    PEAK = 1
    HOLDOFF = 2


@dataclass(frozen=True)
class Detection:
    """A preamble found on one channel of one input; times derive from ``start_sample``."""

    channel: int
    code: int
    start_sample: float  # input-rate index (fractional) of the centre of chip 0
    m_peak: int  # baseband index of the correlation peak (template start)
    lambda_peak: float  # CFAR statistic at the peak
    corr: complex  # complex correlation at the peak (its phase is the carrier phase)
    noise_power: float  # per baseband sample, at detection
    sub_phase: int  # which template phase (0 or 1 = half a sample later)


@dataclass
class _CodeSM:
    """One code's state machine: where it is, and the best peak of its window so far."""

    state: DetState = DetState.IDLE
    best_lambda: float = 0.0
    best_m: int = -1
    best_corr: complex = 0j
    best_phase: int = 0
    best_noise: float = 0.0
    best_win: np.ndarray | None = None  # baseband under the best lag's template window
    best_row: np.ndarray | None = None  # its template's correlator output over that block
    since_best: int = 0
    first_m: int = -1
    holdoff_until: int = -1


@dataclass
class DetectorState:
    """A channel's state machines (``sms``, one per code), its detections not yet released and its counters."""

    buf_start: int  # baseband index of the first sample not yet consumed by a full block
    sms: list = field(default_factory=list)
    pending: list = field(default_factory=list)  # detections waiting for their burst to pass
    recent: list = field(default_factory=list)  # released or dropped ones, for the rival check
    n_tests: int = 0
    dropped: int = 0
    gated: int = 0  # crossings the second CFAR stage (dsp.rx.cfar_gate) turned down
    tone_blocks: int = 0  # blocks with narrowband interference excised (:func:`dsp.rx.detect.kernels.tone_bins`)
    full_rows: int = 0  # code-blocks whose phase-1 correlation was computed in full (see the module doc)

    def copy(self) -> DetectorState:
        return DetectorState(
            self.buf_start,
            [(_CodeSM(**vars(s))) for s in self.sms],
            list(self.pending),
            list(self.recent),
            self.n_tests,
            self.dropped,
            self.gated,
            self.tone_blocks,
            self.full_rows,
        )


class ChannelDetector:
    """The per-channel part of a :class:`dsp.rx.detect.bank.DetectorBank`: templates, the state
    machine of every code, the second CFAR stage and the release of detections (``state``: its
    state machines and counters)."""

    def __init__(
        self, channel: P.Channel, grid_hz: float, fs_bb: float, threshold: float, codes: tuple[int, ...]
    ) -> None:
        if threshold <= 0:
            raise ValueError("threshold must be positive")
        self.channel, self.grid_hz, self.fs_bb, self.threshold, self.codes = channel, grid_hz, fs_bb, threshold, codes
        self.L, self.energy, self.T = spectra(channel.index, channel.fc_hz, tuple(codes), grid_hz, fs_bb)
        self.inband = np.abs(sfft.fftfreq(NFFT, 1.0 / fs_bb)) <= channel.bandwidth_hz / 2  # the template's band
        self.hop = NFFT - self.L + 1
        self.burst_bb = int((P.burst_duration_s() + 1.0 / grid_hz) * fs_bb)
        self.reset()

    def __repr__(self) -> str:
        return f"ChannelDetector({self.describe()})"

    def describe(self) -> str:
        """One line: the channel, codes, block and threshold, and where the stream and the state machines are."""
        s = self.state
        busy = (
            ", ".join(
                f"code {self.codes[ci]} {sm.state.name}" for ci, sm in enumerate(s.sms) if sm.state != DetState.IDLE
            )
            or "all codes idle"
        )
        return (
            f"channel {self.channel.index} at {self.channel.fc_hz:g} Hz, codes {list(self.codes)}, NFFT {NFFT}, "
            f"hop {self.hop}, threshold {self.threshold:g}; at baseband sample {s.buf_start}, {busy}, "
            f"{len(s.pending)} pending"
        )

    def reset(self) -> None:
        self.state = DetectorState(0, [_CodeSM() for _ in self.codes])

    def copy(self) -> ChannelDetector:
        d = ChannelDetector.__new__(ChannelDetector)
        d.__dict__.update(self.__dict__)
        d.state = self.state.copy()
        return d

    def start_sample(self, m: float, sub_phase: int) -> float:
        """Input-rate index of the centre of chip 0 for a template that starts at baseband m."""
        return Channelizer.input_index(m) - DECIMATION * 0.5 * sub_phase + PRE_CHIPS * 48000.0 / P.CHIP_RATE_HZ

    def skip_block(self) -> None:
        """A block the bank cannot use (mostly blanked or silent): peak windows end without a detection."""
        for sm in self.state.sms:
            if sm.state == DetState.PEAK:
                sm.state = DetState.IDLE

    def scan(
        self, ci: int, m0: int, r0: np.ndarray, r1: np.ndarray, b32: np.ndarray, noise: float, found: list
    ) -> None:
        """Code ``ci`` over a block from both template phases' correlations ``r0``, ``r1`` (hop lags);
        detections it emits go to ``found``."""
        sm = self.state.sms[ci]
        e = self.energy
        row, best_phase, row_max = statistic(r0, r1, np.float32(e[2 * ci] * noise), np.float32(e[2 * ci + 1] * noise))
        r = (r0, r1)
        if sm.state == DetState.IDLE and not (row_max > self.threshold):
            return
        i = 0
        hop = self.hop
        while i < hop:
            if sm.state == DetState.HOLDOFF:
                i = max(i, sm.holdoff_until - m0)
                if i >= hop:
                    break
                sm.state = DetState.IDLE
            if sm.state == DetState.IDLE:
                above = np.flatnonzero(row[i:] > self.threshold)
                if above.size == 0:
                    break
                i += int(above[0])
                sm.state, sm.first_m, sm.best_lambda = DetState.PEAK, m0 + i, -1.0
            # PEAK: the maximum over [first_m, first_m + PEAK_SPAN]
            e = sm.first_m + PEAK_SPAN + 1 - m0
            seg = row[i : min(e, hop)]
            k = int(np.argmax(seg))
            if seg[k] > sm.best_lambda:
                j = i + k
                ph = int(best_phase[j])
                sm.best_lambda, sm.best_m, sm.best_phase = float(seg[k]), m0 + j, ph
                sm.best_corr, sm.best_noise = complex(r[ph][j]), noise
                sm.best_win, sm.best_row = b32[j : j + self.L].copy(), r[ph].copy()  # for the 2nd stage
            if e > hop:
                break  # the window goes on in the next block
            if self._passes(ci, sm):
                found.append(self._detection(ci, sm))
                sm.state = DetState.HOLDOFF  # only past this peak's own echoes (+T0)
                sm.holdoff_until = sm.best_m + PEAK_SPAN
            else:
                sm.state = DetState.IDLE  # noise: no echoes to hold off
            i = e

    def _detection(self, ci: int, sm: _CodeSM) -> Detection:
        return Detection(
            self.channel.index,
            self.codes[ci],
            self.start_sample(sm.best_m, sm.best_phase),
            sm.best_m,
            sm.best_lambda,
            sm.best_corr,
            sm.best_noise,
            sm.best_phase,
        )

    def flush(self) -> list[Detection]:
        """End of stream: release everything still pending (after the rival check)."""
        s = self.state
        for ci, sm in enumerate(s.sms):
            if sm.state == DetState.PEAK:
                if self._passes(ci, sm):
                    s.pending.append(self._detection(ci, sm))
                sm.state = DetState.IDLE
        return self.release(10**18)

    def _passes(self, ci: int, sm: _CodeSM) -> bool:
        """Second CFAR stage (dsp.rx.cfar_gate): the peak re-normalised by the noise as its template
        sees it must still cross the threshold."""
        assert sm.best_win is not None and sm.best_row is not None  # a PEAK has recorded its best peak
        k = 2 * ci + sm.best_phase
        tp = cached_template(
            self.channel.index, self.channel.fc_hz, self.codes[ci], self.grid_hz, self.fs_bb, 0.5 * sm.best_phase
        )
        if (
            gated_statistic(sm.best_win[: tp.size], tp, sm.best_row, float(self.energy[k]), sm.best_noise)
            > self.threshold
        ):
            return True
        self.state.gated += 1
        return False

    def release(self, now: int) -> list[Detection]:
        """Release detections whose burst has passed by baseband index ``now``, unless a much stronger
        overlapping one exists."""
        s = self.state
        if not s.pending:  # (the usual case: only the rival memory to trim)
            if s.recent:
                s.recent = [d for d in s.recent if d.m_peak > now - 3 * self.burst_bb]
            return []
        out = []
        still = []
        for d in s.pending:
            if d.m_peak + self.burst_bb > now:
                still.append(d)
                continue
            rivals = s.pending + s.recent
            if any(
                o is not d
                and abs(o.m_peak - d.m_peak) < self.burst_bb
                and d.lambda_peak < sidelobe_bound(o.lambda_peak)
                for o in rivals
            ):
                s.dropped += 1
                continue
            out.append(d)
        s.recent = [
            d
            for d in s.recent + out + [d for d in s.pending if d not in still and d not in out]
            if d.m_peak > now - 3 * self.burst_bb
        ]
        s.pending = still
        return sorted(out, key=lambda d: d.m_peak)
