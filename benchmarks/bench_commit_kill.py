"""Kill the platform mid-commit: ``python benchmarks/bench_commit_kill.py [--rounds 24] [--seed 1] [--out FILE]``

Prints (and with ``--out`` writes) :func:`gridsim.hostile.commit_kill.run`'s result as JSON; exits 1
if an acknowledged bundle was lost. ``bundles_lost_kill_test`` is the figure (must be 0); the
method is in :mod:`gridsim.hostile.commit_kill`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gridsim.hostile.commit_kill import run  # noqa: E402  (after the path set-up, as a script)

__all__ = ["run", "main"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the result as JSON here")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    res = run(a.rounds, seed=a.seed, verbose=a.verbose)
    print(json.dumps(res, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    sys.exit(0 if res["bundles_lost_kill_test"] == 0 else 1)


if __name__ == "__main__":
    main()
