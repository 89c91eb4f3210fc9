"""SigMF conformance: the capture sidecars, real SigMF recordings, replay's annotations.

The reference is the ``sigmf`` package (the project's dev dependency): its validator checks the
sidecars the simulator writes and the committed demo capture's; recordings written with its own
API (``SigMFFile``) are replayed by ``gla replay`` to the bundles of the WAV capture they were made
from; the annotated sidecar replay writes validates too.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import sigmf  # the test extra: sigmf>=1.2, the reference the sidecars are checked against
import soundfile as sf
from sigmf import SigMFFile
from sigmf.validate import validate

from receiver.contracts.capture import CaptureError, check_sha256, open_capture, read_capture_meta
from receiver.contracts.sigmf_layout import is_old_layout, upgrade_sidecar

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "captures" / "demo_small"
START = "2025-03-03T14:00:00.000000Z"


def _valid(meta: dict) -> None:
    """sigmf's validator, with its undeclared-extension warning made an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate(meta)


def _demo_meta() -> dict:
    return json.loads(DEMO.with_suffix(".sigmf-meta").read_text())


def _old_layout(meta: dict) -> dict:
    """The layout sidecars had before SigMF 1.2 conformance (what users' captures still have)."""
    old = json.loads(json.dumps(meta))
    g = old["global"]
    old["gla:channels"] = g.pop("gla:channels")
    g.pop("core:extensions")
    g["core:version"] = "1.0.0"
    if g["gla:subtype"] == "PCM_24":
        g["core:datatype"] = "ri24_le"
    return old


@pytest.fixture
def gla():
    """``receiver.cli.main`` in-process; the logging handler its first call installs (bound to
    this test's captured stderr) is removed afterwards, so later tests' logs do not hit a closed
    stream."""
    from receiver.cli import main

    root = logging.getLogger()
    before = list(root.handlers)
    yield main
    for h in root.handlers[:]:
        if h not in before:
            root.removeHandler(h)


def test_the_demo_sidecar_validates():
    meta = _demo_meta()
    assert not is_old_layout(meta)
    _valid(meta)
    ext = meta["global"]["core:extensions"]
    assert ext == [{"name": "gla", "version": "1.0.0", "optional": False}]


def test_a_simulated_sidecar_validates(tmp_path):
    from gridsim.capture import CaptureWriter

    for subtype in ("PCM_16", "PCM_24", "FLOAT"):
        stem = tmp_path / subtype
        layout = [(0, 0, "A"), (0, 0, "B"), (0, 0, "C")]
        with CaptureWriter(stem, 48000, 3, layout, subtype=subtype, start_time_utc=START) as w:
            w.write(np.zeros((100, 3)))
        _valid(json.loads(stem.with_suffix(".sigmf-meta").read_text()))


def test_an_old_layout_sidecar_is_read_and_upgraded(tmp_path, gla):
    meta = _demo_meta()
    old = _old_layout(meta)
    with pytest.raises(Exception, match="ri24_le"):
        _valid(old)  # what the issue found: the reference validator refuses it
    shutil.copy(DEMO.with_suffix(".wav"), tmp_path / "demo_small.wav")
    (tmp_path / "demo_small.sigmf-meta").write_text(json.dumps(old))
    m = read_capture_meta(tmp_path / "demo_small")
    assert m.channels == meta["global"]["gla:channels"] and m.subtype == "PCM_24" and m.scale == 0.25
    assert upgrade_sidecar(old) == meta
    assert gla(["capture", "upgrade", str(tmp_path / "demo_small")]) == 0
    assert json.loads((tmp_path / "demo_small.sigmf-meta").read_text()) == meta
    assert check_sha256(read_capture_meta(tmp_path / "demo_small")) == meta["global"]["gla:sha256"]


