"""`gla replay CAPTURE --post URL`: a capture into a real local platform (a `gla platform` process
on SQLite) in one step, and every way it used to deliver nothing while exiting 0.

- the one step: the receiver registered with the admin credential the platform wrote beside its
  database, the simulated hubs and keys imported (``--import-truth``), every bundle delivered and
  decoded, and on the platform where the dashboard reads it (``GET /api/v1/bundles``);
- no credential at all: refused before decoding (status 2);
- a token of another receiver: nothing delivered, status 1, the platform's reason in one line;
- no hub keys: every bundle refused for ``unknown_hub``, status 1; the same command with
  ``--import-truth`` then resumes the folder without decoding again, and the platform, which
  decoded them again when the keys arrived, reports them accepted;
- a reused ``--out`` folder: resumed for the same replay, refused for another one or for files no
  replay recorded.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from receiver.cli import main
from receiver.replay_post import summary
from receiver.spool import Spool

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "captures" / "demo_small"
N_BUNDLES = 4  # what the committed capture decodes to (all four sent messages)
SUMMARY = re.compile(r"^posted to \S+: delivered \d+.*, refused \d+.*, left undelivered \d+$", re.M)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPlatform:
    """`gla platform` in a child process, SQLite in ``folder``, as a newcomer starts it."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.port = folder, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GLA_")}
        env["PYTHONPATH"] = str(ROOT)
        self.log = open(folder / "platform.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "receiver.cli", "platform", "--port", str(self.port), "--log-level", "warning"],
            cwd=folder,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        end = time.monotonic() + 90
        while time.monotonic() < end:
            assert self.proc.poll() is None, (folder / "platform.log").read_text()
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError("the platform did not come up in 90 s")
        self.admin_file = folder / "admin-token"  # written beside ./gla-platform.db
        self.admin = {"Authorization": f"Bearer {self.admin_file.read_text().strip()}"}

    def get(self, path: str, **params) -> list | dict:
        r = httpx.get(self.url + path, params=params, headers=self.admin, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def platform_proc(tmp_path):
    pf = LocalPlatform(tmp_path / "platform")
    yield pf
    pf.stop()


def _replay(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["replay", str(CAPTURE), "--no-progress", "--show", "0", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _summary(out: str) -> str:
    lines = SUMMARY.findall(out)
    assert len(lines) == 1, out
    return lines[0].split(": ", 1)[1]


def _errors(err: str) -> list[str]:
    assert "Traceback" not in err
    return [ln for ln in err.splitlines() if ln.startswith("gla replay: error: ")]


def test_one_step_into_a_fresh_platform_and_onto_the_dashboard(platform_proc, tmp_path, capsys, monkeypatch):
    pf = platform_proc
    monkeypatch.chdir(pf.folder)  # where `gla platform` ran: ./admin-token is found without an option
    out_dir = tmp_path / "replay"
    rc, out, err = _replay(capsys, "--post", pf.url, "--import-truth", "--out", str(out_dir))
    assert rc == 0, err
    assert _summary(out) == f"delivered {N_BUNDLES} (accepted {N_BUNDLES}), refused 0, left undelivered 0"
    assert "imported " in out and "hubs_created 12" in out
    # what the dashboard reads (dashboard.js: api/v1/bundles, api/v1/gridmap)
    rows = pf.get("/api/v1/bundles", limit=100)
    assert len(rows) == N_BUNDLES and {r["status"] for r in rows} == {"accepted"}
    assert {r["receiver_id"] for r in rows} == {"rx-replay"}
    assert len(pf.get("/api/v1/messages")) == N_BUNDLES
    assert pf.get("/api/v1/gridmap")  # the imported grid model
    assert [r["receiver_id"] for r in pf.get("/api/v1/receivers")] == ["rx-replay"]

    # the same command again: resumed, nothing decoded or written twice, the same one line
    rc, out, err = _replay(capsys, "--post", pf.url, "--out", str(out_dir))
    assert rc == 0, err
    assert "was decoded there before" in out and "replayed" not in out.split("\n")[0]
    assert _summary(out) == f"delivered {N_BUNDLES} (accepted {N_BUNDLES}), refused 0, left undelivered 0"
    (archive,) = (out_dir / "bundles").glob("*.jsonl")
    assert len(archive.read_text().splitlines()) == N_BUNDLES
    assert len(pf.get("/api/v1/bundles", limit=100)) == N_BUNDLES


def test_without_hub_keys_refused_then_decoded_once_the_keys_arrive(platform_proc, tmp_path, capsys):
    pf = platform_proc
    out_dir = tmp_path / "replay"
    args = ["--post", pf.url, "--admin-token-file", str(pf.admin_file), "--out", str(out_dir)]
    rc, out, err = _replay(capsys, *args)
    assert rc == 1
    assert _summary(out) == f"delivered 0, refused {N_BUNDLES} (unknown_hub {N_BUNDLES}), left undelivered 0"
    (line,) = _errors(err)
    assert "no key for hub(s)" in line and "--import-truth" in line

    rc, out, err = _replay(capsys, *args, "--import-truth")
    assert rc == 0, err
    assert "decoded_again 4" in out and "was decoded there before" in out  # not decoded again here
    assert _summary(out) == f"delivered {N_BUNDLES} (accepted {N_BUNDLES}), refused 0, left undelivered 0"
    assert {r["status"] for r in pf.get("/api/v1/bundles")} == {"accepted"}
    assert pf.get("/api/v1/rejections") == []


def test_a_token_of_another_receiver_delivers_nothing_and_says_why(platform_proc, tmp_path, capsys):
    pf = platform_proc
    r = httpx.post(
        pf.url + "/api/v1/receivers", json={"receiver_id": "rx-1", "substation_id": "sub-1"}, headers=pf.admin
    )
    token = tmp_path / "rx-1.token"
    token.write_text(r.json()["token"])
    out_dir = tmp_path / "replay"
    rc, out, err = _replay(capsys, "--post", pf.url, "--token-file", str(token), "--out", str(out_dir))
    assert rc == 1
    assert _summary(out) == f"delivered 0, refused 0, left undelivered {N_BUNDLES}"
    (line,) = _errors(err)
    assert "this token belongs to receiver rx-1" in line and "--receiver-id" in line
    assert str(out_dir / "spool.sqlite") in line
    assert pf.get("/api/v1/bundles") == []

    # fixed by naming that receiver: a new replay, so a new folder (the old one says why it is not reused)
    rc, out, err = _replay(
        capsys, "--post", pf.url, "--token-file", str(token), "--receiver-id", "rx-1", "--out", str(out_dir)
    )
    assert rc == 2
    (line,) = _errors(err)
    assert "holds another replay (receiver_id 'rx-replay' (now 'rx-1'))" in line


def test_no_credential_is_refused_before_decoding(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./admin-token here
    for var in ("GLA_ADMIN_TOKEN", "GLA_ADMIN_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    rc, out, err = _replay(capsys, "--post", "http://127.0.0.1:9")
    assert rc == 2 and out == ""
    (line,) = _errors(err)
    assert "no admin credential to register the receiver" in line and "--admin-token-file" in line
    assert not (tmp_path / "out").exists()


def test_an_unreachable_platform_is_one_line_and_status_1(tmp_path, capsys):
    admin = tmp_path / "admin-token"
    admin.write_text("gla_admin_x\n")
    rc, out, err = _replay(capsys, "--post", f"http://127.0.0.1:{_free_port()}", "--admin-token-file", str(admin))
    assert rc == 1 and out == ""
    (line,) = _errors(err)
    assert "cannot reach the platform at http://127.0.0.1:" in line


def test_a_folder_of_files_no_replay_recorded_is_refused(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    Spool(tmp_path / "o" / "spool.sqlite").close()
    rc, out, err = _replay(capsys, "--out", str(tmp_path / "o"))
    assert rc == 2 and out == ""
    (line,) = _errors(err)
    assert "holds spool.sqlite but no replay.json" in line


def test_summary_counts_every_answer_the_spool_recorded(tmp_path):
    sp = Spool(tmp_path / "s.sqlite")
    for i in range(6):
        sp.put({"bundle_id": f"b{i}", "x": i})
    verdict = {"replayed": False, "status": "accepted"}
    sp.mark_delivered(["b0"], 201, response={"b0": json.dumps(verdict)})
    sp.mark_delivered(["b1"], 201, response={"b1": json.dumps({**verdict, "status": "duplicate"})})
    refused = {"status": "rejected", "reason": "unknown_hub", "hub_id": 7}
    sp.mark_delivered(["b2"], 201, response={"b2": json.dumps(refused)})
    sp.mark_delivered(["b3"], 409, response={"b3": "another body"})
    sp.mark_rejected(["b4"], 422, response={"b4": "bad field"})
    o = summary(sp)
    sp.close()
    assert o.line("U") == (
        "posted to U: delivered 2 (accepted 1, duplicate 1), refused 3 (conflict 1, schema 1, unknown_hub 1), "
        "left undelivered 1"
    )
    assert o.unknown_hubs == {7} and not o.ok


def test_a_replay_into_its_own_folder_again_replaces_its_archive(tmp_path, capsys):
    out_dir = tmp_path / "o"
    for _ in range(2):
        rc, out, err = _replay(capsys, "--out", str(out_dir), "--workers", "0")
        assert rc == 0, err
    (archive,) = (out_dir / "bundles").glob("*.jsonl")
    assert len(archive.read_text().splitlines()) == N_BUNDLES  # not twice
    assert json.loads((out_dir / "replay.json").read_text())["decoded"] is True
