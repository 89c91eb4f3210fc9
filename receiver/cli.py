"""`gla`: one command for the simulator, the receiver, the platform and the benchmarks.

    gla simulate --scenario demo --out out/demo     write a capture, its sidecar and ground truth
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
        result = run_scenario(args.scenario, args.out, seed=args.seed, duration_s=args.duration,
                              progress=not args.no_progress)
    except ScenarioError as exc:
        print(f"gla simulate: {exc}", file=sys.stderr)
        return 2
    print_summary(result, limit=args.show)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from gridsim.simulate import print_summary, run_scenario

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/1] simulating the demo substation ({args.scenario}) into {out}/ ...")
    result = run_scenario(args.scenario, out / "demo", duration_s=args.duration, progress=not args.no_progress)
    print_summary(result, limit=args.show)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gla", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="simulate a substation: multichannel CT-loop capture + sidecar + truth")
    s.add_argument("--scenario", default="demo", help="built-in scenario name (demo, large, demo_small) or a TOML path")
    s.add_argument("--out", required=True, help="output path stem: writes STEM.wav/.rf64, STEM.sigmf-meta, STEM.truth.json")
    s.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    s.add_argument("--duration", type=float, default=None, help="override the scenario's duration in seconds")
    s.add_argument("--show", type=int, default=20, help="how many transmissions to list (0: none)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_simulate)

    d = sub.add_parser("demo", help="end-to-end demo on the embedded defaults")
    d.add_argument("--scenario", default="demo")
    d.add_argument("--out", default="out/demo", help="working directory for the demo's files")
    d.add_argument("--duration", type=float, default=120.0, help="seconds of substation time to simulate")
    d.add_argument("--show", type=int, default=25)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
