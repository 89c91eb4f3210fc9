"""Two-finger RAKE and despreading: the matched-filter outputs of both paths combined and the
chips summed into symbols.

The second path arrives T0 later (a grid period) with the weight w2 = -exp(-2j pi fc T0)
(docs/air-interface.md); finger 1 is weighted by conj(w2) and added to finger 0, and the
``sf`` chips of each symbol are multiplied by the Gold code and summed.
"""

from __future__ import annotations

import numpy as np

from dsp.numba_settings import jit


@jit
def despread(z, w2c, code, sf):
    """Symbols of the two-finger RAKE: ``Y[s] = sum_c (z[0, c] + w2c z[1, c]) code[c]`` over the
    ``sf`` chips of symbol s (in chip order)."""
    n = z.shape[1] // sf
    y = np.empty(n, dtype=np.complex128)
    for s in range(n):
        acc = 0.0j
        for c in range(s * sf, s * sf + sf):
            acc += (z[0, c] + w2c * z[1, c]) * code[c]
        y[s] = acc
    return y


@jit
def preamble_metric(z, w2c, code, pre, sf):
    """|sum_s pre[s] Y[s]|, Y = the symbols despread (``sf`` chips each) from the fingers ``z``
    (:func:`despread`)."""
    acc = 0.0j
    for s in range(pre.shape[0]):
        y = 0.0j
        for c in range(sf * s, sf * s + sf):
            y += (z[0, c] + w2c * z[1, c]) * code[c]
        acc += y * pre[s]
    return abs(acc)
