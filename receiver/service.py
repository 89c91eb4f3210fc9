"""`gla receive`: the Substation Receiver as a service.

    ZeroMQ (PULL/SUB, GLA or GNU Radio framing) -> pipeline (all inputs, all cores) -> grouper
      -> durable spool (SQLite WAL) -> deliverer (HTTP POST, retry with backoff) -> Computing Platform
      -> archive (JSONL per day, after the spool: receiver/sink.py)
    plus /healthz and /metrics (Prometheus text, receiver/metrics.py) on a small HTTP listener, JSON logs, and a clean
    shutdown on SIGTERM/SIGINT (stop receiving, flush the chains, spool what was found, stop).

The configuration is a TOML file (see ``deploy/receiver.example.toml``), each key overridable by a
``GLA_RECEIVER_<SECTION>__<KEY>`` environment variable (pydantic-settings); every key is checked
and a bad one is reported on one line with its path (or its variable).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import tomllib
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from dsp.air import params as P
from receiver.archive import BundleArchive
from receiver.grouping import Grouper, InputInfo
from receiver.metrics import (
    ServiceMetrics,
    grouper_families,
    http_server,
    input_problem,
    sink_families,
    source_families,
    spool_families,
)
from receiver.platform_link import PlatformLink

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
    feed_block_s: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="the input's messages are gathered into blocks of at least this much stream time before "
        "they go to the chains (fewer, larger blocks: less CPU per stream second; adds up to this much "
        "latency; 0: every message on its own)",
    )


class InputChannel(_M):
    index: int = Field(ge=0)
    bus: int = Field(ge=0)
    feeder: int = Field(ge=0)
    phase: Literal["A", "B", "C"]


class JackInput(_M):
    """``[input.jack]``: where a JACK source reads (``source = "jack"``)."""

    server: str | None = Field(
        default=None, description="JACK server name (default: $JACK_DEFAULT_SERVER or 'default')"
    )
    client_name: str = Field(default="gla-receiver", min_length=1, max_length=60)
    ports: list[str] | None = Field(
        default=None,
        description="the JACK output port feeding each input, in input order; default: the physical capture "
        "ports in order; [] connects nothing (a patchbay does it)",
    )
    buffer_s: float = Field(default=10.0, gt=0, le=600, description="ring between JACK's thread and the pipeline")


class InputSection(_M):
    source: Literal["zmq", "jack"] = Field(
        default="zmq", description="zmq: a ZeroMQ stream (endpoint); jack: an audio interface through JACK"
    )
    endpoint: str | None = Field(default=None, description="the ZeroMQ endpoint (source = 'zmq')")
    pattern: Literal["pull", "sub"] = "pull"
    framing: Literal["gla", "gr"] = "gla"
    n_channels: int = Field(ge=1, le=1024)
    sample_rate_hz: float = 48000.0
    sample_type: Literal["float32", "int16", "int32", "float64"] = "float32"
    pass_tags: bool = False
    scale: float = Field(
        default=1.0,
        gt=0,
        description="GNU Radio framing and JACK: physical = raw x scale (GLA frames carry their own full scale)",
    )
    channels: list[InputChannel]
    jack: JackInput = JackInput()

    @model_validator(mode="after")
    def _endpoint_for_zmq(self) -> InputSection:
        if self.source == "zmq" and not self.endpoint:
            raise ValueError("endpoint is required for source = 'zmq'")
        if self.jack.ports and len(self.jack.ports) != self.n_channels:
            raise ValueError(f"jack.ports: {len(self.jack.ports)} ports for n_channels = {self.n_channels}")
        return self


class PlanSection(_M):
    grid_hz: Literal[50, 60] = 60
    transformer_cutoff_hz: float = 3600.0


class PlatformSection(_M):
    url: str | None = None
    token_file: str | None = None
    token: str | None = None


class HttpSection(_M):
    listen: str = "127.0.0.1:9100"


#: environment variables override the file's keys: GLA_RECEIVER_<SECTION>__<KEY> (platform.token:
#: GLA_RECEIVER_PLATFORM__TOKEN, e.g. from a systemd EnvironmentFile readable by the service only)
ENV_PREFIX = "GLA_RECEIVER_"
#: the TOML text :func:`load_config` is reading (None: ``model_validate`` and ``ReceiverConfig(...)``
#: take their arguments only)
_FILE: ContextVar[dict | None] = ContextVar("gla_receiver_file", default=None)


class ReceiverConfig(BaseSettings):
    """The receiver's configuration: the TOML file's sections, each key overridable by its
    environment variable (``ENV_PREFIX``), read by pydantic-settings in :func:`load_config`."""

    model_config = SettingsConfigDict(extra="forbid", env_prefix=ENV_PREFIX, env_nested_delimiter="__")

    receiver: ReceiverSection
    input: InputSection
    plan: PlanSection = PlanSection()
    platform: PlatformSection = PlatformSection()
    http: HttpSection = HttpSection()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        raw = _FILE.get()
        if raw is None:
            return (init_settings,)
        # the environment first (it wins, key by key), then the file
        return (init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=raw))


def _where(p: Path, loc: tuple) -> str:
    """The key an error is about: its environment variable when that is set, else file: path."""
    var = ENV_PREFIX + "__".join(str(x).upper() for x in loc[:2])
    if len(loc) >= 2 and var in os.environ:
        return f"{var}={os.environ[var]!r}"
    return f"{p}: {'.'.join(str(x) for x in loc)}"


def load_config(path: str | Path) -> ReceiverConfig:
    """The configuration from the TOML file at ``path`` and the ``GLA_RECEIVER_*`` variables.
    Every key is checked; what is wrong raises ValueError, one line naming each bad key."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{p}: {e}") from None
    token = _FILE.set(raw)
    try:
        cfg = ReceiverConfig()
    except ValidationError as e:
        raise ValueError("; ".join(f"{_where(p, tuple(err['loc']))}: {err['msg']}" for err in e.errors())) from None
    finally:
        _FILE.reset(token)
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


