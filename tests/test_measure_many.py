"""A decoded burst measured on many inputs at once (the workers' answer to a measurement request)
gives each input's numbers of the per-input measurement, to the bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsp.rx.chain import InputChain
from dsp.rx.demod import mf_rows
from dsp.rx.demod.carrier import derotate
from dsp.rx.demod.matched_filter import chip_window, mf_kernel
from dsp.rx.demod.measure import synth_kernel
from dsp.rx.demod.pulse import DEC, RRC_PULSE, SPAN, chip_grid
from receiver.measuring import BasebandHistory, MeasureRequest, WorkerMeasurer, measure_on_ring
from tests.test_rx import FS, PLAN, burst, stream_with


def _inputs_with_a_burst(n_inputs=5, seed=3):
    """One burst (with a clock offset) on ``n_inputs`` inputs at different levels and noise: the
    decoded copy of input 0, and a worker's measurer holding every input's baseband."""
    rng = np.random.default_rng(seed)
    fr, first, s = burst(rng, ch=1, code=2, t_start=0.6, ppm=37.0)
    n = first + s.size + int(1.5 * FS)
    meas = WorkerMeasurer(PLAN, list(range(n_inputs)), FS, 10**7)
    decoded = []
    for i in range(n_inputs):
        x = stream_with([(first, s * 10 ** (-i / 4))], n, 12.0, np.random.default_rng(seed + 10 + i))
        chain = InputChain(PLAN, i, FS)
        for rec in (chain.process(x[: n // 2]), chain.process(x[n // 2 :]), chain.flush()):
            bb = rec.baseband.copy()
            if i == 2:  # impulse blanking leaves exact zeros at baseband
                lo = max(0, 900 - rec.baseband_start)
                bb[:, lo : lo + 40] = 0
                bb[:, lo + 700 : lo + 705] = 0
            meas.take(i, rec.baseband_start, bb)
            decoded += [b for b in rec.bursts if b.crc_ok and i == 0]
    assert decoded and decoded[0].frame == fr
    return decoded[0], meas


def test_a_request_measured_at_once_is_each_input_measured_alone():
    """The worker's answer (every input of the request at once, what they share made once) is,
    input by input, :func:`measure_on_ring` on that input's baseband: the same KnownMeasurement
    to the bit, band amplitudes computed or left out alike, blanked samples and all; and with
    no clock offset (each input's own matched filter) too."""
    best, meas = _inputs_with_a_burst()
    f0 = [60.0131 + 1e-6 * k for k in range(5)]  # each input's own grid frequency (T0 differs)
    fund = [0.8, 0.5, 0.77, 0.6, 0.51]
    for ppm in (best.clock_offset_ppm, 0.0):
        req = MeasureRequest(
            7,
            0,
            best.channel,
            best.code,
            best.start_sample,
            ppm,
            best.frame,
            {i: (f0[i], fund[i]) for i in (4, 0, 2, 3, 1)},
            frozenset({0}),
            -3.0,  # the weak inputs' bands left out, the strong ones' computed
        )
        got = meas.answer(1, req).measured
        assert list(got) == [4, 0, 2, 3, 1]
        for i in range(5):
            h = meas.hist[i]
            want = measure_on_ring(
                h.view(),
                h.start,
                meas.demods[best.channel],
                PLAN,
                best.channel,
                best.code,
                best.start_sample,
                ppm,
                best.frame,
                f0[i],
                fund[i],
                None if i == 0 else -3.0,
            )
            assert want is not None and got[i] == want, (ppm, i)
        with_bands = [bool(got[i].band_amplitudes_db) for i in range(5)]
        assert True in with_bands and False in with_bands
    # an input whose history does not hold the span: None, the others as before
    meas.hist[3].drop_before(meas.hist[3].start + 10**6)
    got = meas.answer(1, req).measured
    assert got[3] is None and got[1] is not None


@pytest.mark.skipif(not mf_rows.rows_match(), reason="this CPU's per-input filter sums in another order")
def test_rows_filter_is_the_per_input_filter_for_every_window_length():
    """The shared-tap filter gives the per-input filter's outputs bit for bit, for chip windows of
    every length from 1 to 80 samples (windows clipped at the ends of the samples included); an
    in-order sum of the same products does not (the order matters, and is the compiler's)."""
    assert mf_rows.check(seed=5)
    rng = np.random.default_rng(2)
    lengths, in_order_differs = set(), False
    for spc in np.linspace(5.0, 200.0, 40):
        spc = float(spc) * (1 + 3e-5)
        n_chips = 24
        nr = int((n_chips + 16) * spc / DEC) + 60
        rows = rng.standard_normal((2, 2 * nr)).view(np.complex128)
        m_first, c0 = 5, 17.0
        tau0 = DEC * m_first + c0 + float(rng.uniform(-3.0, 1.0)) * spc
        grids = [chip_grid(m_first, c0, spc, float(rng.uniform(1.5, 3.0)) * spc) for _ in range(2)]
        ph = mf_rows.derotation(nr, m_first, c0, tau0, -0.21, FS)
        z = mf_rows.mf_rows_grid(rows, grids, tau0, ph, n_chips)
        for b in range(2):
            r = derotate(rows[b], m_first, c0, tau0, -0.21, FS)
            want = mf_kernel(r, grids[b], tau0, n_chips, RRC_PULSE)
            assert np.array_equal(z[b], want), (spc, b)
        for k in range(n_chips):
            lo, hi = chip_window(tau0 + k * spc, spc, SPAN, c0, m_first)
            lengths.add(min(hi, nr - 1) + 1 - max(lo, 0))
        los, ns, taps = mf_rows.path_taps(grids[0], tau0, n_chips, RRC_PULSE, 0, nr)
        r = derotate(rows[0], m_first, c0, tau0, -0.21, FS)
        for k in range(n_chips):
            seq = complex(np.sum(r[los[k] : los[k] + ns[k]] * taps[k, : ns[k]]))
            in_order_differs |= seq != z[0, 0, k]
    assert set(range(2, 81)) <= lengths
    assert in_order_differs


def test_rows_filter_check_is_false_for_another_order(monkeypatch):
    """The check that decides whether the measurements use the shared-tap filter can fail: a
    per-input filter summing in another order (here: in order) is told apart."""

    def in_order(r, grid, tau0, n_chips, pulse):
        n_first, c0, spc, t0_samples, _, _ = grid
        nr = r.shape[0]
        z = np.empty((2, n_chips), np.complex128)
        for p in range(2):
            los, ns, taps = mf_rows.path_taps(grid, tau0, n_chips, pulse, p, nr)
            for k in range(n_chips):
                z[p, k] = complex(np.sum(r[los[k] : los[k] + ns[k]] * taps[k, : ns[k]]))
        return z

    monkeypatch.setattr(mf_rows, "mf_kernel", in_order)
    assert not mf_rows.check()


def _synth_chip_by_chip(chips, grid, n_out, tau0, w2, pulse):
    """:func:`dsp.rx.demod.measure.synth_kernel` as it was written first (chip by chip, sample by
    sample, every term added as it is made), in plain Python: the reference of its kernel."""
    m_first, c0, spc, t0_samples, _, _ = grid
    tab, _, tab_res, tab_span, span = pulse
    out = [0j] * n_out
    for k in range(len(chips)):
        for p in range(2):
            tau = tau0 + k * spc + p * t0_samples
            w = 1.0 + 0.0j if p == 0 else w2
            lo = max(int(math.ceil((tau - span * spc - c0) / DEC)) - m_first, 0)
            hi = min(int(math.floor((tau + span * spc - c0) / DEC)) - m_first, n_out - 1)
            for i in range(lo, hi + 1):
                x = (DEC * (m_first + i) + c0 - tau) / spc
                u = (x + tab_span) * tab_res
                j = int(u)
                f = u - j
                g = float(tab[j]) * (1.0 - f) + float(tab[j + 1]) * f
                out[i] += w * complex(chips[k]) * g
    return np.array(out)


def test_synth_kernel_is_the_chip_by_chip_sum():
    """The reconstructed burst of the band amplitudes is, to the bit, the chip-by-chip sum it was
    first written as (BPSK and QPSK chips, windows clipped at both ends)."""
    rng = np.random.default_rng(4)
    for qpsk in (False, True):
        n = 300
        chips = (1.0 - 2.0 * rng.integers(0, 2, n)).astype(np.complex128)
        if qpsk:
            chips = (chips + 1j * (1.0 - 2.0 * rng.integers(0, 2, n))) / math.sqrt(2.0)
        spc = 66.66 / (1 + 4.1e-5)
        grid = chip_grid(-3, 31.0, spc, 800.123)
        n_out = int(n * spc / DEC) - 40
        w2 = complex(np.exp(-2.3j))
        got = synth_kernel(chips, grid, n_out, 31.0 - 96.0 + 200.0, w2, RRC_PULSE)
        want = _synth_chip_by_chip(chips, grid, n_out, 31.0 - 96.0 + 200.0, w2, RRC_PULSE)
        assert np.array_equal(got.view(np.float64), want.view(np.float64)), qpsk


def test_baseband_history_keeps_the_records_and_reads_any_span():
    """The worker's history holds what the records brought, from the oldest index not dropped:
    any span of a channel (across records, or ending past the newest) and the whole are those
    of the records laid end to end."""
    rng = np.random.default_rng(8)
    h = BasebandHistory(3, max_keep=5000)
    whole, start = [], 40
    for k in (700, 0, 1500, 13, 1500, 900):
        bb = (rng.standard_normal((3, k)) + 1j * rng.standard_normal((3, k))).astype(np.complex64)
        h.append(start + sum(w.shape[1] for w in whole), bb)
        whole.append(bb)
    ref = np.concatenate(whole, axis=1)
    assert h.start == 40 and h.end == 40 + ref.shape[1] and np.array_equal(h.view(), ref)
    for a, b in ((40, 60), (700, 2300), (2250, 2260), (3000, 10**6), (41, 4653)):
        assert np.array_equal(h.span(1, a, b), ref[1, a - 40 : b - 40]), (a, b)
    h.drop_before(2300)
    assert h.start == 2300 and np.array_equal(h.view(), ref[:, 2260:])
    assert np.array_equal(h.span(2, 2300, 2400), ref[2, 2260:2360])
    h.append(h.end, np.ones((3, 3000), np.complex64))  # past max_keep: the oldest go
    h.drop_before(0)
    assert h.end - h.start == 5000 and np.array_equal(h.view()[:, -3000:], np.ones((3, 3000)))
    assert np.array_equal(h.view()[:, :2000], ref[:, -2000:])
