"""Disk-full scenario of the receiver (run by ``python benchmarks/bench_disk_full.py``, tests/test_disk_full.py
and the reliability benchmark).

The receiver's bundle path, for real: ``captures/demo_small`` (12 inputs, 8 s, 4 bursts) is read
``passes`` times end to end as one continuous stream (each pass later in stream time, so every
bundle has its own id) through the receive chains and the grouper, into
:class:`receiver.sink.BundleSink` (the durable spool first, then the JSONL archive) with a
:class:`receiver.delivery.Deliverer` posting to the Computing Platform (the platform app served by
uvicorn on 127.0.0.1, SQLite). The receiver's data directory fills up after the first third of
the bundles and gets its room back after the second third:

* ``tmpfs`` mode (root, or wherever ``mount -t tmpfs`` is allowed): the data directory is a 4 MiB
  tmpfs; filling it means writing a ballast file until the kernel answers ``ENOSPC``, freeing it
  means deleting the ballast. SQLite and the archive meet the real error.
* ``injected`` mode (always possible, what CI runs): every ``os.write`` to a file under the data
  directory returns short once, then fails with ``ENOSPC``, and every connection of the spool gets
  ``PRAGMA max_page_count`` = its current size (SQLite then answers "database or disk is full",
  its own disk-full path).

Counted at the end, against the platform's database and the archive:

* ``bundles_made``: distinct bundles the grouper made; ``bundles_delivered``: of them, stored by
  the platform; ``bundles_lost_disk_full`` = made - delivered; ``bundles_duplicated_disk_full``:
  platform rows beyond one per bundle_id plus rows whose content (channel, code, start sample,
  frame) repeats another's; also the archive's lines (whole, each bundle once) and whether the
  receiver went degraded and came back.

:func:`run` returns the dict; ``__main__`` prints it as JSON (``--out FILE`` also writes it).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CAPTURE = ROOT / "captures" / "demo_small"


# -- the disks -----------------------------------------------------------------------------------
class TmpfsDisk:
    """A small tmpfs mounted on ``path`` (raises OSError when mounting is not permitted)."""

    kind = "tmpfs"

    def __init__(self, path: Path, size_bytes: int = 4 << 20) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise OSError(errno.EPERM, f"cannot mount a tmpfs on {self.path}: {r.stderr.strip() or r.returncode}")
        self.ballast = self.path / "ballast"
        self.full = False

    def fill(self) -> int:
        """Write the ballast until the kernel refuses (ENOSPC). Returns the bytes written."""
        n = 0
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for chunk in (1 << 16, 4096, 512, 1):
                buf = b"\0" * chunk
                while True:
                    try:
                        w = os.write(fd, buf)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
                    n += w
                    if w < chunk:
                        break
        finally:
            os.close(fd)
        self.full = True
        return n

    def free(self) -> None:
        self.ballast.unlink(missing_ok=True)
        self.full = False

    def attach(self, spool) -> None:  # the real disk needs no hook
        pass

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


class InjectedDisk:
    """``ENOSPC`` injected under ``path`` while :attr:`full`: ``os.write`` to its files (one short
    write, then the error), and every SQLite connection to a database under ``path`` (opened
    through ``sqlite3.connect`` once this exists) answers a write statement with SQLite's own
    disk-full error, ``database or disk is full``."""

    kind = "injected"
    _WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.root = str(self.path.resolve())
        self.full = False
        self._real_write = os.write
        self._real_connect = sqlite3.connect
        self._short_done = False
        disk = self

        class Connection(sqlite3.Connection):
            def execute(self, sql, *args):
                if disk.full and sql.lstrip().upper().startswith(disk._WRITES):
                    raise sqlite3.OperationalError("database or disk is full")
                return super().execute(sql, *args)

        def connect(database, *args, **kw):
            if str(Path(str(database)).resolve()).startswith(self.root) and "factory" not in kw:
                kw["factory"] = Connection
            return self._real_connect(database, *args, **kw)

        sqlite3.connect = connect
        os.write = self._write

    def _under(self, fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(self.root)
        except OSError:
            return False

    def _write(self, fd: int, data) -> int:
        if self.full and self._under(fd):
            if not self._short_done and len(data) > 1:  # the disk fills up during this write
                self._short_done = True
                return self._real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._real_write(fd, data)

    def attach(self, spool) -> None:  # every connection is already made through the hook
        pass

    def fill(self) -> int:
        self.full, self._short_done = True, False
        return 0

    def free(self) -> None:
        self.full = False

    def close(self) -> None:
        self.full = False
        os.write = self._real_write
        sqlite3.connect = self._real_connect


def make_disk(mode: str, path: Path):
    """``tmpfs``, ``injected`` or ``auto`` (tmpfs when mounting is permitted)."""
    if mode in ("tmpfs", "auto"):
        try:
            return TmpfsDisk(path)
        except OSError:
            if mode == "tmpfs":
                raise
    return InjectedDisk(path)


# -- the platform ----------------------------------------------------------------------------------
class ServedPlatform:
    """The platform app (:class:`platform_api.testing.Harness`: receiver rx-1 of sub-1 registered)
    served by uvicorn in a thread on 127.0.0.1, on a fresh migrated SQLite database."""

    def __init__(self, folder: Path) -> None:
        import uvicorn

        from platform_api.core.db import make_engine, migrate
        from platform_api.testing import Harness

        url = f"sqlite:///{folder / 'platform.db'}"
        eng = make_engine(url)
        migrate(eng)
        eng.dispose()
        self.h = Harness(url)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.h.app, lifespan="off", log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        end = time.monotonic() + 20
        while not self.server.started and time.monotonic() < end:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")

    def rows(self) -> list[dict]:
        """The platform's bundle rows (id and the content that identifies a burst)."""
        from platform_api.models import BundleRow

        with self.h.pf.db.session() as s:
            out = []
            for r in s.query(BundleRow).all():
                d = json.loads(r.body)
                content = (d["channel"], d["code"], d["copies"][0]["start_sample"], d.get("frame_hex"))
                out.append({"bundle_id": r.bundle_id, "status": r.status, "content": content})
            return out

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
        self.h.close()


