"""`gla`: one command for the simulator, the receiver, the platform and the benchmarks.

gla simulate --scenario demo --out out/demo     write out/demo/demo.wav, its sidecar and ground truth
gla replay out/demo/demo                        decode a capture offline, bundles + summary
gla replay captures/demo_small --post http://127.0.0.1:8000 --import-truth
                                                ... and post it to a local platform (`gla platform`)
gla receive --config receiver.toml              the receiver service (ZeroMQ or JACK in, HTTP out)
gla platform --port 8000                        the Computing Platform (FastAPI, SQLite default)
gla bench [dsp|receiver|platform|theft|theft-ieee|reliability|all] [--out FOLDER]   the benchmarks
gla demo                                        the README's end-to-end job on embedded defaults
gla capture upgrade STEM                        rewrite an old capture sidecar as SigMF 1.2 metadata
gla capture export STEM --out FOLDER            ... or write the capture as a conforming SigMF recording

`gla COMMAND --help` says what every option does and its default. ``--out`` is a folder for every
command that writes files.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import textwrap
import traceback
from pathlib import Path

from receiver import config_cmd, timings

log = logging.getLogger("gla")

#: The exit statuses, documented in every --help (docs/cli.md too).
EXIT_CODES = """exit status:
  0    the work was done
  1    the work failed: a capture cut short (what was readable is kept), bundles the platform
       refused or that are left undelivered, a platform that cannot be reached, anything unexpected
  2    bad usage: an option, a file or a folder that cannot be used as given (one line naming it)
  130  interrupted (Ctrl-C)
