"""Scenario files (TOML): what is simulated.

A scenario is a TOML file parsed with :mod:`tomllib` and validated with pydantic; any problem
raises :class:`ScenarioError` (a ``ValueError``) whose message names the file, the key path and
what is wrong, e.g. ``demo.toml: substation.feeders_per_bus: must be >= 1, got 0`` (one line per
problem). Unknown keys are errors (they are usually typos). Feeders are numbered globally
(0 .. buses*feeders_per_bus - 1, feeder f on bus f // feeders_per_bus), phases are "A", "B",
"C", times are seconds from the capture start.

``[scenario]``
    ``name``            (str) short name, used for output file names
    ``seed``            (int >= 0) master seed; the whole capture is a function of it
    ``duration_s``      (float > 0) capture length, seconds
    ``start_time_utc``  (TOML datetime or ISO string with a timezone) time of sample 0
    ``fs_hz``           (int, default 48000) sample rate
    ``grid_hz``         (50 | 60, default 60) nominal grid frequency
    ``capture_subtype`` ("PCM_24" | "FLOAT", default "PCM_24") sample format on disk

``[substation]``
    ``buses``                 (int >= 1)
    ``feeders_per_bus``       (int >= 1); inputs = 3 * buses * feeders_per_bus
    ``transformer_cutoff_hz`` (float, default 3600) service-transformer low-pass corner of the
                              hubs; must lie above every channel of the plan and below fs/2

``[channel]`` (optional; see :class:`gridsim.channel.ChannelConfig`)
    ``noise_floor_dbc``                (80..90, default 85) full-band noise under the fundamental
    ``impulse_rate_per_feeder_per_s``  (>= 0, default 0.05) switching transients
    ``interferers``                    (int >= 0, default 3) narrowband tones per substation
    ``crosstalk_same_feeder_db``       ([min, max] <= 0, default [-20, -6]) onto the other phases
    ``crosstalk_other_feeder_db``      ([min, max] <= 0, default [-40, -20]) onto the bus's
                                       other feeders
    ``freq_wander_hz``                 (0..0.5, default 0.05) bound of the frequency random walk
    ``freq_steps_per_hour``            (>= 0, default 3) frequency steps (5-20 mHz)

``[hubs]``
    ``count``                        (int >= 1) hubs (distribution-transformer edge transmitters)
    ``meters_per_hub``               ([min, max], ints >= 1, default [4, 12])
    ``level_db``                     ([min, max] < 0, default [-112, -100]) received level at
                                     the true input relative to its fundamental RMS
    ``clock_ppm``                    (>= 0, default 100) crystal offsets drawn in +-clock_ppm
    ``jitter_s``                     (>= 0, default 0.2) start-time jitter within a slot
    ``laterals_per_feeder``          (int >= 1, default 4)
    ``scheduled_reports_per_day``    (>= 0, default 2) scheduled (TDMA) reports per hub
    ``alert_rate_per_hub_per_day``   (>= 0, default 0.5) unsolicited alerts per hub

``[[events]]`` (optional, any number; ``kind`` selects the fields)
    ``kind = "move_phase"``      ``hub``, ``to_phase`` ("A"|"B"|"C"), ``at_s``
    ``kind = "switch_lateral"``  ``feeder``, ``lateral``, ``to_feeder`` (a different feeder),
                                 ``at_s``
    ``kind = "outage"``          ``feeder``, ``lateral`` (optional: whole feeder when absent),
                                 ``from_s`` < ``to_s``
    ``kind = "tap"``             ``hub``, ``meter``, ``kw`` (> 0), ``from_s``  (energy theft)

``[[transmissions]]`` (optional explicit bursts for short test captures)
    ``at_s``     (0 <= at_s < duration_s) nominal burst start
    ``hub``      (0 <= hub < hubs.count)
    ``kind``     ("scheduled" | "alert" | "provisioning")
    ``channel``  (optional channel index of the plan), ``code`` (optional code index)

Cross-references checked after parsing: hub, feeder, lateral, meter indices, phases, event
times within ``[0, duration_s]``, ``from_s < to_s``, channel/code indices against
:mod:`dsp.air.params`, and the transformer cutoff against the channel plan.
"""