# -- the receiver's bundle path ----------------------------------------------------------------------
def replay_stream(passes: int, on_bundle: Callable, *, receiver_id: str, substation_id: str) -> list:
    """The capture ``passes`` times end to end through the chains (in process) and the grouper."""
    from datetime import datetime

    from dsp.air import params as P
    from receiver.grouping import Grouper
    from receiver.pipeline import Pipeline
    from receiver.replay import inputs_from_meta
    from receiver.sources import CaptureSource

    meta = CaptureSource(CAPTURE).meta
    fs = float(meta.fs_hz)
    plan = P.ChannelPlan.default(meta.grid_hz)
    t0 = meta.start_time_utc
    if isinstance(t0, str):
        t0 = datetime.fromisoformat(t0.replace("Z", "+00:00"))
    grouper = Grouper(
        plan,
        inputs_from_meta(meta),
        receiver_id=receiver_id,
        substation_id=substation_id,
        fs_hz=fs,
        t0_utc=t0,
        on_bundle=on_bundle,
    )
    pipe = Pipeline(plan, meta.n_channels, fs, workers=0)
    offset = 0
    for _ in range(passes):
        src = CaptureSource(CAPTURE, block_s=0.5)
        n = 0
        for blk in src:
            pipe.feed(offset + blk.first_sample, blk.samples)
            for o in pipe.outputs():
                grouper.add_output(o)
            n = blk.first_sample + blk.samples.shape[0]
        src.close()
        offset += n
    for o in pipe.close():
        grouper.add_output(o)
    grouper.flush()
    return grouper.bundles


