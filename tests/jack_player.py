"""Play a capture into a JACK server, one output port per input, as an audio interface would
(run as a process by tests/test_jack_source.py: ``python -m tests.jack_player --server NAME STEM``).

Registers ``out_1`` .. ``out_N`` (the capture's inputs in order), prints ``{"ready": ...}`` on a
line, and plays silence until every port is connected; then the capture's file values (float32,
the audio file's own normalisation: physical = value / gla:scale) from its first frame, then
silence again. It prints ``{"done": ...}`` with the JACK frame time of the capture's first frame
and its length, and exits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jack
import numpy as np
import soundfile as sf


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("capture", help="capture stem (STEM.wav)")
    ap.add_argument("--server", required=True, help="JACK server name")
    ap.add_argument("--name", default="player", help="JACK client name")
    ap.add_argument("--seconds", type=float, default=None, help="only the first SECONDS of the capture")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the connections")
    args = ap.parse_args(argv)
    x, fs = sf.read(args.capture + ".wav", dtype="float32", always_2d=True)
    if args.seconds is not None:
        x = x[: int(round(args.seconds * fs))]
    data = np.ascontiguousarray(x.T)  # (inputs, frames)
    n_ch, n = data.shape
    client = jack.Client(args.name, use_exact_name=True, no_start_server=True, servername=args.server)
    if client.samplerate != fs:
        print(json.dumps({"error": f"server at {client.samplerate} Hz, capture at {fs} Hz"}), flush=True)
        return 1
    outs = [client.outports.register(f"out_{i + 1}") for i in range(n_ch)]
    state = {"go": False, "pos": -1, "start_frame": -1}

    def process(frames: int) -> None:
        pos = state["pos"]
        if pos < 0 and state["go"]:
            pos = state["pos"] = 0
            state["start_frame"] = client.last_frame_time
        for c, p in enumerate(outs):
            buf = p.get_array()
            k = 0 if pos < 0 else max(0, min(frames, n - pos))
            if k:
                buf[:k] = data[c, pos : pos + k]
            buf[k:] = 0.0
        if pos >= 0:
            state["pos"] = pos + frames

    client.set_process_callback(process)
    client.activate()
    print(json.dumps({"ready": [p.name for p in outs]}), flush=True)
    deadline = time.monotonic() + args.timeout
    while not all(p.number_of_connections for p in outs):
        if time.monotonic() > deadline:
            print(json.dumps({"error": "ports never connected"}), flush=True)
            return 1
        time.sleep(0.02)
    state["go"] = True
    while state["pos"] < n:
        time.sleep(0.05)
    done = {"start_frame": state["start_frame"], "frames": n, "channels": n_ch}
    client.deactivate()
    client.close()
    print(json.dumps({"done": done}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
