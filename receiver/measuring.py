"""Measuring a decoded burst on the other inputs, where their baseband is: in the workers.

Once a cluster of copies is final and one copy's frame passed its CRC, the burst is measured
data-aided on every input of its bus (:func:`dsp.rx.demod.measure_known`). The chains' basebands
are in the worker processes; shipping them to the parent (~36 KB per input and second) and
measuring every input there serially made the parent the bottleneck of a replay. With
``Pipeline(..., measure_in_workers=True)`` each worker keeps a :class:`BasebandHistory` of its
inputs and answers a :class:`MeasureRequest` (sent by the grouper through the pipeline) for the
inputs it owns with a :class:`MeasureReply`; the grouper finishes the bundle when every input
has answered. A worker measures all its inputs of a request at once
(:func:`dsp.rx.demod.measure.measure_known_many`: what they share made once); each input's
numbers are those of :func:`measure_on_ring` (the grouper's own rings when it measures
in-process) to the bit, so they are the same wherever it runs.

The history is trimmed to what a bundle not made yet may still need: the grouper computes the
oldest baseband index any pending or future cluster can read (``keep_from_m``) and the pipeline
sends it with every block; a worker never drops anything newer (and never keeps more than
``max_keep`` samples per input, as the grouper's rings did, if an input stalls).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from dsp.air import params as P
from dsp.rx.channelizer import DECIMATION, Channelizer
from dsp.rx.demod import BurstDemodulator, KnownMeasurement, measure_known
from dsp.rx.demod.measure import measure_known_many


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


def burst_span(demod: BurstDemodulator, plan: P.ChannelPlan, start_sample: float) -> tuple[int, int]:
    """(m_first, need_end): the baseband indices a measurement of the burst from ``start_sample``
    reads, m_first .. need_end + 7, if a ring holds m_first .. need_end."""
    m_first = int((start_sample - Channelizer.input_index(0)) / DECIMATION) - 16
    need_end = int((start_sample + demod.span_samples(plan.grid_hz) - Channelizer.input_index(0)) / DECIMATION)
    return m_first, need_end


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
    m_first, need_end = burst_span(demod, plan, start_sample)
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
    """One input's baseband (all channels, complex64) kept for measurements: the chain records'
    own arrays, kept as they come (no copy: a measurement copies the few thousand samples of
    one channel it reads), dropped only below the grouper's ``keep_from_m`` (or beyond
    ``max_keep``)."""

    def __init__(self, n_channels: int, max_keep: int) -> None:
        self.n_channels = n_channels
        self.max_keep = int(max_keep)
        self.chunks: deque[tuple[int, np.ndarray]] = deque()  # (baseband index of column 0, array)
        self.first = 0  # the oldest baseband index held (chunks[0] from its column first - its start)
        self.end = 0  # one past the newest

    @property
    def start(self) -> int:
        return self.first

    def append(self, start: int, bb: np.ndarray) -> None:
        """A record's baseband (baseband index ``start`` first; the records of a segment follow
        one another): kept, not copied (the record's array is the chain's fresh one)."""
        if bb.shape[1] == 0:
            return
        if not self.chunks:
            self.first = start
        self.chunks.append((start, bb))
        self.end = start + bb.shape[1]

    def span(self, channel: int, a: int, b: int) -> np.ndarray:
        """Channel ``channel`` from baseband index ``a`` (held) to ``b`` (or the newest held)."""
        b = min(b, self.end)
        parts = [arr[channel, max(a - s, 0) : b - s] for s, arr in self.chunks if s < b and s + arr.shape[1] > a]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def view(self) -> np.ndarray:
        """Everything held, (channels, n) (a copy)."""
        if not self.chunks:
            return np.zeros((self.n_channels, 0), np.complex64)
        return np.concatenate([arr[:, max(self.first - s, 0) :] for s, arr in self.chunks], axis=1)

    def drop_before(self, m: int) -> None:
        """Forget baseband indices below ``m`` (and all but the newest ``max_keep``)."""
        n = self.end - self.first
        drop = max(min(m - self.first, n), n - self.max_keep)
        if drop > 0:
            self.first += drop
            while self.chunks and self.chunks[0][0] + self.chunks[0][1].shape[1] <= self.first:
                self.chunks.popleft()


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
        """The request measured on every input of it this worker owns, all at once
        (:func:`dsp.rx.demod.measure.measure_known_many`: the numbers of :func:`measure_on_ring`
        on each, what they share made once); None for an input whose history does not hold the
        burst's whole span."""
        hist = self.hist if req.segment == self.segment else self.old
        demod = self.demods[req.channel]
        out = MeasureReply(worker, req.req_id, req.segment)
        m_first, need_end = burst_span(demod, self.plan, req.start_sample)
        got: dict[int, KnownMeasurement | None] = {}
        by_size: dict[int, list[tuple[int, np.ndarray]]] = {}  # the spans, by length (a ring may end early)
        for i in req.inputs:
            h = hist.get(i) if i in self.hist else None
            if h is not None and h.start <= m_first and need_end <= h.end:
                r = h.span(req.channel, m_first, need_end + 8)
                by_size.setdefault(r.shape[0], []).append((i, r))
        mins = req.min_snr_db
        for group in by_size.values():
            rows = np.empty((len(group), group[0][1].shape[0]), np.complex128)
            for b, (_, r) in enumerate(group):
                rows[b] = r
            measured = measure_known_many(
                demod,
                rows,
                m_first,
                req.start_sample,
                req.code,
                [req.inputs[i][0] for i, _ in group],
                req.frame,
                req.clock_offset_ppm * 1e-6,
                [req.inputs[i][1] for i, _ in group],
                [None if i in req.detected or mins is None else (lambda snr_db: snr_db >= mins) for i, _ in group],
            )
            got.update(zip([i for i, _ in group], measured))
        for i in req.inputs:  # (in the request's order, as before)
            if i in self.hist:
                out.measured[i] = got.get(i)
        return out
