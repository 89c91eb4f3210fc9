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
        math.pi * t * (1 - (4 * beta * t) ** 2)
    )


def modulate_naive(
    chips,
    sample_idx,
    *,
    fs_hz,
    fc_hz,
    t_start_s,
    grid_period_s,
    clock_ppm,
    phase_rad,
    chip_rate_hz,
    beta=0.25,
    span=6,
    amplitude=1.0,
) -> np.ndarray:
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


def viterbi_naive(soft, n_bits_with_tail):
    """Textbook soft Viterbi for the K=7 171/133 code: full 64-state trellis, full paths.

    ``soft`` is one frame (1-D, ``2 * n_bits_with_tail`` values) or a batch of frames of equal
    length (2-D, one frame per row: the batch only adds a numpy axis, the algorithm is the
    per-state textbook one). Positive soft = bit 0; metric = sum(soft * (1 - 2 * bit)),
    maximised. Start in state 0, end in state 0 (terminated frame).

    State = last six inputs, newest in bit 5; input b takes state p to (b << 5) | (p >> 1) and
    emits parity(((b << 6) | p) & G) for G = 0o171, then 0o133.

    Tie-break (shared with dsp.fec.viterbi): of the two predecessors p = ((n & 31) << 1) | x of
    state n, the odd one (x = 1, higher state index) survives only if its candidate metric is
    strictly greater; on equal metrics the lower state index wins. After each step every metric
    has the new metric of state 0 subtracted (dsp.fec.viterbi does the same, so the float64
    arithmetic and therefore every decision are identical). Returns uint8 bits (tail included),
    shape (n_bits_with_tail,) or (n_frames, n_bits_with_tail).
    """
    soft = np.asarray(soft, dtype=np.float64)
    single = soft.ndim == 1
    if single:
        soft = soft[None, :]
    n_frames, n_soft = soft.shape
    n = n_bits_with_tail
    assert n_soft == 2 * n, "soft must hold 2 values per trellis step"
    g1, g2 = 0o171, 0o133

    def parity(x):
        return bin(x).count("1") % 2

    pm = [np.full(n_frames, -np.inf) for _ in range(64)]
    pm[0] = np.zeros(n_frames)
    paths = np.zeros((n_frames, 64, n), dtype=np.uint8)  # full survivor path of every state
    rows = np.arange(n_frames)
    for t in range(n):
        s0 = soft[:, 2 * t]
        s1 = soft[:, 2 * t + 1]
        new_pm = []
        new_paths = np.empty_like(paths)
        for ns in range(64):
            b = ns >> 5
            cands = []
            for x in (0, 1):
                p = ((ns & 31) << 1) | x
                w = (b << 6) | p
                e1, e2 = parity(w & g1), parity(w & g2)
                bm = s0 * (1.0 - 2.0 * e1) + s1 * (1.0 - 2.0 * e2)
                cands.append(pm[p] + bm)
            take_odd = cands[1] > cands[0]  # strict: ties keep the lower predecessor
            new_pm.append(np.where(take_odd, cands[1], cands[0]))
            pred = np.where(take_odd, ((ns & 31) << 1) | 1, (ns & 31) << 1)
            new_paths[:, ns, :] = paths[rows, pred, :]
            new_paths[:, ns, t] = b
        ref = new_pm[0].copy()
        pm = [m - ref for m in new_pm]
        paths = new_paths
    out = paths[:, 0, :].copy()
    return out[0] if single else out


