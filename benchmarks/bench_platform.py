"""Computing Platform ingest benchmark: bundles per second sustained, SQLite and PostgreSQL.

    python benchmarks/bench_platform.py [--quick] [--postgresql URL] [--bundles N] [--hubs N]

For each backend a fresh database is populated with a fleet of hubs (GridModel import) and a
stream of realistic bundles is prepared in advance: scheduled reports of every hub in its slots
(1 to 4 meters, so 1 or 2 segments), and sag/swell alerts each sent twice (the second copy an
identical repeat, i.e. a duplicate), all sealed with ``dsp.air.messages.encode_message`` and wrapped as
``receiver.contracts.bundle`` models by :func:`platform_api.testing.bundles_for`.

The platform runs as it is deployed: ``uvicorn`` serving ``create_app()`` in its own process,
pinned to **one core** with ``os.sched_setaffinity`` (core 0). The load generator runs in this
process, pinned to the other core when there is one, posting over HTTP keep-alive connections
from several threads (each hub's bundles from one thread, in order). After a warm-up, the timed
phase reports:

* ``ingest_bundles_per_s_sqlite_1core`` / ``ingest_bundles_per_s_postgresql``: single
  ``POST /api/v1/bundles`` answered per second of the server's one core, i.e. per CPU-second the
  server process used (the machine is shared and the benchmark runs under ``nice``, so the
  server rarely has its core to itself; PostgreSQL's own processes are not counted);
* ``*_wall``: the same per wall-clock second (a lower bound on a shared machine);
* ``ingest_batch_*``: the same stream through ``POST /api/v1/bundles/batch`` (100 per request),
  as the receiver's deliverer posts a backlog.

PostgreSQL runs when ``--postgresql URL`` or ``GLA_TEST_DATABASE_URL`` is given (that database is
emptied!); ``eval "$(bash scripts/ci_postgres.sh)"`` provides one. Otherwise its figures are null.
Writes ``benchmarks/results/platform.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import default_results, machine, write_json  # noqa: E402

TOKEN = "bench-receiver-token-0123456789"
ADMIN = "bench-admin-token-0123456789"
OUT = default_results() / "platform.json"
TARGET = 500.0


# -- the server (a child process, pinned) --------------------------------------------------------
def serve(db_url: str, port: int, cpu: int, receivers_file: str) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    os.environ.update({"GLA_DATABASE_URL": db_url, "GLA_RECEIVERS_FILE": receivers_file, "GLA_SUBSTATION_ID": "sub-1"})
    import uvicorn

    from platform_api.main import create_app

    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )


def _http_impl() -> str:
    """What uvicorn's "auto" picks: httptools and uvloop when installed (uvicorn[standard])."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http}, {loop}"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _cpu_seconds(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from platform_api.core.db import make_engine

    eng = make_engine(url)
    with eng.begin() as c:
        c.execute(text("DROP SCHEMA public CASCADE"))
        c.execute(text("CREATE SCHEMA public"))
    eng.dispose()


# -- the traffic -----------------------------------------------------------------------------------
def traffic(n_hubs: int, n_bundles: int, seed: int = 5):
    """(import model, bundle bodies in time order as (hub_id, bytes), length of the first round).

    The first round (every hub's first report) is the warm-up: a hub's first message takes the
    full path once (it becomes ``active``); the timed phase is the steady state."""
    from dsp.air import messages as M
    from platform_api.testing import bundles_for, fleet, gridmodel, report, slot_time

    hubs = fleet(n_hubs, seed=seed, feeders=4, laterals=4, meters=(1, 4))
    model = gridmodel(hubs)
    t0 = slot_time(448_826_400)
    out: list[tuple[int, bytes]] = []
    k = 0
    rnd = 0
    first_round = 0
    while len(out) < n_bundles or rnd == 0:
        for i, h in enumerate(hubs):
            t = t0 + timedelta(seconds=4 * (k := k + 2))
            for b in bundles_for(h, report(h, t), at=t, receiver_id="rx-bench", seed=rnd):
                out.append((h.hub_id, json.dumps(b, separators=(",", ":")).encode()))
            if (i + rnd) % 10 == 0:  # an alert and its repeat (identical frame, another slot and code)
                al = M.Alert(M.AlertType.SAG if i % 2 else M.AlertType.SWELL, int(t.timestamp()), 205.5, 2)
                frs = M.encode_message(al, hub_id=h.hub_id, counter=h.next(), key=h.key)
                for r in range(2):
                    b = bundles_for(
                        h, al, at=t + timedelta(seconds=4 + 8 * r), frames=frs, receiver_id="rx-bench", seed=100 + r
                    )[0]
                    out.append((h.hub_id, json.dumps(b, separators=(",", ":")).encode()))
        if rnd == 0:
            first_round = len(out)
        rnd += 1
    return model, out[: max(n_bundles, first_round)], first_round


