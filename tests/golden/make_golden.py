"""Regenerate tests/golden/air_interface_v1.json:  python tests/golden/make_golden.py

The vectors pin the transmit side of docs/air-interface.md: if any of them changes, the air
interface changed and old transmitters no longer interoperate.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from dsp.air import codes, crc, interleave, messages  # noqa: E402
from dsp.air import params as P  # noqa: E402
from dsp.fec import conv
from dsp.tx import burst, modulator

OUT = pathlib.Path(__file__).with_name("air_interface_v1.json")
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


def bits_hex(bits) -> str:
    b = np.asarray(bits, dtype=np.uint8)
    return np.packbits(b).tobytes().hex()


def main() -> None:
    rng = np.random.default_rng(20261122)
    rand_bits = rng.integers(0, 2, 200).astype(np.uint8)
    report = messages.ScheduledReport(
        1795305600, [messages.MeterReading(0, 241.37, 18.42, 0.97), messages.MeterReading(3, 238.9, 2.05, -0.88)]
    )
    fr = messages.encode_message(report, hub_id=0x00C0FFEE, counter=0x000102, key=KEY)[0]
    chips = burst.burst_chips(fr, channel=1, code=1)
    start, samples = modulator.modulate(
        chips, fs_hz=48000.0, fc_hz=2130.0, t_start_s=0.01, grid_period_s=1 / 60.02, clock_ppm=37.0, phase_rad=0.3
    )
    golden = {
        "crc16_check_123456789": crc.crc16(b"123456789"),
        "conv_impulse": "".join(map(str, conv.encode_frame(np.array([1], dtype=np.uint8))[:14])),
        "conv_random_in_hex": bits_hex(rand_bits),
        "conv_random_out_hex": bits_hex(conv.encode_frame(rand_bits)),
        "conv_random_r23_hex": bits_hex(conv.puncture(conv.encode_frame(rand_bits), P.FecRate.R2_3)),
        "interleaver_524_first64": interleave.permutation(524)[:64].tolist(),
        "gold_balanced_shifts_first12": list(codes.balanced_shifts()[:12]),
        "gold_codes_hex": {
            f"{c},{k}": bits_hex(np.concatenate([codes.gold_code(codes.code_shift(c, k)), [0]]))
            for c in range(3)
            for k in range(4)
        },
        "preamble_hex": bits_hex(codes.preamble_bits()),
        "report_key_hex": KEY.hex(),
        "report_frame_hex": fr.hex(),
        "report_air_bits_hex": bits_hex(burst.frame_coded_bits(fr)),
        "report_chips_first64": chips[:64].real.astype(int).tolist(),
        "burst_first_sample": start,
        "burst_samples_1000_1032": samples[1000:1032].tolist(),
        "burst_n_samples": int(samples.size),
    }
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
