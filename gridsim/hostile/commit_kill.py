"""Kill the platform mid-commit and count the acknowledged bundles lost (must be 0).

``python benchmarks/bench_commit_kill.py [--rounds 24] [--seed 1]`` runs it as a benchmark;
``tests/test_platform_powercut.py`` as a test.

Every acknowledged bundle must survive: a 201 (or a batch's per-bundle 201) is a promise to the
receiver, which then forgets the bundle. This test takes the platform's side of that promise alone:

* one SQLite file in a temporary directory, the hubs imported and a receiver registered once;
* each round **forks** a process that serves ``create_app`` on that file with uvicorn (fork, not a
  fresh interpreter: a round then costs a few hundred ms instead of seconds), while three client
  threads post bundles to it without pause (single posts, which the platform commits together
  through its group commit, and batches of 2-20), recording every bundle_id the platform
  acknowledged;
* once the first answer of the round is in, after a random 0-600 ms more, the server gets
  **SIGKILL** (no shutdown, no flush: the commit in flight is cut wherever it is);
* the file is then reopened with the plain ``sqlite3`` module (WAL recovery, ``PRAGMA
  integrity_check``) and every acknowledged bundle_id must be in ``bundles``; bundles whose post
  got no answer are posted again in the next round, as a receiver's spool would.

``run(rounds, seed) -> dict`` returns ``bundles_lost_kill_test`` (acknowledged bundles missing
after a kill, summed over rounds: must be 0) with the counts behind it.

What a process kill shows and what it cannot: after SIGKILL, data the process handed to the
kernel is still in the page cache, so this catches any answer sent before the commit (an
acknowledgement racing the transaction, a write-behind cache, a commit left to a background
thread) and any torn transaction, at random points of the commit path. Surviving a power cut also
needs the commit *on the disk* before the answer: that is ``PRAGMA synchronous=FULL`` on every
connection (WAL fsynced at each commit), which ``tests/test_platform_powercut.py`` checks on every
path the platform opens connections by.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

ADMIN = "commit-kill-admin-token-0123456789"
RECEIVER_ID = "rx-kill-1"
SUBSTATION_ID = "sub-1"
TOKEN = "commit-kill-receiver-token-0123456789"
CLIENTS = 3
S0 = 448_826_400  # first slot: 2026-11-22T00:00Z
HUBS = 24


def _hubs(seed: int):
    from platform_api.testing import fleet

    return fleet(HUBS, seed=seed, meters=(1, 3), first_id=3_000_000)


def _bundle(i: int, hubs: list, seed: int) -> dict:
    """Bundle *i*: one scheduled-report frame of hub ``i % H``, its counter the hub's base counter
    + ``i // H``, in slot ``S0 + i`` (a pure function of *i*: a re-post is the same body)."""
    from platform_api.testing import bundles_for, report, slot_time

    hub = hubs[i % len(hubs)]
    t = slot_time(S0 + i)
    (b,) = bundles_for(
        hub,
        report(hub, t, 1),
        at=t,
        receiver_id=RECEIVER_ID,
        substation_id=SUBSTATION_ID,
        counter=(hub.counter + i // len(hubs)) % 2**24,
        seed=seed,
    )
    return b


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(db: Path):
    from platform_api.core.config import Settings

    return Settings(database_url=f"sqlite:///{db}", admin_token=ADMIN, background=False, substation_id=SUBSTATION_ID)


def _serve(db: str, port: int) -> None:
    """The forked server: the app on the database file, uvicorn on 127.0.0.1:port, until killed."""
    import uvicorn

    from platform_api.main import create_app

    app = create_app(_settings(Path(db)))
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")).run()


def _setup(db: Path, seed: int) -> None:
    """The hubs' keys and the receiver's credential, committed before the first round."""
    from fastapi.testclient import TestClient

    from platform_api.main import create_app
    from platform_api.testing import gridmodel

    app = create_app(_settings(db))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(app) as c:
        r = c.post("/api/v1/import/json", json=gridmodel(_hubs(seed), SUBSTATION_ID), headers=admin)
        assert r.status_code == 200, r.text
        r = c.post(
            "/api/v1/receivers",
            json={"receiver_id": RECEIVER_ID, "substation_id": SUBSTATION_ID, "token": TOKEN},
            headers=admin,
        )
        assert r.status_code == 201, r.text
    app.state.platform.db.dispose()


def _stored(db: Path) -> tuple[set[str], str]:
    """The bundle_ids in the file and its integrity check, read as a fresh process would after a crash."""
    c = sqlite3.connect(str(db), timeout=30)
    try:
        ids = {r[0] for r in c.execute("SELECT bundle_id FROM bundles")}
        ok = c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()
    return ids, ok


class _Stream:
    """Bundles by index (a pure function of it), handed out once each; the ones without an answer
    are handed out again first."""

    def __init__(self, seed: int) -> None:
        self.seed, self.fleet = seed, _hubs(seed)
        self.lock = threading.Lock()
        self.next_i = 0
        self.retry: list[int] = []

    def take(self, n: int) -> list[int]:
        with self.lock:
            out = self.retry[:n]
            del self.retry[:n]
            while len(out) < n:
                out.append(self.next_i)
                self.next_i += 1
            return out

    def give_back(self, idx: list[int]) -> None:
        with self.lock:
            self.retry.extend(idx)

    def bundle(self, i: int) -> dict:
        return _bundle(i, self.fleet, self.seed)


def _client(url: str, stream: _Stream, stop: threading.Event, acked: set[str], lock: threading.Lock, seed: int):
    import httpx

    rng = random.Random(seed)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=auth, timeout=10.0) as c:
        while not stop.is_set():
            idx = stream.take(1 if rng.random() < 0.7 else rng.randint(2, 20))
            bundles = [stream.bundle(i) for i in idx]
            got: list[str] = []
            try:
                if len(bundles) == 1:
                    r = c.post("/api/v1/bundles", json=bundles[0])
                    if r.status_code == 201:
                        got = [bundles[0]["bundle_id"]]
                else:
                    r = c.post("/api/v1/bundles/batch", json={"bundles": bundles})
                    if r.status_code == 200:
                        res = r.json()["results"]
                        got = [b["bundle_id"] for b, x in zip(bundles, res) if x["http_status"] == 201]
            except httpx.HTTPError:
                pass  # the server died under this request: no answer, no promise
            with lock:
                acked.update(got)
            missing = [i for i, b in zip(idx, bundles) if b["bundle_id"] not in got]
            if missing:
                stream.give_back(missing)
                time.sleep(0.01)


