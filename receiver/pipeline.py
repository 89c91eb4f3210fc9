"""All inputs, both cores: the receive chains of every feeder-phase input, spread over processes.

    source blocks (n, inputs) --> [worker 0: inputs 0, 2, 4, ...] --\\
                              --> [worker 1: inputs 1, 3, 5, ...] ----> results + baseband --> Grouper

Each worker runs one :class:`dsp.rx.chain.InputChain` per input it owns. Queues are bounded
(``queue_blocks``), so a slow consumer stalls the source instead of growing memory (backpressure:
for a live ZeroMQ source the socket's high-water mark then drops, and the gap is counted there).
Workers send back, per block, the :class:`dsp.rx.chain.ChainOutput` record of every input they
own: the bursts demodulated, progress and release horizon, the comb's grid-frequency estimates
and the channel basebands (complex64, 1.5 kHz per channel) so that the grouper can measure a
decoded burst on the inputs where it stayed below detection.

A discontinuity in the stream (a gap the source gave up on, a sender restart) ends a *segment*:
:meth:`Pipeline.reset` flushes every chain into the old segment, restarts them, and waits for
every block already sent, so that no output of the old segment can reach the grouping of the new
one (the chains count samples from their reset; an old record read against the new segment's
clock puts bursts and basebands in the wrong place: levels off by tens of dB, a wrong phase).
Every block and every :class:`WorkerOutput` carries its segment number, so a consumer can also
check it (:meth:`receiver.grouping.Grouper.add_output` drops and counts a stale one).

With ``measure_in_workers=True`` the basebands stay in the workers: each keeps a history of its
inputs' baseband (:class:`receiver.measuring.WorkerMeasurer`) and measures a decoded burst on
them when the grouper asks (:meth:`Pipeline.measure`; the replies come out of :meth:`outputs`
beside the blocks' records, which then carry no baseband). With a ``reader``
(:class:`receiver.sources.columns.ColumnSpec`) the workers read and decode their own columns of
a capture's audio file (:meth:`Pipeline.feed_frames`): no samples pass through the parent.

With ``ring_frames`` the parent writes each block once into a slot of a ring of shared memory
(:meth:`Pipeline.ring_slot`, :meth:`Pipeline.feed_ring`; ``gla receive`` does) and the workers read
their own columns from it: no copy of the samples through the queues.

``workers=0`` runs everything in the calling process (tests, profiling).
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing as mp
import queue
import time
from dataclasses import dataclass, field

import numpy as np

from dsp.air import params as P
from dsp.rx.chain import ChainOutput, InputChain, deinterleave, warm_up
from dsp.rx.channelizer import DECIMATION
from receiver.measuring import MeasureReply, MeasureRequest, WorkerMeasurer
from receiver.timings import mark

log = logging.getLogger("gla.pipeline")


@dataclass
class WorkerOutput:
    """One worker's answer to one block (or to the end of the stream)."""

    worker: int
    first_sample: int  # of the block these records belong to (-1: the end of the stream)
    n: int  # samples per input consumed
    # what every chain of the worker produced, in input order: one record per input and chain
    # call (process, or flush at the end; an input's process record before its flush record)
    records: list[ChainOutput] = field(default_factory=list)
    segment: int = 0  # the pipeline's segment the block was fed in (see Pipeline.reset)
    clipped: int = 0  # samples at full scale in the worker's columns (a reader's blocks only)
    error: str | None = None  # the reader could not read the block (a truncated or changed file)


class _Chains:
    """The chains of one worker's inputs."""

    def __init__(self, plan: P.ChannelPlan, inputs: list[int], fs_hz: float) -> None:
        self.plan, self.inputs, self.fs_hz = plan, inputs, fs_hz
        self.chains = {i: InputChain(plan, i, fs_hz) for i in inputs}

    def __repr__(self) -> str:
        return f"_Chains(inputs {self.inputs}, {self.fs_hz:g} Hz)"

    def reset(self) -> None:
        for c in self.chains.values():
            c.reset()

    def run(
        self,
        worker: int,
        first_sample: int,
        block: np.ndarray | None,
        flush: bool = False,
        segment: int = 0,
        rows: np.ndarray | None = None,
    ) -> WorkerOutput:
        """Block ``block`` (n, inputs) through every chain (None: no samples), then, with
        ``flush``, the end of the stream (or of segment ``segment``). ``rows`` instead of
        ``block``: the samples already one row per input (inputs, n)."""
        if rows is None and block is not None:
            rows = deinterleave(block)
        out = WorkerOutput(worker, first_sample, rows.shape[1] if rows is not None else 0, segment=segment)
        for j, i in enumerate(self.inputs):
            ch = self.chains[i]
            if rows is not None or not flush:
                # (an empty block too: its record still reports the chain's progress and horizon)
                out.records.append(ch.process(rows[j] if rows is not None else np.zeros(0, np.float32)))
            if flush:
                out.records.append(ch.flush())
        return out


