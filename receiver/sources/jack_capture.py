"""The JACK side of :class:`~receiver.sources.jack_source.JackSource`: a process of its own whose
only work is JACK's process callback, copying each cycle into a shared ring (:class:`CycleRing`).

Why a process: JACK calls the callback from its real-time thread, and in Python the callback
needs the interpreter lock. In the receiver's process that lock is held for tens of
milliseconds at a time by the pipeline and the grouping (and, on a busy machine, by a thread
waiting for a core), so the real-time thread misses cycles. Here the main thread only waits on
its control pipe, and the lock is the callback's.

The ring is shared memory (a ``multiprocessing`` RawArray): a header of counters, a log of gaps
and the samples, ``(n_channels, capacity)`` float32. One writer (the callback), one reader (the
receiver); each counter is written by one side only, after the data it publishes, and a cycle
is never read before it is published, so no lock is needed.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from typing import Any

import numpy as np

from receiver.sources.base import SourceError

__all__ = ["CycleRing", "FRAME_TIME_MOD", "capture_main", "import_jack"]

log = logging.getLogger("gla.ingest")

#: JACK's frame time is a 32-bit counter (jack_nframes_t): it wraps every 24.8 h at 48 kHz
FRAME_TIME_MOD = 1 << 32
#: JACK's smallest period: a gap is followed by at least this many frames, which bounds the gap log
_MIN_PERIOD = 16

# the counters (int64) at the head of the ring; W: the writer's, R: the reader's
_WRITTEN, _READ, _GAPS_W, _GAPS_R = 0, 1, 2, 3  # frames written (W) and read (R); gaps logged (W), taken (R)
_PENDING, _NEXT_TIME, _FIRST_TIME, _T0_NS = 4, 5, 6, 7  # (W) gap so far; frame time expected, of sample 0; wall
_OVERFLOW, _MISSED, _CYCLES, _XRUNS, _GONE = 8, 9, 10, 11, 12  # (W) counters; why the server is gone (code)
_N_COUNTERS = 16
GONE_REASONS = {1: "shut down", 2: "changed its sample rate"}


class CycleRing:
    """Single-writer single-reader ring of JACK cycles over ``buffer`` (or a private one).

    The writer calls :meth:`write` with each cycle's frame time and one buffer per channel; it
    never blocks and allocates nothing. A gap (a jump of the frame time: cycles this client
    missed; or a cycle that did not fit because the reader fell a whole ring behind) is logged
    at the position of the next cycle written, so the reader (:meth:`read`) puts the following
    samples at their true stream position.
    """

    def __init__(self, n_channels: int, capacity_frames: int, buffer: Any = None) -> None:
        if n_channels < 1 or capacity_frames < 1:
            raise ValueError(f"CycleRing needs channels and capacity, got {n_channels}, {capacity_frames}")
        self.capacity = int(capacity_frames)
        self.n_gaplog = self.capacity // _MIN_PERIOD + 2
        if buffer is None:
            buffer = bytearray(self.nbytes(n_channels, capacity_frames))
        off = 8 * _N_COUNTERS
        self.ctr = np.ndarray((_N_COUNTERS,), np.int64, buffer, 0)
        self.gaplog = np.ndarray((self.n_gaplog, 2), np.int64, buffer, off)
        self.buf = np.ndarray((n_channels, self.capacity), np.float32, buffer, off + 16 * self.n_gaplog)
        if not self.ctr.any():  # a new ring (the capture process attaches to one made already)
            self.ctr[_NEXT_TIME] = self.ctr[_FIRST_TIME] = self.ctr[_T0_NS] = -1

    @staticmethod
    def nbytes(n_channels: int, capacity_frames: int) -> int:
        return 8 * _N_COUNTERS + 16 * (capacity_frames // _MIN_PERIOD + 2) + 4 * n_channels * capacity_frames

    # the writer (JACK's real-time thread) ----------------------------------------------------------
    def write(self, frame_time: int, arrays: Sequence[np.ndarray]) -> None:
        """One cycle: ``arrays`` one per channel, all of the cycle's length."""
        c = self.ctr
        n = len(arrays[0])
        c[_CYCLES] += 1
        nxt = int(c[_NEXT_TIME])
        if nxt < 0:
            c[_FIRST_TIME] = frame_time
        else:
            skipped = (frame_time - nxt) % FRAME_TIME_MOD
            if skipped < FRAME_TIME_MOD // 2:  # (a frame time going back is not a gap)
                c[_PENDING] += skipped
                c[_MISSED] += skipped
        c[_NEXT_TIME] = (frame_time + n) % FRAME_TIME_MOD
        w = int(c[_WRITTEN])
        if n > self.capacity - (w - int(c[_READ])) or n < _MIN_PERIOD:
            c[_PENDING] += n
            c[_OVERFLOW] += n
            return
        i = w % self.capacity
        k = min(n, self.capacity - i)
        buf = self.buf
        for ch, a in enumerate(arrays):
            buf[ch, i : i + k] = a[:k]
            if k < n:
                buf[ch, : n - k] = a[k:]
        pending = int(c[_PENDING])
        if pending:
            g = int(c[_GAPS_W])
            self.gaplog[g % self.n_gaplog] = (w, pending)
            c[_PENDING] = 0
            c[_GAPS_W] = g + 1
        c[_WRITTEN] = w + n  # last: publishes the cycle (and its gap)

    # the reader --------------------------------------------------------------------------------------
    @property
    def written(self) -> int:
        return int(self.ctr[_WRITTEN])

    @property
    def read_upto(self) -> int:
        return int(self.ctr[_READ])

    @property
    def available(self) -> int:
        """Frames written and not read yet."""
        return int(self.ctr[_WRITTEN]) - int(self.ctr[_READ])

    def counter(self, name: str) -> int:
        """One of the writer's counters: overflow_frames, missed_frames, cycles, xruns, gone."""
        idx = {"overflow_frames": _OVERFLOW, "missed_frames": _MISSED, "cycles": _CYCLES, "xruns": _XRUNS}
        return int(self.ctr[idx.get(name, _GONE)])

    @property
    def t0_ns(self) -> int | None:
        """Wall-clock time of sample 0 (ns since the epoch), once the first cycle came."""
        t = int(self.ctr[_T0_NS])
        return None if t < 0 else t

    def read(self, max_frames: int) -> tuple[int, np.ndarray | None]:
        """(frames missing before the samples, ``(n, n_channels)`` float32 copy or None).

        Up to ``max_frames`` frames, never across a gap: a gap comes back first, with the
        samples that follow it; ``(0, None)`` when nothing new was written."""
        c = self.ctr
        w, r = int(c[_WRITTEN]), int(c[_READ])
        gw, gr = int(c[_GAPS_W]), int(c[_GAPS_R])
        gap = 0
        if gr < gw and self.gaplog[gr % self.n_gaplog][0] <= r:
            gap = int(self.gaplog[gr % self.n_gaplog][1])
            gr += 1
            c[_GAPS_R] = gr
        end = min(w, r + max_frames)
        if gr < gw and self.gaplog[gr % self.n_gaplog][0] < end:
            end = int(self.gaplog[gr % self.n_gaplog][0])
        if end <= r:
            return gap, None
        i, n = r % self.capacity, end - r
        k = min(n, self.capacity - i)
        out = np.empty((n, self.buf.shape[0]), np.float32)
        out[:k] = self.buf[:, i : i + k].T
        if k < n:
            out[k:] = self.buf[:, : n - k].T
        c[_READ] = end  # last: frees the space
        return gap, out


