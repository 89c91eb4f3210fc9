"""CPU and memory of a command's whole process tree (the command and every process it starts),
read from Linux's /proc while the command runs: for the product benchmarks (bench_product).

psutil is not a dependency; /proc gives the same figures. A background thread samples every
``interval_s``: the tree's members (the root and its descendants, found by their parent ids,
re-scanned every ``rescan_s``), each one's CPU seconds (user + system, ``/proc/PID/stat``), its
resident set (``statm``) and its own peak (``VmHWM``, kept by the kernel: a sample cannot miss
it). The peak of the tree's summed resident set is the largest sum seen at a sample; forked
workers share the parent's pages until they write them, so the sum counts those pages once per
process (an upper bound on the memory the tree holds). A process's last sample is taken at
most ``interval_s`` before it exits, so its CPU seconds may miss that much at the end; the
caller's ``os.wait4`` of the root gives the exact total of the tree (the root reaps its workers).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class ProcSample:
    pid: int
    name: str
    cpu_s: float = 0.0  # user + system CPU seconds of the process itself (not its children)
    rss_mb: float = 0.0
    hwm_mb: float = 0.0  # the kernel's record of the process's peak resident set
    first_seen: float = 0.0  # time.time() of the first sample
    last_seen: float = 0.0


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of ``pid`` (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # proc_pid_stat(5): after the name, field 4 (ppid) is rest[1], utime/stime are fields 14/15
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK


def _memory_mb(pid: int) -> tuple[float, float]:
    """(resident set, peak resident set) of ``pid`` in MB (0 if it is gone)."""
    rss = hwm = 0.0
    try:
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * _PAGE / 2**20
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
                    break
    except (OSError, IndexError, ValueError):
        pass
    return rss, hwm


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, from the parent ids in /proc."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st is not None:
                children.setdefault(st[0], []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


@dataclass
class TreeSampler:
    """Samples the tree of ``root`` until :meth:`stop` (a context manager: started on enter)."""

    root: int
    interval_s: float = 0.1
    rescan_s: float = 0.1  # (a short replay's workers live a few tenths of a second)
    procs: dict[int, ProcSample] = field(default_factory=dict)
    peak_rss_sum_mb: float = 0.0
    samples: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._members: list[int] = [self.root]
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def __enter__(self) -> TreeSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        next_scan = 0.0
        while not self._stop.wait(self.interval_s):
            if time.monotonic() >= next_scan:
                self._members = descendants(self.root)
                next_scan = time.monotonic() + self.rescan_s
            self.sample()

    def sample(self) -> float:
        """One sample of every member now; returns the tree's CPU seconds so far (of the
        processes seen, each at its last sample)."""
        now = time.time()
        total_rss = 0.0
        with self._lock:
            for pid in self._members:
                st = _stat(pid)
                if st is None:
                    continue
                rss, hwm = _memory_mb(pid)
                p = self.procs.get(pid)
                if p is None:
                    p = self.procs[pid] = ProcSample(pid, _name(pid), first_seen=now)
                p.cpu_s, p.rss_mb, p.hwm_mb, p.last_seen = st[1], rss, max(p.hwm_mb, hwm), now
                total_rss += rss
            self.peak_rss_sum_mb = max(self.peak_rss_sum_mb, total_rss)
            self.samples += 1
            return sum(p.cpu_s for p in self.procs.values())

    def cpu_now(self) -> float:
        """The tree's CPU seconds now (rescans its members first)."""
        self._members = descendants(self.root)
        return self.sample()

    def cpu_by_pid(self) -> dict[int, float]:
        """Each process's CPU seconds at its last sample."""
        with self._lock:
            return {pid: p.cpu_s for pid, p in self.procs.items()}

    def hwm_sum_mb(self) -> float:
        """The sum of every process's own peak resident set (peaks that need not coincide: an
        upper bound on the tree's peak that no sampling interval can miss)."""
        return sum(p.hwm_mb for p in self.procs.values())
