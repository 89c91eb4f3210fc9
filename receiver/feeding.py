"""The live input, read in its own thread, so that the service's loop can gather its messages into
larger blocks (`[receiver] feed_block_s`) and still feed what it holds when the stream pauses.

The chains cost about the same per call whatever the block's length, so 36 inputs fed 10 times a
second (0.1-s messages) spend most of the service's CPU on per-block work: the loop's own, the
samples' trip to the workers, and 36 chain calls per block in the workers. Larger blocks cut it;
the time bound keeps the latency a block may add to ``feed_block_s`` when the input stops
(a digitiser that pauses, the end of a test stream), since the source yields only on data.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from typing import Any

_END = object()


class SourceReader:
    """Iterate ``source`` in a daemon thread; :meth:`get` hands its blocks over one by one.

    The hand-over queue is bounded (``max_blocks``): when the service falls behind, the thread
    waits, and the source's own backpressure (the ZeroMQ high-water mark) takes over as before.
    An exception raised by the source is raised again by :meth:`get`."""

    def __init__(self, source: Iterable[Any], max_blocks: int = 16) -> None:
        self.source = source
        self.ended = False  #: the source has ended and every block was handed over
        self._q: queue.Queue = queue.Queue(maxsize=max_blocks)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gla-source", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for blk in self.source:
                if not self._put(blk):
                    return
        except BaseException as e:  # (handed to the service's loop, raised there)
            self._error = e
        finally:
            self._put(_END)

    def get(self, timeout_s: float) -> Any | None:
        """The next block, or None when none came within ``timeout_s`` or the source has ended
        (then :attr:`ended` is True)."""
        if self.ended:
            return None
        try:
            item = self._q.get(timeout=max(timeout_s, 0.0)) if timeout_s > 0 else self._q.get_nowait()
        except queue.Empty:
            return None
        if item is _END:
            self.ended = True
            if self._error is not None:
                raise self._error
            return None
        return item

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop handing blocks over (the source itself is stopped by its owner) and wait for the
        thread to end."""
        self._stop.set()
        self._thread.join(timeout=timeout_s)


def keep_freed_heap(trim_threshold_mb: int = 64, mmap_threshold_mb: int = 32) -> bool:
    """Have glibc's malloc keep freed memory for the next blocks instead of handing it back at once.

    Every message and block is a new array of about a megabyte; with glibc's defaults each one
    grows the heap (or maps pages) and each free gives the memory back, so the next one takes
    its page faults again: about a third of the service's CPU at 36 inputs went into the kernel
    for that. Up to ``trim_threshold_mb`` of free heap is kept, and arrays below
    ``mmap_threshold_mb`` (glibc's maximum: 32) come from the heap. Set before the workers are
    forked, it holds for them too. False (and nothing changed) where there is no glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # (glibc's malloc.h)
    ok = mallopt(m_trim_threshold, trim_threshold_mb << 20) == 1
    return ok and mallopt(m_mmap_threshold, mmap_threshold_mb << 20) == 1
