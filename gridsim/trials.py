"""Sensitivity trials: one burst in a channel, through the whole receive chain.

A trial sends one burst (random frame, channel, code, clock offset within +-100 ppm, carrier
phase, start time) and tells whether the receive chain (comb -> channelizer -> detector ->
demodulator -> Viterbi -> CRC, synchronisation included) got it: detected at the right time and
its CRC passed with the sent bytes.

* :func:`awgn_signal` / :func:`trial_awgn`: the burst in white Gaussian noise plus a clean grid
  fundamental 85 dB over the noise (without it there is no grid period T0 to receive with; the
  comb removes it);
* :func:`substation_signal` / :func:`trial_substation`: the burst injected on its true input of
  :class:`gridsim.channel.SubstationChannel` (fundamental, drifting harmonics, -85 dBc noise floor,
  switching impulses, interferers, the hub's transformer low-pass).

Eb is the energy per information bit of the data part (the 64-symbol preamble, 11 % of the burst,
is not counted). A trial is ``trial_*((ebn0_db, seed)) -> bool``: the same seed gives the same
burst, noise and channel. Used by ``benchmarks/bench_sensitivity.py`` (FER against Eb/N0) and
``benchmarks/sensitivity_ablation.py``.
"""

from __future__ import annotations

import math

import numpy as np

from dsp.air import frame as F
from dsp.air import params as P
from dsp.rx.chain import InputChain
from dsp.tx import burst as tx_burst
from dsp.tx import modulator

FS = 48000.0
T_BIT = P.data_symbols(P.Modulation.BPSK, P.FecRate.R1_2) / P.SYMBOL_RATE_HZ / P.FRAME_BITS
LEAD_S = 0.45


def burst(rng: np.random.Generator, plan: P.ChannelPlan):
    """A random frame on a random channel and code, modulated at a random start time, grid
    frequency, clock offset and carrier phase: (frame, channel, code, t_start, first sample,
    samples, grid frequency)."""
    header = F.Header(kind=int(rng.integers(6)), hub_id=int(rng.integers(2**32)), counter=int(rng.integers(2**24)))
    fr = F.build_frame(header, bytes(rng.integers(0, 256, P.CIPHERTEXT_BYTES + P.TAG_BYTES, dtype=np.uint8)))
    ch = int(rng.integers(len(plan.channels)))
    code = int(rng.integers(P.CODES_PER_CHANNEL))
    c = plan.channel(ch)
    t_start = LEAD_S + float(rng.uniform(0, 0.05))
    f0 = 60.0 + float(rng.uniform(-0.05, 0.05))
    chips = tx_burst.burst_chips(fr, ch, code)
    first, s = modulator.modulate(
        chips,
        fs_hz=FS,
        fc_hz=c.fc_hz,
        t_start_s=t_start,
        grid_period_s=1 / f0,
        clock_ppm=float(rng.uniform(-100, 100)),
        phase_rad=float(rng.uniform(0, 2 * np.pi)),
    )
    return fr, ch, code, t_start, first, s, f0


def run_chain(x: np.ndarray, plan: P.ChannelPlan, fr: bytes, ch: int, code: int, t_start: float) -> bool:
    """Whether a fresh receive chain fed ``x`` (in blocks of 0.5 s) decodes the frame ``fr`` on its
    channel and code, at its start time (within 40 samples), with its CRC passed."""
    chain = InputChain(plan, 0)
    got = []
    for i in range(0, x.size, 24000):
        got += chain.process(x[i : i + 24000]).bursts
    got += chain.flush().bursts
    for r in got:
        if (
            r.channel == ch
            and r.code == code
            and abs(r.start_sample - t_start * FS) < 40
            and r.crc_ok
            and r.frame == fr
        ):
            return True
    return False


def awgn_signal(ebn0_db: float, seed: int):
    """One burst at ``ebn0_db`` in white noise with a clean fundamental: returns (samples, plan,
    frame, channel, code, t_start)."""
    rng = np.random.default_rng(seed)
    plan = P.ChannelPlan.default()
    fr, ch, code, t_start, first, s, f0 = burst(rng, plan)
    n = first + s.size + int(0.25 * FS)
    x = np.zeros(n)
    x[first : first + s.size] = s
    sigma = math.sqrt(T_BIT * FS / 2 / 10 ** (ebn0_db / 10))  # unit-power burst
    x += sigma * rng.standard_normal(n)
    # a clean fundamental 85 dB over the noise, as at a substation: the receiver needs the grid to
    # know T0; the comb removes it
    x += (
        sigma
        * 10 ** (85 / 20)
        * math.sqrt(2)
        * np.cos(2 * np.pi * f0 * np.arange(n) / FS + float(rng.uniform(0, 2 * np.pi)))
    )
    return x, plan, fr, ch, code, t_start


def trial_awgn(args) -> bool:
    """``args = (ebn0_db, seed)``: whether the chain receives the burst of :func:`awgn_signal`."""
    return run_chain(*awgn_signal(*args))


def substation_signal(
    ebn0_db: float, seed: int, *, impulse_rate: float = 0.2, interferers: bool = True, cutoff_hz: float | None = None
):
    """One burst injected on its true input of gridsim's SubstationChannel at ``ebn0_db``: returns
    (samples of that input, plan, frame, channel, code, t_start, extra) with ``extra`` the channel
    object, the burst's first sample and length, the input (phase) and the transformer cut-off.
    The keyword arguments vary the channel for ablations (benchmarks/sensitivity_ablation.py);
    the defaults are the benchmark's."""
    from .channel import ChannelConfig, Injection, Layout, SubstationChannel
    from .simulate import ebn0_db as ebn0_of_level

    rng = np.random.default_rng(seed)
    plan = P.ChannelPlan.default()
    fr, ch, code, t_start, first, s, f0 = burst(rng, plan)
    cfg = ChannelConfig(
        noise_floor_dbc=85.0,
        impulse_rate_per_feeder_per_s=impulse_rate,
        enable_impulses=impulse_rate > 0,
        enable_interferers=interferers,
    )
    chan = SubstationChannel(cfg, Layout(1, 1), seed=int(seed) % 2**31)
    f0_true = float(chan.grid_frequency(first, 1)[0])
    c = plan.channel(ch)
    first, s = modulator.modulate(
        tx_burst.burst_chips(fr, ch, code),
        fs_hz=FS,
        fc_hz=c.fc_hz,
        t_start_s=t_start,
        grid_period_s=1 / f0_true,
        clock_ppm=float(rng.uniform(-100, 100)),
        phase_rad=float(rng.uniform(0, 2 * np.pi)),
    )
    cutoff = float(rng.uniform(0.95, 1.3) * 3600.0)  # drawn always, so the other draws stay the same
    if cutoff_hz is not None:
        cutoff = float(cutoff_hz)
    level = ebn0_db - ebn0_of_level(0.0, 85.0, FS, c.fc_hz, cutoff)  # level that gives this Eb/N0
    phase = int(rng.integers(3))
    inj = Injection(first, s, 0, 0, phase, level, cutoff, int(seed) % 2**31)
    n = first + s.size + int(0.25 * FS)
    extra = {"chan": chan, "first": first, "n_burst": s.size, "phase": phase, "cutoff_hz": cutoff}
    return chan.render(0, n, [inj])[:, phase], plan, fr, ch, code, t_start, extra


def trial_substation(args) -> bool:
    """``args = (ebn0_db, seed)``: whether the chain receives the burst of :func:`substation_signal`."""
    x, plan, fr, ch, code, t_start, _ = substation_signal(*args)
    return run_chain(x, plan, fr, ch, code, t_start)
