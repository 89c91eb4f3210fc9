"""Where is the unmetered load? Match the pattern of extra drops across the meters.

An unmetered current ``I`` drawn at some point of the network adds, at every meter, the drop
``I * R_shared`` where ``R_shared`` is the resistance its path shares with that meter's path to
the transformer. Against the partners (leave-one-out excess), each candidate location therefore
has a known pattern ``e(candidate)`` per ampere, and the mean excess drop ``x`` over an alarm
window is ``x = I * e + noise``. For each candidate the best ``I >= 0`` is fitted by weighted
least squares (weights 1 / sigma^2 / n_samples); the candidates are ranked by the residual sum of
squares, and their relative likelihoods ``exp(-SS / 2)`` give the probability of each (flat
prior over the candidates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Candidate:
    label: str
    meter_ids: tuple[str, ...]
    pattern_v_per_a: np.ndarray
    current_a: float = 0.0
    chi2: float = float("inf")
    probability: float = 0.0


def rank_candidates(
    mean_excess_v: np.ndarray, sigma_v: np.ndarray, n_samples: int, candidates: list[Candidate]
) -> list[Candidate]:
    """Fit and rank the candidates (best first); meters with NaN excess are ignored."""
    x = np.asarray(mean_excess_v, float)
    ok = np.isfinite(x) & np.isfinite(sigma_v) & (sigma_v > 0)
    w = np.zeros_like(x)
    w[ok] = n_samples / sigma_v[ok] ** 2
    xz = np.where(ok, x, 0.0)
    for c in candidates:
        e = np.where(ok, np.nan_to_num(c.pattern_v_per_a), 0.0)
        den = float(np.sum(w * e * e))
        i = float(np.sum(w * xz * e) / den) if den > 0 else 0.0
        i = max(i, 0.0)
        c.current_a = i
        c.chi2 = float(np.sum(w * (xz - i * e) ** 2))
    if not candidates:
        return []
    chi = np.array([c.chi2 for c in candidates])
    lik = np.exp(-(chi - chi.min()) / 2.0)
    lik /= lik.sum()
    for c, p in zip(candidates, lik):
        c.probability = float(p)
    return sorted(candidates, key=lambda c: c.chi2)


def loo_pattern(drop_v_per_a: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Turn raw extra drops per meter into leave-one-out excess drops (what the detector sees)."""
    d = np.asarray(drop_v_per_a, float)
    out = np.full(d.shape, np.nan)
    for g in groups:
        if len(g) < 2:
            continue
        dg = d[g]
        out[g] = dg - (dg.sum() - dg) / (len(g) - 1)
    return out
