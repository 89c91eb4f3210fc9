"""The README's main job: simulate -> receive -> Computing Platform -> what changed in the grid.

1. simulate the demo substation (one bus, four feeders, 12 CT inputs, 200 Remote Hubs) in which a
   tap starts stealing, a hub moves phase, a switch moves a lateral to another feeder and a feeder
   section goes dark and comes back;
2. start the Computing Platform (uvicorn, SQLite) and load the utility's model of the grid (the
   simulator's hubs and keys, as at the start of the capture);
3. replay the capture through the receiver on both cores, posting every bundle as it is made
   (durable spool + deliverer, as in the service);
4. print what was decoded against what was sent, the feeder/phase accuracy, and the events the
   platform raised against those staged; optionally leave the platform and its dashboard up.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from receiver.replay import print_replay_summary, replay


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPlatform:
    """The Computing Platform in a child process on 127.0.0.1 (SQLite file in the demo folder)."""

    def __init__(
        self, folder: Path, port: int | None = None, reports_per_day: float = 216.0, missed_check_s: float = 2.0
    ) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = "gla_admin_" + secrets.token_urlsafe(16)
        db = folder / "platform.db"
        for f in folder.glob("platform.db*"):
            f.unlink()
        env = dict(
            os.environ,
            GLA_DATABASE_URL=f"sqlite:///{db}",
            GLA_ADMIN_TOKEN=self.admin,
            GLA_REPORTS_PER_DAY=str(reports_per_day),
            GLA_SUBSTATION_ID="sub-1",
            GLA_MISSED_CHECK_INTERVAL_S=str(missed_check_s),
        )
        self.log = open(folder / "platform.log", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "platform_api",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30.0, headers={"Authorization": f"Bearer {self.admin}"})
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the platform exited at start-up (see {folder / 'platform.log'})")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the platform did not come up within 60 s")

    def receiver_token(self, receiver_id: str, substation_id: str) -> str:
        r = self.client.post("/api/v1/receivers", json={"receiver_id": receiver_id, "substation_id": substation_id})
        r.raise_for_status()
        return r.json()["token"]

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


STAGED = {
    "move_phase": ("hub_phase_change", "hub_feeder_change", "hub_moved"),
    "switch_lateral": ("switch_state_change",),
    "outage": ("suspected_outage", "outage", "restoration"),
    "tap": ("theft_alert", "tan_anomaly", "theft"),
}


def run_demo(
    out: Path,
    *,
    scenario: str = "demo",
    duration_s: float | None = None,
    workers: int = 2,
    keep_up: bool = False,
    show: int = 15,
    progress: bool = True,
) -> int:
    from gridsim.simulate import print_summary, run_scenario
    from receiver.delivery import Deliverer
    from receiver.spool import Spool

    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    print(f"[1/4] simulating the {scenario} substation into {out}/ ...", flush=True)
    sim = run_scenario(scenario, out / "demo", duration_s=duration_s, progress=progress)
    print_summary(sim, limit=show)

    print("\n[2/4] starting the Computing Platform and importing the grid model ...", flush=True)
    pf = LocalPlatform(out)
    try:
        truth = json.loads(sim.truth_path.read_text())
        r = pf.client.post(
            "/api/v1/import/json",
            content=json.dumps({"capture": truth["capture"]}),
            headers={"Content-Type": "application/json"},
        )
        r.raise_for_status()
        print(f"      platform at {pf.url}, imported {r.json()}")
        token = pf.receiver_token("rx-demo", "sub-1")

        print(
            f"\n[3/4] replaying the capture through the receiver ({workers} worker processes), posting bundles ...",
            flush=True,
        )
        spool_path = out / "spool.sqlite"
        for f in out.glob("spool.sqlite*"):
            f.unlink()
        spool = Spool(spool_path)
        dl = Deliverer(spool, pf.url, token).start()
        res = replay(
            out / "demo",
            workers=workers,
            out_dir=out / "replay",
            receiver_id="rx-demo",
            substation_id="sub-1",
            progress=progress,
            on_bundle=spool.put,
        )
        dl.stop(timeout=60, drain_s=30)
        st = dl.stats()
        spool.close()
        print_replay_summary(res, limit=show)
        print(
            f"      delivered {st.get('delivered')} bundles to the platform ({st.get('replayed', 0)} replays), "
            f"{st.get('spool_depth', 0)} left in the spool"
        )

        print("\n[4/4] what the platform made of it ...", flush=True)
        pf.client.post("/api/v1/inference/check-missed", json={}).raise_for_status()
        events = pf.client.get("/api/v1/events", params={"limit": 500}).json()
        _print_events(events, sim.scenario.events)
        print(f"\ndone in {time.perf_counter() - t_all:.0f} s. Files: {out}/ (capture, truth, bundles, platform.db)")
        if keep_up:
            print(f"\nThe platform stays up: dashboard {pf.url}/  API docs {pf.url}/docs  (Ctrl-C to stop)")
            try:
                while pf.proc.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    finally:
        pf.stop()
    return 0


def _print_events(events: list[dict], staged) -> None:
    shown = [e for e in events if e.get("status") not in ("candidate", "superseded", "withdrawn")]
    print(f"events raised: {len(shown)}")
    print(f"  {'type':<24} {'status':<10} {'conf':>5}  title")
    for e in sorted(shown, key=lambda e: e.get("occurred_at") or "")[:40]:
        print(f"  {e['type']:<24} {e['status']:<10} {e['confidence']:5.2f}  {e['title'][:90]}")
    print("staged events and what answered them:")
    types = {e["type"] for e in shown}
    for ev in staged:
        want = STAGED.get(ev.kind, ())
        hit = sorted(t for t in types if any(w in t for w in want))
        d = ev.model_dump()
        kind = d.pop("kind")
        print(f"  {kind:<15} {d}  ->  {', '.join(hit) if hit else 'NOT SEEN'}")
