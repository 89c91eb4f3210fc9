"""Do forged ZeroMQ messages cost bundles? ``python -m receiver.forged_check [--seed 1] [--per-kind 8]``

Sends a capture twice over a real ZeroMQ PUSH/PULL pair on 127.0.0.1 with the project's sender
(:class:`receiver.sources.CaptureSender`, GLA framing): once clean, once with forged and stray
messages slipped in between its messages (:func:`receiver.sources.forgery.forge`: other session,
wrong shape, foreign stream, truncated header, garbage, bad CRC, three frames, replays, reused
sequence numbers). Each received stream (:class:`receiver.sources.ZmqSource`) goes through the
receive chains and the grouping, as the service and ``gla replay`` do, and the bundles are
compared: frame, channel, code, inferred feeder/phase, and every copy's input and
``start_sample``.

:func:`run` returns a dict with ``bundles_lost_to_forged_zmq_messages`` (bundles of the clean
stream missing or different in the forged one: must be 0), ``forged_zmq_messages_tried``, the
bundles of each run, whether the received blocks were identical, the forged stream's source
counters, and the command that produced it. The reliability benchmark calls it.
"""

from __future__ import annotations

import argparse
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from dsp.air import params as P
from receiver.contracts.bundle import Bundle
from receiver.grouping import Grouper
from receiver.pipeline import Pipeline
from receiver.replay import inputs_from_meta
from receiver.sources import CaptureSender, SampleBlock, ZmqSource
from receiver.sources.forgery import forge

__all__ = ["run", "receive", "bundles_of", "bundle_key"]

DEMO = Path(__file__).resolve().parents[1] / "captures" / "demo_small"
LOCAL = "tcp://127.0.0.1:*"


def receive(stem: str | Path, inject: dict | None = None, *, block_s: float = 0.1) -> tuple[list[SampleBlock], dict]:
    """Send the capture ``stem`` over PUSH -> PULL (with ``inject``ed messages); the blocks the
    receiver made and its counters."""
    src = ZmqSource(LOCAL, bind=True, stop_at_eos=True, idle_timeout_s=20, rcv_timeout_ms=5000)
    snd = CaptureSender(stem, src.endpoint, bind=False, block_s=block_s, session=0x5EED, inject=inject)
    err: list[BaseException] = []

    def send() -> None:
        try:
            snd.run()
        except BaseException as e:  # reported below, in the caller's thread
            err.append(e)

    th = threading.Thread(target=send, name="forged-check-sender")
    th.start()
    with src:
        blocks = list(src)
    th.join(30)
    if err:
        raise err[0]
    return blocks, src.stats.as_dict()


def bundles_of(stem: str | Path, blocks: list[SampleBlock], *, workers: int = 0) -> list[Bundle]:
    """The bundles the receive chains and the grouping make of ``blocks`` (a discontinuity resets
    the chains, as in the service)."""
    from receiver.sources.capture import CaptureSource

    with CaptureSource(stem) as cap:
        meta = cap.meta
    fs = float(meta.fs_hz)
    plan = P.ChannelPlan.default(meta.grid_hz)
    t0 = blocks[0].time_utc if blocks and blocks[0].time_utc else datetime(1970, 1, 1, tzinfo=UTC)
    burst_s = P.burst_duration_s()
    g = Grouper(
        plan,
        inputs_from_meta(meta),
        receiver_id="rx-forged-check",
        substation_id="sub-1",
        fs_hz=fs,
        t0_utc=t0,
        created_clock=lambda start_unix: datetime.fromtimestamp(start_unix + burst_s, UTC),
    )
    pipe = Pipeline(plan, meta.n_channels, fs, workers=workers)
    for blk in blocks:
        if blk.discontinuity:  # as the service and gla replay: the old segment's outputs, then the new one
            for o in pipe.reset():
                g.add_output(o)
            g.reset(blk.first_sample, pipe.segment)
        pipe.feed(blk.first_sample, blk.samples)
        for o in pipe.outputs():
            g.add_output(o)
    for o in pipe.close():
        g.add_output(o)
    g.flush()
    return g.bundles


def bundle_key(b: Bundle) -> tuple:
    """What must not change: frame, channel, code, feeder/phase, every copy's input and position."""
    loc = b.inferred.location if b.inferred else None
    where = (loc.bus, loc.feeder, loc.phase, b.inferred.ambiguous) if b.inferred and loc else None
    return (
        b.frame_hex,
        b.crc_ok,
        b.channel,
        b.code,
        where,
        tuple((c.input_index, c.start_sample, c.polarity) for c in b.copies),
    )


def _same_blocks(a: list[SampleBlock], b: list[SampleBlock]) -> bool:
    return len(a) == len(b) and all(
        (x.first_sample, x.discontinuity, x.gap_fill) == (y.first_sample, y.discontinuity, y.gap_fill)
        and np.array_equal(x.samples, y.samples, equal_nan=True)
        for x, y in zip(a, b)
    )


def run(stem: str | Path = DEMO, *, seed: int = 1, per_kind: int = 8, workers: int = 0) -> dict:
    """Clean and forged runs of ``stem``; see the module docstring for the keys."""
    clean_blocks, _ = receive(stem)
    with CaptureSender(stem, LOCAL, block_s=0.1, session=0x5EED) as snd:
        clean_msgs = [parts for _, parts, _ in snd.messages()]
    plan, tried = forge(clean_msgs, seed=seed, per_kind=per_kind)
    forged_blocks, stats = receive(stem, plan)
    clean = [bundle_key(b) for b in bundles_of(stem, clean_blocks, workers=workers)]
    forged = [bundle_key(b) for b in bundles_of(stem, forged_blocks, workers=workers)]
    rest = list(forged)
    lost = 0
    for k in clean:
        if k in rest:
            rest.remove(k)
        else:
            lost += 1
    return {
        "bundles_lost_to_forged_zmq_messages": lost,
        "forged_zmq_messages_tried": sum(tried.values()),
        "forged_zmq_messages_by_kind": dict(sorted(tried.items())),
        "bundles_clean_stream": len(clean),
        "bundles_forged_stream": len(forged),
        "bundles_extra_in_forged_stream": len(rest),
        "blocks_identical": _same_blocks(clean_blocks, forged_blocks),
        "source_stats_forged_stream": stats,
        "command": f"python -m receiver.forged_check --seed {seed} --per-kind {per_kind}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m receiver.forged_check", description=__doc__.splitlines()[0])
    ap.add_argument("--capture", default=str(DEMO), help="capture stem (default: captures/demo_small)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-kind", type=int, default=8, help="forged messages of each kind")
    args = ap.parse_args(argv)
    res = run(args.capture, seed=args.seed, per_kind=args.per_kind)
    print(json.dumps(res, indent=2))
    return 0 if res["bundles_lost_to_forged_zmq_messages"] == 0 and res["blocks_identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
