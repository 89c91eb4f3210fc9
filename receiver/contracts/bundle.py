"""The enhanced message bundle: what the Substation Receiver posts to the Computing Platform.

One bundle per transmission. It carries every copy of the burst that the receiver found on its
feeder-phase inputs (a copy = one input's view: levels, SNR, demodulator figures of merit, pre-FEC
errors, arrival time, chip code), the copies ranked best first, the feeder/phase the receiver
infers with a confidence, and the frame (from any copy whose CRC passed: a crosstalk copy may be
clean when the main one is not). The payload stays sealed: the platform holds the hub keys.

Versioned (``schema_version``), JSON via pydantic; units are in the field names. ``bundle_id`` is
the idempotency key: the platform stores a bundle once however often it is posted.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Final = "1"

Phase = Literal["A", "B", "C"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BandAmplitude(_M):
    """Level of the burst at one characteristic frequency of the channel."""

    freq_hz: float
    amplitude_db: float = Field(description="dB relative to the input's fundamental RMS")


class Copy(_M):
    """One feeder-phase input's copy of a transmission."""

    input_index: int = Field(ge=0)
    bus: int = Field(ge=0)
    feeder: int = Field(ge=0)
    phase: Phase
    start_sample: int = Field(description="capture/stream sample index of the centre of chip 0")
    arrival_utc: datetime = Field(description="time of the centre of chip 0")
    level_db: float = Field(description="burst RMS relative to the input's fundamental RMS")
    snr_db: float = Field(description="symbol SNR (Es/N0) estimated by the demodulator")
    ebn0_db: float = Field(description="Eb/N0 estimate (information bit)")
    evm_pct: float = Field(ge=0, description="error-vector magnitude of the despread symbols")
    corr_peak: float = Field(ge=0, description="preamble detector statistic (CFAR lambda)")
    pre_fec_bit_errors: int | None = Field(
        default=None, ge=0, description="coded-bit disagreements with the re-encoded decision"
    )
    carrier_offset_hz: float
    clock_offset_ppm: float
    polarity: int = Field(description="+1/-1: sign of the copy relative to the best copy")
    crc_ok: bool
    band_amplitudes: list[BandAmplitude] = Field(default_factory=list)


class Location(_M):
    bus: int = Field(ge=0)
    feeder: int = Field(ge=0)
    phase: Phase


class Inference(_M):
    """Where the receiver thinks the burst was sent."""

    location: Location
    confidence: float = Field(ge=0, le=1)
    margin_db: float = Field(description="level of the best copy over the runner-up")
    ambiguous: bool = Field(description="true when the copies do not single out one input")
    runner_up: Location | None = None


class Bundle(_M):
    schema_version: Literal["1"] = SCHEMA_VERSION
    bundle_id: str = Field(min_length=16, max_length=64, description="idempotency key")
    receiver_id: str = Field(min_length=1, max_length=64)
    substation_id: str = Field(min_length=1, max_length=64)
    created_utc: datetime
    channel: int = Field(ge=0)
    code: int = Field(ge=0)
    fc_hz: float = Field(gt=0)
    modulation: Literal["bpsk", "qpsk"] = "bpsk"
    fec: Literal["1/2", "2/3"] = "1/2"
    slot: int | None = Field(default=None, description="floor(unix time of chip 0 / 4 s)")
    crc_ok: bool
    frame_hex: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="the 32-byte frame (sealed payload), when a copy passed CRC",
    )
    hub_id: int | None = Field(default=None, ge=0, description="from the clear header")
    kind: str | None = None
    counter: int | None = Field(default=None, ge=0)
    copies: list[Copy] = Field(min_length=1, description="ranked, best first")
    inferred: Inference | None = None


def make_bundle_id(receiver_id: str, channel: int, code: int, start_sample: int, frame_hex: str | None) -> str:
    """Stable key of one transmission as one receiver saw it (same inputs -> same id)."""
    h = hashlib.sha256(f"{receiver_id}|{channel}|{code}|{start_sample}|{frame_hex or '-'}".encode())
    return h.hexdigest()[:32]
