"""Slow, obvious reference implementations of every numba kernel, for tests only."""
from __future__ import annotations

import math

import numpy as np


def crc16_bitwise(data: bytes, poly: int = 0x1021, init: int = 0xFFFF) -> int:
    crc = init
    for byte in data:
        for i in range(7, -1, -1):
            bit = (byte >> i) & 1
            top = (crc >> 15) & 1
            crc = (crc << 1) & 0xFFFF
            if top ^ bit:
                crc ^= poly
    return crc


def conv_encode_naive(bits, g1=(1, 1, 1, 1, 0, 0, 1), g2=(1, 0, 1, 1, 0, 1, 1)) -> np.ndarray:
    """Generators written current-input first; window[0] = current bit, window[6] = six back."""
    hist = [0] * 6
    out = []
    for b in list(bits):
        window = [int(b)] + hist
        out.append(sum(x * y for x, y in zip(window, g1)) % 2)
        out.append(sum(x * y for x, y in zip(window, g2)) % 2)
        hist = [int(b)] + hist[:5]
    return np.array(out, dtype=np.uint8)


def conv_invert_noiseless(coded) -> np.ndarray:
    """Recover the input of the K=7 encoder from its noiseless output (G1 taps the current bit)."""
    coded = np.asarray(coded)
    hist = [0] * 6
    g1_rest = (1, 1, 1, 0, 0, 1)
    bits = []
    for i in range(coded.size // 2):
        b = (int(coded[2 * i]) + sum(x * y for x, y in zip(hist, g1_rest))) % 2
        bits.append(b)
        hist = [b] + hist[:5]
    return np.array(bits, dtype=np.uint8)


def rrc_naive(t: float, beta: float) -> float:
    # Same closed form written independently via the sinc-type expression, with limits by
    # evaluating slightly off the singular points.
    if abs(t) < 1e-9:
        t = 1e-7
    if abs(abs(t) - 1 / (4 * beta)) < 1e-9:
        t = t + 1e-7
    return (math.sin(math.pi * t * (1 - beta)) + 4 * beta * t * math.cos(math.pi * t * (1 + beta))) / (
        math.pi * t * (1 - (4 * beta * t) ** 2))


def modulate_naive(chips, sample_idx, *, fs_hz, fc_hz, t_start_s, grid_period_s, clock_ppm, phase_rad,
                   chip_rate_hz, beta=0.25, span=6, amplitude=1.0) -> np.ndarray:
    """Direct evaluation of s(t) = A [u(t) - u(t - T0)] at the given receiver sample indices."""
    scale = 1 + clock_ppm * 1e-6
    out = []
    for k in sample_idx:
        tau = (k / fs_hz - t_start_s) * scale
        v = 0.0
        for sign, tt in ((1.0, tau), (-1.0, tau - grid_period_s)):
            env = 0j
            nearest = math.floor(tt * chip_rate_hz + 0.5)  # the 2*span+1 chips nearest to tt
            for n, a in enumerate(chips):
                if abs(n - nearest) <= span:
                    env += a * rrc_naive(tt * chip_rate_hz - n, beta)
            v += sign * (env * np.exp(1j * (2 * math.pi * fc_hz * tt + phase_rad))).real
        out.append(amplitude * v)
    return np.array(out)
