"""Transmit side of the air interface: golden vectors, references, round trips, bad input."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.air import codes, crc, frame, interleave, messages
from dsp.air import params as P
from dsp.fec import conv
from dsp.tx import burst, modulator
from dsp.tx.shaping import rrc
from tests import naive

GOLDEN = json.loads((pathlib.Path(__file__).parent / "golden" / "air_interface_v1.json").read_text())


def hexbits(h: str, n: int | None = None) -> np.ndarray:
    b = np.unpackbits(np.frombuffer(bytes.fromhex(h), dtype=np.uint8))
    return b if n is None else b[:n]


# --------------------------------------------------------------------------------------- CRC
def test_crc_check_value():
    assert crc.crc16(b"123456789") == 0x29B1 == crc.CHECK


@given(st.binary(max_size=64))
def test_crc_matches_bitwise_reference(data):
    assert crc.crc16(data) == naive.crc16_bitwise(data)


def test_crc_rejects_wrong_dtype():
    with pytest.raises(TypeError):
        crc.crc16(np.zeros(3, dtype=np.int32))


# ---------------------------------------------------------------------------------- encoder
def test_conv_impulse_response_is_the_generators():
    # 171 = 1111001, 133 = 1011011 read current-input first: pairs (1,1)(1,0)(1,1)(1,1)(0,0)(0,1)(1,1)
    out = conv.encode_frame(np.array([1], dtype=np.uint8))
    assert "".join(map(str, out[:14])) == "11101111000111" == GOLDEN["conv_impulse"]


def test_conv_golden_vector():
    bits = hexbits(GOLDEN["conv_random_in_hex"], 200)
    coded = conv.encode_frame(bits)
    assert np.array_equal(coded, hexbits(GOLDEN["conv_random_out_hex"], coded.size))
    punct = conv.puncture(coded, P.FecRate.R2_3)
    assert np.array_equal(punct, hexbits(GOLDEN["conv_random_r23_hex"], punct.size))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=1, max_size=300))
def test_conv_matches_naive_reference(bits):
    bits = np.array(bits, dtype=np.uint8)
    ours, _ = conv.conv_encode_kernel(bits, 0, conv.G1, conv.G2)
    assert np.array_equal(ours, naive.conv_encode_naive(bits))


def test_conv_agrees_with_scikit_commpy():
    cc = pytest.importorskip("commpy.channelcoding.convcode")
    # commpy's default reading ('MSB') is time-reversed with respect to ours; say it explicitly.
    trellis = cc.Trellis(np.array([6]), np.array([[0o171, 0o133]]), polynomial_format="LSB")
    rng = np.random.default_rng(7)
    for n in (1, 7, 64, 256, 1000):
        bits = rng.integers(0, 2, n).astype(np.uint8)
        ref = cc.conv_encode(bits, trellis, termination="term").astype(np.uint8)
        assert np.array_equal(ref, conv.encode_frame(bits)), n


def test_conv_streaming_independent_of_chunking_and_copy():
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, 5000).astype(np.uint8)
    whole = conv.ConvEncoder().process(bits)
    enc = conv.ConvEncoder()
    cuts = np.sort(rng.choice(np.arange(1, bits.size), 40, replace=False))
    pieces, clone_out = [], None
    for i, part in enumerate(np.split(bits, cuts)):
        pieces.append(enc.process(part))
        if i == 20:
            clone = enc.copy()
            rest = bits[cuts[20] :]
            clone_out = clone.process(rest)
    assert np.array_equal(np.concatenate(pieces), whole)
    assert np.array_equal(clone_out, whole[2 * cuts[20] :])
    enc.reset()
    assert np.array_equal(enc.process(bits[:10]), whole[:20])


def test_conv_noiseless_round_trip():
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, 256).astype(np.uint8)
    assert np.array_equal(naive.conv_invert_noiseless(conv.encode_frame(bits))[:256], bits)


@pytest.mark.parametrize("bad", [np.array([0, 2, 1]), np.zeros((2, 2))])
def test_conv_bad_bits_raise(bad):
    with pytest.raises(ValueError):
        conv.ConvEncoder().process(bad)


def test_puncture_round_trip_and_errors():
    rng = np.random.default_rng(1)
    coded = rng.standard_normal(524)
    p = conv.puncture(coded, P.FecRate.R2_3)
    assert p.size == 393 == P.coded_bits(P.FecRate.R2_3)
    back = conv.depuncture(p, P.FecRate.R2_3, 524)
    keep = back != 0
    assert np.array_equal(back[keep], coded[keep]) and (~keep).sum() == 131
    with pytest.raises(ValueError):
        conv.puncture(coded[:10], P.FecRate.R2_3)
    with pytest.raises(ValueError):
        conv.depuncture(p[:-1], P.FecRate.R2_3, 524)


# ------------------------------------------------------------------------------ interleaver
@pytest.mark.parametrize("n", [524, 393, 1, 31, 32, 33])
def test_interleaver_round_trip(n):
    x = np.arange(n)
    assert np.array_equal(interleave.deinterleave(interleave.interleave(x)), x)
    assert np.array_equal(np.sort(interleave.permutation(n)), x)


def test_interleaver_spreads_bursts():
    perm = interleave.permutation(524)
    assert perm[:64].tolist() == GOLDEN["interleaver_524_first64"]
    # 17 consecutive symbols on the air (one column) land >= 32 coded bits apart
    for k in range(0, 524 - 17):
        window = np.sort(perm[k : k + 16])
        assert np.min(np.diff(window)) >= 16
    with pytest.raises(ValueError):
        interleave.permutation(0)


# ------------------------------------------------------------------------------------ codes
def test_gold_codes_golden_and_cross_correlation():
    assert list(codes.balanced_shifts()[:12]) == GOLDEN["gold_balanced_shifts_first12"]
    allc = [codes.chip_code(c, k) for c in range(3) for k in range(4)]
    for key, hx in GOLDEN["gold_codes_hex"].items():
        c, k = map(int, key.split(","))
        assert np.array_equal(codes.gold_code(codes.code_shift(c, k)), hexbits(hx, 127))
    for i, a in enumerate(allc):
        assert a.sum() == -1  # balanced: 64 ones (-1) and 63 zeros (+1)
        for j, b in enumerate(allc):
            for lag in range(127):
                r = int(np.dot(a, np.roll(b, lag)))
                if i == j and lag == 0:
                    assert r == 127
                else:
                    assert r in (-17, -1, 15), (i, j, lag, r)


def test_codes_bad_parameters():
    with pytest.raises(ValueError):
        codes.code_shift(0, 4)
    with pytest.raises(ValueError):
        codes.code_shift(99, 0)
    with pytest.raises(ValueError):
        codes.gold_code(127)
    assert codes.preamble_bits().tobytes() == hexbits(GOLDEN["preamble_hex"], 64).tobytes()


# ------------------------------------------------------------------------------------ frame
def test_frame_round_trip_and_crc_detects_errors():
    h = frame.Header(kind=3, hub_id=123456, counter=77, seg_index=1, seg_count=3)
    body = bytes(range(21))
    fr = frame.build_frame(h, body)
    assert len(fr) == 32
    pf = frame.parse_frame(fr)
    assert pf.crc_ok and pf.header == h and pf.sealed_body == body
    for bit in range(256):
        bad = bytearray(fr)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        assert not frame.parse_frame(bytes(bad)).crc_ok


@pytest.mark.parametrize(
    "kw", [dict(kind=16), dict(hub_id=2**32), dict(counter=2**24), dict(seg_count=0), dict(seg_index=2, seg_count=2)]
)
def test_header_bad_fields_raise(kw):
    args = dict(kind=1, hub_id=1, counter=1)
    args.update(kw)
    with pytest.raises(frame.FrameError):
        frame.Header(**args).pack()


def test_frame_bad_lengths():
    with pytest.raises(frame.FrameError):
        frame.parse_frame(bytes(31))
    with pytest.raises(frame.FrameError):
        frame.build_frame(frame.Header(kind=1, hub_id=1, counter=1), bytes(20))


# --------------------------------------------------------------------------------- messages
KEY = bytes.fromhex(GOLDEN["report_key_hex"])

ALL_MESSAGES = [
    messages.ProvisioningRequest(meter_id=42, capabilities=3),
    messages.Pairing(meter_id=9001, tan_index=2, relation=messages.Relation.HUB_OTHER_PHASE),
    messages.PairingLoss(meter_id=9001, tan_index=2, reason=1),
    messages.Alert(alert_type=messages.AlertType.SAG, event_time_s=1795305600, v_rms=201.5, duration_s=3),
    messages.ScheduledReport(1795305600, [messages.MeterReading(0, 240.12, 12.5, 0.97)]),
    messages.TanAnomaly(
        anomaly_type=messages.AnomalyType.THEFT_SUSPICION,
        tan_index=4,
        time_s=1795305600,
        unaccounted_w=1000.0,
        confidence=1.0,
    ),
]


@pytest.mark.parametrize("msg", ALL_MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_kind_round_trips(msg):
    (fr,) = messages.encode_message(msg, hub_id=77, counter=1000, key=KEY)
    opened = messages.open_frame(fr, lambda h: KEY if h == 77 else None)
    assert opened.message == msg and opened.header.kind == msg.kind


def test_report_golden_frame_and_segmentation():
    report = messages.ScheduledReport(
        1795305600, [messages.MeterReading(0, 241.37, 18.42, 0.97), messages.MeterReading(3, 238.9, 2.05, -0.88)]
    )
    (fr,) = messages.encode_message(report, hub_id=0x00C0FFEE, counter=0x000102, key=KEY)
    assert fr.hex() == GOLDEN["report_frame_hex"]
    big = messages.ScheduledReport(1, [messages.MeterReading(i, 230 + i, i, 1.0) for i in range(5)])
    frames = messages.encode_message(big, hub_id=5, counter=10, key=KEY)
    opened = [messages.open_frame(f, lambda h: KEY) for f in frames]
    assert [o.header.seg_index for o in opened] == [0, 1, 2]
    assert [o.header.counter for o in opened] == [10, 11, 12]
    assert sum((o.message.readings for o in opened), []) == big.readings


def test_tampered_forged_unknown_are_rejected():
    (fr,) = messages.encode_message(ALL_MESSAGES[3], hub_id=77, counter=5, key=KEY)
    tampered = bytearray(fr)
    tampered[12] ^= 1  # flip a ciphertext bit and fix the CRC, as an attacker would
    tampered[30:32] = crc.crc16(bytes(tampered[:30])).to_bytes(2, "big")
    with pytest.raises(messages.AuthError):
        messages.open_frame(bytes(tampered), lambda h: KEY)
    with pytest.raises(messages.AuthError):
        messages.open_frame(fr, lambda h: bytes(16))  # another hub's key
    with pytest.raises(KeyError):
        messages.open_frame(fr, lambda h: None)
    bad_crc = bytearray(fr)
    bad_crc[31] ^= 1
    with pytest.raises(frame.FrameError, match="CRC"):
        messages.open_frame(bytes(bad_crc), lambda h: KEY)


def test_message_fields_out_of_range():
    with pytest.raises(frame.FrameError):
        messages.ScheduledReport(1, [messages.MeterReading(0, 700.0, 1, 1)]).pack()  # 700 V: 70000 > u16
    with pytest.raises(frame.FrameError):
        messages.ScheduledReport(1, [messages.MeterReading(0, 230.0, 1, 1.5)]).pack()
    with pytest.raises(ValueError):
        messages.encode_message(ALL_MESSAGES[0], hub_id=1, counter=1, key=bytes(8))


# ---------------------------------------------------------------------------- modulator
def _report_burst(**kw):
    fr = bytes.fromhex(GOLDEN["report_frame_hex"])
    chips = burst.burst_chips(fr, channel=1, code=1)
    args = dict(fs_hz=48000.0, fc_hz=2130.0, t_start_s=0.01, grid_period_s=1 / 60.02, clock_ppm=37.0, phase_rad=0.3)
    args.update(kw)
    return fr, chips, modulator.modulate(chips, **args)


def test_modulator_golden_and_naive():
    fr, chips, (start, s) = _report_burst()
    assert chips[:64].real.astype(int).tolist() == GOLDEN["report_chips_first64"]
    assert start == GOLDEN["burst_first_sample"] and s.size == GOLDEN["burst_n_samples"]
    np.testing.assert_allclose(s[1000:1032], GOLDEN["burst_samples_1000_1032"], atol=1e-9)
    idx = np.array([start + 5, start + 1000, start + 40000, start + s.size - 3])
    ref = naive.modulate_naive(
        chips,
        idx,
        fs_hz=48000.0,
        fc_hz=2130.0,
        t_start_s=0.01,
        grid_period_s=1 / 60.02,
        clock_ppm=37.0,
        phase_rad=0.3,
        chip_rate_hz=P.CHIP_RATE_HZ,
    )
    np.testing.assert_allclose(s[idx - start], ref, atol=1e-9)


def test_rrc_matches_reference_and_unit_energy():
    for t in np.linspace(-6, 6, 97):
        assert abs(rrc(float(t), 0.25) - naive.rrc_naive(float(t), 0.25)) < 1e-5
    t = np.arange(-6000, 6001) / 1000
    energy = np.sum([rrc(float(x), 0.25) ** 2 for x in t]) / 1000
    assert abs(energy - 1.0) < 2e-3


def test_burst_has_unit_rms_and_no_energy_on_harmonics():
    _, _, (start, s) = _report_burst(clock_ppm=0.0)
    assert np.all(np.isfinite(s))
    assert 0.9 < np.sqrt(np.mean(s[2000:-2000] ** 2)) < 1.1
    n = np.arange(s.size)
    t0 = 1 / 60.02
    ratios = []
    for k in range(28, 43):  # harmonics inside channel 1 (1680..2580 Hz)
        on = abs(np.sum(s * np.exp(-2j * np.pi * (k / t0) * n / 48000.0)))
        off = abs(np.sum(s * np.exp(-2j * np.pi * ((k + 0.5) / t0) * n / 48000.0)))
        ratios.append(20 * np.log10(on / off))
    assert max(ratios) < -40, ratios


def _coherent_demod(s, start, chips_ref_code, *, fc, t_start, t0, phase, n_symbols, channel, code):
    """A noiseless, perfectly synchronised receiver for the round-trip test."""
    fs = 48000.0
    t = (start + np.arange(s.size)) / fs - t_start
    bb = s * np.exp(-1j * (2 * np.pi * fc * t + phase)) * 2
    # integrate against the composite pulse at each chip: finger at 0 and at T0 (sign -(e^{-j2pi fc T0}))
    n_chips = n_symbols * P.CHIPS_PER_SYMBOL
    z = np.zeros(n_chips, dtype=complex)
    sps = fs / P.CHIP_RATE_HZ
    for n in range(n_chips):
        for d, w in ((0.0, 1.0), (t0, -np.exp(-2j * np.pi * fc * t0))):
            centre = n / P.CHIP_RATE_HZ + d
            x = (t - centre) * P.CHIP_RATE_HZ
            m = np.abs(x) < 6
            g = np.array([rrc(float(v), 0.25) for v in x[m]])
            z[n] += np.conj(w) * np.sum(bb[m] * g) / sps
    code_vals = codes.chip_code(channel, code)
    despread = (z * code_vals[np.arange(n_chips) % 127]).reshape(-1, P.CHIPS_PER_SYMBOL).sum(axis=1)
    return despread


def test_noiseless_modulate_demodulate_round_trip():
    fr = bytes.fromhex(GOLDEN["report_frame_hex"])
    chips = burst.burst_chips(fr, channel=2, code=3)
    t0 = 1 / 59.97
    start, s = modulator.modulate(
        chips, fs_hz=48000.0, fc_hz=3090.0, t_start_s=0.05, grid_period_s=t0, clock_ppm=0.0, phase_rad=1.1
    )
    n_sym = chips.size // P.CHIPS_PER_SYMBOL
    sym = _coherent_demod(s, start, None, fc=3090.0, t_start=0.05, t0=t0, phase=1.1, n_symbols=n_sym, channel=2, code=3)
    hard = (sym.real < 0).astype(np.uint8)
    assert np.array_equal(hard[:64], codes.preamble_bits())
    coded = interleave.deinterleave(hard[64:])
    bits = naive.conv_invert_noiseless(coded)[: P.FRAME_BITS]
    assert frame.frame_from_bits(bits) == fr


@pytest.mark.parametrize("kw", [dict(fs_hz=4000.0), dict(clock_ppm=5000.0), dict(grid_period_s=0.5)])
def test_modulator_bad_parameters(kw):
    args = dict(fs_hz=48000.0, fc_hz=2130.0, t_start_s=0.0, grid_period_s=1 / 60)
    args.update(kw)
    with pytest.raises(ValueError):
        modulator.modulate(np.ones(8, dtype=complex), **args)
    with pytest.raises(ValueError):
        modulator.modulate(np.ones(0, dtype=complex), fs_hz=48000.0, fc_hz=2130.0, t_start_s=0.0, grid_period_s=1 / 60)


def test_channel_plan_rules():
    plan = P.ChannelPlan.default()
    assert [c.fc_hz for c in plan.channels] == [1170.0, 2130.0, 3090.0]
    assert all(c.f_low_hz > 660 and c.f_high_hz < 3600 for c in plan.channels)
    assert [c.fc_hz for c in P.ChannelPlan.default(50.0).channels] == [1175.0, 2125.0, 3075.0]
    with pytest.raises(ValueError, match="11th harmonic"):
        P.ChannelPlan(channels=(P.Channel(0, 900.0, P.ChannelRole.ALERT),)).validate()
    with pytest.raises(ValueError, match="cutoff"):
        P.ChannelPlan(channels=(P.Channel(0, 3400.0, P.ChannelRole.ALERT),)).validate()
    with pytest.raises(ValueError, match="overlap"):
        P.ChannelPlan(
            channels=(P.Channel(0, 1170.0, P.ChannelRole.ALERT), P.Channel(1, 1500.0, P.ChannelRole.ALERT))
        ).validate()
    with pytest.raises(ValueError):
        P.ChannelPlan.default(55.0)
    # data rates the issue asks for
    assert (
        P.SYMBOL_RATE_HZ >= 120
        and P.FRAME_BITS / (P.data_symbols(P.Modulation.BPSK, P.FecRate.R1_2) / P.SYMBOL_RATE_HZ) >= 80
    )
