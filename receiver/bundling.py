"""A final cluster -> a bundle: payload, copies, ranking and the inferred feeder and phase; and the
ghost rule that makes no bundle of a decoded burst's echo.

:mod:`receiver.grouping` clusters one transmission's detections across inputs and has the
decoded burst measured on every input of its bus; what it hands over here is a final
:class:`Cluster` and those measurements (:class:`dsp.rx.demod.KnownMeasurement`, per input).
:meth:`BundleMaker.make` then:

1. payload: takes the frame of the best-ranked copy whose CRC passed (:func:`best_copy`; a
   crosstalk copy can be clean when the main one is not);
2. copies: every detected input, and every measured one at ``MIN_COPY_SNR_DB`` or more: level,
   phase, SNR and band amplitudes even where the burst is far below detection, so the ranking
   compares like with like;
3. ranks the copies by level (the true input carries the injected current; crosstalk is
   attenuated); the best names bus/feeder/phase, the margin to the runner-up against the
   measurement uncertainty gives the confidence, and a margin under ``max(AMBIGUOUS_MIN_DB,
   AMBIGUOUS_SIGMAS * sigma)`` is flagged ambiguous rather than risked.

A cluster with no clean copy that a burst bundled with a clean frame explains as its own echo
(:func:`is_ghost`, :mod:`dsp.rx.ghosts`) makes no bundle. Nothing here keeps state between
bundles: the same cluster and measurements give the same bundle.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dsp.air import params as P
from dsp.air.frame import parse_frame
from dsp.air.messages import Kind
from dsp.rx.demod import BurstDemodulator, BurstResult, KnownMeasurement
from dsp.rx.ghosts import DecodedSpan
from receiver.contracts.bundle import BandAmplitude, Bundle, Copy, Inference, Location, make_bundle_id

AMBIGUOUS_MIN_DB = 1.0
AMBIGUOUS_SIGMAS = 4.0
MIN_COPY_SNR_DB = -12.0  # a measured copy weaker than this is not reported as a copy
# a CRC-failed cluster inside a decoded burst of its channel where that burst's own correlation
# (dsp.rx.ghosts) is at least this close to its peak is that burst's echo, not a bundle
GHOST_RATIO_DB = -10.8
PHASES = "ABC"


@dataclass
class InputInfo:
    index: int
    bus: int
    feeder: int
    phase: str


@dataclass
class Cluster:
    """One transmission's detections across inputs: same channel and code, start samples within
    :data:`receiver.grouping.GROUP_TOL` of ``start`` (the first one's); ``members`` are
    (input index, the chain's record of the burst on it)."""

    channel: int
    code: int
    start: float
    members: list[tuple[int, BurstResult]] = field(default_factory=list)


def best_copy(c: Cluster) -> tuple[int, BurstResult, bytes | None]:
    """The copy that gives the payload: the best clean one, else the strongest correlation; its
    input, its record and its frame (None without a clean copy)."""
    ok = [(i, r) for i, r in c.members if r.crc_ok]
    ok.sort(key=lambda ir: -ir[1].snr_db)
    best_i, best = ok[0] if ok else max(c.members, key=lambda ir: ir[1].corr_peak)
    return best_i, best, (best.frame if ok else None)


def decoded_span(c: Cluster, plan: P.ChannelPlan) -> DecodedSpan | None:
    """The span of ``c``'s burst for the ghost rule, if a copy has a clean frame (from the copy
    :func:`best_copy` takes the frame from), else None."""
    ok = [r for _, r in c.members if r.crc_ok and r.frame is not None]
    if not ok:
        return None
    best = max(ok, key=lambda r: r.snr_db)
    assert best.frame is not None
    return DecodedSpan.of(c.channel, c.code, best.start_sample, best.frame, best.clock_offset_ppm, plan)


def is_ghost(c: Cluster, decoded: Iterable[DecodedSpan]) -> bool:
    """Whether ``c`` (no copy with a clean frame) is a decoded burst's echo: every copy starts
    inside a burst bundled with a clean frame on its channel (``decoded``), where that burst's own
    correlation with the copy's code (:meth:`dsp.rx.ghosts.DecodedSpan.predicted_ratio`) is
    within GHOST_RATIO_DB of its peak. The chain drops such detections where it decoded the
    burst itself (:mod:`dsp.rx.ghosts`); this catches them on an input where it did not (a
    crosstalk copy whose detector took the T0 path's peak, 6 dB under the burst's)."""
    if any(r.crc_ok for _, r in c.members):
        return False
    spans = list(decoded)
    floor = 10 ** (GHOST_RATIO_DB / 10)
    return all(
        any(s.inside(r.channel, r.start_sample) and s.predicted_ratio(r.code, r.start_sample) >= floor for s in spans)
        for _, r in c.members
    )


@dataclass
class BundleMaker:
    """Makes the bundles of one receiver's final clusters (see the module docstring): who the
    receiver is, its inputs, the stream's sample rate and start, and the clock that dates a
    bundle (wall clock live; a function of the stream time for a replay, so that the same capture
    gives the same bundles byte for byte)."""

    plan: P.ChannelPlan
    inputs: dict[int, InputInfo]
    demods: list[BurstDemodulator]  # one per channel of the plan (its symbol count)
    receiver_id: str
    substation_id: str
    fs_hz: float
    t0_utc: datetime
    created_clock: Callable[[float], datetime] | None = None

    def info(self, i: int) -> InputInfo:
        """Input ``i``'s place (an input not described: bus 0, feeder i // 3, phase by i % 3)."""
        return self.inputs.get(i, InputInfo(i, 0, i // 3, PHASES[i % 3]))

    def make(self, c: Cluster, measured: dict[int, KnownMeasurement], offset: int) -> Bundle:
        """The bundle of final cluster ``c`` with its burst's measurements on the inputs of its
        bus; ``offset``: the stream index of the chains' sample 0 (their last reset)."""
        ch = self.plan.channel(c.channel)
        demod = self.demods[c.channel]
        best_i, best, frame = best_copy(c)
        detected = {i: r for i, r in c.members}
        copies: list[dict[str, Any]] = []
        for i in sorted(set(detected) | set(measured)):
            info = self.info(i)
            r = detected.get(i)
            m = measured.get(i)
            if r is None and (m is None or m.snr_db < MIN_COPY_SNR_DB):
                continue
            if r is None:
                assert m is not None  # neither detected nor measured was skipped just above
                level, snr = m.level_db, m.snr_db
            else:
                level = m.level_db if m is not None else r.level_db
                snr = r.snr_db
            copies.append(
                dict(
                    i=i,
                    info=info,
                    r=r,
                    m=m,
                    level=level if math.isfinite(level) else -200.0,
                    snr=snr,
                    start=(r.start_sample if r is not None else best.start_sample),
                )
            )
        copies.sort(key=lambda d: -d["level"])
        ref_phase = copies[0]["m"].phase_rad if copies and copies[0]["m"] is not None else None
        out_copies = []
        for d in copies:
            r, m, info = d["r"], d["m"], d["info"]
            pol = 1
            if ref_phase is not None and m is not None:
                pol = 1 if math.cos(m.phase_rad - ref_phase) >= 0 else -1
            arrival = self.t0_utc + timedelta(seconds=(d["start"] + offset) / self.fs_hz)
            snr_db = float(d["snr"])
            n_data = demod.n_sym - P.PREAMBLE_SYMBOLS
            out_copies.append(
                Copy(
                    input_index=d["i"],
                    bus=info.bus,
                    feeder=info.feeder,
                    phase=info.phase,
                    start_sample=int(round(d["start"] + offset)),
                    arrival_utc=arrival,
                    level_db=round(float(d["level"]), 3),
                    snr_db=round(snr_db, 3),
                    ebn0_db=round(snr_db + 10 * math.log10(n_data / P.FRAME_BITS), 3),
                    evm_pct=round(
                        float(
                            r.evm_pct
                            if r is not None
                            else min(999.0, 100.0 / math.sqrt(max(10 ** (snr_db / 10), 1e-6)))
                        ),
                        2,
                    ),
                    corr_peak=round(float(r.corr_peak if r is not None else 0.0), 2),
                    pre_fec_bit_errors=(r.pre_fec_bit_errors if r is not None else None),
                    carrier_offset_hz=round(float((r or best).carrier_offset_hz), 4),
                    clock_offset_ppm=round(float((r or best).clock_offset_ppm), 2),
                    polarity=pol,
                    crc_ok=bool(r.crc_ok) if r is not None else False,
                    band_amplitudes=[
                        BandAmplitude(freq_hz=f, amplitude_db=round(a, 2))
                        for f, a in (m.band_amplitudes_db if m else [])
                        if math.isfinite(a)
                    ],
                )
            )
        inferred = infer(copies, demod)
        start_unix = self.t0_utc.timestamp() + (best.start_sample + offset) / self.fs_hz
        hub_id = kind = counter = None
        if frame is not None:
            h = parse_frame(frame).header
            hub_id, counter = h.hub_id, h.counter
            try:
                kind = Kind(h.kind).name.lower()
            except ValueError:
                kind = None
        fh = frame.hex() if frame is not None else None
        return Bundle(
            bundle_id=make_bundle_id(self.receiver_id, c.channel, c.code, int(round(best.start_sample + offset)), fh),
            receiver_id=self.receiver_id,
            substation_id=self.substation_id,
            created_utc=(self.created_clock(start_unix) if self.created_clock else datetime.now(UTC)),
            channel=c.channel,
            code=c.code,
            fc_hz=ch.fc_hz,
            modulation="bpsk" if ch.modulation == P.Modulation.BPSK else "qpsk",
            fec="1/2" if ch.fec == P.FecRate.R1_2 else "2/3",
            slot=int(start_unix // P.SLOT_S),
            crc_ok=frame is not None,
            frame_hex=fh,
            hub_id=hub_id,
            kind=kind,
            counter=counter,
            copies=out_copies or [self._fallback_copy(best_i, best, offset)],
            inferred=inferred,
        )

    def _fallback_copy(self, i: int, r: BurstResult, offset: int) -> Copy:
        """The one copy of a bundle none of whose copies was kept: the best one, as detected."""
        info = self.info(i)
        return Copy(
            input_index=i,
            bus=info.bus,
            feeder=info.feeder,
            phase=info.phase,
            start_sample=int(round(r.start_sample + offset)),
            arrival_utc=self.t0_utc + timedelta(seconds=(r.start_sample + offset) / self.fs_hz),
            level_db=r.level_db if math.isfinite(r.level_db) else -200.0,
            snr_db=r.snr_db,
            ebn0_db=r.ebn0_db,
            evm_pct=min(r.evm_pct, 999.0),
            corr_peak=r.corr_peak,
            pre_fec_bit_errors=r.pre_fec_bit_errors,
            carrier_offset_hz=r.carrier_offset_hz,
            clock_offset_ppm=r.clock_offset_ppm,
            polarity=1,
            crc_ok=r.crc_ok,
        )


def infer(copies: list[dict[str, Any]], demod: BurstDemodulator) -> Inference | None:
    """Where the burst was sent, from its copies ranked by level (strongest first): the top one's
    bus/feeder/phase, the margin to the runner-up against the two levels' uncertainty (from the
    SNRs over the burst's ``demod.n_sym`` symbols), the confidence, and ambiguous if the margin
    is under max(AMBIGUOUS_MIN_DB, AMBIGUOUS_SIGMAS sigma)."""
    if not copies:
        return None
    top = copies[0]
    loc = Location(bus=top["info"].bus, feeder=top["info"].feeder, phase=top["info"].phase)
    if len(copies) == 1:
        # nothing else rose above the floor: the margin is at least top SNR - floor
        margin = max(0.0, float(top["snr"]) - MIN_COPY_SNR_DB)
        return Inference(
            location=loc,
            confidence=round(min(0.999, 1 - 10 ** (-margin / 10)), 4),
            margin_db=round(margin, 2),
            ambiguous=margin < AMBIGUOUS_MIN_DB,
        )
    second = copies[1]
    margin = float(top["level"] - second["level"])
    n = demod.n_sym
    sig = [8.686 / math.sqrt(2 * n * max(10 ** (float(c["snr"]) / 10), 1e-6)) for c in (top, second)]
    sigma = math.hypot(*sig)
    ambiguous = margin < max(AMBIGUOUS_MIN_DB, AMBIGUOUS_SIGMAS * sigma)
    conf = 0.5 * (1 + math.erf(margin / (sigma * math.sqrt(2)))) if sigma > 0 else 1.0
    if ambiguous:
        conf = min(conf, 0.9)
    return Inference(
        location=loc,
        confidence=round(min(conf, 0.999999), 6),
        margin_db=round(margin, 2),
        ambiguous=ambiguous,
        runner_up=Location(bus=second["info"].bus, feeder=second["info"].feeder, phase=second["info"].phase),
    )
