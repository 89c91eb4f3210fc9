"""Planted events: a tap's on/off pattern, and a tapped record from the clean and tapped solutions.

A tap either switches on at ``t0`` and stays on (``"constant"``), or is intermittent: on 10-60 min,
off 10-90 min, repeated from ``t0`` (duty about 40 %). A tap of ``size_kw`` takes the
``TAP_REF_KW`` solution's change scaled by ``size_kw / TAP_REF_KW`` where it is on and the clean
solution elsewhere (:mod:`.truth`).
"""

from __future__ import annotations

import numpy as np

from .truth import TAP_REF_KW


def tap_mask(rng: np.random.Generator, n_min: int, t0: int, kind: str) -> np.ndarray:
    """On/off pattern (n_min,) of a tap of ``kind`` ("constant" or "intermittent") starting at ``t0``."""
    m = np.zeros(n_min, bool)
    if kind == "constant":
        m[t0:] = True
        return m
    t, on = t0, True
    while t < n_min:
        d = int(rng.integers(10, 61)) if on else int(rng.integers(10, 91))
        if on:
            m[t : t + d] = True
        t += d
        on = not on
    return m


def apply_tap(
    v_clean: np.ndarray,
    dv_ref: np.ndarray,
    i_clean: np.ndarray,
    i_tap: np.ndarray,
    pf_clean: np.ndarray,
    pf_tap: np.ndarray,
    mask: np.ndarray,
    size_kw: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Meter voltage, current and power factor (T, M) with a tap of ``size_kw`` on where ``mask``
    is: ``dv_ref`` is the ``TAP_REF_KW`` tap's voltage change, ``i_tap``/``pf_tap`` the meters'
    currents and power factors under it."""
    mm = mask[:, None] * (size_kw / TAP_REF_KW)
    v = v_clean + mm * dv_ref
    i = i_clean + mm * (i_tap - i_clean)
    pf = np.where(mask[:, None], pf_tap, pf_clean)
    return v, i, pf
