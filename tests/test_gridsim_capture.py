"""gridsim.capture and receiver.contracts.capture: writer round trips, container choice, sidecar
validation, ground truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
import soundfile as sf

from gridsim.capture import CaptureWriter
from gridsim.channel import ChannelConfig, Layout, SubstationChannel
from receiver.contracts.capture import open_capture, read_capture_meta, read_truth, write_truth

FS = 48000
START = "2025-03-03T14:00:00Z"


def _write(tmp_path, name, x, layout, **kw):
    stem = tmp_path / name
    with CaptureWriter(stem, FS, x.shape[1], layout, start_time_utc=START, **kw) as w:
        for a in range(0, x.shape[0], 3000):
            w.write(x[a : a + 3000])
    return stem, w


@pytest.fixture(scope="module")
def block12():
    ch = SubstationChannel(ChannelConfig(), Layout(1, 4), seed=2)
    return ch, ch.render(0, FS // 4)


@pytest.mark.parametrize("subtype,tol", [("PCM_24", 2.0**-23 / 0.25), ("FLOAT", 1e-6)])
def test_round_trip_wav_6_channels(tmp_path, subtype, tol):
    ch = SubstationChannel(ChannelConfig(), Layout(1, 2), seed=1)
    x = ch.render(0, 10000)
    stem, w = _write(
        tmp_path,
        "cap",
        x,
        ch.layout,
        subtype=subtype,
        scale=0.25,
        ct_polarity=ch.ct_polarity,
        meta_extra={"gla:scenario": "unit"},
    )
    assert w.container == "WAV" and w.audio_path.name == "cap.wav"
    f, meta = open_capture(stem, verify_sha256=True)
    with f:
        assert (f.format, f.subtype, f.channels, f.samplerate) == ("WAV", subtype, 6, FS)
        y = f.read(dtype="float64")
    np.testing.assert_allclose(y / meta.scale, x, atol=tol, rtol=0)
    assert meta.n_frames == 10000 and meta.fs_hz == FS and meta.grid_hz == 60.0
    assert meta.start_time_utc == datetime(2025, 3, 3, 14, tzinfo=UTC)
    assert meta.raw["global"]["core:datatype"] == {"PCM_24": "ri32_le", "FLOAT": "rf32_le"}[subtype]
    assert meta.raw["global"]["gla:scenario"] == "unit"
    assert meta.raw["annotations"] == []
    assert [c["phase"] for c in meta.channels] == ["A", "B", "C"] * 2
    assert [c["feeder"] for c in meta.channels] == [0, 0, 0, 1, 1, 1]
    assert [c["ct_polarity"] for c in meta.channels] == ch.ct_polarity.tolist()


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT"])
def test_more_than_8_channels_is_rf64(tmp_path, block12, subtype):
    ch, x = block12
    stem, w = _write(tmp_path, "big", x, ch.layout, subtype=subtype)
    assert w.container == "RF64"
    f, meta = open_capture(tmp_path / "big.sigmf-meta")  # a sidecar path works as well
    with f:
        assert f.format == "RF64" and f.channels == 12
        y = f.read(dtype="float64")
    np.testing.assert_allclose(y / 0.25, x, atol=2.0**-21, rtol=0)
    assert meta.format == "RF64" and meta.subtype == subtype


def test_container_rules(tmp_path, block12):
    ch, x = block12
    with pytest.raises(ValueError, match="FLAC holds at most 8 channels.*12"):
        CaptureWriter(tmp_path / "a", FS, 12, ch.layout, container="FLAC")
    with pytest.raises(ValueError, match="FLAC holds 16/24-bit"):
        CaptureWriter(tmp_path / "a", FS, 3, Layout(1, 1), subtype="FLOAT", container="FLAC")
    # a long capture of few channels would pass 4 GiB: RF64 chosen up front
    w = CaptureWriter(tmp_path / "a", FS, 3, Layout(1, 1), expected_frames=FS * 3600 * 10)
    assert w.container == "RF64"
    # forced containers
    stem, w = _write(tmp_path, "w64", x[:, :3], Layout(1, 1), container="W64")
    f, meta = open_capture(stem)
    f.close()
    assert meta.format == "W64" and w.audio_path.suffix == ".w64"
    stem, w = _write(tmp_path, "fl", x[:, :3], Layout(1, 1), container="FLAC")
    f, meta = open_capture(stem)
    f.close()
    assert meta.format == "FLAC"


def test_clipping_is_counted(tmp_path):
    x = np.zeros((100, 3))
    x[10, 1] = 5.0  # 5 * 0.25 > 1
    x[20, 2] = -8.0
    stem, w = _write(tmp_path, "clip", x, Layout(1, 1), scale=0.25)
    meta = read_capture_meta(stem)
    assert meta.raw["global"]["gla:clipped_samples"] == 2
    with sf.SoundFile(str(meta.audio_path)) as f:
        y = f.read()
    assert y[10, 1] == pytest.approx(1.0, abs=1e-6) and y[20, 2] == -1.0


def test_writer_rejects_bad_blocks(tmp_path):
    w = CaptureWriter(tmp_path / "b", FS, 3, Layout(1, 1))
    with w:
        with pytest.raises(ValueError, match="shape"):
            w.write(np.zeros((10, 4)))
        with pytest.raises(ValueError, match="NaN"):
            w.write(np.full((10, 3), np.nan))
    with pytest.raises(ValueError, match="layout"):
        CaptureWriter(tmp_path / "c", FS, 6, Layout(1, 1))
    # an exception inside the with block leaves no sidecar
    with pytest.raises(RuntimeError):
        with CaptureWriter(tmp_path / "d", FS, 3, Layout(1, 1)) as w:
            w.write(np.zeros((10, 3)))
            raise RuntimeError("boom")
    assert not (tmp_path / "d.sigmf-meta").exists()


# ------------------------------------------------------------------------------ sidecar
@pytest.fixture
def good(tmp_path):
    x = np.random.default_rng(0).normal(0, 0.5, (2000, 3))
    stem, _ = _write(tmp_path, "g", x, Layout(1, 1))
    return stem, json.loads((tmp_path / "g.sigmf-meta").read_text())


def _corrupt(stem, meta, edit):
    m = json.loads(json.dumps(meta))
    edit(m)
    stem.with_name(stem.name + ".sigmf-meta").write_text(json.dumps(m))


@pytest.mark.parametrize(
    "edit,msg",
    [
        (lambda m: m["global"].pop("core:sample_rate"), r"global\.core:sample_rate: missing"),
        (lambda m: m["global"].update({"core:num_channels": 0}), r"global\.core:num_channels: must be an integer >= 1"),
        (lambda m: m["global"].update({"gla:scale": "big"}), r"global\.gla:scale"),
        (lambda m: m["global"].update({"gla:grid_hz": 55}), r"global\.gla:grid_hz: must be 50 or 60"),
        (lambda m: m["global"].update({"core:datatype": "rf32_le"}), r"global\.core:datatype: .*does not match"),
        (lambda m: m["global"].update({"gla:sha256": "xyz"}), r"global\.gla:sha256: must be 64"),
        (lambda m: m.pop("captures"), r"captures: missing"),
        (lambda m: m["captures"][0].update({"core:datetime": "yesterday"}), r"captures\[0\]\.core:datetime"),
        (lambda m: m["global"]["gla:channels"].pop(), r"global\.gla:channels: must list 3 channels"),
        (lambda m: m["global"]["gla:channels"][1].update({"phase": "D"}), r"global\.gla:channels\[1\]\.phase"),
        (
            lambda m: m["global"]["gla:channels"][2].update({"ct_polarity": 0}),
            r"global\.gla:channels\[2\]\.ct_polarity",
        ),
    ],
)
def test_sidecar_validation_names_the_key(good, edit, msg):
    stem, meta = good
    _corrupt(stem, meta, edit)
    with pytest.raises(ValueError, match=r"g\.sigmf-meta: " + msg):
        read_capture_meta(stem)


def test_sidecar_not_json_or_missing(good, tmp_path):
    stem, _ = good
    (tmp_path / "g.sigmf-meta").write_text("{not json")
    with pytest.raises(ValueError, match=r"g\.sigmf-meta: not JSON \(line 1, column 2"):
        read_capture_meta(stem)
    with pytest.raises(ValueError, match="sidecar not found"):
        read_capture_meta(tmp_path / "nothing")


def test_audio_disagreeing_with_sidecar(good):
    stem, meta = good
    _corrupt(stem, meta, lambda m: m["global"].update({"core:sample_rate": 44100.0}))
    with pytest.raises(ValueError, match=r"g\.wav: sample rate 48000 Hz, the sidecar says 44100"):
        open_capture(stem)
    _corrupt(
        stem,
        meta,
        lambda m: (
            m["global"].update({"core:num_channels": 4}),
            m["global"]["gla:channels"].append(dict(m["global"]["gla:channels"][0], index=3)),
        ),
    )
    with pytest.raises(ValueError, match=r"g\.wav: has 3 channels, the sidecar says 4"):
        open_capture(stem)


def test_truncated_and_corrupt_audio(good, tmp_path):
    stem, _ = good
    wav = tmp_path / "g.wav"
    data = wav.read_bytes()
    wav.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"g\.wav: truncated: \d+ frames, the sidecar says 2000"):
        open_capture(stem)
    with pytest.raises(ValueError, match="SHA-256"):
        open_capture(stem, verify_sha256=True)
    wav.write_bytes(data[:30])
    with pytest.raises(ValueError, match=r"g\.wav: cannot open the audio file"):
        open_capture(stem)
    wav.unlink()
    with pytest.raises(ValueError, match=r"g\.wav: audio file .* not found"):
        open_capture(stem)


# -------------------------------------------------------------------------- ground truth
def test_truth_round_trip(tmp_path):
    tx = [
        {
            "hub": np.int64(3),
            "start_sample": 14400,
            "snr_db": np.float32(12.5),
            "gains": np.array([1.0, -0.1]),
            "at": datetime(2025, 3, 3, 14, tzinfo=UTC),
        }
    ]
    p = write_truth(tmp_path / "cap", tx, {"scenario": "demo_small", "seed": 7})
    assert p.name == "cap.truth.json"
    t = read_truth(tmp_path / "cap.wav")
    assert t["capture"] == {"stem": "cap", "scenario": "demo_small", "seed": 7}
    assert t["transmissions"] == [
        {"hub": 3, "start_sample": 14400, "snr_db": 12.5, "gains": [1.0, -0.1], "at": "2025-03-03T14:00:00.000000Z"}
    ]
    with pytest.raises(ValueError, match=r"transmissions\[0\]\.snr_db: non-finite"):
        write_truth(tmp_path / "bad", [{"snr_db": float("nan")}], {})
    (tmp_path / "x.truth.json").write_text('{"capture": {}}')
    with pytest.raises(ValueError, match="transmissions: missing"):
        read_truth(tmp_path / "x")


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32"])
def test_writer_quantises_as_libsndfile_does(tmp_path, subtype):
    """The writer hands libsndfile int32 values it rounded itself: the file holds the bytes that
    writing the scaled doubles would have made (clipped samples included)."""
    r = np.random.default_rng(3)
    x = np.concatenate([r.uniform(-4.5, 4.5, (5000, 3)), r.normal(0.0, 1e-6, (5000, 3))])
    with CaptureWriter(tmp_path / "w", 48000, 3, [(0, 0, p) for p in "ABC"], subtype=subtype) as w:
        w.write(x)
    top = 1.0 - 2.0 ** (1 - 8 * {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4}[subtype])
    sf.write(str(tmp_path / "ref.wav"), np.clip(x * 0.25, -1.0, top), 48000, subtype=subtype, format="WAV")
    assert w.clipped == np.count_nonzero((x * 0.25 > top) | (x * 0.25 < -1.0)) > 0
    assert (tmp_path / "w.wav").read_bytes() == (tmp_path / "ref.wav").read_bytes()


@pytest.mark.parametrize(
    "n_inputs,subtype,frames,expected",
    [
        (12, "PCM_24", 7001, 7001),  # the writer packs and hashes the bytes itself
        (36, "PCM_16", 5000, 5000),
        (1, "PCM_24", 3001, 3001),  # odd data length: a pad byte
        (9, "PCM_24", 4000, 6000),  # fewer frames than announced: header rewritten, file re-read
    ],
)
def test_rf64_bytes_are_libsndfiles(tmp_path, n_inputs, subtype, frames, expected):
    """The RF64 16/24-bit files the writer makes itself are byte for byte what libsndfile writes
    for the same samples (clipped ones included), and the sidecar's SHA-256 is the file's."""
    rng = np.random.default_rng(n_inputs)
    x = rng.normal(0.0, 1.5, (frames, n_inputs))  # scale 0.25: a few samples clip
    x[::97, 0] = 4.0 + 1.0 / 3.0
    x[1::89, -1] = -4.0 - 1.0 / 7.0
    stem = tmp_path / "own"
    with CaptureWriter(
        stem, FS, n_inputs, [(0, 0, "A")] * n_inputs, subtype=subtype, container="RF64", expected_frames=expected
    ) as w:
        for a in range(0, frames, 3000):
            w.write(x[a : a + 3000])
    assert w.clipped > 0
    bps = 3 if subtype == "PCM_24" else 2
    top = 1.0 - 2.0 ** (1 - 8 * bps)
    ref = tmp_path / "ref.wav"
    with sf.SoundFile(str(ref), "w", samplerate=FS, channels=n_inputs, subtype=subtype, format="RF64") as f:
        f.write(np.clip(x * 0.25, -1.0, top))
    assert w.audio_path.read_bytes() == ref.read_bytes()
    f, meta = open_capture(stem)  # checks gla:sha256 against the file
    f.close()
    assert meta.n_frames == frames
