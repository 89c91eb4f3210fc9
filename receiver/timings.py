"""Start-up timings: when a command reached each phase of its set-up, for the start-up benchmark.

Off unless the environment variable ``GLA_TIMINGS`` is set to anything but ``0`` (``gla replay
--timings`` sets it). Then :func:`mark` prints one line per phase on stderr, in every process of
the command (the pipeline's workers inherit the variable)::

    gla-timings: first_block 1.234 s unix 1765150000.123456 pid 4242 cpu 1.105 s

the seconds counted from the start of the command's process (the kernel's record of it, so the
interpreter's own start-up is included; where there is no ``/proc``, from this module's import),
the absolute time, which a caller that started the command compares with its own clock
(``benchmarks/bench_startup.py``), and the CPU time the printing process has used (a forked
worker counts from its fork; on a busy machine this moves less than the clock does).
``first_block`` is the moment the first block of samples has been through every worker's chains
and is back in the parent (:class:`FirstBlock`): the end of start-up. No heavy imports here: the
module is imported before anything else is.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "GLA_TIMINGS"
PREFIX = "gla-timings:"


def enabled() -> bool:
    return os.environ.get(ENV, "0") not in ("", "0")


def _process_start_unix() -> float:
    """When this process started (Linux: /proc, to a clock tick), else now."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # field 22 of proc_pid_stat(5) (counted here after the command name): clock ticks from
        # boot to the process's start, on the clock CLOCK_BOOTTIME reads
        started_s = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - started_s)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


#: The start of the command: set once by the process that reads it first and handed to the
#: workers it starts through the environment, so that every process counts from the command.
T0_ENV = "GLA_TIMINGS_T0"


def command_start_unix() -> float:
    t0 = os.environ.get(T0_ENV)
    if t0 is None:
        t0 = repr(_process_start_unix())
        os.environ[T0_ENV] = t0
    return float(t0)


def mark(phase: str) -> None:
    """Print when ``phase`` was reached (nothing unless timings are on)."""
    if not enabled():
        return
    now = time.time()
    t = now - command_start_unix()
    cpu = time.process_time()
    # one write of the whole line: print() writes the text and its newline apart, and the workers
    # share the parent's stderr, so two processes marking at once interleaved their lines (a
    # pipe keeps a single write of up to 4096 bytes whole)
    sys.stderr.write(f"{PREFIX} {phase} {t:.3f} s unix {now:.6f} pid {os.getpid()} cpu {cpu:.3f} s\n")
    sys.stderr.flush()


class FirstBlock:
    """Marks ``first_block`` once an output of every one of ``n_workers`` workers has come back
    (the workers answer blocks in order, so their first outputs are the first block's)."""

    def __init__(self, n_workers: int) -> None:
        self.waiting = set(range(max(1, n_workers))) if enabled() else set()

    def seen(self, output) -> None:
        # a block's output: not a measurement's reply, nor a flush's (first_sample -1, e.g. the
        # reset at the start of a capture's first segment)
        if self.waiting and getattr(output, "worker", None) is not None and getattr(output, "first_sample", -1) >= 0:
            self.waiting.discard(output.worker)
            if not self.waiting:
                mark("first_block")


if enabled():
    command_start_unix()  # pinned before anything slow runs
