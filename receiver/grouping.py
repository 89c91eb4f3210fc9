"""Detections -> final clusters: group one transmission's copies across inputs, and have the
decoded burst measured on every input of its bus; :mod:`receiver.bundling` makes the bundle.

A transmission reaches the CT inputs of its own feeder phase and, weaker, the other phases and
feeders of the bus (crosstalk). The detectors of several inputs may each find and decode it. The
grouper takes every input's chain records (:class:`dsp.rx.chain.ChainOutput`) and clusters
detections of the same channel and code whose start times agree within ``GROUP_TOL`` samples.
Once every input has been processed past the burst (plus the detector's release delay) the
cluster is final:

1. a cluster without a clean copy that a burst bundled with a clean frame explains as its own
   echo makes no bundle (the ghost rule, :func:`receiver.bundling.is_ghost`);
2. with a frame in hand, the burst is measured data-aided on every input of the bus
   (:func:`receiver.measuring.measure_on_ring` here, on rings of the records' baseband kept per
   input, or by the workers that hold the baseband: :class:`receiver.measuring.MeasureRequest`);
3. once its measurements are in, :meth:`receiver.bundling.BundleMaker.make` makes the bundle
   (payload, copies, ranking, inferred feeder and phase); bundles come out in cluster order.

The public names of :mod:`receiver.bundling` that callers used from here (``InputInfo`` and the
constants) are importable from this module too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from dsp.air import params as P
from dsp.rx.chain import END_OF_STREAM, ChainOutput
from dsp.rx.channelizer import DECIMATION, Channelizer
from dsp.rx.demod import BurstDemodulator, BurstResult, KnownMeasurement
from dsp.rx.ghosts import DecodedSpan
from receiver.bundling import (
    AMBIGUOUS_MIN_DB,
    AMBIGUOUS_SIGMAS,
    GHOST_RATIO_DB,
    MIN_COPY_SNR_DB,
    PHASES,
    BundleMaker,
    InputInfo,
    best_copy,
    decoded_span,
    is_ghost,
)
from receiver.bundling import Cluster as _Cluster
from receiver.contracts.bundle import Bundle
from receiver.measuring import MeasureReply, MeasureRequest, measure_on_ring

__all__ = [
    "AMBIGUOUS_MIN_DB",
    "AMBIGUOUS_SIGMAS",
    "GHOST_RATIO_DB",
    "GROUP_TOL",
    "KEEP_S",
    "MAX_KEEP_S",
    "MIN_COPY_SNR_DB",
    "PHASES",
    "Grouper",
    "InputInfo",
]

GROUP_TOL = 40  # input samples (0.6 chip)
# the grouper keeps every grid cycle's estimate of each chain record (trimmed with the baseband, see
# Grouper._trim), so the cycle a copy is measured with (the latest before its burst: see
# Grouper._fund_at) does not depend on where the stream was cut into blocks. (It kept the newest
# 4 of each record before: a copy's level then followed the block cuts in its last digits.)
KEEP_S = 12.0  # baseband history per input (more while a pending burst needs it, see Grouper._trim)
MAX_KEEP_S = 120.0  # never more than this (an input that stalls)


@dataclass
class _Final:
    """A final cluster whose bundle waits for the measurements of its copies (workers' replies)."""

    cluster: _Cluster
    offset: int  # the segment's stream offset (a reset may come before the replies)
    waiting: set[int]  # inputs not answered yet
    measured: dict[int, KnownMeasurement] = field(default_factory=dict)
    req_id: int = 0  # of its MeasureRequest (0: none sent)


class Grouper:
    """Takes the chains' records (:class:`dsp.rx.chain.ChainOutput`, through :meth:`add_output`)
    of every input and makes the bundles (see the module docstring; the bundle of a final cluster
    is :attr:`maker`'s, a :class:`receiver.bundling.BundleMaker`)."""

    def __init__(
        self,
        plan: P.ChannelPlan,
        inputs: list[InputInfo],
        *,
        receiver_id: str,
        substation_id: str,
        fs_hz: float = 48000.0,
        t0_utc: datetime | None = None,
        on_bundle: Callable[[Bundle], None] | None = None,
        created_clock: Callable[[float], datetime] | None = None,
        measurer: Any = None,
    ) -> None:
        self.plan, self.inputs, self.fs_hz = plan, {i.index: i for i in inputs}, fs_hz
        self.on_bundle = on_bundle
        # the chains count samples from their last reset; ``offset`` is the stream index of that,
        # ``segment`` the pipeline segment (receiver.pipeline.Pipeline.reset) whose outputs count
        self.offset = 0
        self.segment = 0
        # where copies are measured: here, on rings of the records' baseband (None), or by the
        # workers that hold it (receiver.pipeline.Pipeline with measure_in_workers: its
        # ``measure(MeasureRequest)``, the replies come back through add_output, and
        # ``keep_from(m)``, the oldest baseband index a bundle not made yet may read)
        self.measurer = measurer
        self._final: list[_Final] = []  # final clusters in order, waiting for measurements
        self._req_id = 0
        self.demods = [BurstDemodulator(c, fs_hz) for c in plan.channels]
        # bundle creation time: wall clock (live, created_clock None) or, for a replay, a function
        # of the stream time
        self.maker = BundleMaker(
            plan,
            self.inputs,
            self.demods,
            receiver_id,
            substation_id,
            fs_hz,
            t0_utc or datetime(1970, 1, 1, tzinfo=UTC),
            created_clock,
        )
        self.keep = int(KEEP_S * fs_hz / DECIMATION)
        self.max_keep = int(MAX_KEEP_S * fs_hz / DECIMATION)
        self.rings: dict[int, np.ndarray] = {}
        self.ring_start: dict[int, int] = {}
        self.progress: dict[int, int] = {i: 0 for i in self.inputs}
        self.horizon: dict[int, int] = {i: 0 for i in self.inputs}
        # per input: grid-cycle index -> (f0, fundamental RMS) as the comb estimated them (the last
        # few cycles of every worker output), for measuring a copy with the values of its time
        self.fund: dict[int, dict[int, tuple[float, float]]] = {}
        self.clusters: list[_Cluster] = []
        self.bundles: list[Bundle] = []
        self.stats = {
            "bundles": 0,
            "bundles_crc_ok": 0,
            "ambiguous": 0,
            "copies_measured": 0,
            "stale_outputs_dropped": 0,  # worker outputs of another segment than the grouper's
            "ghost_clusters": 0,  # CRC-failed clusters a decoded burst's own correlation explains
        }
        self.decoded: list[DecodedSpan] = []  # the bursts bundled lately with a clean frame
        # a cluster is complete once every input's detectors are past the burst's end
        self.burst_len = int((P.burst_duration_s() + 1.0 / plan.grid_hz) * fs_hz) + 2 * int(fs_hz / P.CHIP_RATE_HZ)

    def __repr__(self) -> str:
        lo = min(self.horizon.values()) if self.horizon else 0
        to = "the end of the stream" if lo >= END_OF_STREAM else f"stream sample {lo + self.offset}"
        return (
            f"Grouper(receiver {self.maker.receiver_id}, {len(self.inputs)} inputs; {len(self.clusters)} clusters "
            f"pending, {self.stats['bundles']} bundles made, every input released up to {to})"
        )

    # -- feeding ---------------------------------------------------------------------------------
    def add_output(self, out) -> list[Bundle]:
        """Take one worker output (:class:`receiver.pipeline.WorkerOutput`: its chain records, in
        order); returns the bundles it completed. An output of another segment than the
        grouper's is dropped and counted (``stale_outputs_dropped``): its records count samples
        from another reset, and read against this segment's clock they would put bursts and
        basebands in the wrong place. A :class:`receiver.measuring.MeasureReply` (the workers
        measuring for this grouper) completes the bundles waiting for it."""
        if isinstance(out, MeasureReply):
            return self._take_reply(out)
        if out.segment != self.segment:
            self.stats["stale_outputs_dropped"] += 1
            return []
        for rec in out.records:
            self._take(rec)
        done = self._finalize(final=False)
        self._trim()
        return done

    def _take(self, rec: ChainOutput) -> None:
        """One chain record: its baseband, grid-frequency estimates, progress and bursts."""
        i = rec.input_index
        if rec.baseband.shape[1] and self.measurer is None:
            if i not in self.rings:
                self.rings[i], self.ring_start[i] = rec.baseband, rec.baseband_start
            else:
                self.rings[i] = np.concatenate([self.rings[i], rec.baseband], axis=1)
        n = len(rec.grid_f0_hz)
        log = self.fund.setdefault(i, {})
        for k in range(n):
            log[rec.grid_block_start + k] = (rec.grid_f0_hz[k], rec.grid_fund_rms[k])
        self.progress[i] = rec.stats.samples_in
        self.horizon[i] = rec.horizon_sample
        for r in rec.bursts:
            self._add(i, r)

    def _trim(self) -> None:
        """Forget baseband older than KEEP_S, but never what a burst not yet bundled (or one a
        slower input may still report) needs for measuring its copies: the workers' outputs
        arrive in any order, and one input's ring may run far ahead of the slowest input's
        horizon. (Before this, a bundle finished late could find the span gone from the faster
        inputs and lose their copies: the same capture then gave other bundles.) MAX_KEEP_S
        bounds the memory if an input stalls."""
        low = min(self.horizon.values()) if self.horizon else 0
        oldest = min([c.start for c in self.clusters] + [low - self.burst_len])
        m_need = int((oldest - Channelizer.input_index(0)) / DECIMATION) - 64
        cycle = self.fs_hz / self.plan.grid_hz
        if self.measurer is not None:
            self.measurer.keep_from(m_need, self.segment)
            first = int(Channelizer.input_index(m_need) // cycle) - 2
            for log in self.fund.values():
                _forget_cycles_before(log, first)
            return
        for i, ring in self.rings.items():
            drop = min(ring.shape[1] - self.keep, m_need - self.ring_start[i])
            drop = max(drop, ring.shape[1] - self.max_keep)
            if drop > 0:
                self.rings[i] = ring[:, drop:]
                self.ring_start[i] += drop
        for i, log in self.fund.items():
            if i in self.ring_start:
                _forget_cycles_before(log, int(Channelizer.input_index(self.ring_start[i]) // cycle) - 2)

    def flush(self) -> list[Bundle]:
        """Every cluster is final (the end of the stream). With the workers measuring, the
        bundles come as their replies do (see :attr:`waiting`)."""
        return self._finalize(final=True)

    @property
    def waiting(self) -> int:
        """Final clusters whose bundles wait for the workers' measurements."""
        return len(self._final)

    def reset(self, stream_first_sample: int, segment: int) -> list[Bundle]:
        """The pipeline's chains restarted at stream sample ``stream_first_sample`` as segment
        ``segment`` (a discontinuity): finish the old segment's pending bundles (give this only
        after every output of the old segment: :meth:`receiver.pipeline.Pipeline.reset` returns
        them), forget the basebands, re-anchor the clock, and from now on take only outputs of
        the new segment."""
        done = self._finalize(final=True)
        self.fund.clear()
        self.decoded.clear()
        self.rings.clear()
        self.ring_start.clear()
        self.progress = {i: 0 for i in self.inputs}
        self.horizon = {i: 0 for i in self.inputs}
        self.offset = int(stream_first_sample)
        self.segment = int(segment)
        return done

    def _add(self, i: int, r: BurstResult) -> None:
        for c in self.clusters:
            if c.channel == r.channel and c.code == r.code and abs(c.start - r.start_sample) <= GROUP_TOL:
                c.members.append((i, r))
                return
        self.clusters.append(_Cluster(r.channel, r.code, r.start_sample, [(i, r)]))

    def _finalize(self, final: bool) -> list[Bundle]:
        low = min(self.horizon.values()) if self.horizon else 0
        keep, ready = [], []
        for c in self.clusters:
            if final or c.start + self.burst_len <= low:
                ready.append(c)
            else:
                keep.append(c)
        self.clusters = keep
        # the clean ones' spans first (a burst that explains a ghost starts earlier than it, so it
        # is ready no later), then the clusters in order: a ghost makes no bundle, the others are
        # measured (here, or by the workers) and become bundles as their measurements come in
        for c in ready:
            span = decoded_span(c, self.plan)
            if span is not None:
                self.decoded.append(span)
        for c in ready:
            if is_ghost(c, self.decoded):
                self.stats["ghost_clusters"] += 1
            else:
                self._final.append(self._start_measuring(c))
        if not final:
            self.decoded = [s for s in self.decoded if s.end_sample > low - self.burst_len]
        return self._emit()

    def _emit(self) -> list[Bundle]:
        """The bundles of the final clusters whose measurements are all in, in order."""
        done = []
        while self._final and not self._final[0].waiting:
            f = self._final.pop(0)
            self.stats["copies_measured"] += len(f.measured)
            done.append(self.maker.make(f.cluster, f.measured, f.offset))
        for b in done:
            self.bundles.append(b)
            self.stats["bundles"] += 1
            self.stats["bundles_crc_ok"] += int(b.crc_ok)
            self.stats["ambiguous"] += int(bool(b.inferred and b.inferred.ambiguous))
            if self.on_bundle:
                self.on_bundle(b)
        return done

    def _take_reply(self, rep: MeasureReply) -> list[Bundle]:
        for f in self._final:
            if f.req_id == rep.req_id:
                for i, m in rep.measured.items():
                    f.waiting.discard(i)
                    if m is not None:
                        f.measured[i] = m
                break
        return self._emit()

    def _start_measuring(self, c: _Cluster) -> _Final:
        """Measure the final cluster's burst on every input of its bus: here, or by the workers."""
        best_i, best, frame = best_copy(c)
        detected = frozenset(i for i, _ in c.members)
        f = _Final(c, self.offset, set())
        if frame is None:
            return f
        bus = self.inputs[best_i].bus if best_i in self.inputs else None
        # crosstalk stays within the bus
        todo = [i for i, info in self.inputs.items() if bus is None or info.bus == bus]
        if self.measurer is None:
            demod = self.demods[c.channel]
            for i in todo:
                m = self._measure(i, demod, best, frame, None if i in detected else MIN_COPY_SNR_DB)
                if m is not None:
                    f.measured[i] = m
            return f
        self._req_id += 1
        f.req_id = self._req_id
        f.waiting = set(todo)
        if todo:
            self.measurer.measure(
                MeasureRequest(
                    self._req_id,
                    self.segment,
                    best.channel,
                    best.code,
                    best.start_sample,
                    best.clock_offset_ppm,
                    frame,
                    {i: self._fund_at(i, best.start_sample) for i in todo},
                    detected,
                    MIN_COPY_SNR_DB,
                )
            )
        return f

    def _measure(
        self, i: int, demod: BurstDemodulator, best: BurstResult, frame: bytes, min_snr_db: float | None = None
    ) -> KnownMeasurement | None:
        ring = self.rings.get(i)
        if ring is None:
            return None
        f0, fund = self._fund_at(i, best.start_sample)
        return measure_on_ring(
            ring,
            self.ring_start[i],
            demod,
            self.plan,
            best.channel,
            best.code,
            best.start_sample,
            best.clock_offset_ppm,
            frame,
            f0,
            fund,
            min_snr_db,
        )

    def _fund_at(self, i: int, sample: float) -> tuple[float, float]:
        """(f0, fundamental RMS) of input i from the latest grid cycle logged before ``sample``
        (the earliest logged if none is): the same whatever order the workers reported in."""
        log = self.fund.get(i)
        if not log:
            return self.plan.grid_hz, float("nan")
        b = int(sample // (self.fs_hz / self.plan.grid_hz)) - 1
        before = [k for k in log if k <= b]
        return log[max(before)] if before else log[min(log)]


def _forget_cycles_before(log: dict[int, tuple[float, float]], first: int) -> None:
    """Drop the grid cycles logged before cycle ``first`` but the last of them (a burst starting
    there is measured with it). A log is filled in cycle order, so the old ones come first."""
    old = []
    for k in log:
        if k >= first:
            break
        old.append(k)
    for k in old[:-1]:
        del log[k]
