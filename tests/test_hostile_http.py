"""Hostile inputs over HTTP (issue 17 item 8): mutated bundle bodies and schemathesis over the whole
OpenAPI, with a registered receiver's token and the admin token. The generators and properties are
in gridsim/hostile/http.py; benchmarks/bench_reliability.py runs the same with more examples."""

from __future__ import annotations

import pytest
from hypothesis import given

from gridsim.hostile import Tally, ci_settings, http, only


@pytest.fixture
def harness(platform_db_url):
    h = http.make_harness(platform_db_url)
    yield h
    h.close()


def test_bundle_mutations_never_answer_5xx_and_lose_nothing(harness):
    accepted = http.post_base(harness)

    @ci_settings(400)
    @given(p=http.mutations())
    def post(p):
        assert only(http.check_post(harness, p), "server_error") == []

    post()
    assert http.lost_bundles(harness, accepted) == []


def test_nonfinite_numbers_bools_and_duplicate_keys_are_refused(harness):
    @ci_settings(150, shrink=False)
    @given(p=http.mutations())
    def post(p):
        assert only(http.check_post(harness, p), "not_refused") == []

    post()


def test_every_operation_never_answers_5xx_with_credentials(harness):
    tally, statuses = Tally("http-openapi"), {}
    failures = http.run_schemathesis(harness, 1, tally, statuses)
    assert tally.tried >= 100, tally.tried
    assert not failures, "\n\n".join(failures)
    # each operation is exercised past its credential check (the operator routes require the
    # admin token, the receiver routes the receiver's): not every answer is 401/403
    stopped = {op: s for op, s in statuses.items() if s and set(s) <= {401, 403}}
    assert not stopped, stopped


def test_the_receiver_routes_are_found_for_their_credential(harness):
    ops = http.receiver_operations(harness.app)
    assert {("post", "/api/v1/receivers/{receiver_id}/health"), ("post", "/api/v1/concentrator/forward")} <= ops
