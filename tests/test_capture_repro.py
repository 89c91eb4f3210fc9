"""The committed demo capture is what its documented command produces, bit for bit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from dsp.air import messages
from gridsim.simulate import SIMULATOR, run_scenario

CAPTURES = Path(__file__).resolve().parents[1] / "captures"


def test_demo_small_regenerates_exactly(tmp_path):
    meta = json.loads((CAPTURES / "demo_small.sigmf-meta").read_text())
    res = run_scenario("demo_small", tmp_path / "demo_small", progress=False)
    digest = hashlib.sha256(res.audio_path.read_bytes()).hexdigest()
    assert digest == meta["global"]["gla:sha256"]
    assert digest == hashlib.sha256((CAPTURES / "demo_small.wav").read_bytes()).hexdigest()
    assert meta["global"]["gla:simulator"] == SIMULATOR  # the arithmetic that made it
    assert json.loads(res.meta_path.read_text()) == meta  # the committed sidecar is the writer's, key for key
    ours = json.loads(res.truth_path.read_text())["transmissions"]
    committed = json.loads((CAPTURES / "demo_small.truth.json").read_text())["transmissions"]
    assert [t["frame_hex"] for t in ours] == [t["frame_hex"] for t in committed]


def test_demo_small_truth_is_consistent_with_capture():
    truth = json.loads((CAPTURES / "demo_small.truth.json").read_text())
    keys = {h["hub_id"]: bytes.fromhex(h["key_hex"]) for h in truth["capture"]["hubs"]}
    info = sf.info(str(CAPTURES / "demo_small.wav"))
    assert info.channels == truth["capture"]["n_inputs"] == 12 and info.samplerate == 48000
    for tx in truth["transmissions"]:
        opened = messages.open_frame(bytes.fromhex(tx["frame_hex"]), keys.get)
        assert opened.header.hub_id == tx["hub_id"] and opened.as_dict()["kind"] == tx["kind"]
        assert 0 <= tx["first_sample"] < tx["start_sample"] < tx["end_sample"] <= info.frames + 1000
        gains = np.array(tx["crosstalk_gains"])
        assert abs(abs(gains[tx["input"]]) - 1.0) < 1e-9  # the true input carries the burst at level_db
        others = np.delete(np.abs(gains), tx["input"])
        assert others.max() <= 10 ** (-6 / 20) + 1e-9
