"""Household load profiles and the medium-voltage grid's voltage, at 1-minute steps.

Per house: a base load, a cycling refrigerator, lighting and electronics following a daily
activity curve (night trough, morning and evening peaks, each house shifted), and Poisson-started
appliances. Appliances start more often when the activity is high, and each has its own power,
duration and power factor: kettle or microwave, cooking, washer, dryer, dishwasher, a US water
heater, and a US air-conditioner that cycles in the afternoon and evening.

The medium-voltage grid moves the external-grid voltage by +-1 % daily, adds a slow random walk
(a step every 5 min) and on-load tap-changer steps of 0.6 %.
"""

from __future__ import annotations

import math

import numpy as np

MIN_PER_DAY = 1440


def _activity(rng: np.random.Generator, n_min: int, n: int) -> np.ndarray:
    """Daily activity 0..~1 per house (T, n): night trough, morning and evening peaks."""
    t = np.arange(n_min)[:, None]
    shift = rng.normal(0.0, 45.0, n)[None, :]
    h = ((t + shift) % MIN_PER_DAY) / 60.0
    day = t // MIN_PER_DAY
    scale = 0.7 + 0.6 * rng.random((int(day.max()) + 1, n))
    a = (
        0.08
        + 0.55 * np.exp(-(((h - 7.3) / 1.1) ** 2))
        + 0.25 * ((h > 9) & (h < 16.5))
        + 0.9 * np.exp(-(((h - 19.5) / 2.0) ** 2))
    )
    return a * scale[day[:, 0]]


def _pulses(rng, rate: np.ndarray, dur_min: tuple[int, int], power_w: tuple[float, float]) -> np.ndarray:
    """Rectangular appliance runs started by a Poisson process with per-minute rate (T, n)."""
    t_n, n = rate.shape
    starts = rng.random(rate.shape) < rate
    out = np.zeros((t_n + 1, n))
    ti, hi = np.nonzero(starts)
    if ti.size:
        dur = rng.integers(dur_min[0], dur_min[1] + 1, ti.size)
        pw = rng.uniform(power_w[0], power_w[1], ti.size)
        np.add.at(out, (ti, hi), pw)
        np.add.at(out, (np.minimum(ti + dur, t_n), hi), -pw)
    return np.cumsum(out[:-1], axis=0)


def _cycling(
    rng,
    n_min: int,
    n: int,
    period: tuple[float, float],
    duty: np.ndarray | tuple[float, float],
    power_w: tuple[float, float],
) -> np.ndarray:
    """Thermostatic cycling (refrigerator, air conditioner): on for ``duty`` of each period."""
    per = rng.uniform(period[0], period[1], n)[None, :]
    ph = rng.uniform(0, 1, n)[None, :]
    t = np.arange(n_min)[:, None]
    if isinstance(duty, tuple):
        duty = rng.uniform(duty[0], duty[1], n)[None, :]
    frac = (t / per + ph + 0.02 * np.cumsum(rng.normal(0, 1, (n_min, n)), axis=0) / np.sqrt(per)) % 1.0
    return (frac < duty) * rng.uniform(power_w[0], power_w[1], n)[None, :]


def household_profiles(rng: np.random.Generator, n: int, n_min: int, region: str) -> tuple[np.ndarray, np.ndarray]:
    """Active and reactive power (W, var), shape (n_min, n), of n houses at 1-minute steps."""
    act = _activity(rng, n_min, n)
    parts: list[tuple[np.ndarray, float]] = []  # (watts, power factor)
    base = np.broadcast_to(rng.uniform(80, 250, n), (n_min, n)) * (1 + 0.05 * rng.standard_normal((n_min, n)))
    parts.append((base, 0.9))
    parts.append((_cycling(rng, n_min, n, (35, 60), (0.3, 0.45), (100, 180)), 0.85))  # refrigerator
    light = act * rng.uniform(150, 450, n)[None, :] * (1 + 0.15 * rng.standard_normal((n_min, n)))
    parts.append((np.clip(light, 0, None), 0.95))
    us = region == "us"
    parts.append((_pulses(rng, 0.004 * act, (2, 6), (900, 1800)), 1.0))  # kettle / microwave
    parts.append((_pulses(rng, 0.0015 * act * (act > 0.6), (20, 60), (1500, 3000)), 1.0))  # cooking
    parts.append((_pulses(rng, 0.0006 * act, (35, 70), (300, 600)), 0.7))  # washer motor
    parts.append((_pulses(rng, 0.0004 * act, (15, 25), (1800, 2200)), 1.0))  # dishwasher / washer heater
    if us:
        parts.append((_pulses(rng, 0.0003 * act, (40, 60), (4000, 5500)), 1.0))  # dryer
        parts.append((_pulses(rng, 0.0025 * act, (10, 35), (4000, 4500)), 1.0))  # water heater
        t = np.arange(n_min)[:, None]
        h = (t % MIN_PER_DAY) / 60.0
        hot = np.clip(np.sin(np.pi * (h - 9) / 14), 0, None) * rng.uniform(0.2, 0.8, n)[None, :]
        parts.append((_cycling(rng, n_min, n, (18, 30), hot, (2500, 4200)), 0.88))  # air conditioner
    p = np.zeros((n_min, n))
    q = np.zeros((n_min, n))
    for w, pf in parts:
        p += w
        q += w * math.tan(math.acos(pf))
    return p, q


def mv_voltage_pu(rng: np.random.Generator, n_min: int) -> np.ndarray:
    """External-grid voltage (pu) over time: daily swing, slow random walk, OLTC steps."""
    t = np.arange(n_min)
    v = 1.0 + 0.01 * np.sin(2 * np.pi * (t / MIN_PER_DAY) + rng.uniform(0, 2 * np.pi))
    walk = np.cumsum(rng.normal(0, 0.0004, n_min // 5 + 1))
    v += np.repeat(walk - walk.mean(), 5)[:n_min]
    steps = np.zeros(n_min)
    for s in rng.choice(n_min, size=max(1, n_min // 700), replace=False):
        steps[s:] += rng.choice([-0.006, 0.006])
    return v + steps - steps.mean()