def _recording(tmp_path: Path, name: str, datatype: str, *, gla: bool, seconds: float | None = None) -> Path:
    """demo_small's samples as a SigMF recording written by sigmf's own API."""
    meta = _demo_meta()["global"]
    x, fs = sf.read(
        str(DEMO.with_suffix(".wav")), dtype="float64", frames=-1 if seconds is None else int(seconds * 48000)
    )
    kinds = {"rf32_le": "<f4", "rf64_le": "<f8", "ri32_le": "<i4", "ri16_be": ">i2", "ri8": "i1"}
    kinds.update({"ru8": "u1", "ru16_le": "<u2", "ru32_be": ">u4"})
    dt = np.dtype(kinds[datatype])
    if dt.kind in "iu":  # full scale of the integer type, as libsndfile normalises it
        x = np.round(x * 2.0 ** (8 * dt.itemsize - 1))
    if dt.kind == "u":  # offset binary
        x = x + 2.0 ** (8 * dt.itemsize - 1)
    data = tmp_path / f"{name}.sigmf-data"
    x.astype(dt).tofile(data)
    info = {
        sigmf.DATATYPE_KEY: datatype,
        sigmf.SAMPLE_RATE_KEY: fs,
        sigmf.NUM_CHANNELS_KEY: x.shape[1],
        sigmf.DESCRIPTION_KEY: "demo_small as a SigMF recording",
    }
    if gla:
        info[sigmf.EXTENSIONS_KEY] = [{"name": "gla", "version": "1.0.0", "optional": True}]
        info.update({k: meta[k] for k in ("gla:scale", "gla:grid_hz", "gla:channels")})
    rec = SigMFFile(data_file=str(data), global_info=info)
    rec.add_capture(0, metadata={sigmf.DATETIME_KEY: START})
    rec.tofile(str(tmp_path / f"{name}.sigmf-meta"))
    return tmp_path / name


@pytest.mark.parametrize("datatype", ["rf32_le", "rf64_le", "ri32_le", "ri16_be", "ri8", "ru8", "ru16_le", "ru32_be"])
def test_a_sigmf_recording_reads_as_the_wav_does(tmp_path, datatype):
    stem = _recording(tmp_path, "rec", datatype, gla=True, seconds=0.5)
    f, m = open_capture(stem, verify_sha256=True)  # sigmf's core:sha512 is checked
    with f:
        y = f.read(dtype="float64")
    x, _ = sf.read(str(DEMO.with_suffix(".wav")), dtype="float64", frames=y.shape[0])
    assert m.format == "RAW" and m.n_frames == 24000 and m.n_channels == 12
    tol = {"ri16_be": 2.0**-15, "ru16_le": 2.0**-15, "ri8": 2.0**-7, "ru8": 2.0**-7}.get(datatype, 0.0)
    assert np.max(np.abs(y - x)) <= tol


def test_a_recording_without_the_extension_gets_the_defaults(tmp_path):
    stem = _recording(tmp_path, "plain", "rf32_le", gla=False, seconds=0.1)
    m = read_capture_meta(stem)
    assert (m.scale, m.grid_hz, m.sha256) == (1.0, 60.0, None) and m.sha512
    assert [(c["bus"], c["feeder"], c["phase"], c["ct_polarity"]) for c in m.channels[:4]] == [
        (0, 0, "A", 1),
        (0, 0, "B", 1),
        (0, 0, "C", 1),
        (0, 1, "A", 1),
    ]


@pytest.mark.parametrize(
    "datatype,msg",
    [
        ("cf32_le", r"'cf32_le' is complex \(I/Q\)"),
        ("ri32", r"needs _le or _be"),
        ("ri8_le", r"8-bit types take no endianness"),
        ("ri24_le", r"not a SigMF datatype"),
        ("rf32", r"needs _le or _be"),
    ],
)
def test_a_recording_of_an_unreadable_datatype_is_one_line(tmp_path, datatype, msg):
    stem = _recording(tmp_path, "r", "rf32_le", gla=False, seconds=0.01)
    meta = json.loads(stem.with_suffix(".sigmf-meta").read_text())
    meta["global"]["core:datatype"] = datatype
    stem.with_suffix(".sigmf-meta").write_text(json.dumps(meta))
    with pytest.raises(CaptureError, match=r"r\.sigmf-meta: global\.core:datatype: .*" + msg) as e:
        read_capture_meta(stem)
    assert "\n" not in str(e.value)