from __future__ import annotations

import importlib.resources
import os
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from dsp.air import params as P

from .channel import ChannelConfig, Layout

__all__ = ["Scenario", "ScenarioError", "list_builtin", "load_builtin", "load_scenario", "parse_scenario"]


class ScenarioError(ValueError):
    """A scenario file is unreadable or invalid; the message names the file and the key."""


# strict scalar types: TOML is typed, so "5" or true where a number is expected is an error
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Str = Annotated[str, Strict()]
TRANSMISSION_KINDS = ("scheduled", "alert", "provisioning")
EVENT_KINDS = ("move_phase", "switch_lateral", "outage", "tap")


def _pair(v: Any) -> Any:
    """A TOML array of two values -> tuple (anything else is left for the type check to reject)."""
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ValueError(f"must be [min, max] (2 values), got {list(v)!r}")
        return tuple(v)
    return v


def _ordered_within(lo_limit: float | None = None, hi_limit: float | None = None) -> Callable[[tuple], tuple]:
    """Check of a ``(min, max)`` pair: min <= max inside the given limits."""

    def check(v: tuple) -> tuple:
        lo, hi = v
        if lo > hi:
            raise ValueError(f"min {lo} is greater than max {hi}")
        if lo_limit is not None and lo < lo_limit:
            raise ValueError(f"values must be >= {lo_limit}, got {lo}")
        if hi_limit is not None and hi > hi_limit:
            raise ValueError(f"values must be <= {hi_limit}, got {hi}")
        return v

    return check


