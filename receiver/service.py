"""`gla receive`: the Substation Receiver as a service.

    ZeroMQ (PULL/SUB, GLA or GNU Radio framing) -> pipeline (all inputs, all cores) -> grouper
      -> durable spool (SQLite WAL) -> deliverer (HTTP POST, retry with backoff) -> Computing Platform
      -> archive (JSONL per day, after the spool: receiver/sink.py)
    plus /healthz and /metrics (Prometheus text) on a small HTTP listener, JSON logs, and a clean
    shutdown on SIGTERM/SIGINT (stop receiving, flush the chains, spool what was found, stop).

The configuration is a TOML file (see ``deploy/receiver.example.toml``); every key is checked and
a bad one is reported with its path.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dsp.air import params as P
from receiver.archive import BundleArchive
from receiver.grouping import Grouper, InputInfo

log = logging.getLogger("gla.receiver")

STALE_S = 30.0  # /healthz answers 503 when no samples arrived for this long (or when degraded)


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReceiverSection(_M):
    id: str = Field(min_length=1, max_length=64)
    substation_id: str = Field(min_length=1, max_length=64)
    workers: int = Field(default=2, ge=0, le=64)
    data_dir: str = "./gla-receiver-data"
    spool_max_mb: float = Field(default=1024.0, gt=0, description="disk budget of the delivery spool")
    hold_max_bundles: int = Field(
        default=10_000,
        ge=0,
        description="bundles held in memory while the disk is full (beyond: dropped, counted, logged)",
    )


class InputChannel(_M):
    index: int = Field(ge=0)
    bus: int = Field(ge=0)
    feeder: int = Field(ge=0)
    phase: Literal["A", "B", "C"]


class InputSection(_M):
    endpoint: str
    pattern: Literal["pull", "sub"] = "pull"
    framing: Literal["gla", "gr"] = "gla"
    n_channels: int = Field(ge=1, le=1024)
    sample_rate_hz: float = 48000.0
    sample_type: Literal["float32", "int16", "int32", "float64"] = "float32"
    pass_tags: bool = False
    scale: float = Field(
        default=1.0,
        gt=0,
        description="GNU Radio framing only: physical units per sample unit (GLA frames carry their own full scale)",
    )
    channels: list[InputChannel]


class PlanSection(_M):
    grid_hz: Literal[50, 60] = 60
    transformer_cutoff_hz: float = 3600.0


class PlatformSection(_M):
    url: str | None = None
    token_file: str | None = None
    token: str | None = None


class HttpSection(_M):
    listen: str = "127.0.0.1:9100"


class ReceiverConfig(_M):
    receiver: ReceiverSection
    input: InputSection
    plan: PlanSection = PlanSection()
    platform: PlatformSection = PlatformSection()
    http: HttpSection = HttpSection()


def load_config(path: str | Path) -> ReceiverConfig:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{p}: {e}") from None
    try:
        cfg = ReceiverConfig.model_validate(raw)
    except ValidationError as e:
        lines = [f"{p}: {'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise ValueError("\n".join(lines)) from None
    idx = sorted(c.index for c in cfg.input.channels)
    if idx != list(range(cfg.input.n_channels)):
        raise ValueError(f"{p}: input.channels must map every input 0..{cfg.input.n_channels - 1} exactly once")
    return cfg


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra=`` fields."""

    _skip = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        d = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        d.update({k: v for k, v in vars(record).items() if k not in self._skip})
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, default=str)


@dataclass
class Metrics:
    """What /metrics exports (counters and gauges of the whole service)."""

    started: float = field(default_factory=time.time)
    stream_time_s: float = 0.0  # of the newest sample processed
    stream_wall_at: float = 0.0
    values: dict = field(default_factory=dict)
    live: list = field(default_factory=list)  # callables refreshing ``values`` at each scrape

    def prometheus(self) -> str:
        for refresh in self.live:
            refresh(self.values)
        lag = time.time() - self.stream_wall_at if self.stream_wall_at else 0.0
        self.values["lag_seconds"] = ("gauge", "seconds since the newest block was processed", max(0.0, lag))
        lines = []
        for name, (kind, help_, val) in sorted(self.values.items()):
            lines.append(f"# HELP gla_{name} {help_}")
            lines.append(f"# TYPE gla_{name} {kind}")
            if isinstance(val, dict):
                for lab, v in val.items():
                    lines.append(f"gla_{name}{{{lab}}} {float(v)}")
            else:
                lines.append(f"gla_{name} {float(val)}")
        return "\n".join(lines) + "\n"


