"""Replay a recorded capture through the receiver, faster than real time.

    gla replay captures/demo_small            # table of messages and their inferred feeder/phase
    gla replay out/demo/demo --post http://127.0.0.1:8000 --import-truth   # into a local platform

Reads the capture in blocks (its sidecar gives the channel -> bus/feeder/phase map and the start
time), runs all inputs through the receive chains on every core, groups the copies into bundles,
archives them (JSONL per day, and SigMF annotations beside the capture copy in ``--out``), and
optionally spools and posts them to the Computing Platform (:mod:`receiver.replay_post`). When
the capture has a ground-truth file (``STEM.truth.json``), the summary scores messages and
feeder/phase against it.

A capture that cannot be replayed as given (see :mod:`receiver.contracts.capture`), or whose
sample rate the receive chain does not take, raises
:class:`~receiver.contracts.capture.CaptureError` before anything is decoded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dsp.air import params as P
from receiver.archive import BundleArchive, write_sigmf_annotations
from receiver.contracts.bundle import Bundle
from receiver.contracts.capture import CaptureError, read_truth
from receiver.grouping import Grouper, InputInfo
from receiver.pipeline import Pipeline
from receiver.timings import FirstBlock, mark

log = logging.getLogger("gla.replay")

#: The one input rate the receive chain takes (its channelizer is designed for it).
RECEIVER_FS_HZ = 48000
#: What scoring reads from each transmission of a ground-truth file.
TRUTH_TX_KEYS = (
    *("tx_id", "channel", "code", "start_sample", "first_sample", "end_sample", "frame_hex"),
    *("bus", "feeder", "phase", "ebn0_db"),
)


@dataclass
class ReplayResult:
    capture: str
    bundles: list[Bundle]
    seconds: float
    wall_s: float
    n_inputs: int
    archive_dir: Path | None = None
    score: dict | None = None
    stats: dict = field(default_factory=dict)
    error: str | None = None  # a truncated capture: what was readable was still processed

    @property
    def realtime_factor(self) -> float:
        return self.seconds / self.wall_s if self.wall_s > 0 else float("inf")


def inputs_from_meta(meta) -> list[InputInfo]:
    out = []
    for c in meta.channels:
        ph = c["phase"] if isinstance(c["phase"], str) else "ABC"[int(c["phase"])]
        out.append(InputInfo(int(c["index"]), int(c["bus"]), int(c["feeder"]), ph))
    return out


def replay(
    capture: str | Path,
    *,
    workers: int = 2,
    out_dir: str | Path | None = None,
    receiver_id: str = "rx-replay",
    substation_id: str = "sub-1",
    plan: P.ChannelPlan | None = None,
    progress: bool = True,
    block_s: float = 1.0,
    on_bundle=None,
    duration_s: float | None = None,
    start_s: float = 0.0,
) -> ReplayResult:
    from tqdm import tqdm

    from receiver.sources import CaptureSource, CaptureTruncatedError

    src = CaptureSource(capture, block_s=block_s, duration_s=duration_s, start_s=start_s)
    meta = src.meta
    try:
        if meta.fs_hz != RECEIVER_FS_HZ:
            raise CaptureError(
                f"{meta.meta_path}: core:sample_rate {meta.fs_hz} Hz: the receive chain takes "
                f"{RECEIVER_FS_HZ} Hz captures only (resample the recording)"
            )
        truth = _read_truth_for(meta.meta_path)
    except BaseException:
        src.close()
        raise
    mark("source")
    plan = plan or P.ChannelPlan.default(meta.grid_hz)
    fs = float(meta.fs_hz)
    t0 = meta.start_time_utc
    if isinstance(t0, str):
        t0 = datetime.fromisoformat(t0.replace("Z", "+00:00"))
    archive = BundleArchive(Path(out_dir) / "bundles") if out_dir else None

    def sink(b: Bundle) -> None:
        if on_bundle:  # first: the caller's spool (durable) before the archive
            on_bundle(b)
        if archive:
            archive.write(b)

    # a replayed bundle is "made" when its burst ended in stream time: the same capture gives the
    # same bundles, byte for byte, so re-posting a replay is idempotent at the platform
    burst_s = P.burst_duration_s()
    grouper = Grouper(
        plan,
        inputs_from_meta(meta),
        receiver_id=receiver_id,
        substation_id=substation_id,
        fs_hz=fs,
        t0_utc=t0 or datetime.now(UTC),
        on_bundle=sink,
        created_clock=lambda start_unix: datetime.fromtimestamp(start_unix + burst_s, UTC),
    )
    mark("grouper")
    # the workers read and decode their own columns of the file when they can, and measure the
    # decoded bursts on the baseband they hold: the parent does no per-sample work
    spec = src.column_spec() if workers > 0 else None
    pipe = Pipeline(plan, meta.n_channels, fs, workers=workers, measure_in_workers=True, reader=spec)
    if pipe.measure_in_workers:
        grouper.measurer = pipe
    mark("pipeline")
    first_block = FirstBlock(pipe.n_workers)
    total = src.total_frames
    bar = tqdm(
        total=total, unit="sample", unit_scale=True, disable=not progress, desc=f"replay {Path(str(capture)).name}"
    )
    t_wall = time.perf_counter()
    n_done = 0
    error = None

    def take(outs) -> None:
        nonlocal error
        for o in outs:
            first_block.seen(o)
            if getattr(o, "clipped", 0):
                src.stats.clipped += o.clipped
            if getattr(o, "error", None) and error is None:
                error = o.error
            grouper.add_output(o)

    try:
        try:
            if spec is not None:
                for first, n, discontinuity in src.frame_ranges():
                    if discontinuity:
                        take(pipe.reset())
                        grouper.reset(first, pipe.segment)
                    pipe.feed_frames(first, n)
                    take(pipe.outputs())
                    n_done += n
                    bar.update(n)
                    if error is not None:
                        break
            else:
                for blk in src:
                    if blk.discontinuity:
                        # a new segment: every output of the old one (waited for) goes to the old
                        # one's bundles, which are finished before the clock is re-anchored
                        take(pipe.reset())
                        grouper.reset(blk.first_sample, pipe.segment)
                    pipe.feed(blk.first_sample, blk.samples)
                    take(pipe.outputs())
                    n_done += blk.samples.shape[0]
                    bar.update(blk.samples.shape[0])
        except CaptureTruncatedError as e:  # keep everything read before the damage (logged by the source)
            error = str(e)
        take(pipe.flush())
        grouper.flush()
        while grouper.waiting:  # the last measurements, from the workers
            got = pipe.wait_idle("the last measurements")
            if not got:
                raise RuntimeError(f"replay: {grouper.waiting} bundles wait for measurements no worker was asked for")
            take(got)
        take(pipe.close())
    finally:
        bar.close()
        src.close()
        if archive:
            archive.close()
    wall = time.perf_counter() - t_wall
    res = ReplayResult(
        str(capture),
        grouper.bundles,
        n_done / fs,
        wall,
        meta.n_channels,
        Path(out_dir) if out_dir else None,
        stats={"grouper": grouper.stats, "source": vars(src.stats)},
        error=error,
    )
    if truth is not None:
        res.score = score_against_truth(grouper.bundles, truth, fs, src.first_frame + n_done, src.first_frame)
    if out_dir:
        from dsp.tx.modulator import burst_extent  # noqa: F401  (documenting where the span comes from)

        span = int(P.burst_duration_s() * fs)
        write_sigmf_annotations(
            src.meta.meta_path,
            grouper.bundles,
            Path(out_dir) / (Path(src.meta.meta_path).stem + ".annotated.sigmf-meta"),
            span,
        )
    return res


def _read_truth_for(meta_path: Path) -> dict | None:
    """The capture's ground truth if it has a truth file, checked for what scoring reads."""
    path = meta_path.with_name(meta_path.name.removesuffix(".sigmf-meta") + ".truth.json")
    if not path.exists():
        return None
    truth = read_truth(path)
    for i, t in enumerate(truth["transmissions"]):
        if not isinstance(t, dict):
            raise CaptureError(f"{path}: transmissions[{i}]: must be an object")
        missing = [k for k in TRUTH_TX_KEYS if k not in t]
        if missing:
            raise CaptureError(f"{path}: transmissions[{i}]: missing {', '.join(missing)}")
    return truth


