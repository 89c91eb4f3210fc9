"""Reliability benchmark: hostile inputs on every surface, the kill test, the routes open to
anonymous callers. ``python -m benchmarks.bench_reliability [--quick] [--skip kill ...]``

Runs the generators of the hostile-input suite (:mod:`gridsim.hostile`, the ones
``tests/test_hostile_*.py`` run with a few hundred examples) with thousands, counting instead of
stopping at the first problem, and writes ``benchmarks/results/reliability.json``:

- ``hostile_inputs_tried``, ``hostile_server_errors``, ``hostile_crashes`` (and
  ``hostile_losses``, ``hostile_not_refused``, ``hostile_unclear_errors``: see
  :mod:`gridsim.hostile` for each kind), with a breakdown per surface and sub-surface
  (``surfaces``) and the first few reproducers of each problem;
- ``bundles_lost_kill_test``: the sum of ``bundles_lost_kill_test_receiver_and_platform``
  (:func:`benchmarks.bench_kill.run`: receiver and platform killed and restarted while bundles
  flow) and ``bundles_lost_kill_test_platform_commit`` (:func:`gridsim.hostile.commit_kill.run`: the
  platform killed mid-commit); ``bundles_duplicated_kill_test``: bench_kill's;
- ``anonymous_state_changing_routes``: the operations of a platform with no configuration that
  change state (or export customer data) and answer an anonymous caller with anything but
  401/403 (:func:`platform_api.testing.anonymous_state_changing_routes`);
- ``bundles_lost_disk_full``, ``bundles_duplicated_disk_full``: the receiver's disk full and
  freed while bundles flow (:func:`benchmarks.bench_disk_full.run`);
- ``bundles_lost_to_forged_zmq_messages``: a capture sent over ZeroMQ with forged and stray
  messages slipped in, through the receive chains, against the clean run
  (:func:`receiver.forged_check.run`);
- ``bundles_lost_resync_mismatches``: bundles of a stream with sender restarts that differ from
  the same capture replayed in pieces (:func:`benchmarks.bench_resync.run`).

Every key names the command that produced it (``commands``). ``--quick`` (a smoke run) prints the
results and writes nothing unless ``--out`` is given: the results file comes from full runs only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import default_results, machine, write_json  # noqa: E402
from gridsim.hostile import KINDS, Tally, explore  # noqa: E402

RESULTS = default_results()
#: examples per sub-surface in a full run (a --quick run takes a tenth, at least 10)
FULL = {
    "http.bundles": 1500,
    "http.openapi": 3,  # per operation and generation mode (about 190 each)
    "zmq.malformed": 800,
    "zmq.forged": 800,
    "zmq.gr_raw": 400,
    "capture.spoilt": 600,
    "csv.imports": 600,
    "csv.cr_only_or_huge": 150,
    "spool.wal_torn": 300,
    "spool.spoilt": 300,
    "archive.torn_tail": 300,
    "archive.garbage_text": 200,
    "archive.garbage_bytes": 200,
}


def _platform_url(tmp: Path, name: str) -> str:
    from platform_api.core.db import make_engine, migrate

    url = f"sqlite:///{tmp / name}"
    eng = make_engine(url)
    migrate(eng)
    eng.dispose()
    return url


# -- the surfaces ---------------------------------------------------------------------------------
def surface_http(n: Callable[[str], int], tmp: Path) -> list[Tally]:
    from gridsim.hostile import http

    h = http.make_harness(_platform_url(tmp, "http.db"))
    try:
        accepted = http.post_base(h)
        bundles = Tally("http.bundles")
        explore(http.mutations(), lambda p: http.check_post(h, p), n("http.bundles"), bundles)
        bundles.record("after the run: the bundles accepted before", http.lost_bundles(h, accepted))
        openapi = Tally("http.openapi")
        http.run_schemathesis(h, n("http.openapi"), openapi)
    finally:
        h.close()
    return [bundles, openapi]


def surface_zmq(n: Callable[[str], int], tmp: Path) -> list[Tally]:
    from gridsim.hostile import zmq

    out = []
    for name, strat, check in (
        ("zmq.malformed", zmq.interleavings(("garbage", "truncated", "flipped", "parts")), zmq.check_interleaved),
        ("zmq.forged", zmq.interleavings(("forged",)), zmq.check_interleaved),
        ("zmq.gr_raw", zmq.gr_inputs(), zmq.check_gr),
    ):
        t = Tally(name)
        explore(strat, check, n(name), t)
        out.append(t)
    return out


def surface_capture(n: Callable[[str], int], tmp: Path) -> list[Tally]:
    from gridsim.hostile import capture

    t = Tally("capture.spoilt")
    explore(capture.spoilt(), capture.check_capture, n("capture.spoilt"), t)
    return [t]


def surface_csv(n: Callable[[str], int], tmp: Path) -> list[Tally]:
    from gridsim.hostile import csv_import, http

    h = http.make_harness(_platform_url(tmp, "csv.db"))
    try:
        before = csv_import.import_base(h)
        out = []
        for name, cr in (("csv.imports", False), ("csv.cr_only_or_huge", True)):
            t = Tally(name)
            explore(csv_import.csv_bodies(cr), lambda c: csv_import.check_import(h, c), n(name), t)
            out.append(t)
        out[0].record("after the run: the readings imported before", csv_import.lost_readings(h, before))
    finally:
        h.close()
    return out


def surface_spool(n: Callable[[str], int], tmp: Path) -> list[Tally]:
    from gridsim.hostile import spool

    out = []
    for name, strat, check in (
        ("spool.wal_torn", spool.wal_tears(), spool.check_wal_torn),
        ("spool.spoilt", spool.spoilt_files(), spool.check_spoilt),
        ("archive.torn_tail", spool.archive_cuts(), spool.check_archive_torn),
        ("archive.garbage_text", spool.archive_garbage(utf8=True), spool.check_archive_garbage),
        ("archive.garbage_bytes", spool.archive_garbage(utf8=False), spool.check_archive_garbage),
    ):
        t = Tally(name)
        explore(strat, check, n(name), t)
        out.append(t)
    return out


SURFACES = {
    "http": surface_http,
    "zmq": surface_zmq,
    "capture": surface_capture,
    "csv": surface_csv,
    "spool": surface_spool,
}


# -- one small function per headline key ----------------------------------------------------------
def anonymous_state_changing_routes(tmp: Path) -> dict:
    """:func:`platform_api.testing.anonymous_state_changing_routes` on a platform with no
    configuration (a fresh SQLite file): the routes that change state (and the customer-data
    exports) that did not refuse an anonymous caller with 401/403."""
    from platform_api.core.config import Settings
    from platform_api.main import create_app
    from platform_api.testing import anonymous_probe
    from platform_api.testing import anonymous_state_changing_routes as open_routes

    app = create_app(Settings(database_url=f"sqlite:///{tmp / 'anon.db'}", background=False))
    try:
        tried = len(anonymous_probe(app))
        found = open_routes(app)
    finally:
        app.state.platform.db.dispose()
    return {
        "anonymous_state_changing_routes": len(found),
        "anonymous_probed_operations": tried,
        "anonymous_open_operations": found,
    }


def kill_test(quick: bool) -> tuple[dict, dict[str, str]]:
    """Both kill tests; ``bundles_lost_kill_test`` is their sum. Returns (results, commands)."""
    from benchmarks import bench_kill
    from gridsim.hostile.commit_kill import run as commit_kill

    kw: dict[str, Any] = {"n_bundles": 60} if quick else {}
    k = bench_kill.run(**kw)
    rounds = 4 if quick else 24
    c = commit_kill(rounds)
    rx, pf = k["bundles_lost_in_kill_test"], c["bundles_lost_kill_test"]
    out = {
        "bundles_lost_kill_test": rx + pf,
        "bundles_lost_kill_test_receiver_and_platform": rx,
        "bundles_lost_kill_test_platform_commit": pf,
        "bundles_duplicated_kill_test": k["bundles_duplicated_in_kill_test"],
        "kill_test": k,
        "commit_kill_test": c,
    }
    kill_cmd = "python benchmarks/bench_kill.py" + (" --n 60" if quick else "")
    commit_cmd = f"python benchmarks/bench_commit_kill.py --rounds {rounds}"
    commands = {
        "bundles_lost_kill_test": f"sum of the two below: {kill_cmd} + {commit_cmd}",
        "bundles_lost_kill_test_receiver_and_platform": kill_cmd,
        "bundles_duplicated_kill_test": kill_cmd,
        "bundles_lost_kill_test_platform_commit": commit_cmd,
    }
    return out, commands


def demo_small(folder: str) -> Path:
    """The capture ``captures/demo_small`` of the clone, or, from an installed package (no
    captures/ beside it), the same scenario simulated into ``folder``."""
    import subprocess

    from receiver import forged_check

    stem = Path(forged_check.DEMO)
    if Path(str(stem) + ".sigmf-meta").exists():
        return stem
    cmd = [sys.executable, "-m", "receiver.cli", "simulate", "--scenario", "demo_small", "--out", folder]
    subprocess.run([*cmd, "--no-progress", "--show", "0"], check=True, capture_output=True)
    return Path(folder) / "demo_small"


def disk_full(quick: bool) -> tuple[dict, str]:
    """Bundles lost and duplicated with the receiver's disk full then freed
    (:func:`benchmarks.bench_disk_full.run`, a real tmpfs where mounting is allowed, else the
    injected ENOSPC): 3 passes of demo_small (12 bundles, seconds) in a quick run, 12 in a full one."""
    from benchmarks import bench_disk_full
    from gridsim.hostile import disk_full as scenario

    with tempfile.TemporaryDirectory(prefix="gla-bench-disk-full-") as d:
        committed, scenario.CAPTURE = scenario.CAPTURE, demo_small(d)  # the scenario reads it at run time
        try:
            r = bench_disk_full.run("auto", passes=3 if quick else 12)
        finally:
            scenario.CAPTURE = committed
    keys = ("bundles_lost_disk_full", "bundles_duplicated_disk_full")
    return {**{k: r[k] for k in keys}, "disk_full": r}, r["command"]


def forged_zmq(quick: bool) -> tuple[dict, str]:
    """Bundles lost to forged ZeroMQ messages interleaved with a real stream
    (:func:`receiver.forged_check.run`)."""
    from receiver import forged_check

    per_kind = 8  # about 85 messages, seconds: the same in a quick run
    with tempfile.TemporaryDirectory(prefix="gla-bench-forged-") as d:
        r = forged_check.run(demo_small(d), seed=1, per_kind=per_kind)
    detail = {k: v for k, v in r.items() if not isinstance(v, (list, dict))}
    return (
        {"bundles_lost_to_forged_zmq_messages": r["bundles_lost_to_forged_zmq_messages"], "forged_zmq": detail},
        f"python -m receiver.forged_check --seed 1 --per-kind {per_kind}",
    )


def resync(quick: bool) -> tuple[dict, str]:
    """Bundles that differ between a stream with sender restarts and the same capture replayed
    in pieces (:func:`benchmarks.bench_resync.run`)."""
    from benchmarks import bench_resync

    n, dur = (4, 20.0) if quick else (12, 60.0)
    compared, mismatches = bench_resync.run(n, duration_s=dur)
    return (
        {"bundles_lost_resync_mismatches": mismatches, "resync_bundles_compared": compared},
        f"python benchmarks/bench_resync.py --resyncs {n} --duration {dur:g}",
    )


# -- the run --------------------------------------------------------------------------------------
def run(quick: bool = False, skip: tuple[str, ...] = (), examples: float = 1.0) -> dict:
    logging.disable(logging.CRITICAL)  # the components log every bad input they count
    cmd = "python -m benchmarks.bench_reliability" + (" --quick" if quick else "")
    if skip:
        cmd += " --skip " + " ".join(skip)

    def n(name: str) -> int:
        full = FULL[name] * examples
        return max(1, int(full)) if name == "http.openapi" else max(10, int(full / 10 if quick else full))

    out: dict[str, Any] = {}
    commands: dict[str, str] = {}
    timings: dict[str, float] = {}
    tallies: list[Tally] = []
    with tempfile.TemporaryDirectory(prefix="gla-reliability-") as td:
        tmp = Path(td)
        for name, fn in SURFACES.items():
            if name in skip:
                continue
            t0 = time.perf_counter()
            got = fn(n, tmp)
            timings[name] = round(time.perf_counter() - t0, 1)
            tallies += got
            print(name, [(t.surface, t.tried, {k: v for k, v in t.problems.items() if v}) for t in got], flush=True)
        if "anonymous" not in skip:
            t0 = time.perf_counter()
            a = anonymous_state_changing_routes(tmp)
            timings["anonymous"] = round(time.perf_counter() - t0, 1)
            out.update(a)
            commands["anonymous_state_changing_routes"] = (
                cmd + "  (platform_api.testing.anonymous_state_changing_routes)"
            )
            print("anonymous", a["anonymous_state_changing_routes"], "of", a["anonymous_probed_operations"], flush=True)
    if "kill" not in skip:
        t0 = time.perf_counter()
        k, kc = kill_test(quick)
        timings["kill"] = round(time.perf_counter() - t0, 1)
        out.update(k)
        commands.update(kc)
        print("kill", {x: v for x, v in k.items() if not isinstance(v, dict)}, flush=True)
    for name, f in (("disk_full", disk_full), ("forged_zmq", forged_zmq), ("resync", resync)):
        if name in skip:
            continue
        t0 = time.perf_counter()
        res, fcmd = f(quick)
        timings[name] = round(time.perf_counter() - t0, 1)
        out.update(res)
        for key, v in res.items():
            if not isinstance(v, dict):
                commands[key] = fcmd
        print(name, {x: v for x, v in res.items() if not isinstance(v, dict)}, flush=True)
    totals = {k: sum(t.problems[k] for t in tallies) for k in KINDS}
    out.update(
        hostile_inputs_tried=sum(t.tried for t in tallies),
        hostile_server_errors=totals["server_error"],
        hostile_crashes=totals["crash"],
        hostile_losses=totals["lost"],
        hostile_not_refused=totals["not_refused"],
        hostile_unclear_errors=totals["unclear_error"],
    )
    for key in ("hostile_inputs_tried", "hostile_server_errors", "hostile_crashes", "hostile_losses"):
        commands[key] = cmd
    commands["hostile_not_refused"] = commands["hostile_unclear_errors"] = cmd
    surfaces: dict[str, dict] = {}
    for t in tallies:
        top = t.surface.split(".")[0]
        s = surfaces.setdefault(top, {"tried": 0, **dict.fromkeys(KINDS, 0), "parts": {}})
        s["tried"] += t.tried
        for kind in KINDS:
            s[kind] += t.problems[kind]
        s["parts"][t.surface] = t.as_dict()
    out.update(
        surfaces=surfaces,
        commands=commands,
        seconds=timings,
        command=cmd,
        date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        machine=machine(),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tenth of the examples, a short kill test; writes nothing")
    ap.add_argument(
        "--skip", nargs="*", default=[], choices=[*SURFACES, "anonymous", "kill", "disk_full", "forged_zmq", "resync"]
    )
    ap.add_argument("--out", default=None, help="results file (default: benchmarks/results/reliability.json)")
    args = ap.parse_args(argv)
    res = run(quick=args.quick, skip=tuple(args.skip))
    summary = {k: v for k, v in res.items() if not isinstance(v, (dict, list))}
    print(json.dumps(summary, indent=1))
    if args.out or not (args.quick or args.skip):
        path = Path(args.out) if args.out else RESULTS / "reliability.json"
        write_json(path, res)
        print(f"wrote {path}")
    else:
        print("a quick or partial run: nothing written (give --out to keep it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