def _http_server(listen: str, metrics: Metrics, health) -> ThreadingHTTPServer:
    host, port = listen.rsplit(":", 1)

    class H(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/metrics":
                body, ctype, code = metrics.prometheus().encode(), "text/plain; version=0.0.4", 200
            elif self.path == "/healthz":
                ok, info = health()
                body, ctype, code = json.dumps(info).encode(), "application/json", 200 if ok else 503
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):  # quiet
            pass

    srv = ThreadingHTTPServer((host, int(port)), H)
    threading.Thread(target=srv.serve_forever, name="gla-http", daemon=True).start()
    return srv


def run_service(cfg: ReceiverConfig, *, stop: threading.Event | None = None, max_seconds: float | None = None) -> dict:
    """Run until SIGTERM/SIGINT (or ``stop`` is set, or ``max_seconds`` of stream time)."""
    from receiver.pipeline import Pipeline
    from receiver.sink import BundleSink
    from receiver.sources import ZmqSource
    from receiver.spool import Spool
    from receiver.timings import FirstBlock, mark

    mark("imports")

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    data = Path(cfg.receiver.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    plan = P.ChannelPlan.default(float(cfg.plan.grid_hz), cfg.plan.transformer_cutoff_hz)
    inputs = [InputInfo(c.index, c.bus, c.feeder, c.phase) for c in cfg.input.channels]
    spool = Spool(data / "spool.sqlite", max_bytes=int(cfg.receiver.spool_max_mb * 2**20))
    archive = BundleArchive(data / "archive")
    token = cfg.platform.token or (
        Path(cfg.platform.token_file).read_text().strip() if cfg.platform.token_file else None
    )
    deliverer = None
    if cfg.platform.url:
        from receiver.delivery import Deliverer  # (httpx: ~0.1 s to import, only when there is a platform)

        deliverer = Deliverer(spool, cfg.platform.url, token)
    # the spool first, then the archive; a full disk holds bundles in memory (degraded), never raises
    sink = BundleSink(
        spool,
        archive,
        hold_max=cfg.receiver.hold_max_bundles,
        on_spooled=deliverer.wake if deliverer else None,
        retry_max_s=10.0,
    )
    on_bundle = sink.accept

    src = ZmqSource(
        cfg.input.endpoint,
        pattern=cfg.input.pattern,
        framing=cfg.input.framing,
        n_channels=cfg.input.n_channels,
        sample_rate_hz=cfg.input.sample_rate_hz,
        sample_type=cfg.input.sample_type,
        pass_tags=cfg.input.pass_tags,
        stop_event=stop,
        gr_scale=(1.0 / cfg.input.scale) if cfg.input.framing == "gr" else None,
    )
    fs = cfg.input.sample_rate_hz
    grouper = None
    # the workers measure the decoded bursts on the baseband they hold (the parent does no
    # per-sample work): bundles are finished as their measurements come back
    pipe = Pipeline(plan, cfg.input.n_channels, fs, workers=cfg.receiver.workers, measure_in_workers=True)
    mark("pipeline")
    first = FirstBlock(pipe.n_workers)
    metrics = Metrics()
    metrics.live.append(lambda v: _sink_metrics(v, sink))

    def health():
        lag = time.time() - metrics.stream_wall_at if metrics.stream_wall_at else None
        stale = lag is not None and lag > STALE_S
        degraded = sink.state()
        ok = not stop.is_set() and not stale and not degraded["degraded"]
        status = "ok"
        if stop.is_set():
            status = "stopping"
        elif degraded["degraded"]:
            status = f"degraded: {degraded['reason']}"
        elif stale:
            status = f"no data for {lag:.0f} s"
        return ok, {
            "status": status,
            "receiver_id": cfg.receiver.id,
            "lag_s": lag,
            "spool_depth": spool.depth(),
            "bundles": grouper.stats["bundles"] if grouper else 0,
            "degraded": degraded,
        }

    srv = _http_server(cfg.http.listen, metrics, health)
    if deliverer:
        deliverer.start()
    log.info(
        "receiver started",
        extra={
            "receiver_id": cfg.receiver.id,
            "endpoint": cfg.input.endpoint,
            "inputs": cfg.input.n_channels,
            "workers": pipe.n_workers,
        },
    )
    t0_stream = None
    last_end: int | None = None
    health_poster = _HealthPoster(cfg.platform.url, token, cfg.receiver.id) if cfg.platform.url and token else None
    try:
        for blk in src:
            if grouper is None:
                t0_stream = blk.time_utc or datetime.now(UTC)
                from datetime import timedelta

                t0_utc = t0_stream - timedelta(seconds=blk.first_sample / fs)
                grouper = Grouper(
                    plan,
                    inputs,
                    receiver_id=cfg.receiver.id,
                    substation_id=cfg.receiver.substation_id,
                    fs_hz=fs,
                    t0_utc=t0_utc,
                    on_bundle=on_bundle,
                )
                if pipe.measure_in_workers:
                    grouper.measurer = pipe
            if blk.discontinuity:
                # a new segment: every output of the old one (waited for) goes to the old one's
                # bundles, which are finished before the clock is re-anchored
                for o in pipe.reset():
                    grouper.add_output(o)
                grouper.reset(blk.first_sample, pipe.segment)
                grouper.t0_utc = _reanchor(grouper.t0_utc, blk, last_end)
            last_end = blk.end_sample
            x = blk.samples
            pipe.feed(blk.first_sample, x)
            for o in pipe.outputs():
                first.seen(o)
                grouper.add_output(o)
            metrics.stream_time_s = (blk.first_sample + x.shape[0]) / fs
            metrics.stream_wall_at = time.time()
            _update_metrics(metrics, src, grouper, spool, deliverer, pipe)
            if health_poster:
                health_poster.maybe_post(metrics, src, grouper, spool)
            if stop.is_set() or (max_seconds is not None and metrics.stream_time_s >= max_seconds):
                break
    finally:
        log.info("receiver stopping: flushing the chains")
        if grouper is None:
            pipe.close()
        else:
            for o in pipe.flush():
                grouper.add_output(o)
            grouper.flush()
            while grouper.waiting:  # the last measurements, from the workers
                got = pipe.wait_idle("the last measurements")
                if not got:
                    log.error("receiver stopping: %d bundles wait for measurements no worker has", grouper.waiting)
                    break
                for o in got:
                    grouper.add_output(o)
            for o in pipe.close():
                grouper.add_output(o)
        sink.close(timeout_s=10.0)  # writes what is held if the disk has room (logs what cannot be)
        if deliverer:
            deliverer.stop(drain_s=5.0)
        src.close()
        archive.close()
        srv.shutdown()
        spool.close()
    summary = {"bundles": grouper.stats if grouper else {}, "source": vars(src.stats)}
    log.info("receiver stopped", extra=summary)
    return summary


def _reanchor(t0_utc: datetime, blk, last_end: int | None) -> datetime:
    """The stream clock's origin after a discontinuity: from the block's own time when it has
    one (a GLA header's, a GNU Radio rx_time tag's), else from the wall clock when the sample
    index went back (a sender or flowgraph restart counts from 0 again: the old origin would
    date everything after it too early by the old run's length); a jump forward keeps the
    origin (the sample clock went on)."""
    from datetime import timedelta

    back = timedelta(seconds=blk.first_sample / blk.sample_rate_hz)
    if blk.time_utc is not None:
        return blk.time_utc - back
    if last_end is not None and blk.first_sample < last_end:
        return datetime.now(UTC) - back
    return t0_utc


class _HealthPoster:
    """Every ``every_s`` seconds, tell the platform how this receiver is doing (best effort, in a
    thread: a platform that is down never slows the receive loop)."""

    def __init__(self, url: str, token: str, receiver_id: str, every_s: float = 10.0) -> None:
        self.url = url.rstrip("/") + f"/api/v1/receivers/{receiver_id}/health"
        self.token, self.every_s, self.last = token, every_s, 0.0
        self.busy = threading.Event()

    def maybe_post(self, m: Metrics, src, grouper, spool) -> None:
        now = time.time()
        if now - self.last < self.every_s or self.busy.is_set():
            return
        self.last = now
        g = grouper.stats if grouper else {}
        body = {
            "lag_s": max(0.0, now - (m.stream_wall_at or now)),
            "gaps": src.stats.gaps,
            "gap_samples": src.stats.gap_samples,
            "spool_depth": spool.depth(),
            "samples_in": src.stats.samples,
            "bundles": g.get("bundles", 0),
            "crc_failures": g.get("bundles", 0) - g.get("bundles_crc_ok", 0),
            "stream_time_s": m.stream_time_s,
            "reported_at": datetime.now(UTC).isoformat(),
        }
        self.busy.set()
        threading.Thread(target=self._post, args=(body,), daemon=True).start()

    def _post(self, body: dict) -> None:
        import httpx

        try:
            httpx.post(self.url, json=body, headers={"Authorization": f"Bearer {self.token}"}, timeout=3.0)
        except httpx.HTTPError as e:
            log.debug("health report not delivered: %s", e)
        finally:
            self.busy.clear()


def _sink_metrics(v: dict, sink) -> None:
    """The degraded state and the bundles held/dropped (refreshed at every scrape)."""
    from receiver.sink import REASONS

    reason = sink.degraded
    st = sink.stats()
    v["receiver_degraded"] = (
        "gauge",
        "1 while the receiver is degraded for this reason (bundles held in memory)",
        {f'reason="{r}"': float(r == reason) for r in REASONS},
    )
    v["receiver_bundles_held"] = ("gauge", "bundles held in memory, not yet in the spool", st["held"])
    v["receiver_bundles_held_total"] = ("counter", "bundles ever held in memory (disk full)", st["held_total"])
    v["receiver_bundles_dropped_total"] = (
        "counter",
        "bundles LOST: dropped beyond the in-memory bound while the disk was full",
        st["dropped"],
    )
    v["archive_unwritten_bundles"] = ("gauge", "spooled bundles the archive has still to write", st["unarchived"])
    v["archive_gap_bundles_total"] = ("counter", "spooled bundles never archived", st["archive_gap"])


def _update_metrics(m: Metrics, src, grouper, spool, deliverer, pipe) -> None:
    s = src.stats
    g = grouper.stats if grouper else {}
    v = m.values
    v["samples_in_total"] = ("counter", "input samples per channel received", s.samples)
    v["gaps_total"] = ("counter", "gaps in the input stream", s.gaps)
    v["gap_samples_total"] = ("counter", "samples missing in gaps", s.gap_samples)
    v["duplicates_total"] = ("counter", "duplicated messages dropped", s.duplicates)
    v["reordered_total"] = ("counter", "messages put back in order", s.reordered)
    v["bad_frames_total"] = ("counter", "malformed messages skipped", s.bad_frames)
    v["foreign_dropped_total"] = ("counter", "messages of another stream id dropped", s.foreign_dropped)
    v["wrong_shape_dropped_total"] = ("counter", "messages of another shape dropped", s.wrong_shape_dropped)
    v["unconfirmed_dropped_total"] = (
        "counter",
        "messages of a new session or shape never confirmed, dropped",
        s.unconfirmed_dropped,
    )
    v["resyncs_total"] = ("counter", "times the stream was re-anchored", s.resyncs)
    v["nonfinite_total"] = ("counter", "NaN/inf samples", s.nonfinite)
    v["clipped_total"] = ("counter", "clipped samples", s.clipped)
    v["bundles_total"] = ("counter", "bundles made", g.get("bundles", 0))
    v["bundles_crc_ok_total"] = ("counter", "bundles with a clean frame", g.get("bundles_crc_ok", 0))
    v["crc_failures_total"] = (
        "counter",
        "bundles without a clean frame",
        g.get("bundles", 0) - g.get("bundles_crc_ok", 0),
    )
    v["stale_outputs_dropped_total"] = (
        "counter",
        "chain outputs of an ended segment dropped at a resync",
        g.get("stale_outputs_dropped", 0),
    )
    v["spool_depth"] = ("gauge", "bundles waiting for delivery", spool.depth())
    v["stream_time_seconds"] = ("gauge", "stream time of the newest sample processed", m.stream_time_s)
    if deliverer is not None:
        st = deliverer.stats()
        for k in ("posted", "delivered", "replayed", "retries", "rejected", "conflicts"):
            if isinstance(st.get(k), (int, float)):
                v[f"delivery_{k}_total"] = ("counter", f"delivery: {k}", st[k])
        v["delivery_halted"] = ("gauge", "1 while the platform refuses the credentials", float(bool(st.get("halted"))))
        if isinstance(st.get("oldest_pending_age_s"), (int, float)):
            v["spool_oldest_pending_age_seconds"] = (
                "gauge",
                "age of the oldest bundle not yet delivered",
                st["oldest_pending_age_s"],
            )