def score_against_truth(bundles: list[Bundle], truth: dict, fs: float, n_samples: int, first_sample: int = 0) -> dict:
    """Messages decoded against sent, and feeder/phase inference against the true input (only
    transmissions wholly inside the replayed stretch count)."""
    txs = [t for t in truth["transmissions"] if t["end_sample"] <= n_samples and t["first_sample"] >= first_sample]
    used = set()
    decoded = located = wrong = ambiguous = 0
    rows = []
    for t in txs:
        match = None
        for k, b in enumerate(bundles):
            if k in used or b.channel != t["channel"] or b.code != t["code"]:
                continue
            if abs(b.copies[0].start_sample - t["start_sample"]) < 100 or any(
                abs(c.start_sample - t["start_sample"]) < 100 for c in b.copies
            ):
                match = k
                break
        ok = loc_ok = amb = False
        if match is not None:
            used.add(match)
            b = bundles[match]
            ok = b.crc_ok and b.frame_hex == t["frame_hex"]
            if b.inferred:
                amb = b.inferred.ambiguous
                loc = b.inferred.location
                loc_ok = (loc.bus, loc.feeder, loc.phase) == (t["bus"], t["feeder"], t["phase"])
        decoded += ok
        if ok:
            if amb:
                ambiguous += 1
            elif loc_ok:
                located += 1
            else:
                wrong += 1
        rows.append({"tx_id": t["tx_id"], "decoded": ok, "located": loc_ok, "ambiguous": amb, "ebn0_db": t["ebn0_db"]})
    n = len(txs)
    return {
        "sent": n,
        "decoded": decoded,
        "message_success_rate": decoded / n if n else None,
        "located": located,
        "ambiguous": ambiguous,
        "wrong_location": wrong,
        "feeder_phase_accuracy": located / decoded if decoded else None,
        "extra_bundles": len(bundles) - len(used),
        "rows": rows,
    }


