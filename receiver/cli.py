"""`gla`: one command for the simulator, the receiver, the platform and the benchmarks.

gla simulate --scenario demo --out out/demo     write a capture, its sidecar and ground truth
gla replay out/demo/demo                        decode a capture offline, bundles + summary
gla receive --config receiver.toml              the receiver service (ZeroMQ in, HTTP out)
gla platform --port 8000                        the Computing Platform (FastAPI, SQLite default)
gla bench [dsp|receiver|platform|theft|theft-ieee|reliability|all]   the benchmark harness
gla demo                                        the README's end-to-end job on embedded defaults
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("gla")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _cmd_simulate(args: argparse.Namespace) -> int:
    from gridsim.scenario import ScenarioError
    from gridsim.simulate import print_summary, run_scenario

    try:
        result = run_scenario(
            args.scenario, args.out, seed=args.seed, duration_s=args.duration, progress=not args.no_progress
        )
    except ScenarioError as exc:
        print(f"gla simulate: {exc}", file=sys.stderr)
        return 2
    print_summary(result, limit=args.show)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from receiver.demo import run_demo

    return run_demo(
        Path(args.out),
        scenario=args.scenario,
        duration_s=args.duration,
        workers=args.workers,
        keep_up=args.keep_up,
        show=args.show,
        progress=not args.no_progress,
    )


def _cmd_replay(args: argparse.Namespace) -> int:
    from receiver.replay import print_replay_summary, replay

    res = replay(
        args.capture,
        workers=args.workers,
        out_dir=args.out,
        receiver_id=args.receiver_id,
        substation_id=args.substation_id,
        progress=not args.no_progress,
        duration_s=args.duration,
    )
    print_replay_summary(res, limit=args.show)
    if args.post:
        from receiver.delivery import deliver_all
        from receiver.spool import Spool

        token = args.token or (Path(args.token_file).read_text().strip() if args.token_file else None)
        spool_path = Path(args.out or ".") / "spool.sqlite"
        spool = Spool(spool_path)
        for b in res.bundles:
            spool.put(b)
        posted = deliver_all(spool, args.post, token, progress=not args.no_progress)
        spool.close()
        print(f"posted to {args.post}: {posted}")
    return 1 if res.error else 0


def _cmd_receive(args: argparse.Namespace) -> int:
    from receiver.service import JsonLogFormatter, load_config, run_service

    h = logging.StreamHandler()
    h.setFormatter(JsonLogFormatter())
    logging.getLogger().handlers[:] = [h]
    logging.getLogger().setLevel(logging.INFO)
    try:
        cfg = load_config(args.config)
    except ValueError as exc:
        print(f"gla receive: {exc}", file=sys.stderr)
        return 2
    run_service(cfg, max_seconds=args.max_seconds)
    return 0


def _cmd_platform(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    if args.database_url:
        os.environ["GLA_DATABASE_URL"] = args.database_url
    uvicorn.run("platform_api.main:create_app", factory=True, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import runpy

    which = (
        ["dsp", "receiver", "platform", "theft", "theft-ieee", "reliability"] if args.which == "all" else [args.which]
    )
    mods = {
        "dsp": "benchmarks.bench_dsp",
        "receiver": "benchmarks.bench_receiver",
        "platform": "benchmarks.bench_platform",
        "theft": "benchmarks.theft_eval",
        "theft-ieee": "benchmarks.theft_ieee_check",
        "reliability": "benchmarks.bench_reliability",
    }
    for w in which:
        print(f"== benchmark {w} ==", flush=True)
        sys.argv = [mods[w]] + (["--quick"] if args.quick else [])
        try:
            runpy.run_module(mods[w], run_name="__main__")
        except SystemExit as e:
            if e.code not in (0, None):
                return int(e.code)
    if args.which == "all":
        from benchmarks.report import main as report

        report()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gla", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="simulate a substation: multichannel CT-loop capture + sidecar + truth")
    s.add_argument("--scenario", default="demo", help="built-in scenario name (demo, large, demo_small) or a TOML path")
    s.add_argument(
        "--out", required=True, help="output path stem: writes STEM.wav (WAV or RF64), STEM.sigmf-meta, STEM.truth.json"
    )
    s.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    s.add_argument("--duration", type=float, default=None, help="override the scenario's duration in seconds")
    s.add_argument("--show", type=int, default=20, help="how many transmissions to list (0: none)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_simulate)

    r = sub.add_parser("replay", help="replay a recorded capture through the receiver (faster than real time)")
    r.add_argument("capture", help="capture stem or path (STEM.wav + STEM.sigmf-meta [+ STEM.truth.json])")
    r.add_argument("--out", default=None, help="directory for bundles (JSONL per day) and SigMF annotations")
    r.add_argument("--workers", type=int, default=2, help="processes for the receive chains (0: in-process)")
    r.add_argument("--receiver-id", default="rx-replay")
    r.add_argument("--substation-id", default="sub-1")
    r.add_argument("--duration", type=float, default=None, help="only the first SECONDS of the capture")
    r.add_argument("--post", default=None, metavar="URL", help="post the bundles to this Computing Platform")
    r.add_argument("--token", default=None, help="receiver bearer token for --post")
    r.add_argument("--token-file", default=None, help="file holding the receiver token")
    r.add_argument("--show", type=int, default=30, help="rows of the summary table")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=_cmd_replay)

    rc = sub.add_parser("receive", help="run the receiver service (config file: deploy/receiver.example.toml)")
    rc.add_argument("--config", required=True, help="TOML configuration")
    rc.add_argument("--max-seconds", type=float, default=None, help="stop after this much stream time (tests)")
    rc.set_defaults(func=_cmd_receive)

    pf = sub.add_parser("platform", help="serve the Computing Platform (SQLite unless --database-url)")
    pf.add_argument("--host", default="127.0.0.1")
    pf.add_argument("--port", type=int, default=8000)
    pf.add_argument("--database-url", default=None, help="e.g. postgresql+psycopg://user@host/db")
    pf.add_argument("--log-level", default="info")
    pf.set_defaults(func=_cmd_platform)

    b = sub.add_parser("bench", help="run benchmarks, write benchmarks/results/*.json, plots and BENCHMARKS.md")
    b.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=["all", "dsp", "receiver", "platform", "theft", "theft-ieee", "reliability"],
        help="theft-ieee: the held-out check of the theft analysis on the IEEE European LV feeder; "
        "reliability: hostile inputs on every surface, the kill test, routes open to anonymous callers",
    )
    b.add_argument("--quick", action="store_true", help="smoke run with few trials")
    b.set_defaults(func=_cmd_bench)

    d = sub.add_parser("demo", help="end-to-end demo on the embedded defaults")
    d.add_argument("--scenario", default="demo")
    d.add_argument("--out", default="out/demo", help="working directory for the demo's files")
    d.add_argument("--duration", type=float, default=None, help="seconds of substation time (default: the scenario's)")
    d.add_argument("--keep-up", action="store_true", help="leave the platform and its dashboard running at the end")
    d.add_argument("--show", type=int, default=25)
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
