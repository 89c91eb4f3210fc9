"""Numba settings, in one place: every option a kernel is compiled with, fastmath flags included.

Every kernel in ``dsp/`` is decorated with :func:`jit` from this module and names at most one of
the :data:`FASTMATH` profiles (``@jit(math="sums")``); no kernel passes numba options of its own
(tests/test_numba_settings.py checks that). Setting the
environment variable ``NUMBA_DISABLE_JIT=1`` makes every kernel run as plain Python (numba
honours it itself), which the test suite uses for coverage. :func:`fma` is the fused
multiply-add for kernels that must round as numpy's SIMD loops do.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Literal

import numpy as np
from numba import config, njit, types
from numba.extending import intrinsic

#: Cache compiled kernels on disk next to the sources (speeds up start-up of the CLI and tests).
CACHE = os.environ.get("GLA_NUMBA_CACHE", "1") != "0"


#: The fastmath profiles a kernel may name. "exact" (the default): IEEE arithmetic as written, so
#: results are bit-stable. "sums": the terms of a sum may be reordered (and vectorised) and a * b + c
#: may fuse; used by the comb's, the channelizer's and the matched filter's dot products, whose
#: outputs are then stable per kind of CPU. "reorder": reordering only, no fused multiply-add.
FASTMATH: dict[str, Literal[False] | frozenset[str]] = {
    "exact": False,
    "sums": frozenset({"reassoc", "contract"}),
    "reorder": frozenset({"reassoc"}),
}

#: The options every kernel is compiled with.
OPTIONS = dict(cache=CACHE, nogil=True, error_model="numpy")


def jit(fn=None, *, math: str = "exact"):
    """``numba.njit`` with the project's settings and the fastmath profile ``math``."""
    if math not in FASTMATH:
        raise ValueError(f"unknown fastmath profile {math!r}: one of {sorted(FASTMATH)}")
    flags = FASTMATH[math]
    opts = dict(OPTIONS, fastmath=set(flags) if flags else False)
    if fn is None:
        return lambda f: njit(**opts)(f)
    return njit(**opts)(fn)


if config.DISABLE_JIT:

    def fma(a, b, c):
        """a * b + c rounded once (plain Python: exact with fractions, then to the nearest value of
        a's type, ties to even)."""
        t = type(a)
        exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
        r = t(float(exact))
        cands = (np.nextafter(r, t(-np.inf)), r, np.nextafter(r, t(np.inf)))
        return min(
            cands,
            key=lambda v: (abs(Fraction(float(v)) - exact), int(np.asarray(v).view(f"u{np.asarray(v).itemsize}")) & 1),
        )
else:

    @intrinsic
    def fma(typingctx, a, b, c):
        """a * b + c rounded once (LLVM's fma), for floats of one type."""
        if not (isinstance(a, types.Float) and a == b == c):
            return None

        def codegen(context, builder, sig, args):
            return builder.fma(*args)

        return a(a, b, c), codegen


def jit_enabled() -> bool:
    """False when ``NUMBA_DISABLE_JIT=1`` (the kernels then run as plain Python)."""
    return not config.DISABLE_JIT