def _worker_main(
    worker: int,
    plan: P.ChannelPlan,
    inputs: list[int],
    fs_hz: float,
    q_in,
    q_out,
    measure: bool,
    reader,
    ring: np.ndarray | None = None,
) -> None:
    mark(f"worker{worker}_started")
    chains = _Chains(plan, inputs, fs_hz)
    mark(f"worker{worker}_chains")
    meas = WorkerMeasurer(plan, inputs, fs_hz, _max_keep(fs_hz)) if measure else None
    cols = reader.open(inputs) if reader is not None else None
    own = slice(inputs[0], None, inputs[1] - inputs[0] if len(inputs) > 1 else 1)  # (inputs: w, w + n_workers, ...)
    current = 0  # the segment being fed
    flushed = False  # a "flush" ended the stream: the sentinel then only stops the worker
    first = True

    def send(out: WorkerOutput) -> None:
        if meas is not None:  # the baseband stays here, for the measurements
            for rec in out.records:
                meas.take(rec.input_index, rec.baseband_start, rec.baseband)
                rec.baseband = rec.baseband[:, :0]
        q_out.put(out)

    while True:
        item = q_in.get()
        if item is None:
            if not flushed:
                send(chains.run(worker, -1, None, flush=True, segment=current))
            q_out.put(("done", worker))
            return
        kind, segment, first_sample, block = item[:4]
        if kind == "measure":
            assert meas is not None
            q_out.put(meas.answer(worker, block))
            continue
        if kind == "flush":  # the end of the stream; the worker stays for measurements
            send(chains.run(worker, -1, None, flush=True, segment=segment))
            flushed = True
            continue
        if kind == "reset":  # the end of segment ``segment``: flush into it, then start afresh
            send(chains.run(worker, -1, None, flush=True, segment=segment))
            chains.reset()
            if meas is not None:
                meas.new_segment(segment + 1)
            current = segment + 1
            continue
        current = segment
        if meas is not None:
            meas.keep_from(item[4])
        if kind == "ring":  # the block is in slot ``block[0]`` of the shared ring, ``block[1]`` rows
            assert ring is not None
            slot, n = block
            mine = ring[slot, :n, own]  # (this worker's columns: a strided view, read once)
            out = chains.run(worker, first_sample, None, segment=segment, rows=deinterleave(mine))
        elif kind == "frames":  # read this worker's columns of frames first_sample .. + block
            assert cols is not None
            try:
                rows, clipped = cols.read(first_sample, block)
            except (OSError, ValueError) as e:
                q_out.put(WorkerOutput(worker, first_sample, 0, segment=segment, error=str(e)))
                continue
            out = chains.run(worker, first_sample, None, segment=segment, rows=rows)
            out.clipped = clipped
        else:
            out = chains.run(worker, first_sample, block, segment=segment)
        if first:  # (marked before it is sent: the parent's first_block comes after every worker's)
            mark(f"worker{worker}_first_block")
            first = False
        send(out)


def _max_keep(fs_hz: float) -> int:
    from receiver.grouping import MAX_KEEP_S

    return int(MAX_KEEP_S * fs_hz / DECIMATION)