def import_jack():
    """The JACK binding, or a one-line :class:`SourceError` saying what to install."""
    try:
        import jack
    except ImportError:
        raise SourceError(
            "input.source = 'jack' needs the JACK binding: pip install 'gla-receiver[jack]' (JACK-Client)"
        ) from None
    except OSError as e:  # JACK-Client is there, libjack is not
        raise SourceError(
            f"input.source = 'jack': the JACK library is missing ({e}): install JACK (Debian: apt install jackd2)"
        ) from None
    jack.set_error_function(lambda m: log.debug("libjack: %s", m))
    jack.set_info_function(lambda m: log.debug("libjack: %s", m))
    return jack


def _open(jack, cfg: dict) -> tuple[Any, list, list[str]]:
    """Open the client, check the rate, register the inputs and check the ports to connect."""
    server = cfg["server"]
    try:
        client = jack.Client(cfg["client_name"], no_start_server=True, servername=server)
    except jack.JackError as e:
        raise SourceError(
            f"input.jack: cannot open a client on the JACK server {server!r} ({e}): is jackd running?"
        ) from None
    try:
        fs, want = float(client.samplerate), float(cfg["sample_rate_hz"])
        if fs != want:
            raise SourceError(
                f"input.sample_rate_hz = {want:g}: the JACK server {server!r} runs at {fs:g} Hz "
                f"(start jackd with -r {want:g}, or configure its rate)"
            )
        nch = cfg["n_channels"]
        inports = [client.inports.register(f"in_{i + 1}") for i in range(nch)]
        ports = cfg["ports"]
        if ports is None:
            found = client.get_ports(is_audio=True, is_output=True, is_physical=True)
            if len(found) < nch:
                raise SourceError(
                    f"input.jack.ports not given and the JACK server {server!r} has {len(found)} physical "
                    f"capture ports for {nch} inputs: list the ports to connect (jack_lsp shows them)"
                )
            ports = [p.name for p in found[:nch]]
        for i, name in enumerate(ports):
            try:
                port = client.get_port_by_name(name)
            except jack.JackError:
                raise SourceError(
                    f"input.jack.ports[{i}] = {name!r}: no such port on the JACK server {server!r} "
                    "(jack_lsp lists them)"
                ) from None
            if not (port.is_audio and port.is_output):
                raise SourceError(f"input.jack.ports[{i}] = {name!r}: not an audio output port")
    except BaseException:
        client.close()
        raise
    return client, inports, list(ports)