def run(
    mode: str = "auto",
    *,
    passes: int = 3,
    hold_max: int = 10_000,
    workdir: str | None = None,
    budget_s: float = 120.0,
    verbose: bool = False,
) -> dict:
    """The disk-full scenario; see the module docstring. Returns the counts and what was seen."""
    from receiver.archive import BundleArchive, read_archive
    from receiver.delivery import Deliverer
    from receiver.sink import BundleSink
    from receiver.spool import Spool

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    t_start = time.monotonic()
    tmp = Path(workdir or tempfile.mkdtemp(prefix="gla-diskfull-"))
    tmp.mkdir(parents=True, exist_ok=True)
    disk = make_disk(mode, tmp / "data")
    plat = None
    sink = deliverer = spool = archive = None
    seen: dict = {"degraded_reasons": set(), "held_max": 0}
    try:
        plat = ServedPlatform(tmp)
        data = disk.path
        spool = Spool(data / "spool.sqlite")
        disk.attach(spool)
        archive = BundleArchive(data / "archive")
        deliverer = Deliverer(
            spool, plat.url, plat.h.token, batch=16, backoff_initial_s=0.05, backoff_max_s=0.3, idle_poll_s=0.05
        )
        sink = BundleSink(
            spool, archive, hold_max=hold_max, on_spooled=deliverer.wake, retry_initial_s=0.05, retry_max_s=0.3
        )
        deliverer.start()
        expected = 4 * passes  # the capture's bursts, each pass
        fill_at, free_at = max(1, expected // 3), max(2, 2 * expected // 3)
        made: list = []

        def on_bundle(b) -> None:
            made.append(b)
            sink.accept(b)
            st = sink.state()
            if st["reason"]:
                seen["degraded_reasons"].add(st["reason"])
            seen["held_max"] = max(seen["held_max"], st["held"])
            if len(made) == fill_at:
                disk.fill()
            elif len(made) == free_at:
                time.sleep(0.5)  # degraded for a while: the retries meet the full disk
                seen["degraded_reasons"].add(sink.state()["reason"])
                disk.free()

        replay_stream(passes, on_bundle, receiver_id=plat.h.receiver_id, substation_id=plat.h.substation_id)
        if disk.full:
            disk.free()
        # recovery by itself: wait for the sink to be healthy and the spool to be empty
        end = t_start + budget_s
        while time.monotonic() < end and (sink.degraded or sink.stats()["held"] or spool.depth()):
            time.sleep(0.05)
        lost_in_memory = sink.close(timeout_s=5.0)
        deliverer.stop(drain_s=5.0)
        made_ids = [b.bundle_id for b in made]
        rows = plat.rows()
        stored = Counter(r["bundle_id"] for r in rows)
        delivered = len(set(made_ids) & set(stored))
        content = Counter(r["content"] for r in rows)
        dup = sum(n - 1 for n in stored.values()) + sum(n - 1 for n in content.values())
        archived = [x.bundle_id for f in sorted((data / "archive").glob("*.jsonl")) for x in read_archive(f)]
        st = sink.stats()
        return {
            "mode": disk.kind,
            "passes": passes,
            "bundles_made": len(set(made_ids)),
            "bundles_made_twice": len(made_ids) - len(set(made_ids)),
            "bundles_delivered": delivered,
            "bundles_lost_disk_full": len(set(made_ids)) - delivered,
            "bundles_duplicated_disk_full": dup,
            "platform_rows": len(rows),
            "archived": len(archived),
            "archived_distinct": len(set(archived)),
            "archive_complete": sorted(archived) == sorted(set(made_ids)),
            "degraded_reasons": sorted(r for r in seen["degraded_reasons"] if r),
            "held_max": seen["held_max"],
            "held_total": st["held_total"],
            "dropped": st["dropped"],
            "lost_in_memory_at_stop": lost_in_memory,
            "degraded_episodes": st["degraded_episodes"],
            "recovered": sink.degraded is None,
            "wall_s": round(time.monotonic() - t_start, 2),
            "command": f"python benchmarks/bench_disk_full.py --mode {mode} --passes {passes}",
        }
    finally:
        if deliverer is not None and deliverer.running:
            deliverer.stop()
        if archive is not None:
            archive.close()
        if spool is not None:
            spool.close()
        if plat is not None:
            plat.close()
        disk.close()
        if not workdir:
            shutil.rmtree(tmp, ignore_errors=True)
