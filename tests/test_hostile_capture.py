"""Spoilt capture files read as `gla replay` reads them (issue 17 item 8): sidecars with wrong,
missing or garbage fields, audio files cut, overwritten, replaced or missing. Generators and
properties: gridsim/hostile/capture.py."""

from __future__ import annotations

from hypothesis import given

from gridsim.hostile import capture, ci_settings


@ci_settings(200)
@given(s=capture.spoilt())
def test_spoilt_captures_raise_a_valueerror_naming_the_file_and_keep_whole_frames(s):
    assert capture.check_capture(s) == []