def _wait_up(url: str, proc, timeout_s: float = 60.0) -> bool:
    import httpx

    end = time.monotonic() + timeout_s
    while time.monotonic() < end and proc.is_alive():
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    return False


def run(rounds: int = 24, *, seed: int = 1, workdir: str | None = None, verbose: bool = False) -> dict:
    t0 = time.monotonic()
    rng = random.Random(seed)
    tmp = Path(workdir or tempfile.mkdtemp(prefix="gla-commit-kill-"))
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / "platform.db"
    _setup(db, seed)
    ctx = mp.get_context("fork")  # no threads and no open connection in this process at a fork
    stream = _Stream(seed)
    acked: set[str] = set()
    lost: set[str] = set()
    integrity: list[str] = []
    kills_mid_post = 0
    for k in range(rounds):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = ctx.Process(target=_serve, args=(str(db), port), daemon=True)
        proc.start()
        if not _wait_up(url, proc):
            proc.kill()
            raise RuntimeError(f"round {k}: the platform did not start on {db}")
        stop, lock = threading.Event(), threading.Lock()
        before = len(acked)
        threads = [
            threading.Thread(target=_client, args=(url, stream, stop, acked, lock, seed * 1000 + k * 10 + j))
            for j in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        end = time.monotonic() + 30.0
        while len(acked) == before and time.monotonic() < end:  # the stream is flowing: kill it mid-way
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.6))
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        stop.set()
        for t in threads:
            t.join(30)
        kills_mid_post += len(acked) > before
        ids, ok = _stored(db)
        integrity.append(ok)
        lost |= acked - ids
        if verbose:
            print(
                f"round {k}: {len(acked) - before} acknowledged, {len(ids)} stored, lost {len(acked - ids)}, "
                f"integrity {ok}",
                file=sys.stderr,
                flush=True,
            )
    return {
        "bundles_lost_kill_test": len(lost),
        "commit_kill_rounds": rounds,
        "commit_kill_rounds_with_acks": kills_mid_post,
        "commit_kill_acknowledged": len(acked),
        "commit_kill_integrity_ok": sum(x == "ok" for x in integrity),
        "commit_kill_posted_distinct": stream.next_i,
        "commit_kill_wall_s": round(time.monotonic() - t0, 1),
        "commit_kill_command": f"python benchmarks/bench_commit_kill.py --rounds {rounds} --seed {seed}",
    }
