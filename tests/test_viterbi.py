"""Soft Viterbi decoder (dsp.fec.viterbi): exact agreement with the textbook reference, agreement with
scikit-commpy, round trips, streaming invariance, bad input and a golden vector.

Heavy tests carry "10000" or "commpy" in their names; the pure-Python (NUMBA_DISABLE_JIT=1)
subset is ``-k "not 10000 and not commpy"``.

Noise model: Es/N0 = Eb/N0 + 10 log10(R), soft = (1 - 2b) + sigma * n, sigma^2 = 1 / (2 Es/N0).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.air import params as P
from dsp.fec import conv, viterbi
from tests import naive

TAIL = P.CONV_TAIL_BITS
GOLDEN = json.loads((pathlib.Path(__file__).parent / "golden" / "viterbi_v1.json").read_text())


def sigma_for(ebn0_db: float, rate: float) -> float:
    esn0 = 10 ** ((ebn0_db + 10 * np.log10(rate)) / 10)
    return float(np.sqrt(1.0 / (2.0 * esn0)))


def noisy_frames(rng, n_frames, n_info, ebn0_db, *, quant=None, fec=P.FecRate.R1_2):
    """Random info bits and their (depunctured) noisy soft values, one frame per row."""
    rate = 0.5 if fec == P.FecRate.R1_2 else 2.0 / 3.0
    bits = rng.integers(0, 2, (n_frames, n_info)).astype(np.uint8)
    coded = np.array([conv.encode_frame(b) for b in bits]).reshape(n_frames, 2 * (n_info + TAIL))
    soft = (1.0 - 2.0 * coded) + sigma_for(ebn0_db, rate) * rng.standard_normal(coded.shape)
    if quant is not None:
        soft = np.round(soft / quant) * quant  # coarse levels: many exactly equal metrics (ties)
    if fec != P.FecRate.R1_2:
        soft = np.array([conv.depuncture(conv.puncture(s, fec), fec, s.size) for s in soft])
    return bits, soft


def path_metric(soft, info_bits) -> float:
    return float(np.dot(soft, 1.0 - 2.0 * conv.encode_frame(np.asarray(info_bits, dtype=np.uint8))))


# ------------------------------------------------------------------ (a) textbook reference
def test_matches_naive_10000_short_frames():
    """10,010 frames of 40 info bits, Eb/N0 0..6 dB, unquantised, quantised (ties) and punctured."""
    rng = np.random.default_rng(1001)
    n_info, checked, bad = 40, 0, []
    variants = [dict(quant=None), dict(quant=0.5), dict(quant=1.0), dict(quant=None, fec=P.FecRate.R2_3)]
    for ebn0 in range(7):
        for vi, kw in enumerate(variants):
            n_frames = 358 if vi < 3 else 356
            _, soft = noisy_frames(rng, n_frames, n_info, float(ebn0), **kw)
            ref = naive.viterbi_naive(soft, n_info + TAIL)
            for i in range(n_frames):
                ours = viterbi.viterbi_decode_kernel(soft[i], n_info + TAIL)
                if not np.array_equal(ours, ref[i]):
                    bad.append((ebn0, vi, i))
            checked += n_frames
    assert checked >= 10_000
    assert not bad, f"{len(bad)} of {checked} frames differ from the reference, first {bad[:5]}"


def test_matches_naive_full_frames():
    """~50 full 256-bit frames (also run in the pure-Python subset)."""
    rng = np.random.default_rng(1002)
    for ebn0, quant in ((0.0, None), (1.0, 0.5), (2.0, None), (3.0, 1.0), (4.0, None), (6.0, 0.25)):
        _, soft = noisy_frames(rng, 9, P.FRAME_BITS, ebn0, quant=quant)
        ref = naive.viterbi_naive(soft, P.FRAME_BITS + TAIL)
        for i in range(soft.shape[0]):
            assert np.array_equal(viterbi.decode_terminated(soft[i]), ref[i]), (ebn0, quant, i)


def test_naive_tie_break_is_the_lower_state():
    # All-erasure input: every comparison is a tie, so both decoders stay on the all-zero path.
    soft = np.zeros(2 * 30)
    assert not naive.viterbi_naive(soft, 30).any()
    assert not viterbi.decode_terminated(soft).any()


# ------------------------------------------------------------------------- (b) commpy
def test_agrees_with_commpy():
    """scikit-commpy's sliding-window decoder (tb_depth 64, 'unquantized') on 24 noisy frames.

    Why they can differ: commpy does not terminate. It decides each bit by tracing back
    ``tb_depth - 1`` steps from the *best* state at that time (not from state 0 at the end of
    the frame) and pads the end with only 5 zero-input steps, so on a bare frame its last
    bits are often not forced through state 0 (about 1 frame in 9 differed at 0-2 dB, mostly
    near the end). To compare like with like the frame is followed by 64 noiseless zero steps
    (the encoder idling in state 0), which pins commpy's path to state 0 after the tail. What
    can still differ is the finite window (survivors have not always merged 63 steps later at
    low Eb/N0) versus our whole-frame maximum-likelihood decision: offline, 3 of 80 padded
    frames at 0-3 dB differed, all at <= 1 dB, each with a strictly higher metric for ours.
    So: allow a rare mismatch, and require in every frame that our decision's correlation
    metric is at least commpy's (ours is the ML terminated path). This seed: 0 of 24 differ.
    """
    cc = pytest.importorskip("commpy.channelcoding.convcode")
    trellis = cc.Trellis(np.array([6]), np.array([[0o171, 0o133]]), polynomial_format="LSB")
    rng = np.random.default_rng(1003)
    n_info, tb, n_frames, mismatches = 64, 64, 0, 0
    for ebn0 in (1.0, 2.0, 3.0, 4.0):
        bits, soft = noisy_frames(rng, 6, n_info, ebn0)
        for i in range(soft.shape[0]):
            ext = np.concatenate([soft[i], np.full(2 * tb, 1.0)])
            # commpy's 'unquantized' metric is the squared distance to 2b - 1: our sign flipped
            theirs = cc.viterbi_decode(-ext, trellis, tb_depth=tb, decoding_type="unquantized")
            theirs = theirs[:n_info].astype(np.uint8)
            ours = viterbi.decode_frame(soft[i], n_info)
            n_frames += 1
            if not np.array_equal(ours, theirs):
                mismatches += 1
            assert path_metric(soft[i], ours) >= path_metric(soft[i], theirs) - 1e-9
    assert n_frames == 24
    assert mismatches <= 1, f"{mismatches}/{n_frames} frames differ from commpy"


# -------------------------------------------------------------------- (c) round trips
@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 1), min_size=0, max_size=300),
    st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False),
)
def test_noiseless_round_trip(bits, amplitude):
    bits = np.array(bits, dtype=np.uint8)
    soft = amplitude * (1.0 - 2.0 * conv.encode_frame(bits))
    out = viterbi.decode_frame(soft, bits.size)
    assert out.dtype == np.uint8 and np.array_equal(out, bits)
    assert viterbi.reencode_errors(soft, out) == 0


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=1, max_size=200), st.integers(1, 40), st.integers(1, 9))
def test_noiseless_round_trip_streaming(bits, traceback, block):
    bits = np.array(bits, dtype=np.uint8)
    soft = 1.0 - 2.0 * conv.encode_frame(bits)
    dec = viterbi.ViterbiDecoder(traceback=traceback, block=block)
    out = np.concatenate([dec.process(soft), dec.flush()])
    assert np.array_equal(out, np.concatenate([bits, np.zeros(TAIL, np.uint8)]))


def test_punctured_rate_2_3_high_snr():
    rng = np.random.default_rng(1004)
    bits, soft = noisy_frames(rng, 30, P.FRAME_BITS, 7.0, fec=P.FecRate.R2_3)
    assert np.count_nonzero(soft[0] == 0.0) == 131  # the erasures depuncture re-inserts
    for i in range(bits.shape[0]):
        assert np.array_equal(viterbi.decode_frame(soft[i], P.FRAME_BITS), bits[i]), i


def test_rate_1_2_moderate_snr_corrects_errors():
    rng = np.random.default_rng(1005)
    bits, soft = noisy_frames(rng, 30, P.FRAME_BITS, 5.0)
    raw_errors = 0
    for i in range(bits.shape[0]):
        out = viterbi.decode_frame(soft[i], P.FRAME_BITS)
        assert np.array_equal(out, bits[i]), i
        raw_errors += viterbi.reencode_errors(soft[i], out)
    assert raw_errors > 0  # the channel did flip coded bits; the decoder removed them


def test_reencode_errors_counts_sign_flips_and_ignores_erasures():
    rng = np.random.default_rng(1006)
    bits = rng.integers(0, 2, 100).astype(np.uint8)
    soft = 1.0 - 2.0 * conv.encode_frame(bits)
    flip = rng.choice(soft.size, 5, replace=False)
    soft[flip] *= -0.3
    erased = np.setdiff1d(np.arange(3, soft.size, 9), flip)  # spread-out erasures
    soft[erased] = 0.0
    out = viterbi.decode_frame(soft, bits.size)
    assert np.array_equal(out, bits)
    assert viterbi.reencode_errors(soft, out) == 5


# ------------------------------------------------------------------------ (d) streaming
def _stream(dec, soft, cuts):
    return [dec.process(part) for part in np.split(soft, cuts)]


@pytest.mark.parametrize("traceback,block", [(96, 32), (40, 1), (17, 5)])
def test_streaming_independent_of_chunking_and_copy(traceback, block):
    rng = np.random.default_rng(1007 + traceback)
    n_info = 1500
    bits = rng.integers(0, 2, n_info).astype(np.uint8)
    coded = conv.encode_frame(bits)
    soft = (1.0 - 2.0 * coded) + sigma_for(2.0, 0.5) * rng.standard_normal(coded.size)

    one = viterbi.ViterbiDecoder(traceback=traceback, block=block)
    first = one.process(soft)
    whole = np.concatenate([first, one.flush()])
    assert whole.size == n_info + TAIL
    n_steps = n_info + TAIL
    ready = n_steps - traceback
    assert first.size == (max(ready, 0) // block) * block  # release schedule: fixed positions

    for trial in range(3):
        cuts = np.sort(rng.choice(np.arange(1, soft.size), 25, replace=False))  # odd sizes too
        cuts = np.insert(cuts, 5, cuts[4])  # and an empty chunk
        dec = viterbi.ViterbiDecoder(traceback=traceback, block=block)
        pieces = []
        parts = np.split(soft, cuts)
        for i, part in enumerate(parts):
            pieces.append(dec.process(part))
            if i == 12:
                clone = dec.copy()
                clone_out = [clone.process(p) for p in parts[13:]] + [clone.flush()]
                assert np.array_equal(np.concatenate(pieces + clone_out), whole)
        pieces.append(dec.flush())
        assert np.array_equal(np.concatenate(pieces), whole), trial


def test_streaming_with_long_traceback_equals_frame_kernel():
    rng = np.random.default_rng(1008)
    for ebn0 in (0.0, 1.0, 2.0, 3.0):
        _, soft = noisy_frames(rng, 3, P.FRAME_BITS, ebn0)
        for s in soft:
            dec = viterbi.ViterbiDecoder(traceback=P.FRAME_BITS + TAIL)
            out = np.concatenate([dec.process(s[:77]), dec.process(s[77:]), dec.flush(terminated=True)])
            assert np.array_equal(out, viterbi.decode_terminated(s))


def test_streaming_reset_flush_and_unknown_start():
    rng = np.random.default_rng(1009)
    bits = rng.integers(0, 2, 300).astype(np.uint8)
    soft = 1.0 - 2.0 * conv.encode_frame(bits)
    dec = viterbi.ViterbiDecoder(traceback=30, block=8)
    a = np.concatenate([dec.process(soft), dec.flush()])
    b = np.concatenate([dec.process(soft), dec.flush()])  # flush resets for the next frame
    assert np.array_equal(a, b) and np.array_equal(a[:300], bits)
    dec.process(soft[:101])
    dec.reset()
    assert np.array_equal(np.concatenate([dec.process(soft), dec.flush()]), a)
    # unterminated stream from an unknown encoder state: noiseless input decodes after warm-up
    coded, _ = conv.conv_encode_kernel(bits, 0b101101, conv.G1, conv.G2)
    dec = viterbi.ViterbiDecoder(traceback=30, block=8, known_start=False)
    out = np.concatenate([dec.process(1.0 - 2.0 * coded), dec.flush(terminated=False)])
    assert np.array_equal(out[10:], bits[10:])
    assert np.all(np.isfinite(dec.state.pm))


# --------------------------------------------------------------------- (e) bad input
@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(10, dtype=np.int64),
        np.zeros(10, dtype=np.complex128),
        np.zeros((2, 10)),
        np.zeros(11),
        np.array([0.0, np.nan, 1.0, 1.0]),
        np.array([0.0, np.inf, 1.0, 1.0]),
        np.array([0.0, -np.inf, 1.0, 1.0]),
        np.array([0.0, 1e200, 1.0, 1.0]),
        np.array(["a", "b"]),
    ],
)
def test_bad_soft_raises(bad):
    with pytest.raises(ValueError):
        viterbi.decode_terminated(bad)
    with pytest.raises(ValueError):
        viterbi.decode_frame(bad, 0)
    if bad.size % 2 == 0 or bad.dtype.kind != "f" or bad.ndim != 1:
        with pytest.raises(ValueError):
            viterbi.ViterbiDecoder().process(bad)


def test_bad_lengths_and_parameters_raise():
    good = 1.0 - 2.0 * conv.encode_frame(np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match="expected 32 soft values"):
        viterbi.decode_frame(good[:-2], 10)
    with pytest.raises(ValueError):
        viterbi.decode_frame(good, -1)
    with pytest.raises(ValueError):
        viterbi.decode_frame(good, 10.0)
    with pytest.raises(ValueError):
        viterbi.viterbi_decode_kernel(good, 15)
    with pytest.raises(ValueError):
        viterbi.reencode_errors(good, np.zeros(11, np.uint8))
    with pytest.raises(ValueError):
        viterbi.reencode_errors(good, np.zeros(10, np.uint8).reshape(2, 5))
    for kw in (dict(traceback=0), dict(block=0), dict(traceback=2.5)):
        with pytest.raises(ValueError):
            viterbi.ViterbiDecoder(**kw)
    dec = viterbi.ViterbiDecoder()
    dec.process(good[:7])
    with pytest.raises(ValueError, match="odd number"):
        dec.flush()


@pytest.mark.parametrize("value", [0.0, 1e100, -1e100, 1e-300])
def test_extreme_inputs_give_bits_and_finite_metrics(value):
    rng = np.random.default_rng(1010)
    soft = value * rng.choice([-1.0, 1.0], 2 * 200)
    out = viterbi.decode_terminated(soft)
    assert out.dtype == np.uint8 and out.size == 200 and set(np.unique(out)) <= {0, 1}
    dec = viterbi.ViterbiDecoder(traceback=20, block=4)
    streamed = dec.process(soft)
    assert set(np.unique(streamed)) <= {0, 1}
    assert np.all(np.isfinite(dec.state.pm))
    assert np.concatenate([streamed, dec.flush()]).size == 200


# -------------------------------------------------------------------------- (f) golden
def test_golden_vectors():
    assert GOLDEN["version"] == 1
    n = GOLDEN["n_info_bits"]
    assert len(GOLDEN["frames"]) >= 4
    for fr in GOLDEN["frames"]:
        fec = P.FecRate[fr["fec"]]
        soft = conv.depuncture(np.array(fr["soft_rx"], dtype=np.float64), fec, 2 * (n + TAIL))
        out = viterbi.decode_frame(soft, n)
        assert np.packbits(out).tobytes().hex() == fr["decoded_hex"], fr["ebn0_db"]
        info = np.unpackbits(np.frombuffer(bytes.fromhex(fr["info_hex"]), np.uint8))[:n]
        assert int(np.count_nonzero(out != info)) == fr["decoded_bit_errors"]
        assert viterbi.reencode_errors(soft, out) == fr["reencode_errors"]
    assert any(fr["decoded_bit_errors"] for fr in GOLDEN["frames"])  # pins error-pattern choices too