def test_a_recording_without_its_data_file_or_time_is_one_line(tmp_path):
    stem = _recording(tmp_path, "r", "rf32_le", gla=False, seconds=0.01)
    meta = json.loads(stem.with_suffix(".sigmf-meta").read_text())
    del meta["captures"][0]["core:datetime"]
    stem.with_suffix(".sigmf-meta").write_text(json.dumps(meta))
    with pytest.raises(CaptureError, match=r"captures\[0\]\.core:datetime: missing"):
        read_capture_meta(stem)
    stem.with_suffix(".sigmf-data").unlink()
    with pytest.raises(CaptureError, match=r"r\.sigmf-data: the recording's data file: no such file"):
        read_capture_meta(stem)


def _bundles(res) -> list[dict]:
    return [b.model_dump(mode="json") for b in res.bundles]


@pytest.fixture(scope="module")
def wav_replay(tmp_path_factory):
    """demo_small's WAV capture replayed in-process, its annotated sidecar in ``out_dir``."""
    from receiver.replay import replay

    out = tmp_path_factory.mktemp("wav")
    return replay(DEMO, workers=0, progress=False, out_dir=out), out


def test_gla_replay_of_a_sigmf_recording_makes_the_bundles_of_the_wav(tmp_path, wav_replay):
    """rf32_le holds every 24-bit sample exactly: the same bundles, key for key; the annotated
    sidecars replay writes validate."""
    from receiver.replay import replay

    wav, wav_out = wav_replay
    stem = _recording(tmp_path, "demo_small", "rf32_le", gla=True)
    rec = replay(stem, workers=0, progress=False, out_dir=tmp_path / "rec")
    assert len(wav.bundles) >= 4
    assert _bundles(rec) == _bundles(wav)
    for folder in (wav_out, tmp_path / "rec"):
        ann = json.loads((folder / "demo_small.annotated.sigmf-meta").read_text())
        assert len(ann["annotations"]) == len(wav.bundles)
        _valid(ann)


def test_gla_replay_of_a_plain_sigmf_recording(tmp_path, gla, capsys, wav_replay):
    """No gla extension (scale 1, 60 Hz, the default channel map): `gla replay` decodes the
    messages of the WAV capture; `--verify` checks sigmf's core:sha512; the annotated copy declares
    the extension its annotations use."""
    stem = _recording(tmp_path, "plain", "rf32_le", gla=False)
    argv = ["replay", str(stem), "--out", str(tmp_path / "out"), "--workers", "0", "--no-progress", "--verify"]
    assert gla(argv) == 0
    assert "plain.sigmf-data: verified, SHA-512" in capsys.readouterr().out
    ann = json.loads((tmp_path / "out" / "plain.annotated.sigmf-meta").read_text())
    _valid(ann)
    assert ann["global"]["core:metadata_only"] is True
    assert {"name": "gla", "version": "1.0.0", "optional": True} in ann["global"]["core:extensions"]
    wav, _ = wav_replay
    got = [(a["gla:bundle_id"], a["gla:code"]) for a in ann["annotations"]]
    assert sorted(got) == sorted((b.bundle_id, b.code) for b in wav.bundles)


def test_gla_capture_export_writes_a_recording_sigmf_reads_and_replay_decodes_alike(tmp_path, gla, wav_replay):
    """`gla capture export`: a conforming rf32_le recording that sigmf's own reader opens and
    checks (schema, core:sha512), holding the WAV's samples exactly, replayed to the same bundles."""
    from sigmf.sigmffile import fromfile

    from receiver.replay import replay

    assert gla(["capture", "export", str(DEMO), "--out", str(tmp_path)]) == 0
    rec = fromfile(str(tmp_path / "demo_small.sigmf-meta"))  # maps the data, checks its checksum
    rec.validate()
    x, _ = sf.read(str(DEMO.with_suffix(".wav")), dtype="float64")
    assert np.array_equal(rec.read_samples().reshape(x.shape).astype(np.float64), x)
    got = replay(tmp_path / "demo_small", workers=0, progress=False)
    assert _bundles(got) == _bundles(wav_replay[0])
    assert got.score == wav_replay[0].score  # the truth file came along
    assert gla(["capture", "export", str(DEMO), "--out", str(tmp_path)]) == 2  # never overwrites
