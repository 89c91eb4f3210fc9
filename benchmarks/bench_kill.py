"""Kill test of delivery: ``python benchmarks/bench_kill.py [--n 2000] [--kills 12] [--seed 1]``

Both sides run as real processes on 127.0.0.1, in a temporary directory:

* the **Computing Platform**: ``python -m platform_api`` (uvicorn, SQLite file), the hubs of a
  fleet imported through ``POST /api/v1/import/json`` (GridModel with their keys) and a receiver
  token registered through ``POST /api/v1/receivers``;
* a **receiver**: this file with ``--receiver``. It generates N realistic bundles (frames sealed
  by ``dsp.air.messages.encode_message`` under the hubs' keys, wrapped as the receiver does, see
  :func:`platform_api.testing.bundles_for`), accepts each into the durable spool
  (:class:`receiver.spool.Spool`, WAL, synchronous=FULL) at a steady rate, and delivers them with
  :class:`receiver.delivery.Deliverer` (batch route, retry with backoff). Bundle *i* is a pure
  function of *i*, so a restarted receiver resumes at the first bundle its spool does not hold
  (the source is replayable, like a capture); a bundle counts as accepted once ``put`` returned.

The orchestrator then ``kill -9``s the receiver and the platform, alternately at random moments
while the stream runs, restarting each after a random pause, until the receiver has spooled all
N and its spool is empty (it then exits 0). The next kill of a side waits until it is up again
(platform: ``/healthz``; receiver: its first statistics) plus 0.3-2.5 s, so kills land mid-stream;
no kill after 70 % of the time budget, so that the stream can finish inside it. Finally it counts
on the platform, through its GET routes (``/api/v1/bundles``, ``/api/v1/messages``):

* ``bundles_lost_in_kill_test``: N minus the distinct expected bundle_ids the platform stored;
* ``bundles_duplicated_in_kill_test``: bundle rows beyond one per bundle_id, decoded messages
  beyond one per bundle_id, messages received more than once (``receptions`` > 1) and bundles
  the platform classed ``duplicate`` (every generated frame is distinct, so any of these would be
  a double application).

``run(n_bundles, kills, ...) -> dict`` is for the benchmark integration; ``__main__`` prints it
as JSON (``--out FILE`` also writes it). Every loop is bounded in count and time (``budget_s``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RECEIVER_ID = "rx-kill-1"
SUBSTATION_ID = "sub-1"
TOKEN = "kill-test-token-rx-kill-1-0123456789"
ADMIN = "kill-test-admin-token-0123456789"
S0 = 448_826_400  # first slot: 2026-11-22T00:00Z
HUBS = 24


# -- the bundles (shared by both sides) ----------------------------------------------------------
def hubs(seed: int, n: int = HUBS):
    from platform_api.testing import fleet

    return fleet(n, seed=seed, meters=(1, 3), first_id=3_000_000)


def make_bundle(i: int, fleet_, seed: int) -> dict:
    """Bundle *i* of the stream: one scheduled-report frame of hub ``i % H``, its counter the hub's
    base counter + ``i // H``, in slot ``S0 + i`` (a pure function of *i*)."""
    from platform_api.testing import bundles_for, report, slot_time

    hub = fleet_[i % len(fleet_)]
    t = slot_time(S0 + i)
    (b,) = bundles_for(
        hub,
        report(hub, t, 1),
        at=t,
        receiver_id=RECEIVER_ID,
        substation_id=SUBSTATION_ID,
        counter=(hub.counter + i // len(fleet_)) % 2**24,
        seed=seed,
    )
    return b


# -- the receiver process ------------------------------------------------------------------------
def receiver_main(a: argparse.Namespace) -> int:
    from receiver.delivery import Deliverer
    from receiver.spool import Spool

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s rx[%(process)d] %(levelname)s %(message)s")
    deadline = time.monotonic() + a.max_s
    fl = hubs(a.seed)
    spool = Spool(a.spool)  # synchronous=FULL: what the service uses
    d = Deliverer(
        spool, a.url, a.token, batch=a.batch, timeout_s=5.0, backoff_initial_s=0.05, backoff_max_s=0.5, idle_poll_s=0.05
    )
    d.start()
    stats_path = Path(a.stats_dir) / f"rx-{os.getpid()}.json"
    last_snap = 0.0

    def snapshot(final: bool = False) -> None:
        st = d.stats()
        st.update(pid=os.getpid(), final=final, spooled=spool.total())
        tmp = stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(st))
        tmp.replace(stats_path)

    # puts are sequential and each is durable before the next: the spool holds a prefix
    first = max(0, spool.total() - 1)
    t0 = time.monotonic()
    for k, i in enumerate(range(first, a.n)):
        if time.monotonic() > deadline:
            return 3
        d.submit(make_bundle(i, fl, a.seed))
        lag = t0 + (k + 1) / a.rate - time.monotonic()
        if lag > 0:
            time.sleep(lag)
        if time.monotonic() - last_snap > 0.25:
            snapshot()
            last_snap = time.monotonic()
    while spool.depth() > 0 or d.stats()["overflow"]:
        if time.monotonic() > deadline:
            snapshot(final=True)
            return 3
        time.sleep(0.05)
        if time.monotonic() - last_snap > 0.25:
            snapshot()
            last_snap = time.monotonic()
    d.stop()
    snapshot(final=True)
    spool.close()
    return 0