class Poster:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in range(3):
            try:
                self.conn.request("POST", path, body=body, headers=self.headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise
        raise RuntimeError("unreachable")


def _run_phase(port: int, items: list[tuple[int, bytes]], threads: int, batch: int = 0) -> dict:
    """Post ``items`` from ``threads`` threads (a hub always from the same thread, in order)."""
    lanes: list[list[bytes]] = [[] for _ in range(threads)]
    for hub_id, body in items:
        lanes[hub_id % threads].append(body)
    counts: dict[str, int] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def lane(bodies: list[bytes]) -> None:
        p = Poster(port)
        local: dict[str, int] = {}
        if batch:
            chunks = [bodies[i : i + batch] for i in range(0, len(bodies), batch)]
            for ch in chunks:
                st, data = p.post("/api/v1/bundles/batch", b'{"bundles":[' + b",".join(ch) + b"]}")
                if st != 200:
                    errors.append(f"batch HTTP {st}: {data[:200]!r}")
                    continue
                for res in json.loads(data)["results"]:
                    key = res["result"]["status"] if res["http_status"] == 201 else f"http_{res['http_status']}"
                    local[key] = local.get(key, 0) + 1
        else:
            for b in bodies:
                st, data = p.post("/api/v1/bundles", b)
                key = json.loads(data)["status"] if st == 201 else f"http_{st}"
                local[key] = local.get(key, 0) + 1
                if st != 201 and len(errors) < 5:
                    errors.append(f"HTTP {st}: {data[:200]!r}")
        with lock:
            for k, v in local.items():
                counts[k] = counts.get(k, 0) + v

    ts = [threading.Thread(target=lane, args=(lanes[i],)) for i in range(threads) if lanes[i]]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return {"wall_s": time.perf_counter() - t0, "statuses": counts, "errors": errors}


def bench_backend(
    name: str,
    db_url: str,
    model: dict,
    stream: list,
    *,
    warmup: int,
    threads: int,
    tmp: Path,
    batch_share: float,
    server_cpu: int,
) -> dict:
    creds = tmp / "receivers.json"
    creds.write_text(json.dumps([{"receiver_id": "rx-bench", "substation_id": "sub-1", "token": TOKEN}]))
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", GLA_BACKGROUND="1", GLA_MISSED_CHECK_INTERVAL_S="3600")
    env["GLA_ADMIN_TOKEN"] = ADMIN  # the import below is an operator route
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            "--db",
            db_url,
            "--port",
            str(port),
            "--cpu",
            str(server_cpu),
            "--receivers",
            str(creds),
        ],
        env=env,
        cwd=str(ROOT),
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{name}: the platform did not start")
            time.sleep(0.2)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request(
            "POST",
            "/api/v1/import/json",
            body=json.dumps(model),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN}"},
        )
        r = c.getresponse()
        assert r.status == 200, r.read()
        r.read()
        n_batch = int(len(stream) * batch_share)
        single, batched = stream[: len(stream) - n_batch], stream[len(stream) - n_batch :]
        _run_phase(port, single[:warmup], threads)
        timed = single[warmup:]
        cpu0 = _cpu_seconds(proc.pid)
        load0 = os.getloadavg()
        res = _run_phase(port, timed, threads)
        cpu = _cpu_seconds(proc.pid) - cpu0
        out = {
            "bundles": len(timed),
            "wall_s": round(res["wall_s"], 3),
            "bundles_per_s": round(len(timed) / res["wall_s"], 1),
            "server_cpu_s": round(cpu, 3),
            "bundles_per_server_cpu_s": round(len(timed) / cpu, 1) if cpu else None,
            "statuses": res["statuses"],
            "errors": res["errors"],
            "client_threads": threads,
            "loadavg_before": [round(x, 2) for x in load0],
            "server_core": server_cpu,
        }
        if batched:
            cpu0 = _cpu_seconds(proc.pid)
            rb = _run_phase(port, batched, threads, batch=100)
            cpu = _cpu_seconds(proc.pid) - cpu0
            out["batch"] = {
                "bundles": len(batched),
                "per_request": 100,
                "wall_s": round(rb["wall_s"], 3),
                "bundles_per_s": round(len(batched) / rb["wall_s"], 1),
                "bundles_per_server_cpu_s": round(len(batched) / cpu, 1) if cpu else None,
                "statuses": rb["statuses"],
                "errors": rb["errors"],
            }
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer bundles (CI smoke run)")
    ap.add_argument(
        "--postgresql",
        default=os.environ.get("GLA_BENCH_DATABASE_URL") or os.environ.get("GLA_TEST_DATABASE_URL"),
        help="PostgreSQL URL to benchmark too (its database is emptied)",
    )
    ap.add_argument("--bundles", type=int, default=None, help="bundles in the timed single-post phase")
    ap.add_argument("--hubs", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=6, help="client connections")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--receivers", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.serve:
        serve(a.db, a.port, a.cpu, a.receivers)
        return 0
    from benchmarks.runner import quick_folder

    out_file = Path(a.out)
    a.out = str(quick_folder(out_file.parent, a.quick) / out_file.name)  # a quick run never replaces full results

    n_timed = a.bundles or (1500 if a.quick else 8000)
    batch_share = 0.25
    hubs = min(a.hubs, 500) if a.quick else a.hubs
    warmup = int(hubs * 1.8) + 50  # about one round: every hub's first contact is outside the timing
    total = int((n_timed + warmup) / (1 - batch_share)) + 1
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    if len(cores) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cores[1:]))  # the load generator stays off the server's core
    print(f"preparing {total} bundles from {hubs} hubs ...", flush=True)
    t = time.perf_counter()
    model, stream, first_round = traffic(hubs, total)
    warmup = first_round
    print(f"  done in {time.perf_counter() - t:.1f} s", flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="gla-bench-platform-") as d:
        tmp = Path(d)
        print("SQLite (server pinned to one core) ...", flush=True)
        results["sqlite"] = bench_backend(
            "sqlite",
            f"sqlite:///{tmp / 'platform.db'}",
            model,
            stream,
            warmup=warmup,
            threads=a.threads,
            tmp=tmp,
            batch_share=batch_share,
            server_cpu=cores[0],
        )
        print(
            f"  {results['sqlite']['bundles_per_s']} bundles/s "
            f"({results['sqlite']['bundles_per_server_cpu_s']} per server CPU-second)",
            flush=True,
        )
        pg_version = None
        if a.postgresql:
            print("PostgreSQL (server pinned to one core) ...", flush=True)
            try:
                from platform_api.core.config import Settings

                url = Settings(database_url=a.postgresql).database_url
                _reset_postgres(url)
                from sqlalchemy import text

                from platform_api.core.db import make_engine

                eng = make_engine(url)
                with eng.connect() as c:
                    pg_version = c.execute(text("SHOW server_version")).scalar()
                eng.dispose()
                results["postgresql"] = bench_backend(
                    "postgresql",
                    url,
                    model,
                    stream,
                    warmup=warmup,
                    threads=a.threads,
                    tmp=tmp,
                    batch_share=batch_share,
                    server_cpu=cores[0],
                )
                print(f"  {results['postgresql']['bundles_per_s']} bundles/s", flush=True)
            except Exception as e:  # noqa: BLE001 - report, do not hide the SQLite result
                results["postgresql"] = {"error": f"{type(e).__name__}: {e}"}
                print(f"  PostgreSQL failed: {e}", flush=True)
    s, p = results["sqlite"], results.get("postgresql") or {}
    m = machine()
    doc = {
        # bundles per second of the one core the server is pinned to (= per server CPU-second):
        # what the server sustains with that core to itself; the machine is shared and the
        # benchmark runs niced, so the wall-clock rates below are lower bounds
        "ingest_bundles_per_s_sqlite_1core": s["bundles_per_server_cpu_s"],
        "ingest_bundles_per_s_postgresql": p.get("bundles_per_server_cpu_s"),
        "ingest_bundles_per_s_sqlite_1core_wall": s["bundles_per_s"],
        "ingest_bundles_per_s_postgresql_wall": p.get("bundles_per_s"),
        "ingest_batch_bundles_per_s_sqlite_1core": (s.get("batch") or {}).get("bundles_per_server_cpu_s"),
        "ingest_batch_bundles_per_s_postgresql": (p.get("batch") or {}).get("bundles_per_server_cpu_s"),
        "ingest_batch_bundles_per_s_sqlite_1core_wall": (s.get("batch") or {}).get("bundles_per_s"),
        "ingest_batch_bundles_per_s_postgresql_wall": (p.get("batch") or {}).get("bundles_per_s"),
        "method": "uvicorn + create_app() in a process pinned to one core (os.sched_setaffinity); bundles posted "
        "over HTTP keep-alive from the other core; rate = bundles / CPU-seconds the server process used "
        "(utime+stime from /proc); *_wall = bundles / wall-clock seconds; batch = POST "
        "/api/v1/bundles/batch with 100 bundles per request (how receiver/delivery.py posts a backlog)",
        "target_bundles_per_s_sqlite_1core": TARGET,
        "meets_target": (s["bundles_per_server_cpu_s"] or 0) >= TARGET,
        "substation_need_bundles_per_s": round(12000 * 2 * 1.5 / 86400, 3),
        "command": "python benchmarks/bench_platform.py"
        + (" --quick" if a.quick else "")
        + (" --postgresql URL" if a.postgresql else ""),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**m, "cpu_model": m.get("cpu"), "sqlite": sqlite3.sqlite_version, "postgresql": pg_version},
        "setup": {
            "hubs": hubs,
            "traffic": "scheduled reports (1-4 meters: 1-2 segments) + sag/swell alerts sent "
            "twice (second copy a duplicate)",
            "server": f"uvicorn ({_http_impl()}) + create_app(), one process pinned to one core, background thread on",
            "client": f"{a.threads} keep-alive HTTP connections from this process on the other core(s)",
            "postgresql_server": "scripts/ci_postgres.sh settings (fsync off, synchronous_commit off) "
            "when started by it; its processes are not pinned",
            "sqlite": "WAL, synchronous=FULL (platform_api/core/db.py)",
        },
        "details": results,
    }
    write_json(Path(a.out), doc)
    print(json.dumps({k: doc[k] for k in list(doc)[:8]}, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
