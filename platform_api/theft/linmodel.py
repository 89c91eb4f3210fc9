"""Least-squares drop models with an unknown common voltage per time step (a "fixed effect").

All models of this package have the form

    v[t, k] = u[g(k), t] + x[t, k, :] @ theta + e[t, k]

where ``u[g, t]`` is the unknown voltage common to the meters of group ``g`` at time ``t`` (the
transformer secondary voltage of that phase: it moves with the medium-voltage grid and with the
transformer's own drop), ``x[t, k, :]`` are regressors built from the currents (the meter's own
active and reactive current, bus currents, the transformer's phase currents ...) and ``theta``
the impedances and offsets to estimate. The common voltage is eliminated exactly per time step
and group ("within" transformation), which leaves a least-squares problem in ``theta`` only:

    A = sum_t X_t' (M_t - m_t m_t' / sum(m_t)) X_t,    b = same with v_t,

(``M_t`` the diagonal of valid readings of the group) summed over groups; ``theta`` solves
``A theta = b`` in the minimum-norm sense (offsets are defined only up to a constant per group,
the gauge). Outlying readings are trimmed and the problem solved again.

When every meter of a group sees the same regressors the problem separates into one ordinary
least-squares problem per meter on the group-demeaned voltages: :mod:`.feeder` uses that.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DesignFn = Callable[[int, int], np.ndarray]  # (t0, t1) -> x[t0:t1] of shape (t1 - t0, N, P)


def _as_design(x: np.ndarray | DesignFn) -> DesignFn:
    if callable(x):
        return x
    arr = np.asarray(x, dtype=float)
    return lambda t0, t1: arr[t0:t1]


def _gram(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x.T @ y`` without BLAS threads: these products are tall and thin, and multi-threaded
    BLAS on a busy machine makes them slower, not faster."""
    return np.einsum("ip,iq->pq", x, y, optimize=False)


def within_normal_equations(
    v: np.ndarray, x: np.ndarray | DesignFn, groups: list[np.ndarray], mask: np.ndarray, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Normal equations (A, b) of the within least-squares problem (see the module doc)."""
    design = _as_design(x)
    t_n = v.shape[0]
    a = b = None
    vz = np.where(mask, v, 0.0)
    m = mask.astype(float)
    for t0 in range(0, t_n, chunk):
        t1 = min(t_n, t0 + chunk)
        xt = design(t0, t1)
        xt = np.where(mask[t0:t1, :, None], xt, 0.0)
        p = xt.shape[2]
        if a is None:
            a, b = np.zeros((p, p)), np.zeros(p)
        flat = xt.reshape(-1, p)
        a += _gram(flat, flat)
        b += np.einsum("ip,i->p", flat, vz[t0:t1].reshape(-1), optimize=False)
        for g in groups:
            w = m[t0:t1, g].sum(axis=1)
            ok = w > 0
            if not ok.any():
                continue
            s = xt[:, g, :].sum(axis=1)[ok]  # masked rows are already zero
            sv = vz[t0:t1][:, g].sum(axis=1)[ok]
            sw = s / w[ok, None]
            a -= _gram(sw, s)
            b -= np.einsum("ip,i->p", sw, sv, optimize=False)
    if a is None or b is None:
        # v has no rows: nothing to fit (a ValueError, as np.diag(None) in solve_min_norm raised before)
        raise ValueError("no time steps: v has no rows")
    return a, b


def solve_min_norm(a: np.ndarray, b: np.ndarray, rcond: float = 1e-11) -> np.ndarray:
    """Minimum-norm solution of the symmetric positive semi-definite system ``a theta = b``."""
    d = np.diag(a)
    live = d > 1e-12 * max(float(d.max(initial=0.0)), 1e-300)  # columns the within transform leaves non-zero
    theta = np.zeros(a.shape[0])
    if not live.any():
        return theta
    scale = np.sqrt(d[live])
    an = a[np.ix_(live, live)] / scale[:, None] / scale[None, :]
    theta_n, *_ = np.linalg.lstsq(an, b[live] / scale, rcond=rcond)
    theta[live] = theta_n / scale
    return theta


def apply_design(x: np.ndarray | DesignFn, theta: np.ndarray, t_n: int, chunk: int = 2048) -> np.ndarray:
    """``x @ theta`` for every (t, k): the part of each voltage the model explains (T, N)."""
    design = _as_design(x)
    out = []
    for t0 in range(0, t_n, chunk):
        out.append(np.einsum("tnp,p->tn", design(t0, min(t_n, t0 + chunk)), theta, optimize=False))
    return np.concatenate(out, axis=0) if out else np.zeros((0, 0))


def group_demean(r: np.ndarray, groups: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """Subtract from each valid entry the mean of the valid entries of its group at that time;
    invalid entries become NaN."""
    out = np.full(r.shape, np.nan)
    for g in groups:
        rg = np.where(mask[:, g], r[:, g], 0.0)
        w = mask[:, g].sum(axis=1)
        mean = np.divide(rg.sum(axis=1), w, out=np.full(w.shape, np.nan), where=w > 0)
        out[:, g] = np.where(mask[:, g], r[:, g] - mean[:, None], np.nan)
    return out


def loo_excess(r: np.ndarray, groups: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """Excess drop of each meter against the others of its group (leave-one-out):
    ``mean_{j != k} r[t, j] - r[t, k]`` where ``r = v - x @ theta``; positive = meter ``k`` sits
    lower than the currents explain. NaN where the reading is missing or it has no partner."""
    out = np.full(r.shape, np.nan)
    for g in groups:
        rg = np.where(mask[:, g], r[:, g], 0.0)
        w = mask[:, g].sum(axis=1)
        tot = rg.sum(axis=1)
        others = w[:, None] - mask[:, g]
        mean_others = np.divide(tot[:, None] - rg, others, out=np.full(rg.shape, np.nan), where=others > 0)
        out[:, g] = np.where(mask[:, g], mean_others - r[:, g], np.nan)
    return out


def robust_scale(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """1.4826 * median absolute deviation, ignoring NaN."""
    med = np.nanmedian(x, axis=axis, keepdims=True)
    return 1.4826 * np.nanmedian(np.abs(x - med), axis=axis)


def fit_within(
    v: np.ndarray,
    x: np.ndarray | DesignFn,
    groups: list[np.ndarray],
    mask: np.ndarray,
    *,
    trim_sigma: float = 5.0,
    iterations: int = 2,
    ridge: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Trimmed within least squares. Returns ``(theta, used_mask)``: readings whose residual
    (against the group at the same time) exceeds ``trim_sigma`` robust standard deviations of
    their meter are dropped and the fit repeated ``iterations`` times. ``ridge`` (one value per
    parameter, >= 0) is added to the diagonal of the normal equations: a Gaussian prior of
    variance ``sigma^2 / ridge`` centred on 0 for that parameter (0: none)."""
    used = mask.copy()
    theta = None
    for it in range(iterations + 1):
        a, b = within_normal_equations(v, x, groups, used)
        if ridge is not None:
            a = a + np.diag(np.asarray(ridge, dtype=float))
        theta = solve_min_norm(a, b)
        if it == iterations:
            break
        r = v - apply_design(x, theta, v.shape[0])
        res = group_demean(r, groups, mask)
        s = robust_scale(res)
        s = np.where(np.isfinite(s) & (s > 0), s, np.inf)
        used = mask & (np.abs(np.nan_to_num(res)) <= trim_sigma * s[None, :])
    assert theta is not None, "iterations must be >= 0: the loop fits at least once"
    return theta, used
