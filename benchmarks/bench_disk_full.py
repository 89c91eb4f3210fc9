"""Disk-full test of the receiver: ``python benchmarks/bench_disk_full.py [--mode auto] [--passes 3]``

Runs :func:`gridsim.hostile.disk_full.run` (the scenario and what it counts are described there)
and prints its result as JSON (``--out FILE`` also writes it); exits 1 if a bundle was lost or
duplicated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gridsim.hostile.disk_full import InjectedDisk, TmpfsDisk, run  # noqa: E402  (after the path set-up)

__all__ = ["InjectedDisk", "TmpfsDisk", "main", "run"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("auto", "tmpfs", "injected"), default="auto")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--hold-max", type=int, default=10_000)
    ap.add_argument("--out", help="also write the result to this JSON file")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    res = run(a.mode, passes=a.passes, hold_max=a.hold_max, verbose=a.verbose)
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0 if res["bundles_lost_disk_full"] == 0 and res["bundles_duplicated_disk_full"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
