"""Pruned row-column block interleaver spanning the whole frame.

The N transmitted coded bits are written row by row into a matrix of 32 columns
(ceil(N/32) rows; cells beyond N are skipped) and read column by column. Two coded bits that
are adjacent on the air are therefore 32 coded bits (16 trellis steps) apart at the decoder,
so an impulse that wipes out up to 16 consecutive BPSK symbols (89 ms) leaves isolated errors.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dsp.air import params as P


@lru_cache(maxsize=16)
def permutation(n: int, columns: int = P.INTERLEAVER_COLUMNS) -> np.ndarray:
    """``perm[k]`` is the index (in coded order) of the k-th bit sent on the air."""
    if n <= 0 or columns <= 0:
        raise ValueError(f"interleaver needs n > 0 and columns > 0, got n={n}, columns={columns}")
    rows = -(-n // columns)
    idx = np.arange(rows * columns).reshape(rows, columns).T.reshape(-1)
    perm = idx[idx < n]
    perm.setflags(write=False)
    return perm


def interleave(values: np.ndarray, columns: int = P.INTERLEAVER_COLUMNS) -> np.ndarray:
    values = np.asarray(values)
    return values[permutation(values.size, columns)]


def deinterleave(values: np.ndarray, columns: int = P.INTERLEAVER_COLUMNS) -> np.ndarray:
    values = np.asarray(values)
    out = np.empty_like(values)
    out[permutation(values.size, columns)] = values
    return out
