"""Numba settings, in one place.

Every kernel in ``dsp/`` is decorated with :func:`jit` from this module. Setting the
environment variable ``NUMBA_DISABLE_JIT=1`` makes every kernel run as plain Python (numba
honours it itself), which the test suite uses for coverage.
"""
from __future__ import annotations

import os

from numba import njit

#: Cache compiled kernels on disk next to the sources (speeds up start-up of the CLI and tests).
CACHE = os.environ.get("GLA_NUMBA_CACHE", "1") != "0"


def jit(fn=None, **overrides):
    """``numba.njit`` with the project's settings (no fastmath: results must be bit-stable)."""
    opts = dict(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
    opts.update(overrides)
    if fn is None:
        return lambda f: njit(**opts)(f)
    return njit(**opts)(fn)


def jit_enabled() -> bool:
    """False when ``NUMBA_DISABLE_JIT=1`` (the kernels then run as plain Python)."""
    from numba.core import config

    return not config.DISABLE_JIT