# ``[min, max]`` pairs (TOML arrays) with min <= max inside the given limits; spelt out as static
# aliases so type checkers can read them
DbRange = Annotated[tuple[Float, Float], BeforeValidator(_pair), AfterValidator(_ordered_within(hi_limit=0.0))]
LevelRange = Annotated[tuple[Float, Float], BeforeValidator(_pair), AfterValidator(_ordered_within(hi_limit=-1.0))]
CountRange = Annotated[tuple[Int, Int], BeforeValidator(_pair), AfterValidator(_ordered_within(lo_limit=1))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioSection(_Model):
    name: Str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: Int = Field(ge=0)
    duration_s: Float = Field(gt=0)
    start_time_utc: datetime
    fs_hz: Int = Field(default=48000, ge=8000, le=384000)
    grid_hz: Float = 60.0
    capture_subtype: Literal["PCM_24", "FLOAT"] = "PCM_24"

    @field_validator("start_time_utc", mode="before")
    @classmethod
    def _time(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = datetime.fromisoformat(v)
            except ValueError:
                raise ValueError(f"not an ISO 8601 time: {v!r}") from None
        if isinstance(v, datetime):
            if v.tzinfo is None:
                raise ValueError("needs a timezone (e.g. 2025-03-03T14:00:00Z)")
            return v.astimezone(UTC)
        raise ValueError(f"must be a TOML datetime or ISO string, got {v!r}")

    @field_validator("grid_hz")
    @classmethod
    def _grid(cls, v: float) -> float:
        if v not in (50.0, 60.0):
            raise ValueError(f"must be 50 or 60, got {v!r}")
        return float(v)


class SubstationSection(_Model):
    buses: Int = Field(ge=1)
    feeders_per_bus: Int = Field(ge=1)
    transformer_cutoff_hz: Float = Field(default=3600.0, gt=0)


class ChannelSection(_Model):
    noise_floor_dbc: Float = Field(default=85.0, ge=80.0, le=90.0)
    impulse_rate_per_feeder_per_s: Float = Field(default=0.05, ge=0.0)
    interferers: Int = Field(default=3, ge=0, le=50)
    crosstalk_same_feeder_db: DbRange = (-20.0, -6.0)
    crosstalk_other_feeder_db: DbRange = (-40.0, -20.0)
    freq_wander_hz: Float = Field(default=0.05, ge=0.0, le=0.5)
    freq_steps_per_hour: Float = Field(default=3.0, ge=0.0)


class HubsSection(_Model):
    count: Int = Field(ge=1)
    meters_per_hub: CountRange = (4, 12)
    level_db: LevelRange = (-112.0, -100.0)
    clock_ppm: Float = Field(default=100.0, ge=0.0, le=1000.0)
    jitter_s: Float = Field(default=0.2, ge=0.0)
    laterals_per_feeder: Int = Field(default=4, ge=1)
    scheduled_reports_per_day: Float = Field(default=2.0, ge=0.0)
    alert_rate_per_hub_per_day: Float = Field(default=0.5, ge=0.0)


PhaseName = Literal["A", "B", "C"]


class MovePhase(_Model):
    kind: Literal["move_phase"]
    hub: Int = Field(ge=0)
    to_phase: PhaseName
    at_s: Float = Field(ge=0.0)


class SwitchLateral(_Model):
    kind: Literal["switch_lateral"]
    feeder: Int = Field(ge=0)
    lateral: Int = Field(ge=0)
    to_feeder: Int = Field(ge=0)
    at_s: Float = Field(ge=0.0)


class Outage(_Model):
    kind: Literal["outage"]
    feeder: Int = Field(ge=0)
    lateral: Int | None = Field(default=None, ge=0)
    from_s: Float = Field(ge=0.0)
    to_s: Float = Field(ge=0.0)


class Tap(_Model):
    kind: Literal["tap"]
    hub: Int = Field(ge=0)
    meter: Int = Field(ge=0)
    kw: Float = Field(gt=0.0)
    from_s: Float = Field(ge=0.0)


Event = Annotated[MovePhase | SwitchLateral | Outage | Tap, Field(discriminator="kind")]


class Transmission(_Model):
    at_s: Float = Field(ge=0.0)
    hub: Int = Field(ge=0)
    kind: Literal["scheduled", "alert", "provisioning"]
    channel: Int | None = Field(default=None, ge=0)
    code: Int | None = Field(default=None, ge=0)


class Scenario(_Model):
    """A validated scenario; sections mirror the TOML tables."""

    scenario: ScenarioSection
    substation: SubstationSection
    channel: ChannelSection = ChannelSection()
    hubs: HubsSection
    events: list[Event] = []
    transmissions: list[Transmission] = []
    _source: str = PrivateAttr(default="<string>")

    # convenience -----------------------------------------------------------------------
    @property
    def source(self) -> str:
        """Where the scenario was read from (file path or ``<string>``)."""
        return self._source

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def seed(self) -> int:
        return self.scenario.seed

    @property
    def duration_s(self) -> float:
        return self.scenario.duration_s

    @property
    def fs_hz(self) -> int:
        return self.scenario.fs_hz

    @property
    def n_samples(self) -> int:
        return int(round(self.scenario.duration_s * self.scenario.fs_hz))

    def layout(self) -> Layout:
        return Layout(self.substation.buses, self.substation.feeders_per_bus)

    @property
    def n_feeders(self) -> int:
        return self.substation.buses * self.substation.feeders_per_bus

    @property
    def n_inputs(self) -> int:
        return 3 * self.n_feeders

    def channel_plan(self) -> P.ChannelPlan:
        return P.ChannelPlan.default(self.scenario.grid_hz, self.substation.transformer_cutoff_hz)

    def channel_config(self, **overrides: Any) -> ChannelConfig:
        """The :class:`ChannelConfig` this scenario asks for (other knobs at their defaults)."""
        c = self.channel
        kw: dict[str, Any] = dict(
            fs_hz=self.scenario.fs_hz,
            grid_hz=self.scenario.grid_hz,
            noise_floor_dbc=c.noise_floor_dbc,
            impulse_rate_per_feeder_per_s=c.impulse_rate_per_feeder_per_s,
            interferers=c.interferers,
            crosstalk_same_feeder_db=tuple(c.crosstalk_same_feeder_db),
            crosstalk_other_feeder_db=tuple(c.crosstalk_other_feeder_db),
            freq_wander_hz=c.freq_wander_hz,
            freq_steps_per_hour=c.freq_steps_per_hour,
        )
        kw.update(overrides)
        return ChannelConfig(**kw)


# ------------------------------------------------------------------------- error formatting
def _loc(loc: tuple) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in EVENT_KINDS and i > 0 and isinstance(loc[i - 1], int):
            continue  # the discriminated-union tag pydantic inserts
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _message(err: ErrorDetails) -> str:
    t, ctx, inp = err["type"], err.get("ctx", {}), err.get("input")
    got = f", got {_short(inp)}"
    if t == "missing":
        return "required table is missing" if len(err["loc"]) == 1 else "required key is missing"
    if t == "extra_forbidden":
        return "unknown key"
    if t == "greater_than_equal":
        return f"must be >= {ctx['ge']}{got}"
    if t == "greater_than":
        return f"must be > {ctx['gt']}{got}"
    if t == "less_than_equal":
        return f"must be <= {ctx['le']}{got}"
    if t == "less_than":
        return f"must be < {ctx['lt']}{got}"
    if t == "literal_error":
        return f"must be one of {ctx['expected']}{got}"
    if t == "union_tag_invalid":
        return f"kind must be one of {ctx.get('expected_tags')}, got {_short(ctx.get('tag'))}"
    if t == "union_tag_not_found":
        return "needs a 'kind' key"
    if t == "value_error":
        return str(ctx.get("error", err["msg"]))
    if t in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer{got}"
    if t in ("float_type", "float_parsing"):
        return f"must be a number{got}"
    if t in ("string_type",):
        return f"must be a string{got}"
    if t == "model_type" or t == "dict_type":
        return f"must be a table{got}"
    if t in ("list_type", "tuple_type"):
        return f"must be an array{got}"
    if t in ("too_short", "too_long"):
        return f"{err['msg']}{got}"
    if t == "string_pattern_mismatch":
        return f"may only contain letters, digits, '_', '.', '-'{got}"
    return f"{err['msg']}{got}"


def _cross_checks(s: Scenario) -> list[tuple[str, str]]:
    """Checks that need more than one key: (key path, problem)."""
    errs: list[tuple[str, str]] = []
    dur = s.scenario.duration_s
    nf = s.n_feeders
    fs = s.scenario.fs_hz
    cutoff = s.substation.transformer_cutoff_hz
    if cutoff >= fs / 2:
        errs.append(("substation.transformer_cutoff_hz", f"must be < fs_hz/2 = {fs / 2:g}, got {cutoff:g}"))
    else:
        try:
            s.channel_plan()
        except ValueError as e:
            errs.append(("substation.transformer_cutoff_hz", str(e)))
    n_channels = len(P.CARRIER_HARMONIC_INDEX[s.scenario.grid_hz])
    laterals = s.hubs.laterals_per_feeder
    hubs = s.hubs.count

    def time(path: str, v: float) -> None:
        if not 0.0 <= v <= dur:
            errs.append((path, f"must be within the capture (0..{dur:g} s), got {v:g}"))

    def feeder(path: str, v: int) -> None:
        if v >= nf:
            errs.append((path, f"no such feeder: the substation has feeders 0..{nf - 1}, got {v}"))

    def hub(path: str, v: int) -> None:
        if v >= hubs:
            errs.append((path, f"no such hub: hubs.count is {hubs} (hubs 0..{hubs - 1}), got {v}"))

    for i, ev in enumerate(s.events):
        p = f"events[{i}]"
        if isinstance(ev, MovePhase):
            hub(f"{p}.hub", ev.hub)
            time(f"{p}.at_s", ev.at_s)
        elif isinstance(ev, SwitchLateral):
            feeder(f"{p}.feeder", ev.feeder)
            feeder(f"{p}.to_feeder", ev.to_feeder)
            if ev.to_feeder == ev.feeder:
                errs.append((f"{p}.to_feeder", f"must differ from feeder ({ev.feeder})"))
            if ev.lateral >= laterals:
                errs.append(
                    (f"{p}.lateral", f"no such lateral: hubs.laterals_per_feeder is {laterals}, got {ev.lateral}")
                )
            time(f"{p}.at_s", ev.at_s)
        elif isinstance(ev, Outage):
            feeder(f"{p}.feeder", ev.feeder)
            if ev.lateral is not None and ev.lateral >= laterals:
                errs.append(
                    (f"{p}.lateral", f"no such lateral: hubs.laterals_per_feeder is {laterals}, got {ev.lateral}")
                )
            time(f"{p}.from_s", ev.from_s)
            time(f"{p}.to_s", ev.to_s)
            if not ev.from_s < ev.to_s:
                errs.append((f"{p}.to_s", f"must be after from_s ({ev.from_s:g}), got {ev.to_s:g}"))
        elif isinstance(ev, Tap):
            hub(f"{p}.hub", ev.hub)
            if ev.meter >= s.hubs.meters_per_hub[1]:
                errs.append(
                    (
                        f"{p}.meter",
                        f"no such meter: hubs have at most {s.hubs.meters_per_hub[1]} meters, got {ev.meter}",
                    )
                )
            time(f"{p}.from_s", ev.from_s)
    for i, tx in enumerate(s.transmissions):
        p = f"transmissions[{i}]"
        hub(f"{p}.hub", tx.hub)
        if not tx.at_s < dur:
            errs.append((f"{p}.at_s", f"must be before the end of the capture ({dur:g} s), got {tx.at_s:g}"))
        if tx.channel is not None and tx.channel >= n_channels:
            errs.append(
                (f"{p}.channel", f"no such channel: the plan has channels 0..{n_channels - 1}, got {tx.channel}")
            )
        if tx.code is not None and tx.code >= P.CODES_PER_CHANNEL:
            errs.append((f"{p}.code", f"no such code: codes are 0..{P.CODES_PER_CHANNEL - 1}, got {tx.code}"))
    return errs


# ----------------------------------------------------------------------------------- loading
def parse_scenario(text: str, source: str = "<string>") -> Scenario:
    """Parse and validate TOML text; ``source`` names it in error messages."""
    name = Path(source).name if source != "<string>" else source
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{name}: invalid TOML: {e}") from None
    try:
        s = Scenario.model_validate(data)
    except ValidationError as e:
        lines = [f"{name}: {_loc(err['loc'])}: {_message(err)}" for err in e.errors()]
        raise ScenarioError("\n".join(lines)) from None
    errs = _cross_checks(s)
    if errs:
        raise ScenarioError("\n".join(f"{name}: {path}: {msg}" for path, msg in errs))
    s._source = source
    return s


def load_scenario(path: str | os.PathLike) -> Scenario:
    """Read and validate a scenario file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{p.name}: cannot read the scenario file: {e}") from None
    return parse_scenario(text, str(p))


def list_builtin() -> list[str]:
    """Names of the scenarios shipped in ``gridsim/scenarios``."""
    d = importlib.resources.files("gridsim") / "scenarios"
    return sorted(f.name[:-5] for f in d.iterdir() if f.name.endswith(".toml"))


def load_builtin(name: str) -> Scenario:
    """Load ``gridsim/scenarios/<name>.toml``."""
    res = importlib.resources.files("gridsim") / "scenarios" / f"{name}.toml"
    if not res.is_file():
        raise ScenarioError(f"{name}.toml: no built-in scenario {name!r} (have {list_builtin()})")
    return parse_scenario(res.read_text(encoding="utf-8"), f"{name}.toml")
