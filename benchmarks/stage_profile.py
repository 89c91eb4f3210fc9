"""Where a replay's time goes, stage by stage: the product's own objects on one core.

A stretch of a capture goes through what ``gla replay`` runs, in one process pinned to one core,
with a clock around each stage: the column reader (:class:`receiver.sources.columns.ColumnReader`:
reading the file and decoding the 24-bit samples, all inputs), each input's
:class:`dsp.rx.chain.InputChain` split as the throughput benchmark splits it (comb; channelizer
with the impulse blanker; detector bank; demodulation and decoding of complete bursts), the
:class:`receiver.grouping.Grouper` (clusters, bundles, the measurement requests) and the
measurements of decoded bursts on every input (:class:`receiver.measuring.WorkerMeasurer`: the
baseband history and the data-aided fits). In a replay the first two and the last run in the
workers (two cores), the grouper in the parent. One process here: no queues, no pickling, no
start-up (all of that is the difference between this and the replay's CPU seconds).

Each stage is timed by this thread's CPU clock (on a shared machine the wall clock also counts
the time other jobs take the core). ``run(stem, seconds)`` returns CPU seconds per stage (and
their shares, and ns per input sample); the benchmark runs it in a spawned process
(``profile_in_child``).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

STAGES = (
    "file reading/decoding",
    "comb",
    "channelizer+blanker",
    "detector bank",
    "demodulation+decoding",
    "grouping",
    "measurements",
)


class _LocalMeasurer:
    """The grouper's measurer, here: requests are queued and answered between blocks, as the
    workers answer them between blocks; the baseband kept from ``keep_from`` is applied after
    the requests already queued, as a worker applies it with the next block."""

    def __init__(self, meas) -> None:
        self.meas = meas
        self.requests: list = []
        self.keep_m: int | None = None

    def measure(self, req) -> None:
        self.requests.append(req)

    def keep_from(self, m: int, segment: int) -> None:
        if segment == self.meas.segment:
            self.keep_m = int(m)


class _Timed:
    """A method of a chain's object with this thread's CPU time around every call (``spent``):
    the detector bank's share, on the same clock as the other stages (the chain's own
    ``det_time_s`` is wall-clock time)."""

    def __init__(self, fn) -> None:
        self.fn, self.spent = fn, 0.0

    def __call__(self, *a, **kw):
        t = time.thread_time()
        try:
            return self.fn(*a, **kw)
        finally:
            self.spent += time.thread_time() - t


def run(stem: str | Path, seconds: float, block_s: float = 1.0) -> dict:
    """The first ``seconds`` of capture ``stem`` through every stage (see the module docstring)."""
    from dsp.air import params as P
    from dsp.rx.chain import InputChain, warm_up
    from receiver.grouping import Grouper
    from receiver.measuring import WorkerMeasurer
    from receiver.pipeline import WorkerOutput, _max_keep
    from receiver.replay import inputs_from_meta
    from receiver.sources import CaptureSource

    src = CaptureSource(stem, block_s=block_s, duration_s=seconds)
    meta = src.meta
    fs = float(meta.fs_hz)
    n_in = meta.n_channels
    spec = src.column_spec()
    if spec is None:
        src.close()
        raise ValueError(f"{stem}: not an integer PCM WAV/RF64 capture (the workers could not read its columns)")
    plan = P.ChannelPlan.default(meta.grid_hz)
    warm_up(plan, fs)
    reader = spec.open(list(range(n_in)))
    chains = [InputChain(plan, i, fs) for i in range(n_in)]
    det = [_Timed(c.bank.process) for c in chains] + [_Timed(c.bank.flush) for c in chains]
    for c, tp, tf in zip(chains, det[:n_in], det[n_in:], strict=True):
        c.bank.process, c.bank.flush = tp, tf  # type: ignore[method-assign]  # (per instance: the chain calls these)

    def det_s() -> float:
        return sum(d.spent for d in det)

    meas = WorkerMeasurer(plan, list(range(n_in)), fs, _max_keep(fs))
    local = _LocalMeasurer(meas)
    burst_s = P.burst_duration_s()
    t0 = meta.start_time_utc
    if isinstance(t0, str):
        t0 = datetime.fromisoformat(t0.replace("Z", "+00:00"))
    grouper = Grouper(
        plan,
        inputs_from_meta(meta),
        receiver_id="rx-profile",
        substation_id="sub-1",
        fs_hz=fs,
        t0_utc=t0 or datetime.now(UTC),
        created_clock=lambda start_unix: datetime.fromtimestamp(start_unix + burst_s, UTC),
        measurer=local,
    )
    st = dict.fromkeys(STAGES, 0.0)
    reader.read(src.first_frame, min(1024, src.total_frames))  # the decoder's kernel loaded before the clock
    # each stage's CPU time (this thread's): on a shared machine the clock also counts the time
    # other jobs take the core; the pass's clock time is reported beside it
    clock = time.thread_time
    cpu0, wall0 = clock(), time.perf_counter()

    def answer() -> None:
        while local.requests:
            reqs, local.requests = local.requests, []
            for req in reqs:
                t = clock()
                rep = meas.answer(0, req)
                st["measurements"] += clock() - t
                t = clock()
                grouper.add_output(rep)
                st["grouping"] += clock() - t
        if local.keep_m is not None:
            t = clock()
            meas.keep_from(local.keep_m)
            local.keep_m = None
            st["measurements"] += clock() - t

    def group(first: int, n: int, records: list) -> None:
        t = clock()
        for rec in records:  # as a worker does: the baseband stays with the measurer
            meas.take(rec.input_index, rec.baseband_start, rec.baseband)
            rec.baseband = rec.baseband[:, :0]
        st["measurements"] += clock() - t
        t = clock()
        grouper.add_output(WorkerOutput(0, first, n, records))
        st["grouping"] += clock() - t
        answer()

    n_samples = 0
    for first, n, _ in src.frame_ranges():
        t = clock()
        rows, _clipped = reader.read(first, n)
        st["file reading/decoding"] += clock() - t
        records = []
        for i, chain in enumerate(chains):
            t = clock()
            y = chain.process_comb(rows[i])
            t1 = clock()
            bb = chain.chan.process(y)
            t2 = clock()
            d0 = det_s()
            records.append(chain.process_baseband(bb))
            t3 = clock()
            d = det_s() - d0
            st["comb"] += t1 - t
            st["channelizer+blanker"] += t2 - t1
            st["detector bank"] += d
            st["demodulation+decoding"] += (t3 - t2) - d
        group(first, n, records)
        n_samples += n
    records = []
    for chain in chains:
        t = clock()
        d0 = det_s()
        records.append(chain.flush())
        d = det_s() - d0
        st["detector bank"] += d
        st["demodulation+decoding"] += clock() - t - d
    group(-1, 0, records)
    t = clock()
    grouper.flush()
    st["grouping"] += clock() - t
    answer()
    wall, cpu = time.perf_counter() - wall0, clock() - cpu0
    reader.close()
    src.close()
    stream_s = n_samples / fs
    total = sum(st.values())
    return {
        "capture": str(stem),
        "seconds": round(stream_s, 3),
        "inputs": n_in,
        "stage_s": {k: round(v, 4) for k, v in st.items()},
        "stage_share": {k: round(v / total, 4) for k, v in st.items()},
        "stage_ns_per_input_sample": {k: round(v / (n_samples * n_in) * 1e9, 3) for k, v in st.items()},
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "realtime_factor_1core": round(stream_s / wall, 2),
        "cpu_realtime_factor_1core": round(stream_s / cpu, 2),
        "bundles": len(grouper.bundles),
        "bundles_crc_ok": sum(b.crc_ok for b in grouper.bundles),
        "measurement_requests": grouper._req_id,
        "how": "the product's objects in one process pinned to one core, 1-s blocks: column reader, "
        "each input's chain (comb, channelizer with blanker, detector bank, demodulation), grouper, "
        "measurements of decoded bursts on every input of the bus; no queues, pickling or start-up",
    }


def _child(stem: str, seconds: float, q) -> None:
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    try:
        q.put(run(stem, seconds))
    except Exception as e:  # (reported by the parent: a benchmark stage that failed says why)
        q.put({"error": f"{type(e).__name__}: {e}"})


def profile_in_child(stem: str | Path, seconds: float) -> dict:
    """:func:`run` in a fresh process on one core (one BLAS thread: see bench_receiver.simulate_speed)."""
    import multiprocessing as mp

    from benchmarks.bench_product import one_thread_env

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(str(stem), float(seconds), q))
    with one_thread_env():
        p.start()
    res = q.get()
    p.join()
    if "error" in res:
        raise RuntimeError(f"stage profile of {stem}: {res['error']}")
    return res
