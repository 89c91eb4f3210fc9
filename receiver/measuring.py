"""Measuring a decoded burst on the other inputs, where their baseband is: in the workers.

Once a cluster of copies is final and one copy's frame passed its CRC, the burst is measured
data-aided on every input of its bus (:func:`dsp.rx.demod.measure_known`). The chains' basebands
are in the worker processes; shipping them to the parent (~36 KB per input and second) and
measuring every input there serially made the parent the bottleneck of a replay. With
``Pipeline(..., measure_in_workers=True)`` each worker keeps a :class:`BasebandHistory` of its
inputs and answers a :class:`MeasureRequest` (sent by the grouper through the pipeline) for the
inputs it owns with a :class:`MeasureReply`; the grouper finishes the bundle when every input
has answered. :func:`measure_on_ring` is the one measurement both places use (the grouper's own
rings when it measures in-process), so the numbers are the same wherever it runs.

The history is trimmed to what a bundle not made yet may still need: the grouper computes the
oldest baseband index any pending or future cluster can read (``keep_from_m``) and the pipeline
sends it with every block; a worker never drops anything newer (and never keeps more than
``max_keep`` samples per input, as the grouper's rings did, if an input stalls).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsp.air import params as P
from dsp.rx.channelizer import DECIMATION, Channelizer
from dsp.rx.demod import BurstDemodulator, KnownMeasurement, measure_known


@dataclass
class MeasureRequest:
    """Measure the decoded burst (channel, code, start, clock offset, frame) on ``inputs``, each
    with the grid frequency and fundamental RMS of its time (input index -> (f0_hz, fund_rms))."""

    req_id: int
    segment: int  # the pipeline segment whose baseband the burst's sample indices refer to
    channel: int
    code: int
    start_sample: float
    clock_offset_ppm: float
    frame: bytes
    inputs: dict[int, tuple[float, float]]
    # inputs whose detectors found the burst: their copies are reported whatever their SNR (the
    # others only from ``min_snr_db``, so their band amplitudes are computed only from there)
    detected: frozenset[int] = frozenset()
    min_snr_db: float | None = None


@dataclass
class MeasureReply:
    """One worker's answer to a :class:`MeasureRequest`: a measurement (or None: the span is not
    held, or the fit failed) for every requested input the worker owns."""

    worker: int
    req_id: int
    segment: int
    measured: dict[int, KnownMeasurement | None] = field(default_factory=dict)


def measure_on_ring(
    ring: np.ndarray,
    ring_start: int,
    demod: BurstDemodulator,
    plan: P.ChannelPlan,
    channel: int,
    code: int,
    start_sample: float,
    clock_offset_ppm: float,
    frame: bytes,
    f0: float,
    fund: float,
    min_snr_db: float | None = None,
) -> KnownMeasurement | None:
    """The burst measured on one input's baseband ``ring`` ((channels, m) complex64, baseband
    index ``ring_start`` first); None when the ring does not hold its whole span. With
    ``min_snr_db``, the band amplitudes only of a measurement at least that strong (a weaker
    copy that no detector found is not reported)."""
    m_first = int((start_sample - Channelizer.input_index(0)) / DECIMATION) - 16
    need_end = int((start_sample + demod.span_samples(plan.grid_hz) - Channelizer.input_index(0)) / DECIMATION)
    if m_first < ring_start or need_end > ring_start + ring.shape[1]:
        return None
    r = ring[channel, m_first - ring_start : need_end - ring_start + 8].astype(np.complex128)
    try:
        return measure_known(
            demod,
            r,
            m_first,
            start_sample,
            code,
            f0,
            frame,
            clock_offset_ppm * 1e-6,
            fund,
            bands_for=None if min_snr_db is None else (lambda snr_db: snr_db >= min_snr_db),
        )
    except (ValueError, FloatingPointError):
        return None


class BasebandHistory:
    """One input's baseband (all channels, complex64) kept for measurements: appended per chain
    record, dropped only below the grouper's ``keep_from_m`` (or beyond ``max_keep``). A buffer
    with spare room, compacted when full, so a sample is copied about twice in all."""

    def __init__(self, n_channels: int, max_keep: int) -> None:
        self.max_keep = int(max_keep)
        self.buf = np.zeros((n_channels, 1 << 15), np.complex64)
        self.first = 0  # baseband index of buf[:, lo]
        self.lo = 0
        self.hi = 0

    @property
    def start(self) -> int:
        return self.first

    def view(self) -> np.ndarray:
        return self.buf[:, self.lo : self.hi]

    def append(self, start: int, bb: np.ndarray) -> None:
        k = bb.shape[1]
        if k == 0:
            return
        if self.hi == self.lo:
            self.first = start
        if self.hi + k > self.buf.shape[1]:
            n = self.hi - self.lo
            if n + k > self.buf.shape[1] // 2:
                grown = np.zeros((self.buf.shape[0], 2 * (n + k)), np.complex64)
                grown[:, :n] = self.buf[:, self.lo : self.hi]
                self.buf = grown
            else:
                self.buf[:, :n] = self.buf[:, self.lo : self.hi]
            self.lo, self.hi = 0, n
        self.buf[:, self.hi : self.hi + k] = bb
        self.hi += k

    def drop_before(self, m: int) -> None:
        """Forget baseband indices below ``m`` (and all but the newest ``max_keep``)."""
        n = self.hi - self.lo
        drop = max(min(m - self.first, n), n - self.max_keep)
        if drop > 0:
            self.lo += drop
            self.first += drop


class WorkerMeasurer:
    """A worker's side: the histories of its inputs, the demodulators, and the answers."""

    def __init__(self, plan: P.ChannelPlan, inputs: list[int], fs_hz: float, max_keep: int) -> None:
        self.plan, self.inputs, self.fs_hz, self.max_keep = plan, inputs, fs_hz, max_keep
        self.demods = [BurstDemodulator(c, fs_hz) for c in plan.channels]
        self.hist = self._fresh()
        self.old: dict[int, BasebandHistory] = {}  # the previous segment's, for its last requests
        self.segment = 0

    def _fresh(self) -> dict[int, BasebandHistory]:
        return {i: BasebandHistory(len(self.plan.channels), self.max_keep) for i in self.inputs}

    def take(self, input_index: int, start: int, bb: np.ndarray) -> None:
        self.hist[input_index].append(start, bb)

    def keep_from(self, m: int) -> None:
        for h in self.hist.values():
            h.drop_before(m)

    def new_segment(self, segment: int) -> None:
        """The chains restarted: the old histories stay for the old segment's last requests."""
        self.old, self.hist, self.segment = self.hist, self._fresh(), segment

    def answer(self, worker: int, req: MeasureRequest) -> MeasureReply:
        hist = self.hist if req.segment == self.segment else self.old
        demod = self.demods[req.channel]
        out = MeasureReply(worker, req.req_id, req.segment)
        for i, (f0, fund) in req.inputs.items():
            if i not in self.hist:
                continue
            h = hist.get(i)
            out.measured[i] = (
                None
                if h is None
                else measure_on_ring(
                    h.view(),
                    h.start,
                    demod,
                    self.plan,
                    req.channel,
                    req.code,
                    req.start_sample,
                    req.clock_offset_ppm,
                    req.frame,
                    f0,
                    fund,
                    None if i in req.detected else req.min_snr_db,
                )
            )
        return out