errors are one line, `gla COMMAND: error: WHAT`; --debug adds the traceback."""

#: Exit status of a command refused for what it was given (argparse's usage-error status).
EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user-facing refusal of the command line itself (an option, a file it names)."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is the whole story: printed as one line, no traceback."""
    from receiver.contracts.capture import CaptureError
    from receiver.replay_post import PostSetupError
    from receiver.sources.base import SourceError  # a live source that cannot start (JACK absent...)
    from receiver.spool import SpoolError  # a damaged or unusable spool file, named

    return (CliError, CaptureError, SourceError, SpoolError, PostSetupError)


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
        stem = Path(args.out) / (args.name or Path(args.scenario).name.removesuffix(".toml"))
        result = run_scenario(
            args.scenario, stem, seed=args.seed, duration_s=args.duration, progress=not args.no_progress
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
    from receiver.replay_post import command

    return command(args)


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
    try:
        serve(args.host, args.port, args.log_level, database_url=args.database_url)
    except SystemExit as e:  # the platform refused its settings or admin credential, in one line
        if isinstance(e.code, str):
            raise CliError(e.code.removeprefix("platform: ")) from None
        raise
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.runner import BENCHMARKS, run

    which = list(BENCHMARKS) if args.which == "all" else [args.which]
    return run(which, Path(args.out), args.quick)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout and adds "(default: X)" to every option that has a default
    worth showing (not a flag's False, not None: those options say in words what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        flag = action.nargs == 0  # a switch or a counter: its default is not being given
        if "default" in text or flag or d is None or d is argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _add(p: argparse._SubParsersAction, name: str, **kw) -> argparse.ArgumentParser:
    kw.setdefault("formatter_class", _HelpFormatter)
    kw.setdefault("epilog", EXIT_CODES)
    if "description" in kw:  # the formatter keeps layout as written: wrap the prose here
        kw["description"] = textwrap.fill(kw["description"], 88)
    return p.add_parser(name, **kw)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gla-receiver")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed: pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gla", description=__doc__, formatter_class=_HelpFormatter, epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"gla {_package_version()}", help="print the version, exit")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    debug_help = "show the traceback of an error (the default is one line)"
    p.add_argument("--debug", action="store_true", help=debug_help)
    common = argparse.ArgumentParser(add_help=False)  # --debug after the command name too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    no_progress = "no progress bar"

    s = _add(
        sub,
        "simulate",
        parents=[common],
        help="simulate a substation: multichannel CT-loop capture + sidecar + truth",
        description="Simulate a substation and write FOLDER/NAME.wav (WAV or RF64), NAME.sigmf-meta (the "
        "sidecar: channel map, start time) and NAME.truth.json (what was sent), for `gla replay FOLDER/NAME`.",
    )
    s.add_argument("--scenario", default="demo", help="built-in scenario name (demo, large, demo_small) or a TOML path")
    s.add_argument("--out", required=True, metavar="FOLDER", help="folder to write the capture into (made if needed)")
    s.add_argument(
        "--name", default=None, help="file name stem of the capture (default: the scenario's name, or the TOML's stem)"
    )
    s.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
    s.add_argument(
        "--duration", type=_positive_float, default=None, help="seconds to simulate (default: the scenario's)"
    )
    s.add_argument("--show", type=_nonnegative_int, default=20, help="how many transmissions to list (0: none)")
    s.add_argument("--no-progress", action="store_true", help=no_progress)
    s.set_defaults(func=_cmd_simulate)

    r = _add(
        sub,
        "replay",
        parents=[common],
        help="replay a recorded capture through the receiver (faster than real time), optionally post it",
        description="Decode a recorded capture (STEM.wav + STEM.sigmf-meta) as the receiver would, print what was "
        "decoded (scored against STEM.truth.json when there is one) and, with --post, deliver the bundles to a "
        "Computing Platform. With --post and no --token, the platform's admin credential registers the receiver; "
        "--import-truth also enters the simulated hubs and their keys, so that everything is decoded and on the "
        "dashboard in one step. The last line says what was delivered, refused (with the reasons) and left "
        "undelivered. A reused --out folder resumes the same replay (nothing is decoded or posted twice) and "
        "refuses another one, saying why.",
    )
    r.add_argument("capture", help="capture stem or path (STEM.wav + STEM.sigmf-meta [+ STEM.truth.json])")
    r.add_argument(
        "--out",
        default=None,
        metavar="FOLDER",
        help="folder for the bundles (JSONL per day), the SigMF annotations and, with --post, the delivery spool "
        "(default: no files; with --post: out/STEM)",
    )
    r.add_argument(
        "--workers", type=_nonnegative_int, default=2, help="processes for the receive chains (0: in-process)"
    )
    r.add_argument("--receiver-id", default="rx-replay", help="receiver id the bundles name (and --post registers)")
    r.add_argument("--substation-id", default="sub-1", help="substation id the bundles name")
    r.add_argument(
        "--duration", type=_positive_float, default=None, help="only the first SECONDS (default: the whole capture)"
    )
    r.add_argument(
        "--verify",
        action="store_true",
        help="check the audio file against the sidecar's gla:sha256 before decoding; refuse it if they differ",
    )
    r.add_argument(
        "--post", default=None, metavar="URL", help="post the bundles to this Computing Platform (default: no posting)"
    )
    r.add_argument(
        "--token",
        default=None,
        help="bearer token of --receiver-id on the platform (default: register the receiver with the admin credential)",
    )
    r.add_argument("--token-file", default=None, metavar="FILE", help="file holding that token (default: --token)")
    r.add_argument(
        "--admin-token-file",
        default=None,
        metavar="FILE",
        help="the platform's admin credential, used to register the receiver and for --import-truth (default: "
        "$GLA_ADMIN_TOKEN, else $GLA_ADMIN_TOKEN_FILE, else ./admin-token, which `gla platform` writes beside "
        "its SQLite database)",
    )
    r.add_argument(
        "--import-truth",
        action="store_true",
        help="before posting, import the simulated hubs and their keys from STEM.truth.json into the platform",
    )
    r.add_argument(
        "--post-wait",
        type=_positive_float,
        default=120.0,
        metavar="SECONDS",
        help="how long to keep retrying a platform that does not take the bundles",
    )
    r.add_argument("--show", type=_nonnegative_int, default=30, help="rows of the summary table")
    r.add_argument("--no-progress", action="store_true", help=no_progress)
    r.add_argument(
        "--timings",
        action="store_true",
        help="print on stderr when each start-up phase was reached, up to the first block processed",
    )
    r.set_defaults(func=_cmd_replay)

    rc = _add(
        sub,
        "receive",
        parents=[common],
        help="run the receiver service (config file: deploy/receiver.example.toml)",
        description="Run the Substation Receiver: samples in (ZeroMQ), bundles out (spool, archive, platform).",
    )
    rc.add_argument("--config", required=True, metavar="FILE", help="TOML configuration")
    rc.add_argument(
        "--max-seconds",
        type=_positive_float,
        default=None,
        help="stop after this much stream time (default: run until stopped)",
    )
    rc.add_argument(
        "--timings",
        action="store_true",
        help="print on stderr when each start-up phase was reached, up to the first block processed",
    )
    rc.set_defaults(func=_cmd_receive)
    config_cmd.register(sub, _add, common)  # gla config input

    pf = _add(
        sub,
        "platform",
        parents=[common],
        help="serve the Computing Platform (SQLite unless --database-url)",
        description="Serve the Computing Platform: API, dashboard at /dashboard, API docs at /docs. On first "
        "start it writes its admin credential to admin-token beside the SQLite database (the operator routes and "
        "`gla replay --post` use it).",
    )
    pf.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 opens it to the network)")
    pf.add_argument("--port", type=_port, default=8000, help="TCP port to listen on")
    pf.add_argument(
        "--database-url",
        default=None,
        help="e.g. sqlite:///data/platform.db or postgresql+psycopg://user@host/db "
        "(default: $GLA_DATABASE_URL, else sqlite:///./gla-platform.db)",
    )
    pf.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="server log level",
    )
    pf.set_defaults(func=_cmd_platform)

    b = _add(sub, "bench", parents=[common], help="run benchmarks, write their JSON results and plots into --out")
    b.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=["all", "dsp", "receiver", "platform", "theft", "theft-ieee", "reliability"],
        help="theft-ieee: the held-out check of the theft analysis on the IEEE European LV feeder; "
        "reliability: hostile inputs on every surface, the kill test, routes open to anonymous callers",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="smoke run with few trials; aimed at a folder of full results it writes into its quick/ subfolder",
    )
    b.add_argument(
        "--out",
        metavar="FOLDER",
        default="bench-results",
        help="folder of the JSON results and plots, relative to the current directory; "
        "`--out benchmarks/results` (a full run of all, from a clone) regenerates the committed results "
        "and BENCHMARKS.md",
    )
    b.set_defaults(func=_cmd_bench)

    d = _add(
        sub,
        "demo",
        parents=[common],
        help="end-to-end demo on the embedded defaults",
        description="Simulate the demo substation, start a platform, replay the capture into it, and print what "
        "was decoded and the events the platform raised.",
    )
    d.add_argument("--scenario", default="demo", help="built-in scenario name or a TOML path")
    d.add_argument("--out", default="out/demo", metavar="FOLDER", help="folder for the demo's files")
    d.add_argument(
        "--duration", type=_positive_float, default=None, help="seconds of substation time (default: the scenario's)"
    )
    d.add_argument("--keep-up", action="store_true", help="leave the platform and its dashboard running at the end")
    d.add_argument("--show", type=_nonnegative_int, default=25, help="rows of each table")
    d.add_argument(
        "--workers", type=_nonnegative_int, default=2, help="processes for the receive chains (0: in-process)"
    )
    d.add_argument("--no-progress", action="store_true", help=no_progress)
    d.set_defaults(func=_cmd_demo)

    from receiver.capture_tools import add_parser as add_capture_parser

    add_capture_parser(sub, _add, [common])
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (:data:`EXIT_CODES`). An error is one line on stderr
    (``--debug``: the traceback)."""
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
        from receiver.replay_post import PlatformUnavailable

        if isinstance(exc, PlatformUnavailable):  # the work failed, not the usage
            print(f"{prefix} {exc}", file=sys.stderr)
            return 1
        hint = "" if args.debug else " (--debug shows the traceback)"
        print(f"{prefix} unexpected {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
