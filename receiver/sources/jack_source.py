"""Live input without GNU Radio: :class:`JackSource` reads a multichannel audio interface or DAQ
through a JACK server.

One JACK input port per configured input (``in_1`` .. ``in_N``, input ``i`` on ``in_{i+1}``),
each connected to the configured JACK output port (by default the server's physical capture
ports, in order). JACK's process callback runs in the server's real-time thread of a capture
process of its own (:mod:`receiver.sources.jack_capture`: in the receiver's process it would
wait for the interpreter lock and miss cycles): it only copies each port's buffer into a shared
ring (:class:`~receiver.sources.jack_capture.CycleRing`, one writer, one reader, no lock) and
notes where a cycle was missed or did not fit. The iterating thread drains the ring into
:class:`SampleBlock` of ``block_s`` through the ZeroMQ source's delivery step
(:class:`~receiver.sources.placement.Placement`), so gaps, clipping and NaN/inf are counted in the
same :class:`SourceStats` counters and exported as the same metrics:

========================  =================================================================
fault                     handling
========================  =================================================================
missed cycle              (an xrun that skipped this client, seen as a jump of JACK's frame
                          time) a gap of that many samples
ring overflow             (the pipeline fell behind by more than ``buffer_s``) the cycles that
                          did not fit are dropped: a gap of that many samples
gap                       NaN rows up to ``max_gap_fill_s`` (``gaps``, ``gap_samples``); a
                          longer one: the stream goes on at its true position as a new
                          segment (``gaps``, ``resyncs``, ``discontinuity``)
xrun                      every xrun the server reports is counted (``xruns``) and logged
no cycle for              ``stalls`` (the server froze or its driver stopped); the blocks go
``stall_timeout_s``       on when cycles come again
server shut down          what is in the ring is delivered, the iteration ends with a logged
                          error (like a ZeroMQ error)
clipping                  ``clipped``: samples with ``|raw| >= 1`` (JACK's full scale), or
                          ``|physical| >= clip_level`` when given
========================  =================================================================

Samples: JACK gives float32 normalised to the interface's full scale; physical = raw x ``scale``
(the ``[input] scale`` of the configuration, the same convention as the GNU Radio framing).
Sample indices count from the first cycle after activation; ``time_utc`` of row 0 is the wall
clock at that cycle less one period, then the sample clock (within about one period).

The JACK binding (``JACK-Client``, the ``jack`` extra) is imported only by the capture process,
so this module (and the ring) import without it; a missing binding or library is the capture
process's one-line refusal. The module is not called ``jack`` so that
``import jack`` stays JACK-Client.
"""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from receiver.sources.base import LogLimiter, SampleBlock, SourceError, SourceStats
from receiver.sources.jack_capture import GONE_REASONS, CycleRing, capture_main
from receiver.sources.messages import Message
from receiver.sources.placement import Placement

__all__ = ["JackSource"]

log = logging.getLogger("gla.ingest")

_POLL_S = 0.01
#: the largest JACK period the ring is sized for (4 of them at least)
_MAX_PERIOD = 8192
_START_TIMEOUT_S = 30.0


class _Delivery(Placement):
    """The ZeroMQ source's delivery step (gap fill or resync, clipping, NaN/inf) for JACK's blocks."""

    _by_seq = False  # type: ignore[assignment]  # ordered by sample position, never by sequence number

    def __init__(self, stats: SourceStats, max_gap_fill_s: float, stream_id: str, log_interval_s: float) -> None:
        self.stats, self.max_gap_fill_s = stats, float(max_gap_fill_s)
        self.next_key: int | None = None
        self.next_sample: int | None = None
        self._seen: dict[int, int | None] = {}
        self._pending_disc, self._started = True, False
        self._log = LogLimiter(stream_id, log_interval_s)

    def _max_fill(self, fs: float) -> int:
        return int(round(self.max_gap_fill_s * fs))


