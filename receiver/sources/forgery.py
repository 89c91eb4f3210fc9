"""Forged and stray ZeroMQ messages against a real GLA stream, to check a receiver with them.

:func:`forge` takes the messages of a clean stream (as :meth:`CaptureSender.messages` makes
them) and returns messages to slip in between them (``CaptureSender(inject=...)``), of every
kind a hostile or broken peer on the same socket can send without the live stream's own
identity: another session, another shape on the live session and the next sequence number,
another stream id, a truncated header, garbage (with and without the GLA magic), a bad CRC, a
message of three frames, an exact replay of a delivered message, and a message that reuses a
delivered sequence number with other samples. At most two messages of one identity go in a row
(the receiver adopts a new session after three: docs/zmq-framing.md), and nothing goes before
the first real message (the receiver follows the first stream it hears).

The receiver must deliver exactly the blocks of the clean stream: a forged message costs at most
its own samples, and here it has none of the stream's. ``receiver.forged_check`` runs it end to
end, down to the bundles.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from receiver.contracts import zmq_framing as zf

__all__ = ["KINDS", "forge"]

#: the kinds of forged message :func:`forge` makes
KINDS = (
    "other_session",
    "wrong_shape",
    "foreign_stream",
    "truncated_header",
    "garbage",
    "garbage_with_magic",
    "bad_crc",
    "three_frames",
    "replayed",
    "reused_seq",
)


def _noise(rng: np.random.Generator, h: zf.GlaHeader, n: int, nch: int) -> np.ndarray:
    x = rng.uniform(-0.9, 0.9, (n, nch)) * (h.full_scale or 1.0)
    raw, _ = zf.encode_samples(x, h.sample_type, h.full_scale)
    return raw


def forge(
    clean: Sequence[Sequence[bytes]], *, seed: int = 1, per_kind: int = 8
) -> tuple[dict[int, list[list[bytes]]], Counter]:
    """``clean``: the real stream's messages in sending order (GLA framing, data frame last).
    Returns ``({index: [forged message frames, ...]}, count per kind)``; the forged messages go
    just before real message ``index`` (``index >= 1``). Deterministic for a ``seed``."""
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    heads = [zf.unpack_message(m[-1]) for m in clean]
    data = [i for i, (h, raw) in enumerate(heads) if raw.shape[0] > 0]
    if len(data) < 3:
        raise ValueError("forge needs a stream of at least 3 messages with samples")
    plan: dict[int, list[list[bytes]]] = {}
    used: set[tuple[int, str]] = set()
    tried: Counter = Counter()
    for kind in KINDS:
        for _ in range(per_kind):
            i = rnd.choice(data[1:])
            while (i, kind) in used:  # one of a kind per gap: never three of one identity in a row
                i = rnd.choice(data[1:])
            used.add((i, kind))
            msgs = _make(kind, i, clean, heads, rnd, rng)
            plan.setdefault(i, []).extend(msgs)
            tried[kind] += len(msgs)
    for v in plan.values():
        rnd.shuffle(v)
    return plan, tried


def _make(kind, i, clean, heads, rnd: random.Random, rng: np.random.Generator) -> list[list[bytes]]:
    h, raw = heads[i]
    real = bytes(clean[i][-1])
    n, nch = raw.shape
    if kind == "other_session":
        session = rnd.choice([s for s in (rnd.getrandbits(32) for _ in range(4)) if s != h.session])
        seq0 = rnd.choice([h.seq, 0, rnd.getrandbits(40)])
        return [
            [
                zf.pack_message(
                    replace(h, session=session, seq=seq0 + k, first_sample=h.first_sample + k * n),
                    _noise(rng, h, n, nch),
                )
            ]
            for k in range(rnd.choice([1, 2]))
        ]
    if kind == "wrong_shape":  # the live session and the very sequence number the stream awaits
        k = max(1, nch // 2) if nch > 1 else 2
        return [[zf.pack_message(replace(h, n_channels=k), _noise(rng, h, n, k))]]
    if kind == "foreign_stream":
        return [[zf.pack_message(replace(h, stream_id="not-" + h.stream_id[:12]), _noise(rng, h, n, nch))]]
    if kind == "truncated_header":
        return [[real[: rnd.randrange(1, zf.HEADER_LEN)]]]
    if kind == "garbage":
        return [[rng.bytes(rnd.randrange(1, 2 * len(real)))]]
    if kind == "garbage_with_magic":
        return [[zf.MAGIC + rng.bytes(rnd.randrange(0, len(real)))]]
    if kind == "bad_crc":
        b = bytearray(real)
        b[rnd.randrange(zf.HEADER_LEN, len(b))] ^= 1 << rnd.randrange(8)
        return [[bytes(b)]]
    if kind == "three_frames":
        return [[b"topic", real, real]]
    j = rnd.randrange(0, i)  # an earlier message, already delivered
    if kind == "replayed":
        return [list(clean[j])]
    if kind == "reused_seq":
        hj, rawj = heads[j]
        return [[zf.pack_message(hj, _noise(rng, hj, rawj.shape[0], rawj.shape[1]))]]
    raise ValueError(f"unknown kind of forged message: {kind!r}")
