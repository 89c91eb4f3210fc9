"""`gla`: one command for the simulator, the receiver, the platform and the benchmarks.

gla simulate --scenario demo --out out/demo     write a capture, its sidecar and ground truth
gla replay out/demo/demo                        decode a capture offline, bundles + summary
gla receive --config receiver.toml              the receiver service (ZeroMQ in, HTTP out)
gla platform --port 8000                        the Computing Platform (FastAPI, SQLite default)
gla bench [dsp|receiver|platform|theft|theft-ieee|reliability|all]   the benchmark harness
gla demo                                        the README's end-to-end job on embedded defaults

A command that cannot do its job because of what it was given (a missing or damaged capture, a
bad configuration or scenario, a file it cannot read or write) prints one line,
``gla COMMAND: error: WHAT``, and exits with status 2, the status argparse gives a usage error;
``--debug`` adds the traceback. A replay of a truncated capture keeps what it decoded and exits 1;
anything unexpected is one line too (its type and message, status 1), with the traceback under
``--debug``; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import traceback
from pathlib import Path

from receiver import config_cmd, timings

log = logging.getLogger("gla")

#: Exit status of a command refused for what it was given (argparse's usage-error status).
EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user-facing refusal of the command line itself (an option, a file it names)."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is the whole story: printed as one line, no traceback."""
    from receiver.contracts.capture import CaptureError
    from receiver.spool import SpoolError  # a damaged or unusable spool file, named

    return (CliError, CaptureError, SpoolError)