def print_replay_summary(res: ReplayResult, limit: int = 30) -> None:
    print(
        f"replayed {res.capture}: {res.n_inputs} inputs x {res.seconds:.1f} s in {res.wall_s:.1f} s "
        f"({res.realtime_factor:.1f}x real time), {len(res.bundles)} bundles "
        f"({sum(b.crc_ok for b in res.bundles)} with a clean frame)"
    )
    print(
        f"{'arrival (UTC)':<24} {'ch':>2} {'code':>4} {'kind':<21} {'hub_id':>11} {'copies':>6} "
        f"{'inferred':<10} {'conf':>6} {'margin':>7}"
    )
    for b in sorted(res.bundles, key=lambda b: b.copies[0].start_sample)[:limit]:
        inf = b.inferred
        loc = f"b{inf.location.bus} f{inf.location.feeder} {inf.location.phase}" if inf else "-"
        flag = "?" if inf and inf.ambiguous else ""
        print(
            f"{b.copies[0].arrival_utc.strftime('%Y-%m-%d %H:%M:%S.%f')[:23]:<24} {b.channel:>2} {b.code:>4} "
            f"{(b.kind or ('crc failed' if not b.crc_ok else '?')):<21} {str(b.hub_id or '-'):>11} {len(b.copies):>6} "
            f"{loc + flag:<10} {inf.confidence if inf else 0:6.3f} {inf.margin_db if inf else 0:6.1f}dB"
        )
    if len(res.bundles) > limit:
        print(
            f"... {len(res.bundles) - limit} more" + (f" (all in {res.archive_dir}/bundles)" if res.archive_dir else "")
        )
    if res.error:
        print(f"error: {res.error}")
    if res.score:
        s = res.score
        print(
            f"against the truth: {s['decoded']}/{s['sent']} messages decoded "
            f"({100 * (s['message_success_rate'] or 0):.1f} %), feeder/phase right for {s['located']}, "
            f"ambiguous {s['ambiguous']}, wrong {s['wrong_location']}; "
            f"{s['extra_bundles']} bundles matched nothing sent"
        )
