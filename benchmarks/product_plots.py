"""Plots of the product benchmark (bench_product): where a replay's time goes, per stage of the
chain and per process, beside the other real-time factors of the same run."""

from __future__ import annotations

from pathlib import Path

WHERE = {  # which process of a replay runs each stage
    "file reading/decoding": "workers",
    "comb": "workers",
    "channelizer+blanker": "workers",
    "detector bank": "workers",
    "demodulation+decoding": "workers",
    "grouping": "parent",
    "measurements": "workers",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_stages(profile: dict, replay: dict | None, path: Path) -> None:
    """Left: ns per input sample of each stage on one core (the stage profile). Right: CPU
    seconds per 100 s of stream, the stages on one core against the replay's whole process tree
    (start-up, queues and everything else included)."""
    plt = _plt()
    st = profile["stage_ns_per_input_sample"]
    names = list(st)
    fig, axs = plt.subplots(1, 2 if replay else 1, figsize=(12 if replay else 7, 3.8), squeeze=False)
    ax = axs[0, 0]
    colors = ["C0" if WHERE.get(k) == "workers" else "C1" for k in names]
    ax.barh(names, [st[k] for k in names], color=colors)
    ax.invert_yaxis()
    for k, v in zip(names, [st[k] for k in names], strict=True):
        ax.text(v, k, f" {v:.2f} ({100 * profile['stage_share'][k]:.0f} %)", va="center", fontsize=8)
    ax.set_xlabel("CPU ns per input sample, one core")
    ax.bar(0, 0, color="C0", label="runs in the workers")
    ax.bar(0, 0, color="C1", label="runs in the parent")
    ax.legend(fontsize=8, loc="center right")
    ax.set_title(
        f"Stages of a replay on one core: {profile['inputs']} inputs x {profile['seconds']:g} s, "
        f"{profile.get('cpu_realtime_factor_1core', profile['realtime_factor_1core'])}x real time by CPU time",
        fontsize=9,
    )
    ax.set_xlim(0, max(st.values()) * 1.8)
    if replay:
        ax = axs[0, 1]
        per100 = 100.0 / profile["seconds"]
        stages_cpu = sum(profile["stage_s"].values()) * per100
        tree = replay["tree_cpu_s"] * 100.0 / replay["capture_s"]
        startup = sum(p["startup_cpu_s"] or 0.0 for p in replay["processes"]) * 100.0 / replay["capture_s"]
        ax.bar(["stages, one process"], [stages_cpu], color="C0")
        ax.bar(["gla replay, whole tree"], [tree - startup], color="C2", label="after the first block")
        ax.bar(["gla replay, whole tree"], [startup], bottom=[tree - startup], color="C3", label="start-up")
        ax.set_ylabel("CPU s per 100 s of stream")
        ax.legend(fontsize=8)
        ax.set_title(f"CPU: the stages alone vs the replay of {replay['capture_s']:g} s", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_processes(replay: dict, side: dict, path: Path) -> None:
    """Left: each process of the replay, CPU seconds to its first block (start-up) and after;
    the wall clock split the same way. Right: the real-time factors of the same run side by side."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.8))
    procs = replay["processes"]
    labels = [p["role"] for p in procs] + ["wall clock"]
    start = [p["startup_cpu_s"] or 0.0 for p in procs] + [replay["startup_s"]]
    total = [p["cpu_s"] for p in procs] + [replay["wall_s"]]
    after = [max(0.0, t - s) for t, s in zip(total, start, strict=True)]
    a1.bar(labels, start, color="C3", label="start-up (to the first block)")
    a1.bar(labels, after, bottom=start, color="C2", label="processing")
    for x, t in enumerate(total):
        a1.text(x, t, f"{t:.1f} s", ha="center", va="bottom", fontsize=8)
    a1.set_ylabel("seconds (CPU; the last bar: clock)")
    a1.legend(fontsize=8)
    load = replay.get("load_average") or [None]
    a1.set_title(
        f"gla replay, {replay['inputs']} inputs x {replay['capture_s']:g} s, {replay['workers']} workers: "
        f"peak RSS {replay['peak_rss_mb']:.0f} MB\nprocess tree {replay['tree_cpu_s']:.1f} CPU s in "
        f"{replay['wall_s']:.1f} s of clock (load average {load[0]})",
        fontsize=9,
    )
    names, vals, cols = [], [], []
    for key, label, col in (
        ("chain_realtime_factor_36in_1core", "chain alone\n1 core", "C0"),
        ("chain_2cores", "2 x chain\n(what 2 cores could do)", "C7"),
        ("replay_realtime_factor_36in_48k_2cores", "gla replay\n2 cores", "C2"),
        ("simulate_realtime_factor_36in_1core", "simulator\n1 core", "C4"),
    ):
        v = side.get(key)
        if key == "chain_2cores" and side.get("chain_realtime_factor_36in_1core"):
            v = 2 * side["chain_realtime_factor_36in_1core"]
        if v:
            names.append(label)
            vals.append(v)
            cols.append(col)
    a2.bar(names, vals, color=cols)
    for x, v in enumerate(vals):
        a2.text(x, v, f"{v:.1f}x", ha="center", va="bottom", fontsize=8)
    a2.set_ylabel("x real time, 36 inputs at 48 kHz")
    t = "Same run, side by side"
    if side.get("replay_to_chain_ratio") is not None:
        t += f": replay / (2 x chain) = {side['replay_to_chain_ratio']:.2f}"
    if side.get("service_cpu_fraction_36in_realtime") is not None:
        t += (
            f"\ngla receive at real time: {100 * side['service_cpu_fraction_36in_realtime']:.2f} % of the machine's CPU"
        )
    a2.set_title(t, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
