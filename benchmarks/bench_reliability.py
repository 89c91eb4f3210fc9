"""Reliability benchmark: hostile inputs on every surface, the kill test, the routes open to
anonymous callers. ``python -m benchmarks.bench_reliability [--quick] [--skip kill ...]``

Runs the generators of the hostile-input suite (:mod:`gridsim.hostile`, the ones
``tests/test_hostile_*.py`` run with a few hundred examples) with thousands, counting instead of
stopping at the first problem, and writes ``benchmarks/results/reliability.json``:

- ``hostile_inputs_tried``, ``hostile_server_errors``, ``hostile_crashes`` (and
  ``hostile_losses``, ``hostile_not_refused``, ``hostile_unclear_errors``: see
  :mod:`gridsim.hostile` for each kind), with a breakdown per surface and sub-surface
  (``surfaces``) and the first few reproducers of each problem;
- ``bundles_lost_kill_test`` / ``bundles_duplicated_kill_test``: :func:`benchmarks.bench_kill.run`;
- ``anonymous_state_changing_routes``: non-GET operations of the OpenAPI that a platform with no
  configuration answers without a credential (:func:`anonymous_state_changing_routes`);
- ``bundles_lost_disk_full``, ``bundles_duplicated_disk_full``, ``bundles_lost_to_forged_zmq_messages``:
  one small function each (:func:`disk_full`, :func:`forged_zmq`); null ("not measured") until
  their scenarios exist.

Every key names the command that produced it (``commands``). ``--quick`` (a smoke run) prints the
results and writes nothing unless ``--out`` is given: the results file comes from full runs only.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_json  # noqa: E402
from gridsim.hostile import KINDS, Tally, explore  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
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
STATE_CHANGING = ("post", "put", "patch", "delete")


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
    """Non-GET operations of the OpenAPI that a platform with no configuration answers without a
    credential: each is called once with no Authorization header, an empty JSON object as body and
    placeholder path parameters; any answer but 401/403 counts (a 422 or 404 came after the
    credential check, or there was none)."""
    from platform_api.testing import Harness

    h = Harness(_platform_url(tmp, "anon.db"))
    try:
        spec = h.app.openapi()
        open_ops, tried = [], 0
        for path, item in spec["paths"].items():
            for method in STATE_CHANGING:
                if method not in item:
                    continue
                tried += 1
                url = re.sub(r"\{[^}]+\}", "x1", path)
                r = h.client.request(method.upper(), url, json={})
                if r.status_code not in (401, 403):
                    open_ops.append(f"{method.upper()} {path}: {r.status_code}")
    finally:
        h.close()
    return {
        "anonymous_state_changing_routes": len(open_ops),
        "state_changing_operations": tried,
        "anonymous_open_operations": open_ops,
    }


def kill_test(quick: bool) -> dict:
    from benchmarks import bench_kill

    kw: dict[str, Any] = {"n_bundles": 60} if quick else {}
    k = bench_kill.run(**kw)
    return {
        "bundles_lost_kill_test": k["bundles_lost_in_kill_test"],
        "bundles_duplicated_kill_test": k["bundles_duplicated_in_kill_test"],
        "kill_test": k,
    }


#: why a key is null (None): its scenario is not in this tree yet
NOT_MEASURED = {
    "bundles_lost_disk_full": "not measured: the full-disk scenario comes with the receiver's full-disk handling",
    "bundles_duplicated_disk_full": "not measured: as bundles_lost_disk_full",
    "bundles_lost_to_forged_zmq_messages": "not measured: needs the receive chain on a stream with forged "
    "messages; surfaces.zmq.parts['zmq.forged'] counts the streams that lost samples at the assembler",
}


def disk_full() -> dict:
    """Bundles lost and duplicated with the receiver's disk full (None: not measured)."""
    return {"bundles_lost_disk_full": None, "bundles_duplicated_disk_full": None}


def forged_zmq() -> dict:
    """Bundles lost to forged ZeroMQ messages interleaved with a real stream (None: not measured)."""
    return {"bundles_lost_to_forged_zmq_messages": None}


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
            a = anonymous_state_changing_routes(tmp)
            out.update(a)
            commands["anonymous_state_changing_routes"] = cmd + "  (anonymous_state_changing_routes)"
            print("anonymous", a["anonymous_state_changing_routes"], "of", a["state_changing_operations"], flush=True)
    if "kill" not in skip:
        k = kill_test(quick)
        out.update(k)
        for key in ("bundles_lost_kill_test", "bundles_duplicated_kill_test"):
            commands[key] = cmd + "  (benchmarks.bench_kill.run" + ("(n_bundles=60)" if quick else "()") + ")"
        print("kill", {x: k[x] for x in ("bundles_lost_kill_test", "bundles_duplicated_kill_test")}, flush=True)
    notes = {}
    for f in (disk_full, forged_zmq):
        for key, v in f().items():
            out[key] = v
            commands[key] = cmd + f"  ({f.__name__})"
            if v is None:
                notes[key] = NOT_MEASURED[key]
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
        not_measured=notes,
        seconds=timings,
        command=cmd,
        date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        machine=machine(),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tenth of the examples, a short kill test; writes nothing")
    ap.add_argument("--skip", nargs="*", default=[], choices=[*SURFACES, "anonymous", "kill"])
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
