"""The IEEE European LV feeder of gridsim.lv.ieee, the network of the held-out check of the theft
analysis (benchmarks/theft_ieee_check.py). The check's --quick run takes minutes (the feeder's power
flows), so it is not run here."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest

pytest.importorskip("pandapower")

from gridsim import lv  # noqa: E402
from gridsim.lv import ieee  # noqa: E402


@pytest.fixture(scope="module")
def specs():
    return ieee.ieee_spec(), ieee.ieee_spec(reduce=False)


def test_meters_are_the_feeders_loads(specs):
    red, full = specs
    net = ieee.ieee_net()
    al = net.asymmetric_load
    assert red.n_meters == full.n_meters == len(al) == 55
    ids = [m["meter_id"] for m in red.meter_info]
    assert len(set(ids)) == 55 and ids[0] == "IEEE-LOAD1"
    cols = np.abs(al[["p_a_mw", "p_b_mw", "p_c_mw"]].to_numpy(float))
    for k, m in enumerate(red.meter_info):
        assert m["pp_bus"] == int(al.bus.iloc[k])
        assert cols[k, red.meter_phase[k]] > 0  # the load's own phase
        assert m["phase"] == "abc"[red.meter_phase[k]]
    assert collections.Counter(red.meter_phase.tolist()) == {0: 21, 1: 19, 2: 15}
    # the feeder's own zero-sequence data, transformer and external grid, not the Z0 = 4 Z1 default
    r0, x0 = red.zero_sequence()
    assert not np.allclose(r0, 4 * red.line_r)
    assert red.trafo["vk0"] == pytest.approx(float(net.trafo.vk0_percent.iloc[0]))
    assert red.ext_grid["s_sc_max_mva"] == pytest.approx(float(net.ext_grid.s_sc_max_mva.iloc[0]))
    assert red.v_base_ln == pytest.approx(416 / math.sqrt(3))


def test_reduction_keeps_the_tree_and_distances(specs):
    red, full = specs
    assert red.bus_vn_kv.size < 150 and full.bus_vn_kv.size == 907
    for spec in specs:  # a tree: the MV bus hangs on the transformer, every LV bus has one parent line
        assert spec.line_from.size == spec.bus_vn_kv.size - 2
        assert len(set(spec.line_to.tolist())) == spec.line_to.size
        root = spec.trafo["lv"]
        d = spec.network_distance_m(root)
        assert np.all(np.isfinite(d))
    d_red, d_full = (s.network_distance_m(s.trafo["lv"]) for s in specs)
    assert np.allclose(d_red, d_full, atol=1e-6)
    assert np.allclose(d_red, [m["distance_m"] for m in red.meter_info], atol=0.06)
    assert d_red.max() == pytest.approx(293.7, abs=0.5)
    # the loop impedance to each meter is kept: the sum of r * length along the path
    for spec in specs:
        assert math.isfinite(float(np.sum(spec.line_r * spec.line_km)))


def test_tap_sites(specs):
    red, _ = specs
    sites = red.taps
    assert len(sites) == 8
    assert len({(s.bus, s.phase) for s in sites}) == 8
    for s in sites:
        assert s.phase == red.meter_phase[s.meter]  # on the phase of the meter it is attributed to
        assert 0 < s.distance_m < 300
        # the attributed meter is downstream: farther from the transformer, and reached from the tap
        assert red.meter_info[s.meter]["distance_m"] >= s.distance_m - 0.05
        assert red.network_distance_m(s.bus)[s.meter] == pytest.approx(
            red.meter_info[s.meter]["distance_m"] - s.distance_m, abs=0.1
        )
    houses = [s for s in sites if s.where.startswith("meter base")]
    assert [s.bus for s in houses] == [red.meter_bus[s.meter] for s in houses]
    assert max(s.distance_m for s in sites) > 280 and min(s.distance_m for s in sites) < 40
    first = ieee.ieee_spec(n_taps=3).taps  # the first n_taps sites (bus numbers differ: fewer buses are kept)
    assert [(s.where, s.meter, s.phase) for s in first] == [(s.where, s.meter, s.phase) for s in sites[:3]]


def test_reduced_network_solves_like_the_full_one(specs):
    """runpp_3ph (numba off) on one loaded minute with a 3 kW tap far out: the reduction is exact,
    and the tap lowers its own meter's voltage."""
    red, full = specs
    rng = np.random.default_rng(3)
    p, q = lv.household_profiles(rng, red.n_meters, 60, "eu")
    p, q = p[-1:] + 500.0, q[-1:]
    site = 2  # the farthest house
    tap = np.zeros((2, len(red.taps)))
    tap[1, site] = 3000.0
    args = (np.repeat(p, 2, 0), np.repeat(q, 2, 0), np.ones(2), tap, 2)
    v_red = lv.solve_record(red, *args, rep=lv.ReplicatedNet(red, 2, numba=False))
    v_full = lv.solve_record(full, *args, rep=lv.ReplicatedNet(full, 2, numba=False))
    assert np.all((v_red > 220) & (v_red < 250))
    assert np.abs(v_red - v_full).max() < 1e-3
    dv = v_red[1] - v_red[0]
    k = red.taps[site].meter
    assert dv[k] < -0.5 and dv[k] == dv.min()


def test_old_cache_keys():
    # networks that set no zero-sequence or grid data keep their cache keys and Z0 = 4 Z1
    spec = lv.us_tan_spec(np.random.default_rng(1), "K", 4, 1)
    assert spec.key_extra() == {}
    assert np.allclose(spec.zero_sequence()[0], 4 * spec.line_r)
    assert lv.RecordConfig().min_batch == 50 and lv.RecordConfig().tap_from_min == 0
