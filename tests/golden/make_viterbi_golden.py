"""Regenerate tests/golden/viterbi_v1.json:  python tests/golden/make_viterbi_golden.py

Fixed, seeded noisy soft inputs and what dsp.fec.viterbi decodes from them. The soft values are
rounded to 4 decimals before decoding, so the file holds the exact decoder input. If a decoded
vector changes, the decoder's decisions changed (metric, tie-break or trellis convention).

Frames: 256 information bits (+6 tail), BPSK soft values (1 - 2b) + sigma * n with
sigma^2 = 1 / (2 Es/N0), Es/N0 = Eb/N0 + 10 log10(R). Five rate-1/2 frames at Eb/N0 = 0, 1, 2, 3,
4 dB and one rate-2/3 (punctured; stored punctured) frame at 4 dB.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from dsp.air import params as P  # noqa: E402
from dsp.fec import conv, viterbi  # noqa: E402

OUT = pathlib.Path(__file__).with_name("viterbi_v1.json")
N_INFO = 256
SEED = 20261123
CASES = [
    (0.0, P.FecRate.R1_2),
    (1.0, P.FecRate.R1_2),
    (2.0, P.FecRate.R1_2),
    (3.0, P.FecRate.R1_2),
    (4.0, P.FecRate.R1_2),
    (4.0, P.FecRate.R2_3),
]


def bits_hex(bits) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def main() -> None:
    rng = np.random.default_rng(SEED)
    frames = []
    for ebn0_db, fec in CASES:
        rate = 0.5 if fec == P.FecRate.R1_2 else 2.0 / 3.0
        esn0 = 10 ** ((ebn0_db + 10 * np.log10(rate)) / 10)
        sigma = np.sqrt(1.0 / (2.0 * esn0))
        info = rng.integers(0, 2, N_INFO).astype(np.uint8)
        coded = conv.encode_frame(info)
        tx = conv.puncture(1.0 - 2.0 * coded, fec)
        rx = np.round(tx + sigma * rng.standard_normal(tx.size), 4)
        soft = conv.depuncture(rx, fec, coded.size)
        decoded = viterbi.decode_frame(soft, N_INFO)
        frames.append(
            {
                "ebn0_db": ebn0_db,
                "fec": fec.name,
                "info_hex": bits_hex(info),
                "soft_rx": rx.tolist(),
                "decoded_hex": bits_hex(decoded),
                "decoded_bit_errors": int(np.count_nonzero(decoded != info)),
                "reencode_errors": viterbi.reencode_errors(soft, decoded),
            }
        )
    golden = {"version": 1, "n_info_bits": N_INFO, "seed": SEED, "frames": frames}
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