def capture_main(conn, shared, cfg: dict) -> None:
    """The capture process: open (answer ``("ok", info)`` or ``("error", line)``), then at
    ``"start"`` activate and connect (answer again), then run until ``"stop"`` or the pipe closes."""
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the receiver's to handle: it says stop
    try:
        jack = import_jack()
        client, inports, ports = _open(jack, cfg)
    except SourceError as e:
        conn.send(("error", str(e)))
        return
    ring = CycleRing(cfg["n_channels"], cfg["capacity"], shared)
    ctr, fs = ring.ctr, float(client.samplerate)

    def process(frames: int) -> None:
        if ctr[_T0_NS] < 0:  # the buffer of the first cycle began one period ago
            ctr[_T0_NS] = time.time_ns() - int(frames * 1e9 / fs)
        ring.write(client.last_frame_time, [p.get_array() for p in inports])

    def xrun(delayed_usecs: float) -> None:
        ctr[_XRUNS] += 1

    def shutdown(status: Any, reason: str) -> None:
        ctr[_GONE] = 1

    def samplerate(rate: int) -> None:
        if float(rate) != fs:
            ctr[_GONE] = 2

    client.set_process_callback(process)
    client.set_xrun_callback(xrun)
    client.set_shutdown_callback(shutdown)
    client.set_samplerate_callback(samplerate)
    conn.send(("ok", {"name": client.name, "ports": ports, "blocksize": client.blocksize}))
    try:
        if conn.recv() != "start":
            return
        client.activate()
        for i, (src, dst) in enumerate(zip(ports, inports)):
            try:
                client.connect(src, dst)
            except jack.JackError as e:
                conn.send(("error", f"input.jack.ports[{i}] = {src!r}: cannot connect it to {dst.name} ({e})"))
                return
        conn.send(("ok", None))
        while not conn.poll(0.5):
            pass
    except (EOFError, OSError):  # the receiver is gone
        pass
    finally:
        try:
            client.deactivate()
            client.close()
        except Exception:  # the server may be gone already
            pass
