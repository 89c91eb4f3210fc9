"""Independent check of the theft analysis on the IEEE European LV test feeder (issue [5/6]).

    nice -n 19 .venv/bin/python -m benchmarks.theft_ieee_check           # full check
    .venv/bin/python -m benchmarks.theft_ieee_check --quick               # smoke test, ~6 min

Writes ``benchmarks/results/theft_ieee.json`` and ``benchmarks/results/theft_ieee.png`` (``--out DIR``
elsewhere). Power-flow solutions are cached in ``out/theft_cache/`` like ``benchmarks/theft_eval.py``'s.

A held-out check
----------------
``benchmarks/theft_eval.py`` evaluates (and the detector was tuned on) split-phase US areas and three
European networks pandapower ships; it leaves the IEEE European LV test feeder aside. This module runs
the same evaluation on that feeder, once, with the detector's settings as they are
(``analyse_feeder`` with the default ``DetectorConfig``): nothing here is tuned on it.

The network
-----------
``pandapower.networks.ieee_european_lv_asymmetric('on_peak_566')``, built by :mod:`gridsim.lv.ieee`
(its module doc has the details): an 800 kVA 11/0.416 kV Dyn transformer, 905 cable sections
(1.4 km in all), 55 single-phase houses (21 on phase a, 19 on b, 15 on c) up to 296 m from the
transformer along the cables. The scenario only supplies the topology, the phases and the cable data;
the houses' loads are theft_eval's load profiles. Unlike the networks of theft_eval, the feeder
carries its own zero-sequence data, and those are used as they are (theft_eval's ``Z0 = 4 Z1`` is
not applied). The 55 meters are the 55 loads. The network is reduced exactly (chains of cable
sections with nothing between them become one impedance: ~160 buses instead of 907);
``reduction_check`` in the JSON compares the reduced network with the full one on one loaded minute
(exact: the difference is the solver's tolerance).

Scenarios
---------
Tap sites (:func:`gridsim.lv.ieee.tap_sites`), chosen by position only: the meter base of the
nearest, a middle and the farthest house, the middle of the longest service cable, and four points
of the feeder cables (buses on lines that feed two or more houses) nearest 10 %, 35 %, 65 % and
100 % of the farthest such point's distance from the transformer. A feeder tap is on the phase of
the first meter below it, which is also the meter it counts as localised to (as in theft_eval).

theft_eval's protocol, run by its ``run_job``: each record is 3 days at 1-minute steps; the detector
fits on day 1 and runs over the whole record; the tap switches on at a random minute of day 2 and
is followed for 24 h. Only constant taps starting during the record are tried (0.3, 1 and 3 kW at
pf 0.95; 5 trials per site and size, each with its own start and meter noise); 1 and 0.3 kW scale
the 3 kW solution (theft_eval's linearity check is repeated). The taps' power flows start at day 2
(``EvalConfig.tap_from_min``): no tap is on before. The clean record, with 16 noise draws, gives
the false alarms (alarms on day 1 and before the start in the tapped records are reported too).
The meter noise and accuracy class, load profiles, MV voltage, the clairvoyant bound
(``bound_kw``) and the per-trial fields are theft_eval's. ``--quick``: one site (the nearest house),
one trial per size, one clean draw, same 3-day record.

Why 3 days and not 2 (``check_config`` checks it): ``analyse_feeder`` fits its model on the first day only if
the record spans at
least two days (``baseline_slice``: otherwise it fits on everything); a record of 2 x 1440 minutes
spans one minute less, so the tap would be inside the fit (seen in a first --quick run: alarms
before the taps' start, 3 kW taps missed).

Cost: about 50 ms of one loaded core per minute of the reduced feeder (26 copies per runpp_3ph
call), 27,000 minutes (the clean record and 8 tapped ones from day 2), ~2 s per analysis.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import dataclasses
import datetime as _dt
import json
import pathlib
import platform
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import theft_eval as te  # noqa: E402
from benchmarks.common import default_results, machine, write_json  # noqa: E402
from gridsim.lv import ieee  # noqa: E402
from gridsim.lv.ieee import NAME, reduction_check  # noqa: E402
from gridsim.lv.networks import NetSpec  # noqa: E402
from gridsim.lv.profiles import MIN_PER_DAY  # noqa: E402
from platform_api.theft import DetectorConfig, MeterAccuracy  # noqa: E402


def ieee_spec(rng: np.random.Generator, cfg: te.EvalConfig) -> NetSpec:
    """The feeder with its first ``cfg.eu_tap_sites`` tap sites: ``theft_eval.run_job``'s ``spec_fn``
    (``rng`` is not used: the phases are the feeder's and the sites are chosen by position)."""
    return ieee.ieee_spec(n_taps=cfg.eu_tap_sites)


def check_config(quick: bool = False) -> te.EvalConfig:
    """theft_eval's EvalConfig for this network: constant taps starting during the record only."""
    cfg = te.EvalConfig(
        mode="quick" if quick else "full",
        seed=20261123,
        days=3,
        n_us_tap_tans=0,
        n_us_clean_tans=0,
        eu_networks=(NAME,),
        eu_tap_sites=8,
        draws_during=5,
        draws_start=0,
        clean_draws=16,
        min_batch=1,
        kinds=("constant",),
        starts=("during",),
        tap_from_min=MIN_PER_DAY,
        workers=1,
    )
    if quick:
        cfg = dataclasses.replace(cfg, eu_tap_sites=1, draws_during=1, clean_draws=1, linearity_minutes=30)
    # the detector fits on day 1 only if the record spans two baselines (else on all of it, taps
    # included: module doc), and no tap may be on in the baseline
    base_s = DetectorConfig().baseline_s
    if (cfg.days * MIN_PER_DAY - 1) * 60 < 2 * base_s or cfg.tap_from_min < base_s // 60:
        raise ValueError("the record must span two baselines, with no tap on in the first")
    return cfg


def ieee_summary(res: dict, s: dict) -> dict:
    """The headline figures of the check from theft_eval.summarise's output and the trials."""
    trials = [r for r in res["trials"] if r["start"] == "during" and r["kind"] == "constant"]
    by_kw = lambda f: {f"{kw:g}": f([r for r in trials if r["size_kw"] == kw]) for kw in te.SIZES_KW}  # noqa: E731
    rate = lambda rows, pred: te._rate(rows, pred)["rate"]  # noqa: E731
    out = {
        "smallest_tap_kw_detected_ieee_eu_24h": s["smallest_tap_kw_detected_eu_24h"],
        "detect_rate_by_kw_ieee_eu_24h": by_kw(lambda rows: rate(rows, lambda r: te._within(r, MIN_PER_DAY))),
        "localise_rate_ieee_eu_24h": s["localise_eu_24h"]["rate"],
        "localise_rate_ieee_eu_24h_within_50m": s["localise_eu_24h_within_50m"]["rate"],
        "false_alarms_per_1000_meter_days_clean_ieee_eu": s["false_alarms_clean_eu"]["per_1000_meter_days"],
        "detect_rate_by_kw_ieee_eu_1h": by_kw(lambda rows: rate(rows, lambda r: te._within(r, 60))),
        "median_delay_min_by_kw": by_kw(lambda rows: te._finite_median(r["delay_min"] for r in rows if r["detected"])),
        "localise_rate_by_kw_24h": by_kw(
            lambda rows: rate([r for r in rows if te._within(r, MIN_PER_DAY)], lambda r: r["localised"])
        ),
        "bound_detectable_by_kw_24h": by_kw(lambda rows: rate(rows, lambda r: r["size_kw"] >= r["bound_kw_24h"])),
        "bound_detectable_by_kw_1h": by_kw(lambda rows: rate(rows, lambda r: r["size_kw"] >= r["bound_kw_1h"])),
        "median_bound_kw_24h": te._finite_median(r["bound_kw_24h"] for r in trials),
        "max_bound_kw_24h": max((r["bound_kw_24h"] for r in trials), default=None),
        "median_bound_kw_1h": te._finite_median(r["bound_kw_1h"] for r in trials),
        "named_meter_from_tap_m_24h_median": s["named_meter_from_tap_m_eu_24h_median"],
        "false_alarms_clean": s["false_alarms_clean_eu"],
        "false_alarms_before_taps": s["false_alarms_before_taps"],
    }
    by_site = []
    for site in sorted({r["site"] for r in trials}):
        rows = [r for r in trials if r["site"] == site]
        det = [r for r in rows if te._within(r, MIN_PER_DAY)]
        by_site.append(
            {
                "site": site,
                "where": rows[0]["where"],
                "distance_m": rows[0]["distance_m"],
                "tap_meter": rows[0]["tap_meter"],
                "tapped_meter_from_tap_m": rows[0]["tapped_meter_from_tap_m"],
                "detect_24h_by_kw": by_kw(
                    lambda rr, site=site: rate(
                        [r for r in rr if r["site"] == site], lambda r: te._within(r, MIN_PER_DAY)
                    )
                ),
                "localised_of_detected_24h": rate(det, lambda r: r["localised"]),
                "within_50m_of_detected_24h": rate(
                    det, lambda r: r["named_meter_from_tap_m"] is not None and r["named_meter_from_tap_m"] <= 50.0
                ),
                "named_meters": sorted({r["located_meter"] for r in det}),
                "extra_drop_v_per_kw": te._finite_median(r["extra_drop_v_per_kw"] for r in rows),
                "median_bound_kw_24h": te._finite_median(r["bound_kw_24h"] for r in rows),
                "median_bound_kw_1h": te._finite_median(r["bound_kw_1h"] for r in rows),
            }
        )
    out["by_site"] = by_site
    return out


def plot(summary: dict, trials: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    ax = axes[0]
    for window, label, col in ((60, "1 h", "tab:red"), (MIN_PER_DAY, "24 h", "tab:blue")):
        key = "bound_kw_1h" if window == 60 else "bound_kw_24h"
        xs = [kw for kw in te.SIZES_KW if any(r["size_kw"] == kw for r in trials)]
        rows_by_kw = [[r for r in trials if r["size_kw"] == kw] for kw in xs]
        ax.plot(
            xs,
            [np.mean([te._within(r, window) for r in rr]) for rr in rows_by_kw],
            "-o",
            color=col,
            label=f"detected within {label}",
        )
        ax.plot(
            xs,
            [np.mean([r["size_kw"] >= r[key] for r in rr]) for rr in rows_by_kw],
            "--x",
            color=col,
            alpha=0.45,
            label=f"bound: detectable within {label}",
        )
    ax.axhline(0.95, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xticks(te.SIZES_KW)
    ax.set_xticklabels([f"{s:g}" for s in te.SIZES_KW])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("constant tap (kW), starting during the record")
    ax.set_ylabel("fraction of trials")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"IEEE European LV feeder (held out): {len(trials)} trials")
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[1]
    for kw, col in zip(te.SIZES_KW, ("tab:green", "tab:blue", "tab:red")):
        rows = [r for r in trials if r["size_kw"] == kw]
        d = sorted(max(r["delay_min"], 1.0) for r in rows if r["delay_min"] is not None)
        if rows:
            ax.step(
                [1.0] + d + [4 * MIN_PER_DAY],
                np.arange(len(d) + 2) / len(rows),
                where="post",
                color=col,
                label=f"{kw:g} kW",
            )
    for x in (60, MIN_PER_DAY):
        ax.axvline(x, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlim(1, 2 * MIN_PER_DAY)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time to detect (min)")
    ax.set_ylabel("fraction detected")
    ax.set_title("time to detect")
    ax.legend(fontsize=8)
    fig.suptitle(
        f"Held-out check; false alarms on the clean record: "
        f"{summary['false_alarms_per_1000_meter_days_clean_ieee_eu']} per 1,000 meter-days",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="one tap site, one trial per size (smoke test)")
    ap.add_argument("--out", type=pathlib.Path, default=default_results())
    args = ap.parse_args(argv)
    from benchmarks.runner import quick_folder

    args.out = quick_folder(args.out, args.quick)  # a quick run never replaces full results
    cfg = check_config(args.quick)
    t_start = time.perf_counter()
    job = {
        "region": "eu",
        "name": NAME,
        "seed": cfg.seed,
        "taps": True,
        "linearity": True,
        "cfg": dataclasses.asdict(cfg),
        "spec_fn": "benchmarks.theft_ieee_check:ieee_spec",
    }
    res = te.run_job(job)  # one process: the machine is shared
    print(
        f"[theft_ieee_check] {res['meters']} meters, power flows {res['solve_s']:.0f} s, "
        f"analysis {res['analyse_s']:.0f} s",
        file=sys.stderr,
    )
    red = reduction_check()
    s = te.summarise([res])
    head = ieee_summary(res, s)
    trials = [r for r in res["trials"] if r["start"] == "during" and r["kind"] == "constant"]
    runtime = time.perf_counter() - t_start
    ref_path = ROOT / "benchmarks" / "results" / "theft.json"
    ref = {}
    if ref_path.exists():
        d = json.loads(ref_path.read_text())
        ref = {
            k: d.get(k)
            for k in (
                "smallest_tap_kw_detected_eu_24h",
                "localise_rate_eu_24h",
                "localise_rate_eu_24h_within_50m",
                "false_alarms_per_1000_meter_days_clean_eu",
                "date",
            )
        }
        ref["detect_24h_by_kw"] = {
            f"{r['size_kw']:g}": r["detect_24h"]
            for r in d["summary"]["table"]
            if r["region"] == "eu" and r["start"] == "during" and r["kind"] == "constant"
        }
    spec = res["spec"]
    out = {
        **{k: v for k, v in head.items() if k != "by_site"},
        "definitions": {
            "smallest_tap_kw_detected_ieee_eu_24h": "smallest of 0.3/1/3 kW whose constant taps starting at a random "
            "minute of day 2 are detected within 24 h in >= 95 % of trials",
            "detect_rate_by_kw_ieee_eu_24h": "share of those trials with a THEFT_SUSPICION at or after the tap's start "
            "within 24 h (any meter named)",
            "localise_rate_ieee_eu_24h": "of the detections within 24 h, the share whose first anomaly names the "
            "tapped meter (a feeder tap's: the first meter below it)",
            "localise_rate_ieee_eu_24h_within_50m": "of the detections within 24 h, the share whose named meter is "
            "connected within 50 m of the tap along the cables",
            "false_alarms_per_1000_meter_days_clean_ieee_eu": "THEFT_SUSPICION anomalies per 1,000 meter-days on "
            "noise draws of the clean record (all of it analysed)",
            "bound_kw_1h / bound_kw_24h": "per trial, the smallest tap a clairvoyant matched filter detects with "
            "probability 0.95 in that time at 1 false alarm per 1,000 meter-days "
            "(theft_eval's module doc); bound_detectable_*: share of trials whose tap is "
            "at least that",
        },
        "held_out": "nothing was tuned on this feeder: analyse_feeder with the default DetectorConfig, "
        "theft_eval's noise, profiles and protocol",
        "tuning_set_eu_for_comparison": ref,
        "command": "nice -n 19 .venv/bin/python -m benchmarks.theft_ieee_check" + (" --quick" if args.quick else ""),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            **machine(),
            "platform": platform.platform(),
            "workers": 1,
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "runtime_s": round(runtime, 1),
        "power_flow_s": round(res["solve_s"], 1),
        "analysis_s": round(res["analyse_s"], 1),
        "mode": cfg.mode,
        "config": dataclasses.asdict(cfg),
        "noise": dataclasses.asdict(MeterAccuracy()),
        "detector": {
            "feeder": "platform_api.theft.analyse_feeder",
            "config": te._jsonable(dataclasses.asdict(DetectorConfig())),
        },
        "network": {
            "name": NAME,
            "source": "pandapower.networks.ieee_european_lv_asymmetric('on_peak_566') "
            "(topology, phases and cable data; loads replaced by the profiles)",
            "meters": res["meters"],
            "phases": {p: int(np.sum([m == p for m in _meter_phases(spec)])) for p in "abc"},
            "farthest_meter_m": max(m["distance_m"] for m in spec["meters"]),
            "trafo_kva": spec["trafo_kva"],
            "tap_sites": spec["taps"],
            "meter_list": spec["meters"],
        },
        "reduction_check": red,
        "linearity_check": res["linearity"],
        "by_site": head["by_site"],
        "summary_table": [r for r in s["table"] if r["region"] == "eu"],
        "clean_records": res["clean"],
        "trials": trials,
    }
    out = te._jsonable(out)
    write_json(args.out / "theft_ieee.json", out)
    plot(out, trials, args.out / "theft_ieee.png")
    print(
        json.dumps(
            {
                k: out[k]
                for k in (
                    "smallest_tap_kw_detected_ieee_eu_24h",
                    "detect_rate_by_kw_ieee_eu_24h",
                    "localise_rate_ieee_eu_24h",
                    "localise_rate_ieee_eu_24h_within_50m",
                    "false_alarms_per_1000_meter_days_clean_ieee_eu",
                    "runtime_s",
                )
            },
            indent=1,
        )
    )
    return out


def _meter_phases(spec: dict) -> list[str]:
    return [m["phase"] for m in spec["meters"]]


if __name__ == "__main__":
    main()
