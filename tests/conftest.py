"""Shared fixtures and the markers given here rather than in the test files.

Platform fixtures (prefix ``platform_``): a migrated database per test, on SQLite always and also
on PostgreSQL when ``GLA_TEST_DATABASE_URL`` is set.

Markers assigned at collection (:func:`pytest_collection_modifyitems`), so no test file carries them:

- ``fast``: every test not marked ``slow`` and not in :data:`HEAVY_MODULES` or :data:`HEAVY`.
  ``python -m pytest -m fast`` is the everyday subset (33 s on a 2-core machine at load average
  2, 46 s at 3.3, numba's cache warm).
- ``kernel``: the tests of the numba kernels (:data:`KERNEL_MODULES`, less
  :data:`KERNEL_TOO_SLOW`), which scripts/test.sh runs a second time with ``NUMBA_DISABLE_JIT=1``
  under coverage: the kernels as plain Python, checked line by line against their references.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

PLATFORM_PG_URL = os.environ.get("GLA_TEST_DATABASE_URL")
PLATFORM_BACKENDS = ["sqlite"] + (["postgresql"] if PLATFORM_PG_URL else [])


@pytest.fixture(autouse=True)
def _no_leftover_log_handler():
    """`gla` run in-process (``receiver.cli.main``) calls ``logging.basicConfig``, whose handler
    writes to the stderr of the test that made it; once that test's capture is closed, every
    later log record printed "--- Logging error ---" with a traceback into the next in-process
    `gla` test's stderr (test_cli_errors then test_replay_post failed so). Remove it after each test."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for h in root.handlers[:]:
        if h not in before:
            root.removeHandler(h)


@pytest.fixture(scope="session")
def platform_sqlite_template(tmp_path_factory):
    from platform_api.core.db import make_engine, migrate

    path = tmp_path_factory.mktemp("platform-template") / "template.db"
    eng = make_engine(f"sqlite:///{path}")
    migrate(eng)
    eng.dispose()
    return path


def platform_reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from platform_api.core.db import make_engine, migrate
    from platform_api.models import Base

    eng = make_engine(url)
    migrate(eng)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with eng.begin() as c:
        c.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    eng.dispose()


@pytest.fixture(params=PLATFORM_BACKENDS)
def platform_db_url(request, tmp_path, platform_sqlite_template):
    """A migrated, empty database: a copy of the SQLite template, or the truncated PostgreSQL one."""
    if request.param == "sqlite":
        dst = tmp_path / "platform.db"
        shutil.copy(platform_sqlite_template, dst)
        return f"sqlite:///{dst}"
    platform_reset_postgres(PLATFORM_PG_URL)
    return PLATFORM_PG_URL


@pytest.fixture
def platform_sqlite_url(tmp_path, platform_sqlite_template):
    """A second database when a test needs two platforms (always SQLite)."""
    dst = tmp_path / "platform2.db"
    shutil.copy(platform_sqlite_template, dst)
    return f"sqlite:///{dst}"


@pytest.fixture
def platform_make(platform_db_url):
    """``platform_make(**settings)`` -> a :class:`platform_api.testing.Harness` on this test's database."""
    from platform_api.testing import Harness

    made = []

    def make(database_url: str | None = None, **overrides):
        h = Harness(database_url or platform_db_url, **overrides)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def platform(platform_make):
    return platform_make()


# --- markers --------------------------------------------------------------------------------------
# Times: `python -m pytest --durations=0` on the 2-core development machine, numba's cache warm, at
# load average 4-5 (other jobs running); a quiet machine takes about half.

#: Test modules left out of ``-m fast`` -> why.
HEAVY_MODULES: dict[str, str] = {
    "test_platform_schemathesis.py": "17 s: property-based requests to every OpenAPI operation",
    "test_platform_scenario.py": "9 s: the demo scenario through the platform",
    "test_theft_ieee.py": "8 s: three-phase load flows on the IEEE European LV feeder",
}

