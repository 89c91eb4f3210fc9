"""All inputs, both cores: the receive chains of every feeder-phase input, spread over processes.

    source blocks (n, inputs) --> [worker 0: inputs 0, 2, 4, ...] --\\
                              --> [worker 1: inputs 1, 3, 5, ...] ----> results + baseband --> Grouper

Each worker runs one :class:`dsp.rx.chain.InputChain` per input it owns. Queues are bounded
(``queue_blocks``), so a slow consumer stalls the source instead of growing memory (backpressure:
for a live ZeroMQ source the socket's high-water mark then drops, and the gap is counted there).
Workers send back the bursts they demodulated, their progress (input samples consumed) and the
channel basebands (complex64, 1.5 kHz per channel) so that the grouper can measure a decoded
burst on the inputs where it stayed below detection.

``workers=0`` runs everything in the calling process (tests, profiling).
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import time
from dataclasses import dataclass, field

import numpy as np

from dsp.air import params as P
from dsp.rx.demod import BurstResult
from dsp.rx.channelizer import Channelizer
from dsp.rx.chain import InputChain, deinterleave

log = logging.getLogger("gla.pipeline")


@dataclass
class WorkerOutput:
    worker: int
    first_sample: int  # of the block these results belong to
    n: int  # samples per input consumed
    results: list[tuple[int, BurstResult]] = field(default_factory=list)
    baseband: dict[int, np.ndarray] = field(default_factory=dict)  # input -> (channels, m) complex64
    m_start: dict[int, int] = field(default_factory=dict)  # input -> baseband index of column 0
    stats: dict[int, dict] = field(default_factory=dict)
    fund: dict[int, list] = field(default_factory=dict)  # input -> [(block index, f0, fundamental RMS)]


class _Chains:
    """The chains of one worker's inputs."""

    def __init__(self, plan: P.ChannelPlan, inputs: list[int], fs_hz: float) -> None:
        self.plan, self.inputs, self.fs_hz = plan, inputs, fs_hz
        self.chains = {i: InputChain(plan, i, fs_hz) for i in inputs}

    def reset(self) -> None:
        for c in self.chains.values():
            c.reset()

    def run(self, worker: int, first_sample: int, block: np.ndarray, flush: bool = False) -> WorkerOutput:
        out = WorkerOutput(worker, first_sample, block.shape[0] if block is not None else 0)
        rows = deinterleave(block) if block is not None and block.shape[0] else None
        for j, i in enumerate(self.inputs):
            ch = self.chains[i]
            m0 = ch.chan.m_out
            if rows is not None:
                out.results += ch.process(rows[j])
            if flush:
                out.results += ch.flush()
            m1 = ch.chan.m_out
            # the newest baseband of every channel (what the ring gained in this call)
            gained = m1 - m0
            if gained > 0:
                out.baseband[i] = np.stack([r[-gained:] for r in ch.ring]).astype(np.complex64)
                out.m_start[i] = m1 - gained
            out.stats[i] = vars(ch.stats).copy()
            # every detection of a burst that ended before this input sample has been released
            out.stats[i]["horizon"] = (10**18 if flush else
                                       int(Channelizer.input_index(min(d.state.buf_start for d in ch.dets))))
            n_blk = len(ch.comb.f0_log)
            out.fund[i] = (ch.comb.log_start, ch.comb.f0_log[-4:], ch.comb.fund_log[-4:], n_blk)
        return out


def _worker_main(worker: int, plan: P.ChannelPlan, inputs: list[int], fs_hz: float, q_in, q_out) -> None:
    chains = _Chains(plan, inputs, fs_hz)
    while True:
        item = q_in.get()
        if item is None:
            q_out.put(chains.run(worker, -1, None, flush=True))
            q_out.put(("done", worker))
            return
        kind, first_sample, block = item
        if kind == "reset":
            chains.reset()
            continue
        q_out.put(chains.run(worker, first_sample, block))


class Pipeline:
    """Feed blocks of all inputs; collect :class:`WorkerOutput` through :meth:`outputs`."""

    def __init__(self, plan: P.ChannelPlan, n_inputs: int, fs_hz: float = 48000.0, workers: int = 2,
                 queue_blocks: int = 4) -> None:
        self.plan, self.n_inputs, self.fs_hz = plan, n_inputs, fs_hz
        self.n_workers = max(0, min(workers, n_inputs))
        groups = max(1, self.n_workers)
        self.assign = [list(range(w, n_inputs, groups)) for w in range(groups)]
        self._pending: list[WorkerOutput] = []
        if self.n_workers == 0:
            self._local = _Chains(plan, self.assign[0], fs_hz)
            return
        ctx = mp.get_context("fork")
        self.q_in = [ctx.Queue(maxsize=queue_blocks) for _ in range(self.n_workers)]
        self.q_out = ctx.Queue()
        self.procs = [ctx.Process(target=_worker_main, args=(w, plan, self.assign[w], fs_hz, self.q_in[w], self.q_out),
                                  name=f"gla-worker-{w}", daemon=True) for w in range(self.n_workers)]
        for p in self.procs:
            p.start()
        self._done = 0

    def feed(self, first_sample: int, block: np.ndarray) -> None:
        """Send one block (n, n_inputs); blocks while the workers' queues are full."""
        if block.ndim != 2 or block.shape[1] != self.n_inputs:
            raise ValueError(f"expected a block of shape (n, {self.n_inputs}), got {block.shape}")
        if self.n_workers == 0:
            self._pending.append(self._local.run(0, first_sample, np.asarray(block, dtype=np.float64)))
            return
        for w in range(self.n_workers):
            part = np.ascontiguousarray(block[:, self.assign[w]], dtype=np.float32)
            self.q_in[w].put(("block", first_sample, part))

    def reset(self) -> None:
        """A discontinuity in the stream: every chain starts afresh."""
        if self.n_workers == 0:
            self._local.reset()
            return
        for q in self.q_in:
            q.put(("reset", 0, None))

    def outputs(self, timeout: float = 0.0) -> list[WorkerOutput]:
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
                item = self.q_out.get_nowait()
        except queue.Empty:
            pass
        return got

    def close(self, timeout: float = 60.0) -> list[WorkerOutput]:
        """Flush every chain and stop the workers; returns their last outputs."""
        if self.n_workers == 0:
            out = self._pending + [self._local.run(0, -1, None, flush=True)]
            self._pending = []
            return out
        for q in self.q_in:
            q.put(None)
        got = []
        t_end = time.monotonic() + timeout
        while self._done < self.n_workers and time.monotonic() < t_end:
            got += self.outputs(timeout=0.2)
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        return got
