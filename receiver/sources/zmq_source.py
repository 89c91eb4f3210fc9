"""Live input: :class:`ZmqSource` receives a sample stream on a ZeroMQ PULL or SUB socket.

The socket loop only: poll, receive in bounded bursts, watch the stop flags and silences. Every
message goes to a :class:`StreamAssembler`, which makes the blocks (ordering, gaps, duplicates,
shape changes: see :mod:`receiver.sources.assembler`). The module is not called ``zmq`` so that
``import zmq`` keeps meaning pyzmq.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import zmq

from receiver.sources.assembler import StreamAssembler
from receiver.sources.base import SampleBlock

__all__ = ["ZmqSource"]

log = logging.getLogger("gla.ingest")


_POLL_SLICE_MS = 100


class ZmqSource:
    """Receive a sample stream over ZeroMQ (see :class:`StreamAssembler` for the stream rules).

    ``pattern``: "pull" or "sub" (with ``topic`` as the subscription prefix). The socket
    connects to ``endpoint`` (gr-zeromq and :class:`CaptureSender` sinks bind); ``bind=True``
    binds instead (``tcp://127.0.0.1:*`` picks a free port; ``.endpoint`` tells which).
    ``framing``: "gla" (docs/zmq-framing.md) or "gr" (raw gr-zeromq items of ``sample_type``,
    vector length ``n_channels``; ``pass_tags`` when the sink has it on).

    ``n_channels`` / ``sample_rate_hz``: required for "gr"; for "gla" optional and, when given,
    pinned (a stream of another channel count or rate is dropped and counted, never adopted).
    A new session or shape is adopted after ``adopt_after`` (3) messages in a row, held aside
    until then. Raw items on a SUB socket without ``pass_tags`` log a warning here, once: SUB
    drops messages and, without the tag header's offsets, a loss cannot be measured.

    Iterating blocks in the iterating thread; it ends when ``close()`` is called (from any
    thread) or ``stop_event.is_set()``, checked at least every 100 ms, when no message came for
    ``idle_timeout_s`` (None: never), or at the sender's end-of-stream message with
    ``stop_at_eos``. When no message came for ``rcv_timeout_ms`` the messages held for
    reordering are delivered (``stalls`` is counted once per silence); those held aside stay.
    At the end held messages are delivered and those held aside dropped (and counted). A ZeroMQ
    error ends the iteration with a logged error, never an exception.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        pattern: str = "pull",
        framing: str = "gla",
        n_channels: int | None = None,
        sample_rate_hz: float | None = None,
        sample_type: str = "float32",
        pass_tags: bool = False,
        topic: bytes | str = b"",
        rcv_timeout_ms: int = 1000,
        reorder_window: int = 8,
        max_gap_fill_s: float = 2.0,
        stop_event: Any = None,
        bind: bool = False,
        stream_id: str | None = None,
        adopt_after: int | None = 3,
        clip_level: float | None = None,
        gr_scale: float | None = None,
        idle_timeout_s: float | None = None,
        stop_at_eos: bool = False,
        rcvhwm: int | None = None,
        context: zmq.Context | None = None,
        log_interval_s: float = 10.0,
    ) -> None:
        if pattern not in ("pull", "sub"):
            raise ValueError(f"pattern must be 'pull' or 'sub', got {pattern!r}")
        if rcv_timeout_ms <= 0:
            raise ValueError(f"rcv_timeout_ms must be > 0, got {rcv_timeout_ms}")
        self.assembler = StreamAssembler(
            framing=framing,
            n_channels=n_channels,
            sample_rate_hz=sample_rate_hz,
            sample_type=sample_type,
            pass_tags=pass_tags,
            stream_id=stream_id,
            reorder_window=reorder_window,
            max_gap_fill_s=max_gap_fill_s,
            adopt_after=adopt_after,
            clip_level=clip_level,
            gr_scale=gr_scale,
            log_interval_s=log_interval_s,
        )
        self.stats = self.assembler.stats
        self.pattern, self.framing = pattern, framing
        self.rcv_timeout_s = rcv_timeout_ms / 1000.0
        self.idle_timeout_s = idle_timeout_s
        self.stop_at_eos = bool(stop_at_eos)
        self.stop_event = stop_event
        self._closed = threading.Event()
        self._iterating = False
        self._lock = threading.Lock()
        ctx = context or zmq.Context.instance()
        sock = ctx.socket(zmq.PULL if pattern == "pull" else zmq.SUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            if rcvhwm is not None:
                sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
            if pattern == "sub":
                sock.setsockopt(zmq.SUBSCRIBE, topic.encode() if isinstance(topic, str) else bytes(topic))
            if bind:
                sock.bind(endpoint)
                self.endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
            else:
                sock.connect(endpoint)
                self.endpoint = endpoint
        except zmq.ZMQError as e:
            sock.close(0)
            raise ValueError(f"{endpoint}: cannot {'bind' if bind else 'connect'} a {pattern} socket: {e}") from e
        self._sock: zmq.Socket | None = sock
        if pattern == "sub" and framing == "gr" and not pass_tags:
            log.warning(
                "%s: GNU Radio raw items on a SUB socket without pass_tags: SUB drops messages at its "
                "high-water mark and, without the tag header's offsets, a loss cannot be measured; "
                "each malformed message is taken as a discontinuity (turn pass_tags on in the sink)",
                self.endpoint,
                extra={"event": "lossy_without_tags", "stream": self.endpoint},
            )

    @property
    def n_channels(self) -> int | None:
        return self.assembler.n_channels

    @property
    def sample_rate_hz(self) -> float | None:
        return self.assembler.sample_rate_hz

    @property
    def stream_id(self) -> str | None:
        return self.assembler.stream_id

    def __repr__(self) -> str:
        closed = ", closed" if self._closed.is_set() else ""
        return (
            f"ZmqSource({self.pattern} {self.endpoint}, {self.assembler.describe()}, "
            f"{self.stats.messages} messages{closed})"
        )

    def __enter__(self) -> ZmqSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop receiving. Safe from any thread; the iterating thread ends within 100 ms."""
        self._closed.set()
        with self._lock:
            if not self._iterating and self._sock is not None:
                self._sock.close(0)
                self._sock = None

    def _stopped(self) -> bool:
        return self._closed.is_set() or (self.stop_event is not None and self.stop_event.is_set())

    def __iter__(self) -> Iterator[SampleBlock]:
        with self._lock:
            if self._iterating:
                raise RuntimeError("this ZmqSource is already being iterated")
            if self._sock is None:
                raise ValueError(f"{self.endpoint}: source is closed")
            self._iterating = True
        return self._run()

    def _run(self) -> Iterator[SampleBlock]:
        sock = self._sock
        assert sock is not None  # __iter__ checked it; close() leaves it to a running iteration
        asm = self.assembler
        slice_ms = max(1, min(_POLL_SLICE_MS, int(self.rcv_timeout_s * 1000)))
        last = time.monotonic()
        stalled = False
        try:
            while not self._stopped():
                try:
                    ready = sock.poll(slice_ms, zmq.POLLIN)
                except zmq.ZMQError as e:
                    if not self._stopped():
                        log.error(
                            "%s: ZeroMQ poll failed: %s",
                            self.endpoint,
                            e,
                            extra={"event": "zmq_error", "stream": self.endpoint},
                        )
                    break
                if ready:
                    for _ in range(64):  # a bounded burst, then look at the stop flags again
                        try:
                            parts = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        last = time.monotonic()
                        if stalled:
                            stalled = False
                            log.info(
                                "%s: data again", self.endpoint, extra={"event": "resumed", "stream": self.endpoint}
                            )
                        yield from asm.feed(parts)
                        if asm.end_of_stream and self.stop_at_eos:
                            break
                    if asm.end_of_stream and self.stop_at_eos:
                        break
                    continue
                idle = time.monotonic() - last
                if idle >= self.rcv_timeout_s and not stalled:
                    stalled = True
                    self.stats.stalls += 1
                    log.warning(
                        "%s: no data for %.1f s%s",
                        self.endpoint,
                        idle,
                        f"; delivering {asm.held} held messages" if asm.held else "",
                        extra={"event": "stall", "stream": self.endpoint},
                    )
                    yield from asm.flush(final=False)
                if self.idle_timeout_s is not None and idle >= self.idle_timeout_s:
                    break
            yield from asm.flush()
        except zmq.ZMQError as e:
            if not self._stopped():
                log.error(
                    "%s: ZeroMQ receive failed: %s",
                    self.endpoint,
                    e,
                    extra={"event": "zmq_error", "stream": self.endpoint},
                )
        finally:
            with self._lock:
                self._iterating = False
                if self._closed.is_set() and self._sock is not None:
                    self._sock.close(0)
                    self._sock = None
