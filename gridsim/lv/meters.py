"""What the meters report: readings with an accuracy class's errors, and the transformer area's series.

Meter noise (``platform_api.theft.MeterAccuracy`` defaults): voltage 0.1 % random (one sigma) plus
a fixed calibration gain error uniform in +-0.1 %, current 0.25 % + 0.25 %, resolutions 0.01 V,
0.01 A and 0.01 of power factor (the scheduled-report fields). :func:`measure` draws it afresh on
each call. Reading "0.1 % random" as one standard deviation is the most conservative reading:
accuracy classes are limits of error, and a limit read as a uniform bound is 0.058 % rms, read as
a 95 % bound 0.05 %.

:func:`tan_series` puts readings into the ``TanSeries`` the theft analysis reads, at 1-minute
steps from ``T0_UNIX``: a US meter (form 2S) on the L1-L2 loop ("ab") with its service length, a
European one on its phase.
"""

from __future__ import annotations

import numpy as np

from platform_api.theft import MeterAccuracy, MeterInfo, TanSeries

from .networks import NetSpec

T0_UNIX = 1_795_305_600  # 2026-11-22 00:00 UTC


def measure(
    rng: np.random.Generator, v: np.ndarray, i: np.ndarray, pf: np.ndarray, acc: MeterAccuracy
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Readings with the accuracy class's errors: fixed gain per meter, random per reading,
    rounded to the resolution."""
    n = v.shape[1]
    gv = rng.uniform(-acc.v_fixed_pct, acc.v_fixed_pct, n) / 100
    gi = rng.uniform(-acc.i_fixed_pct, acc.i_fixed_pct, n) / 100
    vm = v * (1 + gv) + v * acc.v_random_pct / 100 * rng.standard_normal(v.shape)
    im = i * (1 + gi) + i * acc.i_random_pct / 100 * rng.standard_normal(i.shape)
    q = lambda x, r: np.round(x / r) * r  # noqa: E731
    return (
        q(vm, acc.v_resolution_v),
        np.clip(q(im, acc.i_resolution_a), 0, None),
        np.clip(q(pf, acc.pf_resolution), -1, 1),
    )


def tan_series(spec: NetSpec, v, i, pf) -> TanSeries:
    """The readings ``v``, ``i``, ``pf`` (T, M) of the area ``spec`` as a TanSeries at 1-minute steps."""
    t = T0_UNIX + 60 * np.arange(v.shape[0])
    if spec.region == "us":
        meters = [
            MeterInfo(
                inf["meter_id"],
                spec.name,
                "ab",
                account=f"ACC-{inf['meter_id']}",
                address=f"{k + 1} Example St",
                service_length_m=inf["service_length_m"],
            )
            for k, inf in enumerate(spec.meter_info)
        ]
    else:
        meters = [
            MeterInfo(inf["meter_id"], spec.name, "abc"[int(spec.meter_phase[k])], account=f"ACC-{inf['meter_id']}")
            for k, inf in enumerate(spec.meter_info)
        ]
    return TanSeries(t, tuple(meters), v, i, pf, transformer_id=spec.name)
