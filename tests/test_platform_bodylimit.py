"""Request bodies have a size limit, enforced before the body is read: 413 for a declared
``Content-Length`` above it (nothing read) and for a chunked body as soon as it passes it; a
100 MB body from a valid receiver does not grow the server's memory by more than the limit."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from platform_api.testing import bundles_for, fleet, report, slot_time

T0 = slot_time(448_826_400)
MB = 1024 * 1024


def test_declared_and_streamed_bodies_above_the_limit_are_413(platform_make):
    p = platform_make(max_body_bytes=64 * 1024)
    h = fleet(1, meters=(1, 1), seed=3)[0]
    b = bundles_for(h, report(h, T0, 1), at=T0)[0]
    assert p.post(b).status_code in (201, 403, 422)  # below the limit: an ordinary answer
    big = json.dumps({"bundles": [b] * 200}).encode()  # ~400 KB
    r = p.client.post("/api/v1/bundles/batch", content=big, headers={**p.auth, "Content-Type": "application/json"})
    assert r.status_code == 413 and "GLA_MAX_BODY_BYTES" in r.json()["detail"]

    def chunks():
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    # chunked (no Content-Length): counted as it arrives
    r = p.client.post("/api/v1/bundles/batch", content=chunks(), headers={**p.auth, "Content-Type": "application/json"})
    assert r.status_code == 413
    # every route, operator routes too (admin credential, CSV bodies)
    r = p.client.post("/api/v1/ami/readings", content=b"meter_id,timestamp,v_rms,i_rms,pf\n" * 4000, headers=p.admin)
    assert r.status_code == 413


def _peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _send_until_answered(port: int, head: bytes, body_chunks, timeout_s: float = 60.0) -> tuple[bytes, int]:
    """Send ``head`` and then the chunks until the server answers; returns (answer, bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(head)
        answer = b""
        try:
            for chunk in body_chunks:
                if select.select([s], [], [], 0)[0]:
                    break
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and b"\r\n\r\n" not in answer:
            try:
                part = s.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            answer += part
    return answer, sent


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS read from /proc")
def test_a_100_mb_body_is_refused_without_holding_it(tmp_path, platform_sqlite_template):
    """A real server (uvicorn, default settings) and a valid receiver's token: a declared 100 MB
    body is answered 413 with nothing read; a chunked 100 MB batch is answered 413 once it passes
    the limit, and the server's peak RSS grows by less than the limit plus a margin (it would grow
    by several hundred MB reading, joining and parsing the whole body)."""
    import shutil

    db = tmp_path / "p.db"
    shutil.copy(platform_sqlite_template, db)
    token = "body-limit-token-0123456789"
    rx = tmp_path / "receivers.json"
    rx.write_text(json.dumps([{"receiver_id": "rx-1", "substation_id": "sub-1", "token": token}]))
    port = _free_port()
    env = {
        **os.environ,
        "GLA_DATABASE_URL": f"sqlite:///{db}",
        "GLA_RECEIVERS_FILE": str(rx),
        "GLA_BACKGROUND": "0",
        "GLA_ADMIN_TOKEN": "admin-token-0123456789abcdef",
    }
    env.pop("GLA_MAX_BODY_BYTES", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "platform_api", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        h = fleet(1, meters=(1, 1), seed=4)[0]
        b = bundles_for(h, report(h, T0, 1), at=T0)[0]
        r = httpx.post(url + "/api/v1/bundles/batch", json={"bundles": [b]}, headers=auth, timeout=30)
        assert r.status_code == 200, r.text  # warmed up: the ordinary batch path has run once
        before = _peak_rss_bytes(server.pid)

        one = json.dumps(b).encode()
        piece = b",".join([one] * (MB // len(one)))  # ~1 MB of bundles
        n = 100

        def body():
            yield b'{"bundles": [' + piece
            for _ in range(n - 1):
                yield b"," + piece
            yield b"]}"

        head = (
            f"POST /api/v1/bundles/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {n * len(piece) + n + 14}\r\n\r\n"
        ).encode()
        answer, sent = _send_until_answered(port, head, body())
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 8 * MB  # answered on the header alone (the socket buffers take a few MB)

        def chunked():
            for c in body():
                yield f"{len(c):x}\r\n".encode() + c + b"\r\n"
            yield b"0\r\n\r\n"

        head = (
            f"POST /api/v1/bundles/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        answer, sent = _send_until_answered(port, head, chunked())
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 90 * MB  # not read to the end
        growth = _peak_rss_bytes(server.pid) - before
        print(f"chunked: {sent / MB:.0f} MB sent before the 413; peak RSS growth {growth / MB:.0f} MB")
        assert growth < 64 * MB + 128 * MB, f"peak RSS grew by {growth / MB:.0f} MB"
        # and the server still answers
        assert httpx.post(url + "/api/v1/bundles/batch", json={"bundles": [b]}, headers=auth).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_bad_setting_is_one_line_naming_the_variable():
    from platform_api.core.config import Settings, SettingsError

    with pytest.raises(SettingsError, match=r"^GLA_MAX_BODY_BYTES='abc': .*valid integer") as e:
        Settings.from_env({"GLA_MAX_BODY_BYTES": "abc"})
    assert "\n" not in str(e.value)
