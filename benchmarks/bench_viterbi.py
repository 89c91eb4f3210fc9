"""Soft Viterbi decoder throughput:  python benchmarks/bench_viterbi.py [--quick]

Measures, on 256-bit frames (262 trellis steps with the tail), one core:

* ``dsp.fec.viterbi.viterbi_decode_kernel`` after warm-up (decoded information Mbit/s, best pass),
  and the streaming ``ViterbiDecoder`` on the same frames;
* scikit-commpy's ``viterbi_decode`` (pure Python; a few frames only, bit/s);
* libfec's ``viterbi27`` through ctypes, if ``ctypes.util.find_library('fec')`` finds it.
  libfec's conventions differ between releases (3.0.x defaults to the generators in the order
  0x6d, 0x4f i.e. G2 first; Karn's later sources use 0x4f then an inverted 0x6d; chainback
  either skips the tail itself or not), so the symbol order, the inversion and the chainback
  length are chosen empirically: the variant must decode noiseless frames of our encoder
  exactly, else libfec is skipped. Symbols are offset-binary bytes, 0 = strong '0',
  255 = strong '1'.

Writes nothing; ``run(quick)`` returns a dict for the lead's benchmark integration.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import pathlib
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from dsp.fec import conv, viterbi  # noqa: E402

N_INFO = 256
N_STEPS = N_INFO + viterbi.TAIL
EBN0_DB = 3.0


def _frames(rng, n_frames):
    sigma = np.sqrt(1.0 / (2.0 * 10 ** ((EBN0_DB - 10 * np.log10(2)) / 10)))
    bits = rng.integers(0, 2, (n_frames, N_INFO)).astype(np.uint8)
    coded = np.array([conv.encode_frame(b) for b in bits])
    soft = (1.0 - 2.0 * coded) + sigma * rng.standard_normal(coded.shape)
    return bits, np.ascontiguousarray(soft)


def _time_passes(fn, n_passes):
    times = []
    for _ in range(n_passes):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def bench_kernel(soft, n_passes):
    kern = viterbi.viterbi_decode_kernel
    kern(soft[0], N_STEPS)  # compile / load from cache

    def one_pass():
        for s in soft:
            kern(s, N_STEPS)

    one_pass()  # warm-up
    best, med = _time_passes(one_pass, n_passes)
    n_bits = soft.shape[0] * N_INFO
    return n_bits / best / 1e6, n_bits / med / 1e6


def bench_stream(soft, n_passes):
    flat = soft.reshape(-1)
    dec = viterbi.ViterbiDecoder()
    dec.process(flat[:1000])
    dec.reset()

    def one_pass():
        dec.reset()
        for s in soft:  # one process() call per frame-sized chunk, continuous trellis
            dec.process(s)
        dec.flush(terminated=False)

    one_pass()
    best, _ = _time_passes(one_pass, n_passes)
    return soft.shape[0] * N_STEPS / best / 1e6


def bench_commpy(bits, soft, n_frames):
    try:
        import commpy.channelcoding.convcode as cc
    except ImportError as exc:  # pragma: no cover - optional dependency
        return None, f"scikit-commpy not importable ({exc})"
    trellis = cc.Trellis(np.array([6]), np.array([[0o171, 0o133]]), polynomial_format="LSB")
    agree = 0
    t0 = time.perf_counter()
    outs = [cc.viterbi_decode(-soft[i], trellis, tb_depth=64, decoding_type="unquantized") for i in range(n_frames)]
    dt = time.perf_counter() - t0
    for i, o in enumerate(outs):
        agree += np.array_equal(o[:N_INFO].astype(np.uint8), viterbi.decode_frame(soft[i], N_INFO))
    return n_frames * N_INFO / dt, f"{agree}/{n_frames} frames identical to dsp.fec.viterbi"


class _LibFec:
    def __init__(self, path):
        lib = ctypes.CDLL(path)
        lib.create_viterbi27.restype = ctypes.c_void_p
        lib.create_viterbi27.argtypes = [ctypes.c_int]
        lib.init_viterbi27.restype = ctypes.c_int
        lib.init_viterbi27.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.update_viterbi27_blk.restype = ctypes.c_int
        lib.update_viterbi27_blk.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        lib.chainback_viterbi27.restype = ctypes.c_int
        lib.chainback_viterbi27.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        lib.delete_viterbi27.restype = None
        lib.delete_viterbi27.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.handle = lib.create_viterbi27(N_STEPS + 8)  # room for the tail in every release
        if not self.handle:
            raise RuntimeError("create_viterbi27 returned NULL")
        self.out = np.zeros((N_STEPS + 7) // 8 + 1, dtype=np.uint8)

    @staticmethod
    def symbols(soft, swap, invert2):
        # offset binary: 0 = strong '0' (soft +1), 255 = strong '1' (soft -1)
        sym = np.clip(np.rint(127.5 - 127.5 * soft / 2.0), 0, 255).astype(np.uint8).reshape(-1, 2)
        if swap:
            sym = sym[:, ::-1]
        sym = sym.copy()
        if invert2:
            sym[:, 1] = 255 - sym[:, 1]
        return np.ascontiguousarray(sym.reshape(-1))

    def decode(self, sym, chain_bits):
        lib = self.lib
        lib.init_viterbi27(self.handle, 0)
        lib.update_viterbi27_blk(self.handle, sym.ctypes.data, N_STEPS)
        lib.chainback_viterbi27(self.handle, self.out.ctypes.data, chain_bits, 0)
        return np.unpackbits(self.out)[:N_INFO]

    def close(self):
        if self.handle:
            self.lib.delete_viterbi27(self.handle)
            self.handle = None


def bench_libfec(rng, soft, n_passes):
    path = ctypes.util.find_library("fec")
    if not path:
        return None, "libfec not found (ctypes.util.find_library('fec') returned None); skipped"
    try:
        fec = _LibFec(path)
    except (OSError, AttributeError, RuntimeError) as exc:
        return None, f"libfec found at {path} but unusable ({exc}); skipped"
    try:
        check_bits = rng.integers(0, 2, (3, N_INFO)).astype(np.uint8)
        check_soft = [1.0 - 2.0 * conv.encode_frame(b) for b in check_bits]
        variant = None
        for swap in (False, True):
            for invert2 in (False, True):
                for chain_bits in (N_INFO, N_STEPS):
                    ok = all(
                        np.array_equal(fec.decode(fec.symbols(s, swap, invert2), chain_bits), b)
                        for s, b in zip(check_soft, check_bits)
                    )
                    if ok and variant is None:
                        variant = (swap, invert2, chain_bits)
        if variant is None:
            return None, f"libfec at {path}: no symbol convention reproduced our encoder; skipped"
        swap, invert2, chain_bits = variant
        syms = [fec.symbols(s, swap, invert2) for s in soft]

        def one_pass():
            for s in syms:
                fec.decode(s, chain_bits)

        one_pass()
        best, _ = _time_passes(one_pass, n_passes)
        note = f"libfec at {path}: swap G1/G2={swap}, invert 2nd symbol={invert2}, chainback {chain_bits} bits"
        return len(syms) * N_INFO / best / 1e6, note
    finally:
        fec.close()


def run(quick: bool = False) -> dict:
    rng = np.random.default_rng(4242)
    n_frames, n_passes, n_commpy = (300, 3, 1) if quick else (1500, 7, 3)
    bits, soft = _frames(rng, n_frames)
    mbit_best, mbit_median = bench_kernel(soft, n_passes)
    stream_mbit = bench_stream(soft, max(2, n_passes // 2))
    commpy_bit_s, commpy_note = bench_commpy(bits, soft, n_commpy)
    libfec_mbit_s, libfec_note = bench_libfec(rng, soft, n_passes)

    rows = [
        ("dsp.fec.viterbi kernel (best pass)", f"{mbit_best:9.2f} Mbit/s"),
        ("dsp.fec.viterbi kernel (median pass)", f"{mbit_median:9.2f} Mbit/s"),
        ("dsp.fec.viterbi ViterbiDecoder stream", f"{stream_mbit:9.2f} Mbit/s"),
        ("scikit-commpy viterbi_decode", f"{commpy_bit_s:9.0f} bit/s" if commpy_bit_s else "   skipped"),
        ("libfec viterbi27", f"{libfec_mbit_s:9.2f} Mbit/s" if libfec_mbit_s else "   skipped"),
    ]
    print(f"Viterbi K=7 r=1/2, {N_INFO}-bit frames, Eb/N0 {EBN0_DB} dB, {n_frames} frames x {n_passes} passes")
    for name, val in rows:
        print(f"  {name:<36s}{val}")
    print(f"  commpy: {commpy_note}")
    print(f"  libfec: {libfec_note}")
    return {
        "viterbi_mbit_s": round(mbit_best, 3),
        "viterbi_mbit_s_median": round(mbit_median, 3),
        "viterbi_stream_mbit_s": round(stream_mbit, 3),
        "commpy_bit_s": round(commpy_bit_s, 1) if commpy_bit_s else None,
        "libfec_mbit_s": round(libfec_mbit_s, 3) if libfec_mbit_s else None,
        "notes": {"commpy": commpy_note, "libfec": libfec_note},
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames and passes")
    print(run(quick=ap.parse_args().quick))