def run_service(cfg: ReceiverConfig, *, stop: threading.Event | None = None, max_seconds: float | None = None) -> dict:
    """Run until SIGTERM/SIGINT (or ``stop`` is set, or ``max_seconds`` of stream time)."""
    import numpy as np

    from receiver.feeding import SourceReader, keep_freed_heap
    from receiver.pipeline import Pipeline
    from receiver.sink import BundleSink
    from receiver.sources import ZmqSource
    from receiver.sources.base import Source
    from receiver.spool import Spool
    from receiver.timings import FirstBlock, mark

    mark("imports")
    keep_freed_heap()  # (before the workers are forked: theirs too)

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
    metrics = ServiceMetrics()
    # posting starts once the token is known (a token file that cannot be read is no reason to stop)
    link = PlatformLink(cfg.platform, cfg.receiver.id, spool, metrics)
    # the spool first, then the archive; a full disk holds bundles in memory (degraded), never raises
    sink = BundleSink(spool, archive, hold_max=cfg.receiver.hold_max_bundles, on_spooled=link.wake, retry_max_s=10.0)

    def on_bundle(bundle) -> None:
        metrics.bundle_made(bundle)
        sink.accept(bundle)

    src: Source
    if cfg.input.source == "jack":
        from receiver.sources.jack_source import JackSource

        j = cfg.input.jack
        src = JackSource(
            n_channels=cfg.input.n_channels,
            sample_rate_hz=cfg.input.sample_rate_hz,
            ports=j.ports,
            server=j.server,
            client_name=j.client_name,
            scale=cfg.input.scale,
            buffer_s=j.buffer_s,
            stop_event=stop,
        )
    else:
        assert cfg.input.endpoint is not None  # (the config's validator)
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
    grouper: Grouper | None = None
    # the workers measure the decoded bursts on the baseband they hold (the parent does no
    # per-sample work): bundles are finished as their measurements come back
    # the messages held until they make a block of feed_n samples (or a discontinuity or the end),
    # written into a ring of shared memory the workers read (room for one more message)
    feed_n = max(1, round(cfg.receiver.feed_block_s * fs))
    ring_frames = 2 * feed_n if cfg.receiver.feed_block_s > 0 else 0
    pipe = Pipeline(
        plan,
        cfg.input.n_channels,
        fs,
        workers=cfg.receiver.workers,
        measure_in_workers=True,
        ring_frames=ring_frames,
    )
    mark("pipeline")
    first = FirstBlock(pipe.n_workers)
    metrics.add(lambda: source_families(src))
    metrics.add(lambda: grouper_families(grouper))
    metrics.add(lambda: spool_families(spool))
    metrics.add(lambda: sink_families(sink))

    def health():
        lag = metrics.lag_s()
        stale = lag is not None and lag > STALE_S
        degraded = sink.state()
        problem = input_problem(src)
        ok = not stop.is_set() and not stale and not degraded["degraded"] and problem is None and link.problem is None
        status = "ok"
        if stop.is_set():
            status = "stopping"
        elif problem is not None:
            status = f"input: {problem}"
        elif degraded["degraded"]:
            status = f"degraded: {degraded['reason']}"
        elif link.problem is not None:
            status = f"platform: {link.problem}"
        elif stale:
            status = f"no data for {lag:.0f} s"
        return ok, {
            "status": status,
            "receiver_id": cfg.receiver.id,
            "lag_s": lag,
            "spool_depth": spool.depth(),
            "bundles": grouper.stats["bundles"] if grouper else 0,
            "degraded": degraded,
            "input": {"problem": problem, "messages": src.stats.messages, "bad_frames": src.stats.bad_frames},
        }

    link.try_start()
    srv = http_server(cfg.http.listen, metrics, health)
    log.info(
        "receiver started",
        extra={
            "receiver_id": cfg.receiver.id,
            "endpoint": cfg.input.endpoint or repr(src),
            "inputs": cfg.input.n_channels,
            "workers": pipe.n_workers,
        },
    )
    t0_stream = None
    held: list = []
    held_n = 0

    def collect() -> None:
        """The workers' outputs ready so far to the grouper (looked at every message, not only
        every block: a burst's records and its measurements each take one look to come back)."""
        assert grouper is not None
        for o in pipe.outputs():
            first.seen(o)
            grouper.add_output(o)

    def feed_held() -> None:
        """The messages held, as one block, to the chains; the outputs ready to the grouper."""
        nonlocal held_n
        if not held:
            return
        first_sample, n = held[0].first_sample, held_n
        slot = pipe.ring_slot()
        if slot is not None and n <= slot.shape[0]:  # (written once, into the workers' shared memory)
            at = 0
            for b in held:
                slot[at : at + b.samples.shape[0]] = b.samples
                at += b.samples.shape[0]
            pipe.feed_ring(first_sample, n)
        else:
            pipe.feed(first_sample, held[0].samples if len(held) == 1 else np.concatenate([b.samples for b in held]))
        held.clear()
        held_n = 0
        collect()
        metrics.block_done(first_sample + n, fs)
        link.try_start()
        link.maybe_post(metrics, src, grouper)

    reader = SourceReader(src)
    last_end: int | None = None  # the end of the previous message (a restart counts from 0 again)
    deadline = 0.0  # (monotonic) when what is held is fed even if no more messages come
    try:
        while True:
            blk = reader.get(max(deadline - time.monotonic(), 0.0) if held else 0.5)
            if grouper is not None:
                collect()
            if blk is None:
                if reader.ended:
                    break
                if held and time.monotonic() >= deadline:
                    feed_held()  # the input paused: what is held is not kept waiting
                continue
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
            n = blk.samples.shape[0]
            if held and (blk.discontinuity or blk.first_sample != held[0].first_sample + held_n):
                feed_held()  # (the end of a segment: its samples go to it)
            if blk.discontinuity:
                # a new segment: every output of the old one (waited for) goes to the old one's
                # bundles, which are finished before the clock is re-anchored
                for o in pipe.reset():
                    grouper.add_output(o)
                grouper.reset(blk.first_sample, pipe.segment)
                grouper.maker.t0_utc = _reanchor(grouper.maker.t0_utc, blk, last_end)
                metrics.segment_reset()
            last_end = blk.end_sample
            if not held:
                deadline = time.monotonic() + cfg.receiver.feed_block_s
            held.append(blk)
            held_n += n
            end_s = (blk.first_sample + n) / fs
            last = stop.is_set() or (max_seconds is not None and end_s >= max_seconds)
            if held_n >= feed_n or last:
                feed_held()
            if last:
                break
        if grouper is not None:
            feed_held()  # (the source stopped: what it gave is processed before the flush)
    finally:
        log.info("receiver stopping: flushing the chains")
        src.close()  # (the reader thread's source ends within 0.1 s)
        reader.stop()
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
        link.stop(drain_s=5.0)
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