# -- the orchestrator ----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=str(ROOT),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None  # alive: started
            os.kill(self.proc.pid, signal.SIGKILL)
            self.kills += 1
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.alive():
            assert self.proc is not None  # alive: started
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def _wait_healthy(client, url: str, child: Child, timeout: float) -> bool:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not child.alive():
            return False
        try:
            if client.get(url + "/healthz", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def _wait_receiver_ready(child: Child, stats_dir: Path, timeout: float) -> bool:
    """Until the receiver incarnation has written its first statistics (spool open, delivering)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not child.alive():
            return False
        assert child.proc is not None  # alive: started
        if (stats_dir / f"rx-{child.proc.pid}.json").exists():
            return True
        time.sleep(0.02)
    return False


def _pages(client, url: str, params: dict, limit_pages: int) -> list[dict]:
    out: list[dict] = []
    for k in range(limit_pages):
        r = client.get(url, params={**params, "limit": 1000, "offset": 1000 * k}, timeout=30.0)
        r.raise_for_status()
        page = r.json()
        out.extend(page)
        if len(page) < 1000:
            break
    return out


def run(
    n_bundles: int = 2000,
    kills: int = 12,
    *,
    seed: int = 1,
    rate_hz: float = 25.0,
    batch: int = 50,
    budget_s: float = 170.0,
    workdir: str | None = None,
    keep: bool = False,
    verbose: bool = False,
) -> dict:
    import httpx

    from receiver.spool import Spool

    t_start = time.monotonic()
    deadline = t_start + budget_s
    rng = random.Random(seed)
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="gla-kill-"))
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "stats").mkdir(exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"

    def say(msg: str) -> None:
        if verbose:
            print(f"[{time.monotonic() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "GLA_DATABASE_URL": f"sqlite:///{tmp / 'platform.db'}",
        "GLA_SUBSTATION_ID": SUBSTATION_ID,
        "GLA_BACKGROUND": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env["GLA_ADMIN_TOKEN"] = ADMIN  # operator routes need it (the platform has no open mode)
    env.pop("GLA_RECEIVERS_FILE", None)
    plat = Child(
        "platform",
        [sys.executable, "-m", "platform_api", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env,
        tmp / "platform.log",
    )
    rx = Child(
        "receiver",
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--receiver",
            "--spool",
            str(tmp / "spool.db"),
            "--url",
            url,
            "--token",
            TOKEN,
            "--n",
            str(n_bundles),
            "--seed",
            str(seed),
            "--rate",
            str(rate_hz),
            "--batch",
            str(batch),
            "--stats-dir",
            str(tmp / "stats"),
            "--max-s",
            str(budget_s),
        ],
        env,
        tmp / "receiver.log",
    )
    # who dies when: alternate receiver/platform in a shuffled order, as even as possible
    victims = ["receiver", "platform"] * (kills // 2) + (["receiver"] if kills % 2 else [])
    rng.shuffle(victims)
    client = httpx.Client()
    result: dict = {}
    try:
        fl = hubs(seed)
        expected = [make_bundle(i, fl, seed)["bundle_id"] for i in range(n_bundles)]
        assert len(set(expected)) == n_bundles, "generator produced repeated bundle_ids"
        from platform_api.testing import gridmodel

        plat.start()
        if not _wait_healthy(client, url, plat, 60):
            raise RuntimeError(f"the platform did not start: see {plat.log_path}")
        admin = {"Authorization": f"Bearer {ADMIN}"}
        r = client.post(url + "/api/v1/import/json", json=gridmodel(fl, SUBSTATION_ID), headers=admin, timeout=60)
        r.raise_for_status()
        r = client.post(
            url + "/api/v1/receivers",
            json={"receiver_id": RECEIVER_ID, "substation_id": SUBSTATION_ID, "token": TOKEN},
            headers=admin,
            timeout=30,
        )
        r.raise_for_status()
        say(f"platform up on {url}: {len(fl)} hubs imported, receiver {RECEIVER_ID} registered")
        rx.start()
        _wait_receiver_ready(rx, tmp / "stats", 60)
        done = False
        k = 0
        next_kill = time.monotonic() + rng.uniform(1.0, 2.5)
        crashes = 0
        for _ in range(int(budget_s / 0.02) + 10):  # bounded: at most budget_s of 20 ms ticks
            now = time.monotonic()
            if now > deadline:
                say("time budget exhausted")
                break
            if not rx.alive():
                assert rx.proc is not None  # started before the loop
                rc = rx.proc.returncode
                if rc == 0:
                    done = True
                    say("receiver finished: everything spooled and delivered")
                    break
                crashes += 1
                say(f"receiver exited with {rc}: restarting")
                if crashes > 5:
                    break
                rx.start()
                _wait_receiver_ready(rx, tmp / "stats", 60)
            if not plat.alive():
                assert plat.proc is not None  # started before the loop
                say(f"platform exited with {plat.proc.returncode}: restarting")
                crashes += 1
                if crashes > 5:
                    break
                plat.start()
                _wait_healthy(client, url, plat, 60)
            # kills stop at 70 % of the budget so that the stream can always finish in it
            if k < len(victims) and now >= next_kill and now < t_start + 0.7 * budget_s:
                who = plat if victims[k] == "platform" else rx
                who.kill9()
                k += 1
                down = rng.uniform(0.0, 1.0)
                say(f"kill -9 {who.name} ({who.kills}); restart in {down:.2f}s")
                time.sleep(down)
                who.start()
                # the next kill hits a side that is up and working, mid-stream
                if who is plat:
                    _wait_healthy(client, url, plat, 60)
                else:
                    _wait_receiver_ready(rx, tmp / "stats", 60)
                next_kill = time.monotonic() + rng.uniform(0.3, 2.5)
            time.sleep(0.02)
        if not plat.alive():
            plat.start()
        _wait_healthy(client, url, plat, 60)
        # -- count -------------------------------------------------------------------------------
        rows = _pages(client, url + "/api/v1/bundles", {"substation_id": SUBSTATION_ID}, n_bundles // 1000 + 20)
        msgs = _pages(client, url + "/api/v1/messages", {"substation_id": SUBSTATION_ID}, n_bundles // 1000 + 20)
        stored = [r["bundle_id"] for r in rows]
        want = set(expected)
        lost = len(want - set(stored))
        per_msg: dict[str, int] = {}
        for m in msgs:
            per_msg[m["bundle_id"]] = per_msg.get(m["bundle_id"], 0) + 1
        statuses: dict[str, int] = {}
        for row in rows:
            key = row["status"] + (f":{row['reason']}" if row.get("reason") else "")
            statuses[key] = statuses.get(key, 0) + 1
        dup_rows = len(stored) - len(set(stored))
        dup_msgs = sum(c - 1 for c in per_msg.values() if c > 1)
        dup_receptions = sum(max(0, int(m.get("receptions", 1)) - 1) for m in msgs)
        dup_status = statuses.get("duplicate", 0)
        sp = Spool(tmp / "spool.db", readonly=True)
        spool_counts = sp.counts()
        spooled = sp.ids()
        conflicts = sum(1 for r in sp.rows("delivered", limit=n_bundles + 10) if r["http_status"] == 409)
        sp.close()
        # the last snapshot of every receiver incarnation
        snaps = []
        for f in sorted((tmp / "stats").glob("rx-*.json")):
            try:
                snaps.append(json.loads(f.read_text()))
            except ValueError:
                pass
        result = {
            "bundles_lost_in_kill_test": lost,
            "bundles_duplicated_in_kill_test": dup_rows + dup_msgs + dup_receptions + dup_status,
            "kill_test_bundles": n_bundles,
            "kill_test_kills_receiver": rx.kills,
            "kill_test_kills_platform": plat.kills,
            "kill_test_kills_requested": kills,
            "wall_s": round(time.monotonic() - t_start, 1),
            "kill_test_complete": done,
            "kill_test_spooled": len(spooled),
            "kill_test_spooled_unexpected": len(set(spooled) - want),
            "kill_test_spool": spool_counts,
            "kill_test_spool_conflicts_409": conflicts,
            "kill_test_stored_on_platform": len(set(stored) & want),
            "kill_test_messages": len(msgs),
            "kill_test_platform_status": statuses,
            "kill_test_duplicates_detail": {
                "bundle_rows": dup_rows,
                "messages_per_bundle": dup_msgs,
                "receptions": dup_receptions,
                "status_duplicate": dup_status,
            },
            "kill_test_replayed_answers": sum(s.get("replayed", 0) for s in snaps),
            "kill_test_retries": sum(s.get("retries", 0) for s in snaps),
            "kill_test_connect_failures": sum(s.get("failures", {}).get("connect", 0) for s in snaps),
            "kill_test_receiver_starts": rx.starts,
            "kill_test_platform_starts": plat.starts,
            "kill_test_unexpected_exits": crashes,
            "kill_test_seed": seed,
            "kill_test_rate_hz": rate_hz,
            "kill_test_spool_synchronous": "FULL",
        }
        say(json.dumps(result))
    finally:
        for c in (rx, plat):
            try:
                c.terminate()
            except Exception:  # pragma: no cover
                pass
        client.close()
        if not keep and not workdir:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        elif verbose:
            print(f"files kept in {tmp}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="bundles in the stream")
    p.add_argument("--kills", type=int, default=12, help="kill -9s in all (alternating sides, shuffled)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=25.0, help="bundles/s the receiver accepts")
    p.add_argument("--batch", type=int, default=50, help="the deliverer's batch size")
    p.add_argument("--budget", type=float, default=170.0, help="seconds before giving up")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, databases)")
    p.add_argument("--out", help="also write the result JSON here")
    p.add_argument("-q", "--quiet", action="store_true")
    # the receiver side (started by the orchestrator)
    p.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--spool", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--token", help=argparse.SUPPRESS)
    p.add_argument("--stats-dir", help=argparse.SUPPRESS)
    p.add_argument("--max-s", type=float, default=300.0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.receiver:
        return receiver_main(a)
    res = run(
        a.n, a.kills, seed=a.seed, rate_hz=a.rate, batch=a.batch, budget_s=a.budget, keep=a.keep, verbose=not a.quiet
    )
    import shlex

    from benchmarks.common import machine

    args = list(argv if argv is not None else sys.argv[1:])
    res = {
        **res,
        "command": " ".join(["python", "benchmarks/bench_kill.py", *map(shlex.quote, args)]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        from benchmarks.common import write_json

        write_json(Path(a.out), res)
    ok = (
        res.get("kill_test_complete")
        and res["bundles_lost_in_kill_test"] == 0
        and res["bundles_duplicated_in_kill_test"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