def _one_blas_thread() -> None:
    """The receive chain's processes are its parallelism (one worker per core): BLAS threads of
    their own only compete with them. OpenBLAS reads this when numpy loads it, so it is set
    before the command imports numpy (a value the caller set is kept). Its only work on this
    path, the detector's least-squares fits at start-up, took ~16 ms each with OpenBLAS's
    threads on a busy 2-core machine and 0.2 ms on one (the same values)."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return v


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {text!r}")
    return v


def _nonnegative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return v


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
        raise CliError(str(exc)) from exc
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
    _one_blas_thread()
    from receiver.contracts.capture import check_sha256, read_capture_meta
    from receiver.replay import print_replay_summary, replay

    timings.mark("imports")

    token = args.token
    if args.post:  # refuse a bad --post before decoding, not after
        if not args.post.startswith(("http://", "https://")):
            raise CliError(f"--post {args.post}: not an http:// or https:// URL")
        if args.token_file:
            try:
                token = Path(args.token_file).read_text().strip()
            except (OSError, UnicodeDecodeError) as e:
                raise CliError(f"--token-file {args.token_file}: cannot read it: {e}") from e
            if not token:
                raise CliError(f"--token-file {args.token_file}: empty")
    if args.verify:
        meta = read_capture_meta(args.capture)
        digest = check_sha256(meta)
        print(f"{meta.audio_path}: verified, SHA-256 {digest} matches the sidecar's gla:sha256", flush=True)
    spool = None
    if args.post:  # each bundle is durable in the spool as it is made, before its archive line
        from receiver.spool import Spool

        spool_path = Path(args.out or ".") / "spool.sqlite"
        spool_path.parent.mkdir(parents=True, exist_ok=True)
        spool = Spool(spool_path)
    res = replay(
        args.capture,
        workers=args.workers,
        out_dir=args.out,
        receiver_id=args.receiver_id,
        substation_id=args.substation_id,
        progress=not args.no_progress,
        duration_s=args.duration,
        on_bundle=None if spool is None else spool.put,
    )
    print_replay_summary(res, limit=args.show)
    if spool is not None:
        from receiver.delivery import deliver_all

        posted = deliver_all(spool, args.post, token, progress=not args.no_progress)
        spool.close()
        print(f"posted to {args.post}: {posted}")
        if not posted.get("complete"):
            why = posted.get("last_error") or "the platform did not take them in time"
            print(
                f"gla replay: error: {posted.get('pending')} of {posted.get('total')} bundles not posted to "
                f"{args.post}: {why} (they stay in {spool_path})",
                file=sys.stderr,
            )
            return 1
    if res.error:
        print(f"gla replay: error: {res.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_receive(args: argparse.Namespace) -> int:
    _one_blas_thread()
    from receiver.service import JsonLogFormatter, load_config, run_service

    h = logging.StreamHandler()
    h.setFormatter(JsonLogFormatter())
    logging.getLogger().handlers[:] = [h]
    logging.getLogger().setLevel(logging.INFO)
    try:
        cfg = load_config(args.config)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    run_service(cfg, max_seconds=args.max_seconds)
    return 0


def _cmd_platform(args: argparse.Namespace) -> int:
    import importlib

    if args.database_url:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:  # refuse a URL SQLAlchemy cannot use here, not in a traceback from inside the server
            make_url(args.database_url).get_dialect()
        except (ArgumentError, NoSuchModuleError, ValueError) as e:
            shown = args.database_url.split("@")[-1]  # never echo a password
            raise CliError(f"--database-url ...{shown}: {e}") from e
    # by name, as uvicorn would: the receiver does not import the platform's code
    serve = importlib.import_module("platform_api.__main__").serve
    serve(args.host, args.port, args.log_level, database_url=args.database_url)
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
    debug_help = "show the traceback of an error (the default is one line)"
    p.add_argument("--debug", action="store_true", help=debug_help)
    common = argparse.ArgumentParser(add_help=False)  # --debug after the command name too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "simulate", parents=[common], help="simulate a substation: multichannel CT-loop capture + sidecar + truth"
    )
    s.add_argument("--scenario", default="demo", help="built-in scenario name (demo, large, demo_small) or a TOML path")
    s.add_argument(
        "--out", required=True, help="output path stem: writes STEM.wav (WAV or RF64), STEM.sigmf-meta, STEM.truth.json"
    )
    s.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    s.add_argument("--duration", type=_positive_float, default=None, help="override the scenario's duration in seconds")
    s.add_argument("--show", type=int, default=20, help="how many transmissions to list (0: none)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_simulate)

    r = sub.add_parser(
        "replay", parents=[common], help="replay a recorded capture through the receiver (faster than real time)"
    )
    r.add_argument("capture", help="capture stem or path (STEM.wav + STEM.sigmf-meta [+ STEM.truth.json])")
    r.add_argument("--out", default=None, help="directory for bundles (JSONL per day) and SigMF annotations")
    r.add_argument(
        "--workers", type=_nonnegative_int, default=2, help="processes for the receive chains (0: in-process)"
    )
    r.add_argument("--receiver-id", default="rx-replay")
    r.add_argument("--substation-id", default="sub-1")
    r.add_argument("--duration", type=_positive_float, default=None, help="only the first SECONDS of the capture")
    r.add_argument(
        "--verify",
        action="store_true",
        help="check the audio file against the sidecar's gla:sha256 before decoding; refuse it if they differ",
    )
    r.add_argument("--post", default=None, metavar="URL", help="post the bundles to this Computing Platform")
    r.add_argument("--token", default=None, help="receiver bearer token for --post")
    r.add_argument("--token-file", default=None, help="file holding the receiver token")
    r.add_argument("--show", type=int, default=30, help="rows of the summary table")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "--timings",
        action="store_true",
        help="print on stderr when each start-up phase was reached, up to the first block processed",
    )
    r.set_defaults(func=_cmd_replay)

    rc = sub.add_parser(
        "receive", parents=[common], help="run the receiver service (config file: deploy/receiver.example.toml)"
    )
    rc.add_argument("--config", required=True, help="TOML configuration")
    rc.add_argument("--max-seconds", type=float, default=None, help="stop after this much stream time (tests)")
    rc.add_argument(
        "--timings",
        action="store_true",
        help="print on stderr when each start-up phase was reached, up to the first block processed",
    )
    rc.set_defaults(func=_cmd_receive)
    config_cmd.register(sub, common)  # gla config input

    pf = sub.add_parser(
        "platform", parents=[common], help="serve the Computing Platform (SQLite unless --database-url)"
    )
    pf.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 opens it)")
    pf.add_argument("--port", type=_port, default=8000)
    pf.add_argument("--database-url", default=None, help="e.g. postgresql+psycopg://user@host/db")
    pf.add_argument("--log-level", default="info")
    pf.set_defaults(func=_cmd_platform)

    b = sub.add_parser(
        "bench", parents=[common], help="run benchmarks, write benchmarks/results/*.json, plots and BENCHMARKS.md"
    )
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

    d = sub.add_parser("demo", parents=[common], help="end-to-end demo on the embedded defaults")
    d.add_argument("--scenario", default="demo")
    d.add_argument("--out", default="out/demo", help="working directory for the demo's files")
    d.add_argument(
        "--duration", type=_positive_float, default=None, help="seconds of substation time (default: the scenario's)"
    )
    d.add_argument("--keep-up", action="store_true", help="leave the platform and its dashboard running at the end")
    d.add_argument("--show", type=int, default=25)
    d.add_argument("--workers", type=_nonnegative_int, default=2)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; a refusal is one line on stderr and status 2 (``--debug``: the traceback)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "timings", False):
        os.environ[timings.ENV] = "1"
    timings.mark("cli")
    _setup_logging(args.verbose)
    prefix = f"gla {args.command}: error:"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"gla {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, _user_errors()):
            print(f"{prefix} {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(exc, OSError):  # a file or address the command was pointed at
            print(f"{prefix} {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        hint = "" if args.debug else " (--debug shows the traceback)"
        print(f"{prefix} unexpected {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
