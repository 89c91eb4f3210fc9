"""Many resynchronisations mid-stream: ``python benchmarks/bench_resync.py [--resyncs 12] [--seed 1]``

A simulated capture (one bus, two feeders: 6 CT inputs, a burst on each of the three channels
every 3.6 s) is streamed over ZeroMQ in the GLA framing, 0.1 s per message, into the receiver
service (:func:`receiver.service.run_service`, the live source path). At random message
boundaries the stream jumps: the next message's sequence number and sample index skip 2.1 to
5 s, as if that many messages had been lost, so the service's source gives up on the gap
(longer than its 2 s fill limit) and resynchronises: the chains restart and the grouping starts
a new segment. No captured sample is skipped: the jumps are in the stream's numbering only.

The same samples are then replayed offline segment by segment (:func:`receiver.replay.replay`
of each segment's stretch of the capture, on its own), and every bundle of the service is
compared with the bundle of the replay of its segment: same transmission (channel, code, start
sample, frame), same copies and levels, same inferred bus/feeder/phase and ambiguity flag. A
bundle whose copies' start samples fall in two segments is a mismatch too (one segment's
outputs taken for another's).

``run(n_resyncs, ...) -> (bundles compared, mismatches)`` is for the reliability benchmark;
:func:`run_detailed` also returns what differed. ``__main__`` prints it as JSON.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BLOCK_S = 0.1  # one GLA message
GAP_MESSAGES = (21, 50)  # skipped per jump: 2.1 .. 5.0 s, beyond the source's 2 s gap fill
MIN_SEGMENT_MESSAGES = 15  # between two jumps


def scenario_text(duration_s: float, seed: int) -> str:
    """The simulated capture: explicit bursts only, staggered over the three channels."""
    tx = []
    t, k = 0.3, 0
    while t + 0.7 + 3.4 < duration_s:
        for ch in range(3):
            tx.append(
                f"[[transmissions]]\nat_s = {t + 0.35 * ch:.2f}\nhub = {(3 * k + ch) % 12}\n"
                f'kind = "scheduled"\nchannel = {ch}\ncode = {k % 2}\n'
            )
        t, k = t + 3.6, k + 1
    return (
        f'[scenario]\nname = "resync"\nseed = {seed}\nduration_s = {duration_s}\n'
        "start_time_utc = 2025-03-03T14:00:00Z\nfs_hz = 48000\ngrid_hz = 60\n"
        'capture_subtype = "PCM_24"\n'
        "[substation]\nbuses = 1\nfeeders_per_bus = 2\n"
        "[channel]\nnoise_floor_dbc = 85.0\nimpulse_rate_per_feeder_per_s = 0.05\ninterferers = 3\n"
        "[hubs]\ncount = 12\nmeters_per_hub = [4, 8]\nlevel_db = [-106.0, -100.0]\nclock_ppm = 100.0\n"
        "jitter_s = 0.0\nlaterals_per_feeder = 3\nscheduled_reports_per_day = 0.0\n"
        "alert_rate_per_hub_per_day = 0.0\n\n" + "\n".join(tx)
    )


def make_capture(out_stem: str | Path, duration_s: float = 60.0, seed: int = 11) -> Path:
    """Simulate the capture (``STEM.wav`` + ``.sigmf-meta`` + ``.truth.json``); returns the stem."""
    from gridsim.scenario import parse_scenario
    from gridsim.simulate import run_scenario

    run_scenario(parse_scenario(scenario_text(duration_s, seed), "resync.toml"), out_stem, progress=False)
    return Path(out_stem)


@dataclass(frozen=True)
class Segment:
    capture_first: int  # first frame of the segment in the capture
    n_frames: int
    stream_first: int  # its first sample index in the stream the service sees

    @property
    def shift(self) -> int:
        """Stream index minus capture index inside this segment."""
        return self.stream_first - self.capture_first

    @property
    def stream_end(self) -> int:
        return self.stream_first + self.n_frames


def plan_jumps(n_messages: int, n_resyncs: int, rng: np.random.Generator) -> dict[int, int]:
    """{message index: messages skipped before it}: ``n_resyncs`` random cut points at least
    MIN_SEGMENT_MESSAGES apart (and from both ends), each skipping GAP_MESSAGES."""
    slots = n_messages - 2 * MIN_SEGMENT_MESSAGES - (n_resyncs - 1) * MIN_SEGMENT_MESSAGES
    if slots < n_resyncs:
        raise ValueError(f"{n_messages} messages cannot hold {n_resyncs} resynchronisations")
    free = np.sort(rng.choice(slots, size=n_resyncs, replace=False))
    cuts = [MIN_SEGMENT_MESSAGES + int(f) + j * MIN_SEGMENT_MESSAGES for j, f in enumerate(free)]
    return {c: int(rng.integers(GAP_MESSAGES[0], GAP_MESSAGES[1] + 1)) for c in cuts}


def gapped_stream(stem: str | Path, jumps: dict[int, int]) -> tuple[list[bytes], list[Segment]]:
    """The capture as GLA messages (float32, BLOCK_S each) whose numbering jumps at ``jumps``,
    ending with an end-of-stream message; and the segments the receiver should see."""
    from receiver.contracts import zmq_framing as zf
    from receiver.sources import CaptureSource

    src = CaptureSource(stem, block_s=BLOCK_S)
    meta = src.meta
    fs, full = float(meta.fs_hz), 1.0 / meta.scale
    stream_id, session = src.stream_id[:16], secrets.randbits(32)
    msgs: list[bytes] = []
    segments: list[Segment] = []
    skipped = 0  # messages skipped so far
    t0 = None
    seq = 0
    try:
        for i, blk in enumerate(src):
            if t0 is None:
                assert blk.time_utc is not None
                t0 = blk.time_utc
            if i in jumps or i == 0:
                skipped += jumps.get(i, 0)
                segments.append(Segment(blk.first_sample, 0, blk.first_sample + skipped * src.block_frames))
            seg = segments[-1]
            segments[-1] = Segment(seg.capture_first, seg.n_frames + blk.n_frames, seg.stream_first)
            seq = i + skipped
            first = blk.first_sample + skipped * src.block_frames
            raw, _ = zf.encode_samples(blk.samples, "float32", full)
            when = zf.time_to_ns(t0 + timedelta(microseconds=round(first * 1e6 / fs)))
            h = zf.GlaHeader(stream_id, seq, first, fs, blk.n_channels, "float32", full, when, 0, session)
            msgs.append(zf.pack_message(h, raw))
        end = segments[-1].stream_end
        raw0 = np.zeros((0, meta.n_channels), dtype=np.float32)
        h = zf.GlaHeader(
            stream_id, seq + 1, end, fs, meta.n_channels, "float32", full, None, zf.FLAG_END_OF_STREAM, session
        )
        msgs.append(zf.pack_message(h, raw0))
    finally:
        src.close()
    return msgs, segments


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_bundles(stem: str | Path, msgs: list[bytes], end_sample: int, data_dir: Path, workers: int = 2):
    """Stream ``msgs`` into :func:`receiver.service.run_service` (PUSH -> PULL, as fast as it
    takes them) until it has processed the stream up to ``end_sample``; returns its archived
    bundles and its summary."""
    import zmq

    from receiver.archive import read_archive
    from receiver.service import ReceiverConfig, run_service

    meta = json.loads(Path(f"{stem}.sigmf-meta").read_text())
    chans = [
        {k: c[k] for k in ("index", "bus", "feeder", "phase")}
        for c in meta["global"].get("gla:channels", meta.get("gla:channels"))
    ]
    ctx: zmq.Context = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.setsockopt(zmq.SNDTIMEO, 120_000)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    cfg = ReceiverConfig.model_validate(
        {
            "receiver": {"id": "rx-resync", "substation_id": "sub-1", "workers": workers, "data_dir": str(data_dir)},
            "input": {
                "endpoint": f"tcp://127.0.0.1:{port}",
                "n_channels": len(chans),
                "sample_rate_hz": float(meta["global"]["core:sample_rate"]),
                "channels": chans,
            },
            "http": {"listen": f"127.0.0.1:{_free_port()}"},
        }
    )
    stop = threading.Event()
    result: dict = {}
    fs = cfg.input.sample_rate_hz
    th = threading.Thread(
        target=lambda: result.update(run_service(cfg, stop=stop, max_seconds=end_sample / fs)), daemon=True
    )
    th.start()
    try:
        for m in msgs:
            push.send(m)
        th.join(timeout=600)
    finally:
        stop.set()
        th.join(timeout=60)
        push.close()
    if th.is_alive() or not result:
        raise RuntimeError("the receiver service did not finish the stream")
    bundles = [b for f in sorted((data_dir / "archive").glob("*.jsonl")) for b in read_archive(f)]
    return bundles, result


def replay_segments(stem: str | Path, segments: list[Segment], workers: int = 2):
    """Each segment replayed on its own; bundles with their start samples moved to the stream's
    numbering."""
    from receiver.replay import replay

    fs = float(json.loads(Path(f"{stem}.sigmf-meta").read_text())["global"]["core:sample_rate"])
    out = []
    for seg in segments:
        start_s, duration_s = seg.capture_first / fs, seg.n_frames / fs
        r = replay(stem, workers=workers, progress=False, block_s=BLOCK_S, start_s=start_s, duration_s=duration_s)
        for b in r.bundles:
            b = b.model_copy(deep=True)
            for c in b.copies:
                c.start_sample += seg.shift
            out.append(b)
    return out


@dataclass
class ResyncResult:
    compared: int = 0
    mismatches: int = 0
    service_bundles: int = 0
    offline_bundles: int = 0
    resyncs: int = 0
    mixed: int = 0  # service bundles with copies from two segments
    differences: list[str] = field(default_factory=list)


def _key(b) -> tuple:
    return (b.channel, b.code, min(c.start_sample for c in b.copies))


def _summary(b) -> dict:
    inf = b.inferred
    return {
        "crc_ok": b.crc_ok,
        "frame_hex": b.frame_hex,
        "location": (inf.location.bus, inf.location.feeder, inf.location.phase) if inf else None,
        "ambiguous": inf.ambiguous if inf else None,
        "copies": sorted((c.input_index, c.start_sample, round(c.level_db, 1)) for c in b.copies),
    }


def compare(service: list, offline: list, segments: list[Segment]) -> ResyncResult:
    """Bundle by bundle (matched on channel, code and first copy's start sample): what differs."""
    res = ResyncResult(service_bundles=len(service), offline_bundles=len(offline))

    def seg_of(sample: int) -> int | None:
        for k, s in enumerate(segments):
            if s.stream_first <= sample < s.stream_end:
                return k
        return None

    for b in service:
        segs = {seg_of(c.start_sample) for c in b.copies}
        if len(segs) != 1 or None in segs:
            res.mixed += 1
            res.differences.append(f"bundle {_key(b)}: copies in segments {sorted(map(str, segs))}")
    want = {_key(b): b for b in offline}
    got = {_key(b): b for b in service}
    for k in sorted(set(want) | set(got)):
        if k not in got:
            res.differences.append(f"bundle {k}: made by the offline replay only")
            res.mismatches += 1
            continue
        if k not in want:
            res.differences.append(f"bundle {k}: made by the service only")
            res.mismatches += 1
            continue
        res.compared += 1
        a, b = _summary(got[k]), _summary(want[k])
        if a != b:
            res.mismatches += 1
            diff = {f: (a[f], b[f]) for f in a if a[f] != b[f]}
            res.differences.append(f"bundle {k}: service != offline: {diff}")
    res.mismatches += res.mixed
    return res


def run_detailed(
    n_resyncs: int = 12,
    *,
    duration_s: float = 60.0,
    seed: int = 1,
    workers: int = 2,
    work_dir: str | Path | None = None,
) -> ResyncResult:
    """The whole scenario (see the module docstring) in ``work_dir`` (a temporary one if None)."""
    with tempfile.TemporaryDirectory(prefix="gla-resync-") as tmp:
        wd = Path(work_dir) if work_dir is not None else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        stem = wd / "resync"
        if not Path(f"{stem}.wav").exists():
            make_capture(stem, duration_s, seed=11)
        rng = np.random.default_rng(seed)
        n_messages = int(round(duration_s / BLOCK_S))
        msgs, segments = gapped_stream(stem, plan_jumps(n_messages, n_resyncs, rng))
        data = wd / f"service-{seed}"
        shutil.rmtree(data, ignore_errors=True)
        live, summary = service_bundles(stem, msgs, segments[-1].stream_end, data, workers)
        offline = replay_segments(stem, segments, workers)
        res = compare(live, offline, segments)
        res.resyncs = int(summary["source"]["resyncs"])
        return res


def run(n_resyncs: int = 12, **kw) -> tuple[int, int]:
    """(bundles compared, mismatches) of :func:`run_detailed`."""
    r = run_detailed(n_resyncs, **kw)
    return r.compared, r.mismatches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resyncs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=60.0, help="capture length, seconds")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work-dir", default=None, help="keep the capture and the service's data here")
    a = ap.parse_args()
    r = run_detailed(a.resyncs, duration_s=a.duration, seed=a.seed, workers=a.workers, work_dir=a.work_dir)
    print(json.dumps(vars(r), indent=1))


if __name__ == "__main__":
    main()
