"""Air-interface constants and the channel plan (docs/air-interface.md is the normative text).

Everything a transmitter and a receiver must agree on lives here, once. Units are in the names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------
CHIP_RATE_HZ = 720.0  #: chips per second (transmitter crystal, +-100 ppm)
CHIPS_PER_SYMBOL = 4  #: spreading factor
SYMBOL_RATE_HZ = CHIP_RATE_HZ / CHIPS_PER_SYMBOL  #: 180 symbols/s
RRC_BETA = 0.25  #: root-raised-cosine roll-off of the chip pulse
RRC_SPAN_CHIPS = 6  #: the pulse is evaluated for the 13 chips nearest to t (n within 6 of round(t))
CODE_LENGTH = 127  #: Gold codes of degree 7
PREAMBLE_SYMBOLS = 64  #: BPSK preamble length

# --------------------------------------------------------------------------------------------
# Frame
# --------------------------------------------------------------------------------------------
FRAME_BYTES = 32  #: 256 information bits per frame (header + ciphertext + tag + CRC)
HEADER_BYTES = 9
TAG_BYTES = 4
CRC_BYTES = 2
CIPHERTEXT_BYTES = FRAME_BYTES - HEADER_BYTES - TAG_BYTES - CRC_BYTES  #: 17
FRAME_BITS = FRAME_BYTES * 8
CONV_K = 7
CONV_TAIL_BITS = CONV_K - 1
CONV_G1_OCT = 0o171  #: first output of each trellis step
CONV_G2_OCT = 0o133  #: second output
INTERLEAVER_COLUMNS = 32
AIR_VERSION = 1
#: counters (section 13): 24 bits; the last value a hub may use under one key
COUNTER_MAX = 2**24 - 1
#: the platform's anti-replay window (section 13): the highest accepted counter and the 63 below it
REPLAY_WINDOW = 64
#: from this counter on a hub needs its next key (section 13, key life cycle)
COUNTER_LOW_WATER = 2**24 - 2**16

# Slots
SLOT_S = 4.0  #: slot length; slot index = floor(unix_time / SLOT_S)
SLOT_START_OFFSET_S = 0.25  #: nominal burst start (first chip centre) after the slot boundary


class Modulation(IntEnum):
    BPSK = 1
    QPSK = 2


class FecRate(IntEnum):
    R1_2 = 2  # rate 1/2, no puncturing
    R2_3 = 3  # rate 2/3, puncturing P1=[1 1], P2=[1 0]


class ChannelRole(IntEnum):
    SCHEDULED = 0  #: TDMA slots assigned by provisioning; code = slot parity
    ALERT = 1  #: slotted ALOHA for provisioning requests and alerts; code chosen at random


#: Nominal grid frequencies supported and the carrier centres (as multiples of f0: all sit
#: half-way between two harmonics).
CARRIER_HARMONIC_INDEX = {
    60.0: (19.5, 35.5, 51.5),  # 1170, 2130, 3090 Hz
    50.0: (23.5, 42.5, 61.5),  # 1175, 2125, 3075 Hz
}

#: Gold-code shifts (see dsp.air.codes.gold_code) used by channel c, code k: GOLD_SHIFTS[c][k].
#: Chosen as the first balanced Gold sequences, in order of shift (docs/air-interface.md).
CODES_PER_CHANNEL = 4


@dataclass(frozen=True)
class Channel:
    index: int
    fc_hz: float
    role: ChannelRole
    modulation: Modulation = Modulation.BPSK
    fec: FecRate = FecRate.R1_2

    @property
    def bandwidth_hz(self) -> float:
        return CHIP_RATE_HZ * (1.0 + RRC_BETA)

    @property
    def f_low_hz(self) -> float:
        return self.fc_hz - self.bandwidth_hz / 2

    @property
    def f_high_hz(self) -> float:
        return self.fc_hz + self.bandwidth_hz / 2


@dataclass(frozen=True)
class ChannelPlan:
    """The channels of one substation: carrier, role, modulation and FEC of each."""

    grid_hz: float = 60.0
    channels: tuple[Channel, ...] = field(default_factory=tuple)
    transformer_cutoff_hz: float = 3600.0

    @classmethod
    def default(cls, grid_hz: float = 60.0, transformer_cutoff_hz: float = 3600.0) -> ChannelPlan:
        if grid_hz not in CARRIER_HARMONIC_INDEX:
            raise ValueError(f"grid_hz must be 50 or 60, got {grid_hz!r}")
        roles = (ChannelRole.SCHEDULED, ChannelRole.SCHEDULED, ChannelRole.ALERT)
        chans = tuple(
            Channel(index=i, fc_hz=m * grid_hz, role=r)
            for i, (m, r) in enumerate(zip(CARRIER_HARMONIC_INDEX[grid_hz], roles))
        )
        plan = cls(grid_hz=grid_hz, channels=chans, transformer_cutoff_hz=transformer_cutoff_hz)
        plan.validate()
        return plan

    def validate(self) -> None:
        """Raise ValueError naming the rule a channel breaks."""
        if self.grid_hz <= 0:
            raise ValueError("grid_hz must be positive")
        lowest = 11 * self.grid_hz
        for ch in self.channels:
            if ch.f_low_hz <= lowest:
                raise ValueError(
                    f"channel {ch.index}: lower edge {ch.f_low_hz:.0f} Hz is not above the 11th "
                    f"harmonic ({lowest:.0f} Hz, IEEE 519)"
                )
            if ch.f_high_hz >= self.transformer_cutoff_hz:
                raise ValueError(
                    f"channel {ch.index}: upper edge {ch.f_high_hz:.0f} Hz is not below the "
                    f"transformer cutoff {self.transformer_cutoff_hz:.0f} Hz"
                )
        edges = sorted((c.f_low_hz, c.f_high_hz, c.index) for c in self.channels)
        for (_, hi1, i1), (lo2, _, i2) in zip(edges, edges[1:]):
            if lo2 < hi1:
                raise ValueError(f"channels {i1} and {i2} overlap ({hi1:.0f} Hz > {lo2:.0f} Hz)")

    def channel(self, index: int) -> Channel:
        for c in self.channels:
            if c.index == index:
                return c
        raise KeyError(f"no channel {index} in the plan (have {[c.index for c in self.channels]})")


def coded_bits(fec: FecRate, info_bits: int = FRAME_BITS) -> int:
    """Number of transmitted coded bits for one frame."""
    n = 2 * (info_bits + CONV_TAIL_BITS)
    if fec == FecRate.R2_3:
        return n * 3 // 4
    return n


def data_symbols(modulation: Modulation, fec: FecRate) -> int:
    n = coded_bits(fec)
    return n if modulation == Modulation.BPSK else (n + 1) // 2


def burst_symbols(modulation: Modulation = Modulation.BPSK, fec: FecRate = FecRate.R1_2) -> int:
    return PREAMBLE_SYMBOLS + data_symbols(modulation, fec)


def burst_duration_s(modulation: Modulation = Modulation.BPSK, fec: FecRate = FecRate.R1_2) -> float:
    """From the centre of the first chip to the centre of the last chip plus one chip."""
    return burst_symbols(modulation, fec) * CHIPS_PER_SYMBOL / CHIP_RATE_HZ
