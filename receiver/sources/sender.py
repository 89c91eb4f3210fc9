"""Capture over ZeroMQ: :class:`CaptureSender` / :func:`stream_capture` send a capture as a stream.

The sending end of :class:`ZmqSource`, for the tests, the latency benchmark and checking a
deployment without a GNU Radio flowgraph (``docs/deployment.md``): a :class:`CaptureSource`
read in blocks, each block one message in the GLA framing or as GNU Radio raw items
(:mod:`receiver.contracts.zmq_framing`), on a PUSH or PUB socket, with optional fault injection
by message index (drop, duplicate, reorder, corrupt, reshape, mutate) to exercise the
receiving side.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from receiver.contracts import zmq_framing as zf
from receiver.sources.base import SampleBlock
from receiver.sources.capture import CaptureSource

__all__ = ["CaptureSender", "SendReport", "stream_capture"]

log = logging.getLogger("gla.ingest")


@dataclass
class SendReport:
    endpoint: str
    messages: int = 0  #: ZeroMQ messages sent (duplicates included, drops excluded)
    frames: int = 0  #: sample frames in the messages sent
    clipped: int = 0  #: samples saturated by an integer sample type
    elapsed_s: float = 0.0
    subscribed: bool = True  #: PUB: a subscriber was seen before sending


def _as_delays(reorder: Iterable[int] | Mapping[int, int]) -> dict[int, int]:
    if isinstance(reorder, Mapping):
        return {int(k): int(v) for k, v in reorder.items()}
    out = {}
    for r in reorder:
        if isinstance(r, tuple):
            out[int(r[0])] = int(r[1])
        else:
            out[int(r)] = 1
    return out


class CaptureSender:
    """Replay a capture over ZeroMQ in the GLA framing or as GNU Radio raw items.

    ``pattern``: "push" or "pub" (an XPUB socket, so that :meth:`run` can wait up to
    ``wait_subscriber_s`` for a subscriber before sending: nothing is lost to a late joiner).
    The socket binds ``endpoint`` by default (``tcp://127.0.0.1:*`` picks a free port;
    ``.endpoint`` tells which); ``bind=False`` connects. Message ``i`` carries frames
    ``[i*B, (i+1)*B)`` of the replayed range (``B = block_s * fs``; GLA ``seq = i``,
    ``first_sample`` counts from the start of the capture).

    GLA: samples are sent as ``sample_type`` with ``full_scale = 1/gla:scale`` (the file values,
    normalised to +-1 of full scale), the capture's start time, and an empty end-of-stream
    message at the end (``eos``). "gr": items of ``sample_type`` in physical units (divided by
    ``gla:scale``), with gr-zeromq's tag header (offset = first frame index, tags from
    ``gr_tags[i]``) when ``pass_tags``.

    Fault injection for tests, by message index: ``drop`` (not sent), ``duplicate`` (sent twice),
    ``reorder`` (index, or ``{index: d}`` / ``(index, d)``: sent after message ``index + d``),
    ``corrupt`` (its bytes cut in half: a malformed message), ``reshape`` (``{index: n}``: only
    the first ``n`` channels), ``mutate(index, x) -> x`` (change the physical samples before
    encoding: NaN, clipping), ``inject`` (``{index: [message frames, ...]}``: other messages,
    sent as they are just before message ``index``: forged or stray messages on the same socket;
    the end-of-stream message has the index after the last block, and later indices come after it).
    """

    def __init__(
        self,
        stem: str | os.PathLike,
        endpoint: str,
        *,
        pattern: str = "push",
        framing: str = "gla",
        block_s: float = 0.1,
        realtime: bool = False,
        stream_id: str | None = None,
        drop: Iterable[int] = (),
        duplicate: Iterable[int] = (),
        reorder: Iterable[int] | Mapping[int, int] = (),
        corrupt: Iterable[int] = (),
        reshape: Mapping[int, int] | None = None,
        mutate: Callable[[int, np.ndarray], np.ndarray] | None = None,
        inject: Mapping[int, Sequence[Sequence[bytes]]] | None = None,
        sample_type: str = "float32",
        pass_tags: bool = False,
        gr_tags: Mapping[int, Sequence[zf.GrTag]] | None = None,
        topic: bytes | str = b"",
        bind: bool = True,
        start_s: float = 0.0,
        duration_s: float | None = None,
        session: int | None = None,
        eos: bool = True,
        send_timeout_ms: int = 10000,
        wait_subscriber_s: float = 5.0,
        stop_event: Any = None,
        speed: float = 1.0,
        context: zmq.Context | None = None,
    ) -> None:
        if pattern not in ("push", "pub"):
            raise ValueError(f"pattern must be 'push' or 'pub', got {pattern!r}")
        if framing not in ("gla", "gr"):
            raise ValueError(f"framing must be 'gla' or 'gr', got {framing!r}")
        if sample_type not in zf.SAMPLE_TYPE_CODES:
            raise ValueError(f"sample_type must be one of {sorted(zf.SAMPLE_TYPE_CODES)}, got {sample_type!r}")
        self.source = CaptureSource(stem, block_s=block_s, start_s=start_s, duration_s=duration_s)
        self.pattern, self.framing, self.sample_type = pattern, framing, sample_type
        self.realtime, self.speed = bool(realtime), float(speed)
        self.stream_id = stream_id if stream_id is not None else self.source.stream_id[:16]
        self.drop, self.duplicate, self.corrupt = set(drop), set(duplicate), set(corrupt)
        self.reorder = _as_delays(reorder)
        self.reshape = dict(reshape or {})
        self.mutate = mutate
        self.inject = {int(k): [list(p) for p in v] for k, v in (inject or {}).items()}
        self.pass_tags = bool(pass_tags)
        self.gr_tags = dict(gr_tags or {})
        self.topic = topic.encode() if isinstance(topic, str) else bytes(topic)
        self.session = secrets.randbits(32) if session is None else int(session)
        self.eos = bool(eos)
        self.send_timeout_ms = int(send_timeout_ms)
        self.wait_subscriber_s = float(wait_subscriber_s)
        self.stop_event = stop_event
        ctx = context or zmq.Context.instance()
        sock = ctx.socket(zmq.PUSH if pattern == "push" else zmq.XPUB)
        try:
            sock.setsockopt(zmq.LINGER, 2000)
            sock.setsockopt(zmq.SNDTIMEO, self.send_timeout_ms)
            if bind:
                sock.bind(endpoint)
                self.endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
            else:
                sock.connect(endpoint)
                self.endpoint = endpoint
        except zmq.ZMQError as e:
            sock.close(0)
            self.source.close()
            raise ValueError(f"{endpoint}: cannot {'bind' if bind else 'connect'} a {pattern} socket: {e}") from e
        self._sock: zmq.Socket | None = sock

    # message construction (no socket) --------------------------------------------------------
    def _encode(self, i: int, blk: SampleBlock) -> list[bytes]:
        meta = self.source.meta
        x = blk.samples
        if self.mutate is not None:
            x = np.asarray(self.mutate(i, x.copy()), dtype=np.float64)
        if i in self.reshape:
            x = x[:, : self.reshape[i]]
        if self.framing == "gla":
            full = 1.0 / meta.scale
            raw, clipped = zf.encode_samples(x, self.sample_type, full)
            self._clipped += clipped
            assert blk.time_utc is not None  # a capture's blocks always carry their time
            h = zf.GlaHeader(
                self.stream_id,
                i,
                blk.first_sample,
                blk.sample_rate_hz,
                x.shape[1],
                self.sample_type,
                full,
                zf.time_to_ns(blk.time_utc),
                0,
                self.session,
            )
            msg = zf.pack_message(h, raw)
        else:
            # floats: physical units; integers: normalised like the file (receiver: gr_scale=gla:scale)
            raw, clipped = zf.encode_samples(
                x, self.sample_type, 0.0 if self.sample_type.startswith("float") else 1.0 / meta.scale
            )
            self._clipped += clipped
            msg = raw.tobytes()
            if self.pass_tags:
                msg = zf.pack_gr_tag_header(blk.first_sample, self.gr_tags.get(i, ())) + msg
        if i in self.corrupt:
            msg = msg[: len(msg) // 2]
        return [self.topic, msg] if self.topic else [msg]

    def messages(self) -> Iterator[tuple[int, list[bytes], int]]:
        """``(index, frames, n_frames)`` in sending order, faults applied (no socket used)."""
        self._clipped = 0
        held: dict[int, list[tuple[int, list[bytes], int]]] = {}
        last, end = -1, self.source.first_frame
        for i, blk in enumerate(self.source):
            last, end = i, blk.end_sample
            for parts in self.inject.get(i, ()):
                yield i, parts, 0
            if i not in self.drop:
                item = (i, self._encode(i, blk), blk.n_frames)
                if i in self.reorder:
                    held.setdefault(i + self.reorder[i], []).append(item)
                else:
                    yield item
                    if i in self.duplicate:
                        yield item
            for item in held.pop(i, []):
                yield item
                if item[0] in self.duplicate:
                    yield item
        for k in sorted(held):
            yield from held[k]
        if self.eos and self.framing == "gla":
            meta = self.source.meta
            n = last + 1
            h = zf.GlaHeader(
                self.stream_id,
                n,
                end,
                float(meta.fs_hz),
                meta.n_channels,
                self.sample_type,
                1.0 / meta.scale,
                None,
                zf.FLAG_END_OF_STREAM,
                self.session,
            )
            raw = np.zeros((0, meta.n_channels), dtype=zf.SAMPLE_TYPES[zf.SAMPLE_TYPE_CODES[self.sample_type]][1])
            msg = zf.pack_message(h, raw)
            for parts in self.inject.get(n, ()):
                yield n, parts, 0
            yield n, ([self.topic, msg] if self.topic else [msg]), 0
        for k in sorted(self.inject):
            if k > last + 1 or (k == last + 1 and not (self.eos and self.framing == "gla")):
                for parts in self.inject[k]:
                    yield k, parts, 0

    # sending ----------------------------------------------------------------------------------
    def _stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def _wait_subscriber(self, sock: zmq.Socket) -> bool:
        deadline = time.monotonic() + self.wait_subscriber_s
        while not self._stopped():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if sock.poll(int(min(left, 0.1) * 1000) + 1, zmq.POLLIN):
                ev = sock.recv()
                if ev[:1] == b"\x01":
                    return True
        return False

    def run(self) -> SendReport:
        """Send the whole capture (blocking); raises TimeoutError when a PUSH peer does not take a
        message within ``send_timeout_ms``. Closes the socket at the end."""
        sock = self._sock
        if sock is None:
            raise ValueError("sender already used")
        rep = SendReport(self.endpoint)
        t0 = time.monotonic()
        fs = self.source.sample_rate_hz
        try:
            if self.pattern == "pub":
                rep.subscribed = self._wait_subscriber(sock)
                if not rep.subscribed:
                    log.warning(
                        "%s: no subscriber after %.1f s: publishing anyway",
                        self.endpoint,
                        self.wait_subscriber_s,
                        extra={"event": "no_subscriber", "stream": self.stream_id},
                    )
            sent_frames = 0
            for i, parts, n in self.messages():
                if self._stopped():
                    break
                if self.realtime:
                    sent_frames = max(sent_frames, (i + 1) * self.source.block_frames)
                    due = t0 + sent_frames / fs / self.speed
                    while not self._stopped() and time.monotonic() < due:
                        time.sleep(min(0.05, max(0.0, due - time.monotonic())))
                try:
                    sock.send_multipart(parts)
                except zmq.Again as e:
                    raise TimeoutError(
                        f"{self.endpoint}: no receiver took message {i} within {self.send_timeout_ms} ms"
                    ) from e
                rep.messages += 1
                rep.frames += n
        finally:
            rep.clipped = getattr(self, "_clipped", 0)
            rep.elapsed_s = time.monotonic() - t0
            self.close()
        return rep

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self.source.close()

    def __repr__(self) -> str:
        src = self.source
        done = ", closed" if self._sock is None else ""
        return (
            f"CaptureSender({self.pattern} {self.endpoint}, {self.framing} {self.sample_type}, "
            f"{str(src.meta.audio_path)!r}, {src.n_channels} ch at {src.meta.fs_hz} Hz, "
            f"{src.block_frames} frames per message, next message {src.stats.blocks} "
            f"(frame {src.next_frame}){done})"
        )

    def __enter__(self) -> CaptureSender:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def stream_capture(
    stem: str | os.PathLike,
    endpoint: str,
    *,
    pattern: str = "push",
    framing: str = "gla",
    block_s: float = 0.1,
    realtime: bool = False,
    stream_id: str | None = None,
    drop: Iterable[int] = (),
    duplicate: Iterable[int] = (),
    reorder: Iterable[int] | Mapping[int, int] = (),
    **kw: Any,
) -> SendReport:
    """Replay a capture over ZeroMQ (blocking); see :class:`CaptureSender` for the options."""
    sender = CaptureSender(
        stem,
        endpoint,
        pattern=pattern,
        framing=framing,
        block_s=block_s,
        realtime=realtime,
        stream_id=stream_id,
        drop=drop,
        duplicate=duplicate,
        reorder=reorder,
        **kw,
    )
    return sender.run()
