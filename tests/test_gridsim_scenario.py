"""gridsim.scenario: built-in scenarios load; bad files raise ScenarioError naming the key."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from gridsim.channel import ChannelConfig, Layout
from gridsim.scenario import (
    MovePhase,
    Outage,
    ScenarioError,
    SwitchLateral,
    Tap,
    list_builtin,
    load_builtin,
    load_scenario,
    parse_scenario,
)

BASE = """
[scenario]
name = "t"
seed = 1
duration_s = 60.0
start_time_utc = 2025-03-03T14:00:00Z

[substation]
buses = 1
feeders_per_bus = 4

[hubs]
count = 10
"""


def test_builtin_scenarios():
    assert {"demo", "demo_small", "large"} <= set(list_builtin())
    demo = load_builtin("demo")
    assert demo.layout() == Layout(1, 4) and demo.n_inputs == 12
    assert 150 <= demo.hubs.count <= 250 and 300.0 <= demo.duration_s <= 900.0
    assert {type(e) for e in demo.events} == {MovePhase, SwitchLateral, Outage, Tap}
    large = load_builtin("large")
    assert large.layout() == Layout(2, 6) and large.n_inputs == 36 and large.hubs.count == 2000
    small = load_builtin("demo_small")
    assert small.hubs.count == 12 and small.duration_s == 8.0 and small.n_samples == 8 * 48000
    ats = [t.at_s for t in small.transmissions]
    assert 3 <= len(ats) <= 4 and min(ats) >= 0.3 and max(ats) <= 4.5
    assert all(t.at_s + 3.3 < small.duration_s for t in small.transmissions)
    cfg = small.channel_config()
    assert isinstance(cfg, ChannelConfig) and cfg.fs_hz == 48000 and cfg.noise_floor_dbc == 85.0
    cfg.validate()
    assert small.scenario.start_time_utc == datetime(2025, 3, 3, 14, tzinfo=UTC)
    assert small.channel_plan().grid_hz == 60.0
    with pytest.raises(ScenarioError, match="no built-in scenario 'nope'"):
        load_builtin("nope")


def test_defaults_and_file_loading(tmp_path):
    p = tmp_path / "mini.toml"
    p.write_text(BASE)
    s = load_scenario(p)
    assert s.source == str(p)
    assert s.scenario.fs_hz == 48000 and s.scenario.grid_hz == 60.0
    assert s.scenario.capture_subtype == "PCM_24"
    assert s.substation.transformer_cutoff_hz == 3600.0
    assert s.channel.crosstalk_same_feeder_db == (-20.0, -6.0)
    assert s.hubs.level_db == (-112.0, -100.0) and s.hubs.scheduled_reports_per_day == 2.0
    assert s.events == [] and s.transmissions == []
    # ISO string instead of a TOML datetime, converted to UTC
    s2 = parse_scenario(BASE.replace("2025-03-03T14:00:00Z", '"2025-03-03T15:00:00+01:00"'))
    assert s2.scenario.start_time_utc == s.scenario.start_time_utc


def _err(text: str) -> str:
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(text, "/some/dir/bad.toml")
    return str(ei.value)


def _with(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            _with("feeders_per_bus = 4", "feeders_per_bus = 0"),
            "bad.toml: substation.feeders_per_bus: must be >= 1, got 0",
        ),
        (_with("seed = 1", 'seed = "1"'), "bad.toml: scenario.seed: must be an integer, got '1'"),
        (_with("duration_s = 60.0", "duration_s = -1.0"), "bad.toml: scenario.duration_s: must be > 0"),
        (_with("duration_s = 60.0\n", ""), "bad.toml: scenario.duration_s: required key is missing"),
        (_with("[hubs]\ncount = 10", "[hubs]\ncount = 10\ncolour = 3"), "bad.toml: hubs.colour: unknown key"),
        (_with("seed = 1", "seed = 1\ngrid_hz = 55"), "bad.toml: scenario.grid_hz: must be 50 or 60"),
        (
            _with("seed = 1", 'seed = 1\ncapture_subtype = "PCM_16"'),
            "bad.toml: scenario.capture_subtype: must be one of",
        ),
        (_with("2025-03-03T14:00:00Z", "2025-03-03T14:00:00"), "bad.toml: scenario.start_time_utc: needs a timezone"),
        (BASE + "[channel]\nnoise_floor_dbc = 95.0\n", "bad.toml: channel.noise_floor_dbc: must be <= 90"),
        (
            BASE + "[channel]\ncrosstalk_same_feeder_db = [-6.0, -20.0]\n",
            "bad.toml: channel.crosstalk_same_feeder_db: min -6.0 is greater than max -20.0",
        ),
        (
            BASE + "[channel]\ncrosstalk_other_feeder_db = [-40.0, 3.0]\n",
            "bad.toml: channel.crosstalk_other_feeder_db: values must be <= 0.0",
        ),
        (
            _with("count = 10", "count = 10\nmeters_per_hub = [3]"),
            "bad.toml: hubs.meters_per_hub: must be [min, max] (2 values), got [3]",
        ),
        (
            _with("feeders_per_bus = 4", "feeders_per_bus = 4\ntransformer_cutoff_hz = 3000.0"),
            "bad.toml: substation.transformer_cutoff_hz: channel 2: upper edge",
        ),
        (BASE.replace("[substation]", "[substaton]"), "bad.toml: substaton: unknown key"),
        ("[scenario\nname=1", "bad.toml: invalid TOML"),
    ],
)
def test_bad_scalar_keys(text, expected):
    assert expected in _err(text)


EV = '\n[[events]]\nkind = "{kind}"\n{body}\n'


@pytest.mark.parametrize(
    "kind,body,expected",
    [
        ("move_phase", 'hub = 3\nto_phase = "D"\nat_s = 1.0', "events[0].to_phase: must be one of 'A', 'B' or 'C'"),
        ("move_phase", 'hub = 10\nto_phase = "B"\nat_s = 1.0', "events[0].hub: no such hub: hubs.count is 10"),
        ("move_phase", 'hub = 1\nto_phase = "B"\nat_s = 61.0', "events[0].at_s: must be within the capture (0..60 s)"),
        ("move_phase", 'hub = 1\nto_phase = "B"', "events[0].at_s: required key is missing"),
        (
            "switch_lateral",
            "feeder = 4\nlateral = 0\nto_feeder = 1\nat_s = 1.0",
            "events[0].feeder: no such feeder: the substation has feeders 0..3, got 4",
        ),
        ("switch_lateral", "feeder = 1\nlateral = 0\nto_feeder = 1\nat_s = 1.0", "events[0].to_feeder: must differ"),
        ("switch_lateral", "feeder = 1\nlateral = 9\nto_feeder = 2\nat_s = 1.0", "events[0].lateral: no such lateral"),
        ("outage", "feeder = 1\nfrom_s = 30.0\nto_s = 20.0", "events[0].to_s: must be after from_s (30)"),
        ("outage", 'feeder = 1\nfrom_s = 30.0\nto_s = 20.0\nphase = "A"', "events[0].phase: unknown key"),
        ("tap", "hub = 1\nmeter = 2\nkw = 0.0\nfrom_s = 1.0", "events[0].kw: must be > 0"),
        ("tap", "hub = 1\nmeter = 12\nkw = 2.0\nfrom_s = 1.0", "events[0].meter: no such meter"),
        ("explode", "at_s = 1.0", "events[0]: kind must be one of 'move_phase', 'switch_lateral', 'outage', 'tap'"),
    ],
)
def test_bad_events(kind, body, expected):
    msg = _err(BASE + EV.format(kind=kind, body=body))
    assert "bad.toml: " + expected in msg


@pytest.mark.parametrize(
    "body,expected",
    [
        ('at_s = 60.0\nhub = 1\nkind = "alert"', "transmissions[0].at_s: must be before the end of the capture"),
        ('at_s = 1.0\nhub = 1\nkind = "gossip"', "transmissions[0].kind: must be one of"),
        ('at_s = 1.0\nhub = 1\nkind = "scheduled"\nchannel = 3', "transmissions[0].channel: no such channel"),
        ('at_s = 1.0\nhub = 1\nkind = "scheduled"\ncode = 4', "transmissions[0].code: no such code: codes are 0..3"),
        ('at_s = 1.0\nhub = 12\nkind = "alert"', "transmissions[0].hub: no such hub"),
    ],
)
def test_bad_transmissions(body, expected):
    assert "bad.toml: " + expected in _err(BASE + "\n[[transmissions]]\n" + body + "\n")


def test_all_problems_reported_one_per_line():
    text = _with("feeders_per_bus = 4", "feeders_per_bus = 0").replace("count = 10", "count = 0")
    lines = _err(text).splitlines()
    assert len(lines) == 2
    assert all(re.match(r"bad\.toml: \S+: ", ln) for ln in lines)


def test_unreadable_file(tmp_path):
    with pytest.raises(ScenarioError, match="missing.toml: cannot read"):
        load_scenario(tmp_path / "missing.toml")


def test_a_simulated_hub_never_wraps_its_counter_under_one_key():
    """The counter is the nonce's: a hub that would pass 2^24 - 1 under one key is stopped, not
    wrapped to 0 (docs/air-interface.md section 13: it rotates its key first)."""
    from dsp.air import params as P
    from gridsim.traffic import Hub

    h = Hub(1, bytes(16), 0, 0, 0, 0, 0, [1], -100.0, 0.0, 3000.0, counter=P.COUNTER_MAX - 2)
    assert h.next_counter(3) == P.COUNTER_MAX - 2 and h.counter == P.COUNTER_MAX + 1
    with pytest.raises(ValueError, match="past 2\\^24 - 1 under one key"):
        h.next_counter(1)
