"""Low-voltage grid ground truth: what the meters of a transformer area report, minute by minute.

Voltages come from pandapower's three-phase unbalanced power flow (``runpp_3ph``, constant-power
loads) on US split-phase transformer areas and on European LV networks; the meters report them
with an accuracy class's errors; taps (theft) are planted in the records. Used by the theft
analysis's evaluation (``benchmarks/theft_eval.py``, ``benchmarks/theft_ieee_check.py``).

``gridsim.lv.networks``   :class:`NetSpec` (an area in plain arrays) and :class:`TapSite`; US
                          split-phase areas and pandapower's European LV networks;
``gridsim.lv.ieee``       the IEEE European LV test feeder, exactly reduced;
``gridsim.lv.profiles``   household load profiles and the MV grid's voltage;
``gridsim.lv.powerflow``  runpp_3ph on many copies of an area at once (one per minute);
``gridsim.lv.truth``      a record's loads and solved meter voltages, clean and with a reference
                          tap at each site (cached in ``out/theft_cache/``);
``gridsim.lv.meters``     meter noise, resolution, and the ``TanSeries`` the analysis reads;
``gridsim.lv.events``     planted taps: constant or intermittent, of any size.

pandapower (a test extra, not a base dependency) is imported only where a network is built or
solved, so importing this package does not need it.
"""

from .events import apply_tap, tap_mask
from .meters import T0_UNIX, measure, tan_series
from .networks import EU_NETWORKS, US_CONDUCTORS, NetSpec, TapSite, eu_spec, us_tan_spec
from .powerflow import TAP_PF, ReplicatedNet, currents, solve_record
from .profiles import MIN_PER_DAY, household_profiles, mv_voltage_pu
from .truth import TAP_REF_KW, RecordConfig, Truth, make_truth

__all__ = [
    "EU_NETWORKS",
    "MIN_PER_DAY",
    "NetSpec",
    "RecordConfig",
    "ReplicatedNet",
    "T0_UNIX",
    "TAP_PF",
    "TAP_REF_KW",
    "TapSite",
    "Truth",
    "US_CONDUCTORS",
    "apply_tap",
    "currents",
    "eu_spec",
    "household_profiles",
    "make_truth",
    "measure",
    "mv_voltage_pu",
    "solve_record",
    "tan_series",
    "tap_mask",
    "us_tan_spec",
]
