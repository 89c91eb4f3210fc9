"""Message kinds of the edge-to-substation link and their per-hub encryption (AES-128-CCM).

Each frame carries a 17-byte plaintext, sealed with the hub's 128-bit key:
    nonce = hub id (4 bytes BE) || counter (3 bytes BE) || 6 zero bytes   (13 bytes)
    associated data = the 9 header bytes (so kind, hub id, counter and segment are authenticated)
    tag = 4 bytes
All multi-byte fields are big-endian; unused plaintext bytes are zero.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from dsp.air import params as P
from dsp.air.frame import FrameError, Header, build_frame, parse_frame


class Kind(IntEnum):
    PROVISIONING_REQUEST = 0
    PAIRING = 1
    PAIRING_LOSS = 2
    ALERT = 3
    SCHEDULED_REPORT = 4
    TAN_ANOMALY = 5


class AlertType(IntEnum):
    SAG = 1
    SWELL = 2
    OUTAGE = 3
    RESTORATION = 4
    DISTRESS = 5


class Relation(IntEnum):
    """Pairing: what the newly discovered remote is to the hub."""

    SUBORDINATE_SAME_PHASE = 0
    SPARE_HUB_SAME_PHASE = 1
    HUB_OTHER_PHASE = 2  # becomes a Proxy Hub
    SUBORDINATE_OTHER_PHASE = 3  # multi-phase TAN


class AnomalyType(IntEnum):
    THEFT_SUSPICION = 1
    METER_ORDER_CHANGE = 2
    METER_SWAP = 3
    GEOLOCATION_CHANGE = 4


class HubMode(IntEnum):
    HUB = 0
    SUBORDINATE = 1
    PROXY = 2


PLAIN = P.CIPHERTEXT_BYTES


def _pad(b: bytes) -> bytes:
    if len(b) > PLAIN:
        raise FrameError(f"plaintext of {len(b)} bytes exceeds {PLAIN}")
    return b + bytes(PLAIN - len(b))


@dataclass
class ProvisioningRequest:
    kind: ClassVar[Kind] = Kind.PROVISIONING_REQUEST
    meter_id: int
    hw_version: int = 1
    fw_version: int = 1
    mode: int = HubMode.HUB
    capabilities: int = 0  # bit0 QPSK, bit1 GPS, bit2 AMI time

    def pack(self) -> bytes:
        return _pad(
            struct.pack(">IBBBB", self.meter_id, self.hw_version, self.fw_version, self.mode, self.capabilities)
        )

    @classmethod
    def unpack(cls, b: bytes) -> ProvisioningRequest:
        return cls(*struct.unpack(">IBBBB", b[:8]))


@dataclass
class Pairing:
    kind: ClassVar[Kind] = Kind.PAIRING
    meter_id: int
    tan_index: int
    relation: int = Relation.SUBORDINATE_SAME_PHASE

    def pack(self) -> bytes:
        return _pad(struct.pack(">IBB", self.meter_id, self.tan_index, self.relation))

    @classmethod
    def unpack(cls, b: bytes) -> Pairing:
        return cls(*struct.unpack(">IBB", b[:6]))


@dataclass
class PairingLoss:
    kind: ClassVar[Kind] = Kind.PAIRING_LOSS
    meter_id: int
    tan_index: int
    reason: int = 0  # 0 silent, 1 removed, 2 moved away

    def pack(self) -> bytes:
        return _pad(struct.pack(">IBB", self.meter_id, self.tan_index, self.reason))

    @classmethod
    def unpack(cls, b: bytes) -> PairingLoss:
        return cls(*struct.unpack(">IBB", b[:6]))


@dataclass
class Alert:
    kind: ClassVar[Kind] = Kind.ALERT
    alert_type: int
    event_time_s: int  # unix seconds
    v_rms: float = 0.0  # volts at the event (0.01 V resolution)
    duration_s: int = 0
    detail: int = 0

    def pack(self) -> bytes:
        return _pad(
            struct.pack(
                ">BIHHB",
                self.alert_type,
                self.event_time_s,
                _u16(self.v_rms * 100, "v_rms"),
                min(self.duration_s, 0xFFFF),
                self.detail,
            )
        )

    @classmethod
    def unpack(cls, b: bytes) -> Alert:
        t, ts, v, d, det = struct.unpack(">BIHHB", b[:10])
        return cls(t, ts, v / 100.0, d, det)


@dataclass
class MeterReading:
    tan_index: int  # 0 = the hub's own meter; others as announced by pairing messages
    v_rms: float  # volts, 0.01 V resolution
    i_rms: float  # amperes, 0.01 A resolution
    power_factor: float  # -1..1, 0.01 resolution


@dataclass
class ScheduledReport:
    """Per-meter V_rms, I_rms and power factor at one measurement time; at most 2 meters per
    frame, longer reports are segmented (see :func:`encode_message`)."""

    kind: ClassVar[Kind] = Kind.SCHEDULED_REPORT
    measurement_time_s: int
    readings: list[MeterReading] = field(default_factory=list)
    PER_FRAME: ClassVar[int] = 2

    def pack(self) -> bytes:
        if len(self.readings) > self.PER_FRAME:
            raise FrameError(f"a report frame holds at most {self.PER_FRAME} readings")
        out = struct.pack(">IB", self.measurement_time_s, len(self.readings))
        for r in self.readings:
            pf = int(round(r.power_factor * 100))
            if not -100 <= pf <= 100:
                raise FrameError(f"power_factor {r.power_factor} outside -1..1")
            out += struct.pack(">BHHb", r.tan_index, _u16(r.v_rms * 100, "v_rms"), _u16(r.i_rms * 100, "i_rms"), pf)
        return _pad(out)

    @classmethod
    def unpack(cls, b: bytes) -> ScheduledReport:
        t, n = struct.unpack(">IB", b[:5])
        if n > cls.PER_FRAME:
            raise FrameError(f"report claims {n} readings, at most {cls.PER_FRAME} fit")
        rs = []
        for i in range(n):
            idx, v, c, pf = struct.unpack(">BHHb", b[5 + 6 * i : 11 + 6 * i])
            rs.append(MeterReading(idx, v / 100.0, c / 100.0, pf / 100.0))
        return cls(t, rs)


@dataclass
class TanAnomaly:
    kind: ClassVar[Kind] = Kind.TAN_ANOMALY
    anomaly_type: int
    tan_index: int
    time_s: int
    unaccounted_w: float = 0.0  # watts, 1 W resolution
    confidence: float = 0.0  # 0..1

    def pack(self) -> bytes:
        return _pad(
            struct.pack(
                ">BBIHB",
                self.anomaly_type,
                self.tan_index,
                self.time_s,
                _u16(self.unaccounted_w, "unaccounted_w"),
                int(round(self.confidence * 255)),
            )
        )

    @classmethod
    def unpack(cls, b: bytes) -> TanAnomaly:
        a, i, t, w, c = struct.unpack(">BBIHB", b[:9])
        return cls(a, i, t, float(w), c / 255.0)


def _u16(x: float, name: str) -> int:
    v = int(round(x))
    if not 0 <= v <= 0xFFFF:
        raise FrameError(f"{name}={x} does not fit its field")
    return v


# any message of the link (each a dataclass with ``kind``, ``pack`` and ``unpack``)
Message = ProvisioningRequest | Pairing | PairingLoss | Alert | ScheduledReport | TanAnomaly

MESSAGE_TYPES: dict[Kind, type[Message]] = {
    Kind.PROVISIONING_REQUEST: ProvisioningRequest,
    Kind.PAIRING: Pairing,
    Kind.PAIRING_LOSS: PairingLoss,
    Kind.ALERT: Alert,
    Kind.SCHEDULED_REPORT: ScheduledReport,
    Kind.TAN_ANOMALY: TanAnomaly,
}


def nonce(hub_id: int, counter: int) -> bytes:
    return struct.pack(">I", hub_id) + counter.to_bytes(3, "big") + bytes(6)


def hub_key(seed: int, hub_id: int, epoch: int = 0) -> bytes:
    """The deterministic AES-128 key of a *simulated* hub (the simulator's population and the
    platform's test fleets; exported with the simulator's truth); ``epoch`` > 0 gives the keys that
    follow it (key rotation, section 13). Deployed hubs have random keys, provisioned and imported
    into the platform, which never derives one."""
    tail = f":{epoch}" if epoch else ""  # epoch 0 keeps the keys of existing captures
    return hashlib.sha256(f"gla-sim-key:{seed}:{hub_id}{tail}".encode()).digest()[:16]


def _aead(key: bytes) -> AESCCM:
    if len(key) != 16:
        raise ValueError(f"hub keys are 16 bytes (AES-128), got {len(key)}")
    return AESCCM(key, tag_length=P.TAG_BYTES)


def seal(header: Header, plaintext: bytes, key: bytes) -> bytes:
    """Ciphertext + tag for one frame."""
    return _aead(key).encrypt(nonce(header.hub_id, header.counter), _pad(plaintext), header.pack())


def encode_message(msg: Message, *, hub_id: int, counter: int, key: bytes) -> list[bytes]:
    """Frames (32 bytes each) carrying ``msg``; counters ``counter``, ``counter + 1``, ...

    Scheduled reports with more than two readings are split into segments; every segment is a
    self-contained, separately sealed frame.
    """
    parts = [msg]
    if isinstance(msg, ScheduledReport) and len(msg.readings) > ScheduledReport.PER_FRAME:
        n = ScheduledReport.PER_FRAME
        parts = [
            ScheduledReport(msg.measurement_time_s, msg.readings[i : i + n]) for i in range(0, len(msg.readings), n)
        ]
    if len(parts) > 15:
        raise FrameError(f"message needs {len(parts)} segments, at most 15 allowed")
    if not 0 <= counter <= P.COUNTER_MAX - (len(parts) - 1):
        # a counter past 2^24 - 1 would wrap and reuse a nonce under the same key (section 13)
        raise FrameError(
            f"counters {counter}..{counter + len(parts) - 1} pass {P.COUNTER_MAX}: "
            "send this message under the hub's next key, from counter 0"
        )
    frames = []
    for i, part in enumerate(parts):
        h = Header(kind=int(msg.kind), hub_id=hub_id, counter=counter + i, seg_index=i, seg_count=len(parts))
        frames.append(build_frame(h, seal(h, part.pack(), key)))
    return frames


class AuthError(ValueError):
    """The CCM tag did not verify: tampered, forged, or sealed with another key."""


@dataclass
class OpenedFrame:
    header: Header
    message: Message

    def as_dict(self) -> dict:
        d = asdict(self.message) if hasattr(self.message, "__dataclass_fields__") else {}
        return {
            "kind": Kind(self.header.kind).name.lower(),
            "hub_id": self.header.hub_id,
            "counter": self.header.counter,
            "seg_index": self.header.seg_index,
            "seg_count": self.header.seg_count,
            "fields": d,
        }


def open_frame(frame: bytes, key_for: Callable[[int], bytes | None]) -> OpenedFrame:
    """Check CRC, find the hub's key, verify and decrypt, parse the message.

    Raises FrameError (bad length, CRC, version, kind), KeyError (unknown hub) or AuthError.
    """
    pf = parse_frame(frame)
    if not pf.crc_ok:
        raise FrameError("CRC mismatch")
    h = pf.header
    if h.version != P.AIR_VERSION:
        raise FrameError(f"unsupported air-interface version {h.version}")
    try:
        kind = Kind(h.kind)
    except ValueError:
        raise FrameError(f"unknown message kind {h.kind}") from None
    key = key_for(h.hub_id)
    if key is None:
        raise KeyError(f"unknown hub {h.hub_id}")
    try:
        plain = _aead(key).decrypt(nonce(h.hub_id, h.counter), pf.sealed_body, frame[: P.HEADER_BYTES])
    except InvalidTag:
        raise AuthError(f"authentication failed for hub {h.hub_id} counter {h.counter}") from None
    return OpenedFrame(h, MESSAGE_TYPES[kind].unpack(plain))