class Pipeline:
    """Feed blocks of all inputs; collect :class:`WorkerOutput` through :meth:`outputs`."""

    def __init__(
        self,
        plan: P.ChannelPlan,
        n_inputs: int,
        fs_hz: float = 48000.0,
        workers: int = 2,
        queue_blocks: int = 4,
        *,
        measure_in_workers: bool = False,
        reader=None,
        ring_frames: int = 0,
    ) -> None:
        self.plan, self.n_inputs, self.fs_hz = plan, n_inputs, fs_hz
        self.n_workers = max(0, min(workers, n_inputs))
        groups = max(1, self.n_workers)
        self.assign = [list(range(w, n_inputs, groups)) for w in range(groups)]
        self._pending: list[WorkerOutput | MeasureReply] = []
        self.fed_to = 0  # stream sample after the last block fed
        # streaming state of the segments: the current one (the resets so far), and the blocks
        # and flushes sent to the workers whose WorkerOutput has not come back yet
        self.segment = 0
        self._in_flight = 0
        self.measure_in_workers = bool(measure_in_workers) and self.n_workers > 0
        self.reader = reader if self.n_workers > 0 else None
        self._keep_from_m = 0
        self._flushed = False  # flush() ended the stream (close() then only stops the workers)
        self.ring: np.ndarray | None = None  # (feed_ring's shared slots: workers only)
        self._slot = 0
        if self.n_workers == 0:
            self._local = _Chains(plan, self.assign[0], fs_hz)
            return
        warm_up(plan, fs_hz)  # kernels, templates and FFT plans made once, here, for every worker
        # the blocks of feed_ring: slots of shared memory (anonymous, inherited by the forked
        # workers); a slot is written again only after the queue's bound guarantees that every
        # worker is done with it (a put returns with at most queue_blocks items unread, and a
        # worker reads the next item only after the last: queue_blocks + 2 slots can be busy)
        if ring_frames > 0:
            slots = queue_blocks + 3
            mem = mmap.mmap(-1, slots * ring_frames * n_inputs * 4)
            self.ring = np.ndarray((slots, ring_frames, n_inputs), np.float32, buffer=mem)
            deinterleave(self.ring[0, :2, ::2])  # (the strided variant the workers read, compiled here once)
        ctx = mp.get_context("fork")
        self.q_in = [ctx.Queue(maxsize=queue_blocks) for _ in range(self.n_workers)]
        self.q_out = ctx.Queue()
        self.procs = [
            ctx.Process(
                target=_worker_main,
                args=(
                    *(w, plan, self.assign[w], fs_hz, self.q_in[w], self.q_out),
                    self.measure_in_workers,
                    self.reader,
                    self.ring,
                ),
                name=f"gla-worker-{w}",
                daemon=True,
            )
            for w in range(self.n_workers)
        ]
        for p in self.procs:
            p.start()
        self._done = 0

    def __repr__(self) -> str:
        where = (
            f"{self.n_workers} worker processes of {', '.join(str(len(a)) for a in self.assign)} inputs"
            if self.n_workers
            else "in this process"
        )
        return f"Pipeline({self.n_inputs} inputs at {self.fs_hz:g} Hz, {where}; fed up to sample {self.fed_to})"

    def feed(self, first_sample: int, block: np.ndarray) -> None:
        """Send one block (n, n_inputs); blocks while the workers' queues are full."""
        if block.ndim != 2 or block.shape[1] != self.n_inputs:
            raise ValueError(f"expected a block of shape (n, {self.n_inputs}), got {block.shape}")
        self.fed_to = first_sample + block.shape[0]
        if self.n_workers == 0:
            x = np.asarray(block, dtype=np.float64)
            self._pending.append(self._local.run(0, first_sample, x, segment=self.segment))
            return
        for w in range(self.n_workers):
            part = np.ascontiguousarray(block[:, self.assign[w]], dtype=np.float32)
            self.q_in[w].put(("block", self.segment, first_sample, part, self._keep_from_m))
            self._in_flight += 1

    def ring_slot(self) -> np.ndarray | None:
        """The shared slot the next :meth:`feed_ring` block is to be written into, (ring_frames,
        n_inputs) float32 (None: no ring). Write it, then call :meth:`feed_ring` before the next
        call: the samples go to the workers without a copy through their queues."""
        return None if self.ring is None else self.ring[self._slot]

    def feed_ring(self, first_sample: int, n: int) -> None:
        """Send the block of ``n`` rows written into :meth:`ring_slot`; blocks while the workers'
        queues are full. Decodes the same as :meth:`feed` of those samples."""
        if self.ring is None or not 0 < n <= self.ring.shape[1]:
            raise ValueError(f"feed_ring: {n} rows do not fit the ring's slots ({self.ring is not None})")
        self.fed_to = first_sample + n
        for q in self.q_in:
            q.put(("ring", self.segment, first_sample, (self._slot, n), self._keep_from_m))
            self._in_flight += 1
        self._slot = (self._slot + 1) % self.ring.shape[0]

    def feed_frames(self, first_sample: int, n: int) -> None:
        """Have every worker read and process frames ``first_sample`` .. ``+ n`` of its own
        columns of the capture (needs the ``reader``); blocks while the queues are full."""
        if self.reader is None:
            raise RuntimeError("feed_frames needs a pipeline with workers and a reader")
        self.fed_to = first_sample + n
        for q in self.q_in:
            q.put(("frames", self.segment, first_sample, n, self._keep_from_m))
            self._in_flight += 1

    def measure(self, req: MeasureRequest) -> None:
        """Ask every worker to measure a decoded burst on its inputs (``measure_in_workers``);
        each answers with a :class:`receiver.measuring.MeasureReply` through :meth:`outputs`."""
        for q in self.q_in:
            q.put(("measure", req.segment, -1, req))
            self._in_flight += 1

    def keep_from(self, m: int, segment: int) -> None:
        """The oldest baseband index of segment ``segment`` a measurement may still need (sent
        with the next blocks; ignored when that segment is over)."""
        if segment == self.segment:
            self._keep_from_m = int(m)

    def flush(self, timeout_s: float = 120.0) -> list[WorkerOutput | MeasureReply]:
        """The end of the stream, with the workers kept for the measurements it still needs:
        every chain flushed; returns every output not collected yet, after waiting for all of
        them (:meth:`close` then only stops the workers)."""
        if self.n_workers == 0:
            self._pending.append(self._local.run(0, -1, None, flush=True, segment=self.segment))
            self._flushed = True
            return self.outputs()
        for q in self.q_in:
            q.put(("flush", self.segment, -1, None))
        self._in_flight += self.n_workers
        self._flushed = True
        return self.wait_idle("flush", timeout_s)

    def wait_idle(self, what: str, timeout_s: float = 120.0) -> list[WorkerOutput | MeasureReply]:
        """Every output of what was sent to the workers (blocks, flushes, measurements). Raises
        RuntimeError if a worker dies or does not answer within ``timeout_s``."""
        got: list[WorkerOutput | MeasureReply] = []
        t_end = time.monotonic() + timeout_s
        while self._in_flight > 0:
            dead = [p.name for p in self.procs if not p.is_alive()]
            if dead or time.monotonic() > t_end:
                why = f"{', '.join(dead)} died" if dead else f"no answer within {timeout_s:g} s"
                raise RuntimeError(f"pipeline {what}: {self._in_flight} blocks not returned ({why})")
            got += self.outputs(timeout=0.2)
        return got

    def reset(self, timeout_s: float = 120.0) -> list[WorkerOutput | MeasureReply]:
        """A discontinuity in the stream: end the current segment and start the next.

        Every chain is flushed (a burst complete before the gap is still demodulated) and
        restarted. Returns every output of the old segment not collected yet, after waiting for
        all of them: the blocks still inside the workers included, so that none of them can be
        taken for the new segment. Raises RuntimeError if a worker dies or does not answer
        within ``timeout_s`` (its outputs could no longer be told apart)."""
        old = self.segment
        self.segment += 1
        if self.n_workers == 0:
            self._pending.append(self._local.run(0, -1, None, flush=True, segment=old))
            self._local.reset()
            return self.outputs()
        for q in self.q_in:
            q.put(("reset", old, -1, None))
        self._in_flight += self.n_workers
        self._keep_from_m = 0
        return self.wait_idle(f"reset of segment {old}", timeout_s)

    def outputs(self, timeout: float = 0.0) -> list[WorkerOutput | MeasureReply]:
        """What the workers have produced so far (waits up to ``timeout`` for the first)."""
        if self.n_workers == 0:
            out, self._pending = self._pending, []
            return out
        got = []
        try:
            item = self.q_out.get(timeout=timeout) if timeout > 0 else self.q_out.get_nowait()
            while True:
                if isinstance(item, tuple) and item[0] == "done":
                    self._done += 1
                else:
                    got.append(item)
                    self._in_flight -= 1
                item = self.q_out.get_nowait()
        except queue.Empty:
            pass
        return got

    def close(self, timeout: float = 60.0) -> list[WorkerOutput | MeasureReply]:
        """Flush every chain (unless :meth:`flush` did) and stop the workers; returns their
        last outputs."""
        if self.n_workers == 0:
            last: list[WorkerOutput | MeasureReply] = (
                [] if self._flushed else [self._local.run(0, -1, None, flush=True, segment=self.segment)]
            )
            out = self._pending + last
            self._pending = []
            return out
        for q in self.q_in:
            q.put(None)
        got: list[WorkerOutput | MeasureReply] = []
        t_end = time.monotonic() + timeout
        while self._done < self.n_workers and time.monotonic() < t_end:
            got += self.outputs(timeout=0.2)
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        return got
