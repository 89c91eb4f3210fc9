"""Hostile CSV to the AMI and Inventory imports (issue 17 item 8). Generators and property:
gridsim/hostile/csv_import.py."""

from __future__ import annotations

import pytest
from hypothesis import given

from gridsim.hostile import ci_settings, csv_import, http


@pytest.fixture
def harness(platform_db_url):
    h = http.make_harness(platform_db_url)
    yield h
    h.close()


def test_csv_imports_never_answer_5xx_and_keep_what_was_imported(harness):
    before = csv_import.import_base(harness)

    @ci_settings(200)
    @given(c=csv_import.csv_bodies())
    def post(c):
        assert csv_import.check_import(harness, c) == []

    post()
    assert csv_import.lost_readings(harness, before) == []


def test_cr_only_lines_and_huge_fields_never_answer_5xx(harness):
    @ci_settings(50, shrink=False)
    @given(c=csv_import.csv_bodies(cr_or_huge=True))
    def post(c):
        assert csv_import.check_import(harness, c) == []

    post()