#: Tests left out of ``-m fast`` (every parameter of each): module -> test function -> why.
HEAVY: dict[str, dict[str, str]] = {
    "test_cli_errors.py": {
        "test_gla_process_exit_status_and_no_traceback": "6-9 s each: a `gla` process importing the chain",
    },
    "test_replay_workers.py": {
        "test_workers_measuring_make_the_bundles_of_the_parent_measuring": "8 s: demo_small replayed both ways",
        "test_band_amplitudes_left_out_change_nothing_else": "8 s: demo_small in-process, measured twice",
    },
    "test_cli_help.py": {
        "test_a_process_shows_no_traceback_unless_debug": "13 s: two `gla` processes importing the chain",
        "test_a_platform_refusing_its_admin_credential_is_one_line_and_status_2": "5 s: a `gla platform` process",
    },
    "test_replay_post.py": {
        "test_one_step_into_a_fresh_platform_and_onto_the_dashboard": "19 s: a platform process, demo_small replayed",
        "test_without_hub_keys_refused_then_decoded_once_the_keys_arrive": "12 s: a platform process, demo_small",
        "test_a_token_of_another_receiver_delivers_nothing_and_says_why": "10 s: a platform process, demo_small",
        "test_a_replay_into_its_own_folder_again_replaces_its_archive": "6 s: demo_small replayed twice",
    },
    "test_gnuradio.py": {
        "test_example_flowgraph_into_gla_receive_decodes_what_replay_decodes": "20 s: GNU Radio plays 8 s in real time",
        "test_bundles_after_a_flowgraph_restart_are_dated_by_the_new_run": "7 s each: two streams through the service",
        "test_example_python_is_what_grcc_generates_from_the_grc": "6 s: grcc starts GNU Radio Companion's loader",
    },
    "test_gla_bench.py": {
        "test_gla_bench_quick_writes_into_out_only": "8-70 s each: a quick run of one benchmark",
        "test_an_installed_wheel_runs_gla_bench_outside_the_clone": "95 s: wheel, venv, reliability quick run",
        "test_a_quick_run_aimed_at_full_results_writes_into_quick": "8 s: a quick run of the platform benchmark",
    },
    "test_startup.py": {
        "test_replay_timings_report_the_phases_up_to_the_first_block": "5-8 s: two `gla replay` processes",
    },
    "test_readme.py": {
        "test_readme_shell_section_runs_as_written": (
            "2-10 s per section (`gla` processes, a platform, a receiver); the benchmarks' section minutes"
        ),
    },
    "test_capture_repro.py": {
        "test_demo_small_regenerates_exactly": "10 s: simulates the capture",
    },
    "test_viterbi.py": {
        "test_matches_naive_10000_short_frames": "6 s",
        "test_agrees_with_commpy": "5 s: scikit-commpy's decoder",
        "test_matches_naive_full_frames": "3 s: the plain-Python decoder",
    },
    "test_tx.py": {
        "test_noiseless_modulate_demodulate_round_trip": "6 s",
        "test_conv_agrees_with_scikit_commpy": "2 s: scikit-commpy",
    },
    "test_rx.py": {
        "test_strong_bursts_are_decoded_not_blanked": "5 s: five bursts",
        "test_detector_no_false_alarm_on_noise_and_harmonics": "4 s",
    },
    "test_receiver.py": {  # these share a fixture: the pipeline with two worker processes, 3 s
        "test_all_messages_decoded_and_located_with_two_workers": "two workers",
        "test_levels_match_the_truth": "two workers",
        "test_in_process_pipeline_gives_the_same_bundles": "two workers, then in process",
        "test_bundle_ids_are_stable_and_archive_round_trips": "two workers",
    },
    "test_ingest.py": {
        "test_gnu_radio_raw_over_push_pull": "1 s",
    },
    "test_zmq_forged.py": {
        "test_forged_messages_cost_no_bundle": "5 s: demo_small twice over a socket and the receive chains",
    },
    "test_service.py": {
        "test_service_decodes_a_streamed_capture_with_faults_and_stops_cleanly": "2 s",
    },
    "test_service_metrics.py": {
        "test_pass_tags_mismatch_is_shown_on_healthz_and_metrics": "6-13 s each: the service over ZeroMQ",
    },
    "test_service_config.py": {
        "test_the_example_config_runs_as_written": "10 s: a `gla receive` process with two workers",
    },
    "test_jack_source.py": {  # on jackd's dummy driver, which runs in real time
        "test_service_on_jack_makes_the_bundles_of_a_replay": "15-20 s: demo_small in real time, replayed",
        "test_the_samples_played_are_the_samples_received_exactly": "4 s: 2 s of demo_small in real time",
        "test_refusals_name_what_was_wrong": "3 s: a capture process per refusal",
    },
    "test_disk_full.py": {
        "test_replay_through_a_full_disk_delivers_every_bundle_once": "3-4 s each (17 s with the chains' first load)",
        "test_service_on_a_full_disk_is_degraded_503_and_recovers": "2 s each: the service over ZeroMQ",
    },
    "test_resync.py": {
        "test_many_resyncs_mid_stream_match_an_offline_replay_segment_by_segment": (
            "40-120 s: simulates a 60-s capture, streams it through the service, replays each segment"
        ),
    },
    "test_gridsim_channel.py": {
        "test_seeded_and_block_size_independent": "5 s",
        "test_harmonics_stand_80_to_90_db_over_the_floor": "2 s",
        "test_render_speed_12_inputs": "1 s: a timing",
    },
    "test_theft.py": {
        "test_small_pandapower_radial_case": "2 s: pandapower",
    },
    "test_dashboard.py": {
        "test_dashboard_page_and_assets_are_served": "6 s: headless Chromium",
        "test_dashboard_shows_customer_details_only_when_signed_in": "3-6 s: headless Chromium, three pages",
        "test_receiver_health_report_and_listing": "2 s",
        "test_receiver_health_validation": "a platform per case",
    },
    "test_delivery.py": {
        "test_conflict_is_delivered_with_an_error_logged": "3 s",
        "test_all_delivered_once_and_replays_are_harmless": "1 s",
        "test_schema_error_is_rejected_kept_and_not_retried": "1 s",
        "test_platform_down_then_up_everything_arrives": "1 s",
        "test_unknown_token_stops_posting_and_keeps_the_spool": "1 s",
    },
    "test_platform_gridmap.py": {
        "test_import_json_422_names_the_field": "4 s: 17 bad imports",
    },
    "test_platform_inference.py": {
        "test_pairing_and_pairing_loss_change_tan_membership": "4 s",
    },
    "test_platform_ingest.py": {
        "test_fast_path_full_path_and_batch_agree": "3 s",
    },
    "test_platform_csv_safety.py": {
        "test_grid_csv_import_never_answers_500": "6 s: 150 generated CSV bodies",
        "test_ami_import_never_answers_500": "3 s: 150 generated CSV bodies",
    },
    "test_platform_bodylimit.py": {
        "test_a_100_mb_body_is_refused_without_holding_it": "6 s: a uvicorn server and 100 MB bodies",
    },
    "test_platform_publishing.py": {
        "test_concentrator_merges_substations": "3 s: three platforms",
        "test_webhook_gives_up_after_max_attempts_and_background_delivers": "2 s",
        "test_webhook_delivery_with_retry_and_signature": "1 s",
        "test_sse_stream_and_event_log": "1 s",
    },
    "test_platform_powercut.py": {
        "test_every_acknowledged_bundle_survives_a_kill_mid_commit": (
            "18-35 s: 20 rounds of a platform killed mid-commit"
        ),
    },
    "test_platform_security.py": {
        "test_gla_platform_binds_loopback_and_logs_database_credential_and_dashboard": "8 s: two starts of the server",
        "test_no_anonymous_get_shows_an_account_or_address": "3-4 s: a theft analysis, every GET route twice",
    },
    "test_hostile_http.py": {
        "test_every_operation_never_answers_5xx_with_credentials": "8-16 s: schemathesis, every operation",
        "test_bundle_mutations_never_answer_5xx_and_lose_nothing": "4 s: 400 hostile bundles",
    },
    "test_hostile_capture.py": {
        "test_spoilt_captures_raise_a_valueerror_naming_the_file_and_keep_whole_frames": "7 s: 200 captures",
    },
    "test_hostile_spool.py": {
        "test_a_torn_wal_keeps_every_acknowledged_bundle": "5 s: 100 spools reopened",
    },
    "test_hostile_csv.py": {
        "test_csv_imports_never_answer_5xx_and_keep_what_was_imported": "5 s: 200 hostile CSV files",
    },
    "test_hostile_zmq.py": {
        "test_malformed_messages_in_a_live_stream_cost_nothing": "4 s: 300 streams",
    },
    "test_platform_theft.py": {
        "test_ami_import_rejects_bad_files_and_stores_nothing": "5 s",
        "test_clean_areas_raise_nothing": "3 s",
        "test_tap_raises_one_theft_alert_with_account_address_and_coordinates": "1 s",
        "test_work_order_errors_name_the_field": "a platform per case",
    },
}