class JackSource:
    """Receive ``n_channels`` inputs from a JACK server (see the module docstring for the rules).

    ``ports``: the JACK output port feeding each input (``ports[i]`` -> input ``i``); None: the
    server's physical capture ports in order (there must be at least ``n_channels``); an empty
    list: connect nothing (a patchbay does it). ``server``: the JACK server name (None:
    ``$JACK_DEFAULT_SERVER`` or "default"); the server is never started from here.
    ``sample_rate_hz`` must be the server's rate. ``scale``: physical = raw x scale.
    ``buffer_s``: the ring between the capture process and the pipeline. Blocks are ``block_s``
    long (shorter at a gap and at the end). Iterating ends at ``close()`` (any thread),
    ``stop_event.is_set()``, after ``idle_timeout_s`` without a cycle, or when the server shuts
    down; what the ring holds by then is delivered.

    Construction starts the capture process, which opens the client, checks the rate, registers
    the input ports and checks the ports to connect; any failure is a one-line
    :class:`SourceError` naming what was wrong. The first iteration activates the client and
    connects the ports: samples are kept from then on (so not during the pipeline's start-up).
    """

    def __init__(
        self,
        *,
        n_channels: int,
        sample_rate_hz: float,
        ports: Sequence[str] | None = None,
        server: str | None = None,
        client_name: str = "gla-receiver",
        scale: float = 1.0,
        buffer_s: float = 10.0,
        block_s: float = 0.1,
        max_gap_fill_s: float = 2.0,
        clip_level: float | None = None,
        stall_timeout_s: float = 1.0,
        idle_timeout_s: float | None = None,
        stop_event: Any = None,
        log_interval_s: float = 10.0,
    ) -> None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        for name, v in (
            ("sample_rate_hz", sample_rate_hz),
            ("scale", scale),
            ("buffer_s", buffer_s),
            ("block_s", block_s),
        ):
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if ports is not None and len(ports) not in (0, n_channels):
            raise SourceError(f"input.jack.ports: {len(ports)} ports for {n_channels} inputs (one per input, or none)")
        self.server = server or os.environ.get("JACK_DEFAULT_SERVER") or "default"
        self._n_channels, self._fs = int(n_channels), float(sample_rate_hz)
        self.scale = float(scale)
        self.clip_level = self.scale if clip_level is None else float(clip_level)  # |raw| >= 1: JACK's full scale
        self.block_frames = max(1, int(round(block_s * self._fs)))
        cap = max(int(round(buffer_s * self._fs)), 2 * self.block_frames, 4 * _MAX_PERIOD)
        ctx = mp.get_context("spawn")  # a fresh interpreter: nothing of the receiver's threads or locks
        self._shared = ctx.RawArray(ctypes.c_char, CycleRing.nbytes(self._n_channels, cap))
        self.ring = CycleRing(self._n_channels, cap, self._shared)
        self._conn, child = ctx.Pipe()
        cfg = {
            "n_channels": self._n_channels,
            "sample_rate_hz": self._fs,
            "ports": None if ports is None else list(ports),
            "server": self.server,
            "client_name": client_name,
            "capacity": cap,
        }
        self._proc: Any = ctx.Process(
            target=capture_main, args=(child, self._shared, cfg), name="gla-jack-capture", daemon=True
        )
        self._proc.start()
        child.close()
        try:
            info = self._answer("open a JACK client")
        except BaseException:
            self._stop_capture()
            raise
        self.name: str = info["name"]
        self.ports: list[str] = info["ports"]
        self.stream_id = f"jack:{self.name}"
        self.stats = SourceStats()
        self.stall_timeout_s, self.idle_timeout_s = float(stall_timeout_s), idle_timeout_s
        self.stop_event = stop_event
        self._delivery = _Delivery(self.stats, max_gap_fill_s, self.stream_id, log_interval_s)
        self._closed = threading.Event()
        self._iterating = False
        self._started = False
        self._lock = threading.Lock()
        self._xruns_seen = 0

    def _answer(self, doing: str) -> Any:
        """The capture process's answer: its info, or its refusal raised as a SourceError."""
        if not self._conn.poll(_START_TIMEOUT_S):
            raise SourceError(f"input.jack: the capture process did not {doing} in {_START_TIMEOUT_S:g} s")
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            raise SourceError(
                f"input.jack: the capture process ended (exit status {self._proc.exitcode}) before it could {doing}"
            ) from None
        if kind == "error":
            raise SourceError(value)
        return value

    def _stop_capture(self) -> None:
        """Tell the capture process to deactivate, close and exit; wait for it (any thread)."""
        proc = self._proc
        if proc is None:
            return
        try:
            self._conn.send("stop")
        except (OSError, ValueError):
            pass
        proc.join(timeout=5.0)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5.0)
        self._conn.close()
        self._proc = None

    # Source interface ---------------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def sample_rate_hz(self) -> float:
        return self._fs

    def __repr__(self) -> str:
        closed = ", closed" if self._closed.is_set() else ""
        return (
            f"JackSource({self.name!r} on {self.server!r}, {self._n_channels} ch at {self._fs:g} Hz, "
            f"{self.ring.counter('cycles')} cycles, {self.ring.available} frames buffered{closed})"
        )

    def __enter__(self) -> JackSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop receiving. Safe from any thread; the iterating thread ends within 10 ms."""
        self._closed.set()
        with self._lock:
            if not self._iterating:
                self._stop_capture()

    def _stopped(self) -> bool:
        return self._closed.is_set() or (self.stop_event is not None and self.stop_event.is_set())

    def _gone(self) -> str | None:
        code = self.ring.counter("gone")
        if code:
            return GONE_REASONS.get(code, "stopped")
        if self._proc is not None and not self._proc.is_alive():
            return f"capture process ended (exit status {self._proc.exitcode})"
        return None

    def __iter__(self) -> Iterator[SampleBlock]:
        with self._lock:
            if self._iterating:
                raise RuntimeError("this JackSource is already being iterated")
            if self._proc is None or self._started:
                raise ValueError(f"{self.stream_id}: source is closed (a JackSource is iterated once)")
            self._iterating = self._started = True
        try:
            self._conn.send("start")
            self._answer("activate and connect")
        except BaseException:
            with self._lock:
                self._iterating = False
            raise
        return self._run()

    def _run(self) -> Iterator[SampleBlock]:
        ring = self.ring
        last = time.monotonic()
        stalled = False
        pos = 0  # stream position of the next sample read
        end: int | None = None  # at a stop: the frames written by then are delivered, no more
        gone: str | None = None
        try:
            while True:
                if end is None:
                    gone = self._gone()
                    if self._stopped() or gone is not None:
                        end = ring.written
                if ring.available >= self.block_frames or (end is not None and ring.read_upto < end):
                    gap, raw = ring.read(
                        self.block_frames if end is None else min(self.block_frames, end - ring.read_upto)
                    )
                    pos += gap
                    if raw is not None:
                        yield from self._deliver(pos, raw)
                        pos += raw.shape[0]
                    last = time.monotonic()
                    stalled = False
                    continue
                self._note_xruns()
                if end is not None:
                    if gone is not None and not self._stopped():
                        log.error(
                            "%s: the JACK server %r %s: input stopped",
                            self.stream_id,
                            self.server,
                            gone,
                            extra={"event": "jack_shutdown", "stream": self.stream_id},
                        )
                    break
                idle = time.monotonic() - last
                if ring.available:
                    last = time.monotonic()  # cycles come, fewer than a block so far
                elif idle >= self.stall_timeout_s and not stalled:
                    stalled = True
                    self.stats.stalls += 1
                    log.warning(
                        "%s: no JACK cycle for %.1f s",
                        self.stream_id,
                        idle,
                        extra={"event": "stall", "stream": self.stream_id},
                    )
                if self.idle_timeout_s is not None and idle >= self.idle_timeout_s:
                    break
                time.sleep(_POLL_S)
        finally:
            self._note_xruns()
            with self._lock:
                self._iterating = False
                self._stop_capture()

    def _note_xruns(self) -> None:
        n = self.ring.counter("xruns")
        if n != self._xruns_seen:
            self.stats.xruns = n
            self._delivery._log(
                logging.WARNING,
                "xrun",
                "%d JACK xruns (%d frames of this client's cycles missed, %d dropped for a full ring, so far)",
                n - self._xruns_seen,
                self.ring.counter("missed_frames"),
                self.ring.counter("overflow_frames"),
            )
            self._xruns_seen = n

    def _deliver(self, pos: int, raw: np.ndarray) -> list[SampleBlock]:
        t0 = self.ring.t0_ns
        t = None if t0 is None else t0 + int(round(pos * 1e9 / self._fs))
        m = Message(
            pos, pos, raw, (self._n_channels, "float32", self._fs), self.scale, self.clip_level, t, self.stream_id
        )
        out: list[SampleBlock] = []
        self._delivery._deliver(m, out)
        return out