# ------------------------------------------------------------------------ receive-side references
def comb_naive(x, fs=48000.0, f_nom=60.0, rho_final=0.8, ramp_blocks=30.0):
    """The tracking comb of dsp.rx.comb written out plainly (lists, no ring buffers, no numba)."""
    block = int(round(fs / f_nom))
    xs, y1s, y2s = [], [], []
    phases = []
    f0 = f_nom
    s0 = s1 = prev_s1 = 0j

    def delayed(seq, pos):  # cubic Lagrange read of seq at fractional index pos (zeros before 0)
        i = math.floor(pos)
        mu = pos - i
        pts = [seq[j] if 0 <= j < len(seq) else 0.0 for j in (i - 1, i, i + 1, i + 2)]
        w = [
            -mu * (mu - 1) * (mu - 2) / 6,
            (mu + 1) * (mu - 1) * (mu - 2) / 2,
            -(mu + 1) * mu * (mu - 2) / 2,
            (mu + 1) * mu * (mu - 1) / 6,
        ]
        return sum(a * b for a, b in zip(w, pts))

    out = []
    for n, v in enumerate(x):
        rho = rho_final * min(1.0, len(phases) / ramp_blocks)
        g = ((1 + rho) / 2) ** 2
        d = fs / f0
        xd = delayed(xs, n - d)
        if not math.isfinite(v):
            v = xd
        y1d = delayed(y1s, n - d)
        y2d = delayed(y2s, n - d)
        y1 = v - xd + rho * y1d
        y2 = y1 - y1d + rho * y2d
        xs.append(v)
        y1s.append(y1)
        y2s.append(y2)
        out.append(g * y2)
        j = n % block
        z = v * np.exp(-2j * np.pi * (n % block) / block)
        s0 += z
        s1 += z * (j / block)
        if j == block - 1:
            p = prev_s1 + s0 - s1
            prev_s1, s0, s1 = s1, 0j, 0j
            ph = math.atan2(p.imag, p.real)
            if phases:
                ph = phases[-1] + ((ph - phases[-1] + math.pi) % (2 * math.pi) - math.pi)
            phases.append(ph)
            if len(phases) >= 5:
                st = [phases[-1] - phases[-2], phases[-3] - phases[-4]]
                trend = (st[0] - st[1]) / 2
                step = st[0] + 1.5 * trend
                if abs(trend) > 0.05 * abs(st[0]) + 1e-4:
                    step = st[0]
                f0 = f_nom + step * fs / (2 * math.pi * block)
                if abs(f0 - f_nom) > 0.5:
                    f0 = f_nom
    return np.array(out)


def channelize_naive(x, ha, hb, f_mid, offsets, fs=48000.0):
    """Mix, filter (full convolution), decimate by 8, mix per channel, filter, decimate by 4,
    with numpy's convolve; no blanking. Output m <-> stage outputs as in dsp.rx.channelizer."""
    n = np.arange(x.size)
    a = np.convolve(x * np.exp(-2j * np.pi * f_mid * n / fs), ha)[: x.size]
    idx_a = np.arange(7, x.size, 8)  # stage-A outputs at input indices 8 ma + 7
    ya = a[idx_a]
    gd_a = (len(ha) - 1) // 2
    out = []
    for off in offsets:
        mixed = ya * np.exp(-2j * np.pi * off * (idx_a - gd_a) / fs)
        b = np.convolve(mixed, hb)[: mixed.size]
        out.append(b[3::4])
    return np.array(out)


def mf_naive(r, m_first, c0, tau0, spc, t0_samples, n_chips, beta=0.25, span=6.5):
    """Matched filter of both paths by direct evaluation of the RRC pulse."""
    from dsp.tx.shaping import rrc

    z = np.zeros((2, n_chips), complex)
    for p in range(2):
        for k in range(n_chips):
            tau = tau0 + k * spc + p * t0_samples
            for i in range(r.size):
                x = (32.0 * (m_first + i) + c0 - tau) / spc
                if abs(x) <= span:
                    z[p, k] += r[i] * rrc(x, beta)
    return z


