"""The enhanced message bundle: what the Substation Receiver posts to the Computing Platform.

One bundle per transmission. It carries every copy of the burst that the receiver found on its
feeder-phase inputs (a copy = one input's view: levels, SNR, demodulator figures of merit, pre-FEC
errors, arrival time, chip code), the copies ranked best first, the feeder/phase the receiver
infers with a confidence, and the frame (from any copy whose CRC passed: a crosstalk copy may be
clean when the main one is not). The payload stays sealed: the platform holds the hub keys.

Versioned (``schema_version``), JSON via pydantic; units are in the field names. ``bundle_id`` is
the idempotency key: the platform stores a bundle once however often it is posted.

Strict by design, so that neither a receiver can build nor the platform accept a bundle that is
not a measurement: floats are finite (no NaN or infinity: JSON has neither), an integer field
refuses ``true``/``false``, ``polarity`` is +1 or -1, ``start_sample`` is a sample index
(0 <= n < 2**63), and levels, SNRs, frequencies and offsets lie inside bounds no real
measurement comes near (:data:`DB_LIMIT` dB; frequencies and offsets up to :data:`MAX_HZ`; clock
offsets up to :data:`MAX_PPM`). The bounds are wide on purpose: a noiseless simulated capture
gives SNRs of some 300 dB, an input without mains a level of +100 dB or more.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

SCHEMA_VERSION: Final = "1"

Phase = Literal["A", "B", "C"]

DB_LIMIT: Final = 1000.0  # |dB| of any level, SNR or margin: a power ratio of 10**100
MAX_HZ: Final = 1e7  # frequencies and carrier offsets (the channels lie below 20 kHz)
MAX_PPM: Final = 1e6  # a clock 100 % off
MAX_SAMPLE: Final = 2**63  # start_sample is a 64-bit sample index


def _not_bool(v: Any) -> Any:
    """JSON ``true`` is not 1: pydantic's lax mode would read it as one."""
    if isinstance(v, bool):
        raise ValueError("a boolean is not an integer")
    return v


Int = Annotated[int, BeforeValidator(_not_bool)]  # lax otherwise: numpy integers from a receiver pass
Float = Annotated[float, Strict()]  # a number (an int too), not a bool or a string
Bool = Annotated[bool, Strict()]  # true or false, not 1 or "yes"
Db = Annotated[Float, Field(ge=-DB_LIMIT, le=DB_LIMIT)]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class BandAmplitude(_M):
    """Level of the burst at one characteristic frequency of the channel."""

    freq_hz: Float = Field(ge=0, le=MAX_HZ)
    amplitude_db: Db = Field(description="dB relative to the input's fundamental RMS")


class Copy(_M):
    """One feeder-phase input's copy of a transmission."""

    input_index: Int = Field(ge=0)
    bus: Int = Field(ge=0)
    feeder: Int = Field(ge=0)
    phase: Phase
    start_sample: Int = Field(ge=0, lt=MAX_SAMPLE, description="capture/stream sample index of the centre of chip 0")
    arrival_utc: datetime = Field(description="time of the centre of chip 0")
    level_db: Db = Field(description="burst RMS relative to the input's fundamental RMS")
    snr_db: Db = Field(description="symbol SNR (Es/N0) estimated by the demodulator")
    ebn0_db: Db = Field(description="Eb/N0 estimate (information bit)")
    evm_pct: Float = Field(ge=0, description="error-vector magnitude of the despread symbols")
    corr_peak: Float = Field(ge=0, description="preamble detector statistic (CFAR lambda)")
    pre_fec_bit_errors: Int | None = Field(
        default=None, ge=0, description="coded-bit disagreements with the re-encoded decision"
    )
    carrier_offset_hz: Float = Field(ge=-MAX_HZ, le=MAX_HZ)
    clock_offset_ppm: Float = Field(ge=-MAX_PPM, le=MAX_PPM)
    polarity: Annotated[Literal[1, -1], BeforeValidator(_not_bool)] = Field(
        description="+1/-1: sign of the copy relative to the best copy"
    )
    crc_ok: Bool
    band_amplitudes: list[BandAmplitude] = Field(default_factory=list)


class Location(_M):
    bus: Int = Field(ge=0)
    feeder: Int = Field(ge=0)
    phase: Phase


class Inference(_M):
    """Where the receiver thinks the burst was sent."""

    location: Location
    confidence: Float = Field(ge=0, le=1)
    margin_db: Db = Field(description="level of the best copy over the runner-up")
    ambiguous: Bool = Field(description="true when the copies do not single out one input")
    runner_up: Location | None = None


class Bundle(_M):
    schema_version: Literal["1"] = SCHEMA_VERSION
    bundle_id: str = Field(min_length=16, max_length=64, description="idempotency key")
    receiver_id: str = Field(min_length=1, max_length=64)
    substation_id: str = Field(min_length=1, max_length=64)
    created_utc: datetime
    channel: Int = Field(ge=0)
    code: Int = Field(ge=0)
    fc_hz: Float = Field(gt=0, le=MAX_HZ)
    modulation: Literal["bpsk", "qpsk"] = "bpsk"
    fec: Literal["1/2", "2/3"] = "1/2"
    slot: Int | None = Field(default=None, description="floor(unix time of chip 0 / 4 s)")
    crc_ok: Bool
    frame_hex: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="the 32-byte frame (sealed payload), when a copy passed CRC",
    )
    hub_id: Int | None = Field(default=None, ge=0, description="from the clear header")
    kind: str | None = None
    counter: Int | None = Field(default=None, ge=0)
    copies: list[Copy] = Field(min_length=1, description="ranked, best first")
    inferred: Inference | None = None


def make_bundle_id(receiver_id: str, channel: int, code: int, start_sample: int, frame_hex: str | None) -> str:
    """Stable key of one transmission as one receiver saw it (same inputs -> same id)."""
    h = hashlib.sha256(f"{receiver_id}|{channel}|{code}|{start_sample}|{frame_hex or '-'}".encode())
    return h.hexdigest()[:32]
