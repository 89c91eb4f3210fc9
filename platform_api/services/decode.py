"""Semantic decode of one frame: CRC, version, kind, key, AES-CCM tag, segment fields.

The checks run in the order of docs/air-interface.md section 6 and each failure names its reason
(the ``reason`` values are part of the API):

| reason | meaning |
|---|---|
| crc | the CRC-16 does not match (the receiver should not have sent it as crc_ok) |
| version | air-interface version is not 1 |
| kind | message kind 6..15 (reserved) |
| unknown_hub | no key for this hub id in the Inventory |
| auth | the CCM tag does not verify: tampered, forged, or sealed with another key |
| segment | inconsistent segment fields (count 0, index >= count, a segmented non-report, segments that disagree) |
| malformed | the plaintext does not parse (e.g. a report claiming more than 2 readings) |
| replay | counter older than the 64-counter window, used by another frame, or under a previous key after its grace |
| header_mismatch | (422, not stored) the bundle's hub_id/counter/kind disagree with the frame header |
"""

from __future__ import annotations

import binascii
from dataclasses import asdict
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from dsp.air import messages as M
from dsp.air import params as P
from dsp.air.frame import FrameError, Header

KIND_NAMES = {k.value: k.name.lower() for k in M.Kind}
ENUMS: dict[str, type[IntEnum]] = {
    "alert_type": M.AlertType,
    "relation": M.Relation,
    "anomaly_type": M.AnomalyType,
    "mode": M.HubMode,
}
LOSS_REASONS = {0: "silent", 1: "removed", 2: "moved_away"}


class Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def check_frame(frame: bytes) -> Header:
    """CRC, version and kind; returns the clear header."""
    if len(frame) != P.FRAME_BYTES:
        raise Reject("malformed", f"frame is {len(frame)} bytes, not {P.FRAME_BYTES}")
    # CRC-16/IBM-3740 (dsp.air.crc): poly 0x1021, init 0xFFFF, no reflection = binascii.crc_hqx
    if binascii.crc_hqx(frame[:-2], 0xFFFF) != int.from_bytes(frame[-2:], "big"):
        raise Reject("crc", "CRC-16 mismatch")
    h = Header.unpack(frame[: P.HEADER_BYTES])
    if h.version != P.AIR_VERSION:
        raise Reject("version", f"air-interface version {h.version} is not supported")
    if h.kind not in KIND_NAMES:
        raise Reject("kind", f"message kind {h.kind} is reserved")
    return h


def open_sealed(frame: bytes, h: Header, key: bytes):
    """Verify the CCM tag and parse the plaintext; returns the message dataclass."""
    try:
        plain = AESCCM(key, tag_length=P.TAG_BYTES).decrypt(
            M.nonce(h.hub_id, h.counter), frame[P.HEADER_BYTES : -2], frame[: P.HEADER_BYTES]
        )
    except InvalidTag:
        raise Reject(
            "auth", f"CCM tag does not verify for hub {h.hub_id} counter {h.counter} (tampered, forged or wrong key)"
        ) from None
    if not 1 <= h.seg_count <= 15 or h.seg_index >= h.seg_count:
        raise Reject("segment", f"segment {h.seg_index} of {h.seg_count} is impossible")
    if h.seg_count > 1 and h.kind != M.Kind.SCHEDULED_REPORT:
        raise Reject("segment", f"{KIND_NAMES[h.kind]} is never segmented (seg_count {h.seg_count})")
    try:
        return M.MESSAGE_TYPES[M.Kind(h.kind)].unpack(plain)
    except (FrameError, ValueError) as e:
        raise Reject("malformed", f"plaintext does not parse: {e}") from None


_ALERT = {e.value: e.name.lower() for e in M.AlertType}


def fields_of(msg) -> dict:
    """The message fields as JSON, with enum names added (``alert_type_name`` ...)."""
    if isinstance(msg, M.ScheduledReport):  # the hot path: written out rather than asdict()
        return {
            "measurement_time_s": msg.measurement_time_s,
            "readings": [
                {"tan_index": r.tan_index, "v_rms": r.v_rms, "i_rms": r.i_rms, "power_factor": r.power_factor}
                for r in msg.readings
            ],
        }
    if isinstance(msg, M.Alert):
        return {
            "alert_type": msg.alert_type,
            "event_time_s": msg.event_time_s,
            "v_rms": msg.v_rms,
            "duration_s": msg.duration_s,
            "detail": msg.detail,
            "alert_type_name": _ALERT.get(msg.alert_type),
        }
    d = asdict(msg)
    for name, enum in ENUMS.items():
        if name in d:
            try:
                d[name + "_name"] = enum(d[name]).name.lower()
            except ValueError:
                d[name + "_name"] = None
    if "reason" in d and isinstance(msg, M.PairingLoss):
        d["reason_name"] = LOSS_REASONS.get(d["reason"])
    return d