def blank_naive(
    y,
    period,
    env,
    k2,
    sustain,
    decide=210,
    half=16,
    echo_half=2,
    slots=4,
    warmup=96,
    alpha=1.0 / 3000.0,
    rise_alpha=1.0 / 24000.0,
):
    """The impulse blanker of dsp.rx.blanker written plainly over the whole record (no rings):
    returns the output (the last ``decide + half`` samples held back, as the streaming blanker
    does) and the trigger counts (echo, sustained, transient) per channel."""
    y = np.asarray(y, complex)
    nch, n = y.shape
    out = y.copy()
    counts = np.zeros((nch, 3), int)
    w1, w2 = 4 * period, 7 * period
    for c in range(nch):
        p = np.abs(y[c]) ** 2
        noise, warm = 0.0, []
        mem = []  # (p0, i0) of the transients remembered, oldest first
        zero = np.zeros(n, bool)
        for i in range(n - decide):
            if len(warm) < warmup:
                if p[i] > 0:
                    warm.append(p[i])
                    if len(warm) == warmup:
                        noise = float(np.median(warm)) / math.log(2.0)
                continue
            if not p[i] > k2 * noise:
                noise += alpha * (p[i] - noise)
                continue
            pref = p[i : i + half + 1].max()
            bounds = [p0 * env[(i - i0) // period] if (i - i0) // period < len(env) else 0.0 for p0, i0 in mem]
            bounds += [0.0] * (slots - len(bounds))
            if pref <= max(bounds):
                kind = 0
            else:
                fut = p[i + w1 : i + w2 + 1].sum() / (w2 - w1 + 1)
                past = p[max(i - w2, 0) : i - w1 + 1].sum() / (w2 - w1 + 1) if i - w1 >= 0 else 0.0
                kind = 1 if max(fut, past) >= sustain * pref else 2
            counts[c, kind] += 1
            if kind == 1:
                noise += rise_alpha * (k2 - 1.0) * noise
                continue
            if kind == 2:
                j = int(np.argmin(bounds))  # the slot whose echoes are weakest now (first of equals)
                if j < len(mem):
                    mem[j] = (pref, i)
                else:
                    mem.append((pref, i))
            h = half if kind == 2 else echo_half
            zero[max(i - h, 0) : i + h + 1] = True
        out[c, zero] = 0.0
    return out[:, : n - decide - half], counts


def tone_bins_naive(X, inband, group=64, k=10**1.5):
    """dsp.rx.detect.kernels.tone_bins with numpy's median and plain loops."""
    pw = np.abs(X) ** 2
    hit = np.zeros(X.size, bool)
    for g in range(X.size // group):
        ref = np.median(pw[g * group : (g + 1) * group]) / math.log(2.0)
        for i in range(g * group, (g + 1) * group):
            if inband[i] and pw[i] > k * ref:
                hit[max(i - 1, 0) : i + 2] = True
    hit &= inband
    return hit if hit.any() else None


def tone_hits_naive(p, half, ln2, k):
    """dsp.rx.excise.tone_hits: every bin's wrapped window sorted, its middle value the median."""
    n = len(p)
    hit = np.zeros(n, bool)
    for i in range(n):
        window = sorted(p[(i + o) % n] for o in range(-half, half + 1))
        hit[i] = p[i] > window[half] / ln2 * k
    return hit


def noise_naive(blk):
    """dsp.rx.detect.kernels.noise_kernel with numpy: per row (live count, median |x|^2 of the non-zero
    samples / ln 2 in single precision, sum |x|^2)."""
    out = []
    for row in np.asarray(blk, np.complex64):
        p = row.real * row.real + row.imag * row.imag
        live = p[p > 0]
        med = (
            float(np.partition(live, live.size // 2)[live.size // 2] / np.float32(math.log(2.0))) if live.size else 0.0
        )
        out.append((live.size, med, float(np.sum(p.astype(np.float64)))))
    return out


def full_rows_naive(r, hop, rowch, rowcode, den, power, g, h_norm, g1, e1, lim, need, lead=2, slack=1e-4):
    """dsp.rx.detect.kernels.full_rows_kernel with plain loops and double precision: a row is flagged when
    lambda_0 reaches ``lim`` at a lag, or when |r1e| + B does at a lag whose r1e reads a phase-0
    lag with |r0| over A (see the kernel)."""
    need = np.array(need, bool)
    n = r.shape[1]
    K = g.shape[1]
    lo = K - 1 - lead
    for k in range(r.shape[0]):
        if need[k]:
            continue
        c, ci = int(rowch[k]), int(rowcode[k])
        d0, d1 = float(den[c, 2 * ci]), float(den[c, 2 * ci + 1])
        b = (h_norm[k] + slack * math.sqrt(e1[k]) * (1 + g1[k])) * math.sqrt(power[c])
        r1lim = math.sqrt(lim * d1)
        a = (r1lim - b) / g1[k]
        if not a > 0:
            need[k] = True
            continue
        q = np.abs(r[k].astype(np.complex128)) ** 2
        if np.any(q[:hop] >= lim * d0):
            need[k] = True
            continue
        marks = [j for j in range(-lo, hop + lead) if q[j % n] > a * a]
        for m in range(hop):
            if not any(m - lo <= j <= m + lead for j in marks):
                continue
            r1e = sum(float(g[k, t]) * complex(r[k, (m + lead - t) % n]) for t in range(K))
            if abs(r1e) + b >= r1lim:
                need[k] = True
                break
    return need


def gated_statistic_naive(w, t, r_row, e_p, noise, seg_len=50, k2=9.0):
    """dsp.rx.cfar_gate.gated_statistic as it was written in numpy (before its numba kernel)."""
    ln2 = math.log(2.0)
    n = w.size
    p = (w.real * w.real + w.imag * w.imag).astype(np.float64)
    live = p > 0
    if noise <= 0 or np.count_nonzero(live) < seg_len:
        return 0.0
    nseg = -(-n // seg_len)
    seg = np.full(nseg * seg_len, np.inf)
    seg[:n] = np.where(live, p, np.inf)  # blanked samples sort last
    seg = np.sort(seg.reshape(nseg, seg_len), axis=1)
    n_live = np.add.reduceat(live.astype(np.int64), np.arange(0, n, seg_len))
    rows = np.arange(nseg)
    med = 0.5 * (seg[rows, np.maximum(n_live - 1, 0) // 2] + seg[rows, n_live // 2])
    lev = np.where(n_live > 0, np.maximum(med / ln2, noise), noise)
    lev_i = np.repeat(lev, seg_len)[:n]
    keep = live & (p <= k2 * lev_i)
    a = 1.0 / lev_i[keep]
    tk = t[keep]
    e_w = float(np.sum(a * (tk.real * tk.real + tk.imag * tk.imag)))
    if e_w <= 0:
        return 0.0
    r = complex(np.sum(a * w[keep] * np.conj(tk)))
    lam_w = (r.real * r.real + r.imag * r.imag) / e_w
    k_row = float(np.median(r_row.real * r_row.real + r_row.imag * r_row.imag)) / (ln2 * e_p * noise)
    level = float(np.median(p[live])) / ln2 / noise
    return lam_w / max(1.0, k_row / max(1.0, level))


def spectra_product_naive(X, T0, chans):
    """dsp.rx.detect.kernels.spectra_product with exact arithmetic: each of (xr tr - xi ti, xr ti + xi tr)
    with the first product exact and the second rounded to single precision, rounded once."""
    from fractions import Fraction

    def fma32(a, b, c):
        exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
        r = np.float32(float(exact))
        cands = (np.nextafter(r, np.float32(-np.inf)), r, np.nextafter(r, np.float32(np.inf)))
        return min(cands, key=lambda v: (abs(Fraction(float(v)) - exact), int(np.asarray(v).view(np.uint32)) & 1))

    ncode = T0.shape[1]
    out = np.empty((len(chans) * ncode, X.shape[1]), np.complex64)
    for j, c in enumerate(chans):
        for k in range(ncode):
            for i in range(X.shape[1]):
                x, t = X[c, i], T0[c, k, i]
                re = fma32(x.real, t.real, -np.float32(x.imag * t.imag))
                im = fma32(x.real, t.imag, np.float32(x.imag * t.real))
                out[j * ncode + k, i] = complex(re, im)
    return out


def restore_zeros_naive(blk, rows, x):
    """dsp.rx.detect.kernels.restore_zeros with numpy: (x with blk's zeros, each row's sum |x|^2 before)."""
    x = np.array(x)
    power = np.sum(np.abs(x.astype(np.complex128)) ** 2, axis=1)
    for j, c in enumerate(rows):
        x[j, (blk[c].real * blk[c].real + blk[c].imag * blk[c].imag) == 0] = 0
    return x, power


def statistic_naive(r0, r1, d0, d1):
    """dsp.rx.detect.kernels.statistic with numpy (single precision): the larger lambda of the two phases,
    which one (phase 0 on ties), the maximum."""
    l0 = (r0.real * r0.real + r0.imag * r0.imag) / np.float32(d0)
    l1 = (r1.real * r1.real + r1.imag * r1.imag) / np.float32(d1)
    best = l1 > l0
    lam = np.where(best, l1, l0)
    return lam, best.astype(np.int8), lam.max()


# ----------------------------------------------------------------- demodulator (dsp.rx.demod) references
def timing_metrics_naive(r, m_first, c0, taus, spc, t0_samples, n_chips, w2c, code, pre, sf):
    """|sum_s pre[s] Y[s]| of the directly evaluated matched filter (:func:`mf_naive`) with chip 0
    at each of ``taus``, Y = the symbols despread from both fingers."""
    out = []
    for tau in taus:
        z = mf_naive(r, m_first, c0, tau, spc, t0_samples, n_chips)
        y = despread_naive(z, w2c, code[:n_chips], sf)
        out.append(abs(np.sum(y * pre[: n_chips // sf])))
    return np.array(out)


def despread_naive(z, w2c, code, sf):
    return ((z[0] + w2c * z[1]) * code[: z.shape[1]]).reshape(-1, sf).sum(axis=1)


def derotate_naive(r, m_first, c0, tau0, df, fs):
    n = 32.0 * (m_first + np.arange(r.size)) + c0
    return r * np.exp(-2j * np.pi * df * (n - tau0) / fs)


def strip_modulation_naive(y, pre, power):
    """The symbols to the power (BPSK 2, QPSK 4, negated), the preamble's BPSK taken out first."""
    z = -(y**power) if power == 4 else y**power
    z[: pre.size] = (y[: pre.size] * pre) ** power
    return z


def dft_bins_naive(x, nfft, k_first, n_bins):
    return np.fft.fft(x, nfft)[(k_first + np.arange(n_bins)) % nfft]


def phase_blind_naive(y, pre, power, half):
    """Decision-free phase: angle of the moving sum of the stripped symbols, unwrapped, / power,
    moved by multiples of 2 pi / power to the preamble's phase."""
    phi_pre = np.angle(np.sum(y[: pre.size] * pre))
    ms = np.convolve(strip_modulation_naive(y, pre, power), np.ones(2 * half + 1), "same")
    ang = np.unwrap(np.angle(ms)) / power
    step = 2 * np.pi / power
    return ang + np.round((phi_pre - np.mean(ang[: pre.size])) / step) * step


def phase_known_naive(y, known, half):
    return np.unwrap(np.angle(np.convolve(y * np.conj(known), np.ones(2 * half + 1), "same")))


def fit_preamble_naive(y, pre, phi):
    v = y[: pre.size] * pre * np.exp(-1j * phi[: pre.size])
    amp = abs(np.mean(v))
    return amp, float(np.mean(np.abs(v - amp) ** 2))


def fit_known_naive(y, known, phi):
    v = y * np.conj(known) * np.exp(-1j * phi)
    amp = float(np.mean(v.real))
    return amp, float(np.mean(np.abs(v - amp) ** 2))


def symbol_weights_naive(r, m_first, c0, tau0, spc, t1_samples, n_sym, sf, excess):
    """Impulse weights per symbol: the power around each symbol (5 samples, both paths) against
    the median over the burst."""
    ploc = np.convolve(np.abs(r) ** 2, np.ones(5) / 5, mode="same")
    centre = tau0 + (np.arange(n_sym) * sf + 1.5) * spc
    i0 = np.clip(np.round((centre - c0) / 32).astype(int) - m_first, 0, r.size - 1)
    i1 = np.clip(np.round((centre + t1_samples - c0) / 32).astype(int) - m_first, 0, r.size - 1)
    ps = 0.5 * (ploc[i0] + ploc[i1])
    typ = np.median(ps)
    if typ <= 0:
        return np.ones(n_sym)
    return np.minimum(1.0, excess * typ / np.maximum(ps, 1e-300)) ** 2


def soft_values_naive(y, phi, w, scale, npre, modulation, fec):
    """Soft coded bits of the data symbols, deinterleaved and depunctured (dsp.air.interleave,
    dsp.fec.conv)."""
    from dsp.air import params as P
    from dsp.air.interleave import deinterleave
    from dsp.fec import conv

    d = y[npre:] * np.exp(-1j * phi[npre:]) * w[npre:]
    n_coded = P.coded_bits(fec)
    if modulation == P.Modulation.BPSK:
        soft = d.real * scale
    else:
        soft = np.empty(2 * d.size)
        soft[0::2] = d.real * scale / np.sqrt(2)
        soft[1::2] = d.imag * scale / np.sqrt(2)
    return conv.depuncture(deinterleave(soft[:n_coded]), fec, 2 * (P.FRAME_BITS + P.CONV_TAIL_BITS))


def reencode_naive(bits, modulation, fec):
    """(rate-1/2 coded bits, burst symbols) of information bits, through the frame's bytes."""
    from dsp.air.bits import bits_to_bytes
    from dsp.fec import conv
    from dsp.tx import burst

    return conv.encode_frame(bits), burst.burst_symbols(bits_to_bytes(bits), modulation, fec)


def isi_naive(chips, r1, r2, base, lo_lag):
    """isi1[k] = sum_l r1[l] chips[k - sh], isi2[k] = sum_l r2[l] chips[k + sh], sh = base + lo_lag + l,
    over the chips inside the burst (0 < sh)."""
    n = chips.size
    isi1 = np.zeros(n, complex)
    isi2 = np.zeros(n, complex)
    for k in range(n):
        for l in range(r1.size):
            sh = base + lo_lag + l
            if 0 < sh <= k:
                isi1[k] += r1[l] * chips[k - sh]
            if 0 < sh < n - k:
                isi2[k] += r2[l] * chips[k + sh]
    return isi1, isi2


def cancel_naive(z, known, code, h_amp, phi, sf, r1, r2, base, lo_lag, w2):
    """z minus the T0 path's self-interference of the chips known[k // sf] code[k] with gain
    h_amp exp(j phi[k // sf])."""
    chips = known.repeat(sf) * code[: known.size * sf]
    isi1, isi2 = isi_naive(chips, r1, r2, base, lo_lag)
    h = (h_amp * np.exp(1j * phi)).repeat(sf)
    return np.array([z[0] - h * w2 * isi1, z[1] - h * isi2])