#: The modules whose tests exercise numba kernels: the ``kernel`` marker, for the NUMBA_DISABLE_JIT=1
#: pass. A new test module of the kernels belongs here.
KERNEL_MODULES = (
    "test_tx.py",
    "test_viterbi.py",
    "test_rx.py",
    "test_blanker.py",
    "test_excise.py",
    "test_numba_settings.py",
    "test_stage_repr.py",
    "test_ghosts.py",
    "test_measure_many.py",  # the workers' batched measurements (50 s with JIT off: the chains it sets up)
)

#: Tests of KERNEL_MODULES left out of the NUMBA_DISABLE_JIT=1 pass: too slow as plain Python.
#: Times with JIT off and coverage on, load average ~5. Every test kept takes < 10 s but one
#: whole-chain decode (test_chain_decodes_qpsk_and_rate_two_thirds, 20 s), which takes the chain,
#: detector, demodulator and modulator from 42-67 % to 88 % covered; the kernels the chain runs
#: are also checked one by one against tests/naive.py by the tests kept.
KERNEL_TOO_SLOW: dict[str, dict[str, str]] = {
    "test_ghosts.py": {  # kept: the DecodedSpan on a burst's real correlation, 15 s and 4 s (one modulation)
        "test_a_strong_burst_in_white_noise_gives_exactly_one_burst": "> 45 s each: the chain over 9 s",
        "test_the_ghost_check_does_not_depend_on_chunking_or_copy": "> 45 s: the chain over 9 s, four times",
        "test_a_second_burst_on_the_same_code_inside_the_first_is_still_decoded": "> 45 s each: the chain over 10 s",
        "test_a_decoded_span_predicts_its_own_peak_and_explains_only_weak_detections": (
            "9 s (modulates its own burst) for lines the tests kept cover"
        ),
        "test_the_grouper_makes_no_bundle_of_a_decoded_bursts_echo_on_another_input": "8 s: the receiver's grouper",
    },
    "test_viterbi.py": {
        "test_matches_naive_10000_short_frames": "> 45 s: 10,000 frames",
    },
    "test_tx.py": {
        "test_noiseless_modulate_demodulate_round_trip": "43 s",
        "test_burst_has_unit_rms_and_no_energy_on_harmonics": "25 s",
        "test_modulator_golden_and_naive": "24 s; the QPSK chain test runs it",
    },
    "test_rx.py": {
        "test_detector_finds_a_burst_at_the_right_time_and_code": "42 s",
        "test_detector_no_false_alarm_on_noise_and_harmonics": "> 45 s",
        "test_detector_false_alarms_on_white_noise_keep_to_the_design_rate": "> 45 s",
        "test_impulses_alone_are_not_detected_but_a_weak_burst_right_after_one_is": "> 45 s",
        "test_chain_decodes_with_clock_offsets": "> 45 s each",
        "test_overlapping_bursts_on_one_channel_with_different_codes": "> 45 s",
        "test_every_burst_of_the_demo_capture_is_decoded_on_its_true_input": "> 45 s",
        "test_chain_results_do_not_depend_on_chunking_or_copy_and_survive_bad_samples": "> 45 s",
        "test_strong_bursts_are_decoded_not_blanked": "> 45 s each",
        "test_a_strong_in_band_tone_is_excised_before_demodulation": "39 s, > 45 s",
        "test_a_tone_in_the_channel_does_not_make_the_detector_turn_a_burst_down": "30 s",
        "test_a_burst_ending_just_before_the_end_of_the_stream_is_decoded_at_flush": "26 s",
        "test_detector_bank_does_not_depend_on_chunking_copy_channels_or_the_screen": "> 45 s",
        "test_chain_records_join_into_the_whole_stream_whatever_the_chunking": "27 s",
    },
}

_TESTS = Path(__file__).resolve().parent


def _check_names() -> None:
    """Every module and test named above exists: a renamed or moved test must not drop out of these
    lists unnoticed."""
    named: list[tuple[str, str | None]] = [(m, None) for m in (*HEAVY_MODULES, *KERNEL_MODULES)]
    named += [(m, t) for table in (HEAVY, KERNEL_TOO_SLOW) for m, tests in table.items() for t in tests]
    for module, test in named:
        src = _TESTS / module
        if not src.is_file() or (test and f"def {test}(" not in src.read_text()):
            raise pytest.UsageError(f"tests/conftest.py names {module}::{test or ''}, which does not exist")


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers given here
def pytest_collection_modifyitems(config, items):
    _check_names()
    for item in items:
        if item.get_closest_marker("slow") is not None:
            continue
        module = item.path.name
        test = getattr(item, "originalname", item.name)
        if module not in HEAVY_MODULES and test not in HEAVY.get(module, {}):
            item.add_marker(pytest.mark.fast)
        if module in KERNEL_MODULES and test not in KERNEL_TOO_SLOW.get(module, {}):
            item.add_marker(pytest.mark.kernel)
