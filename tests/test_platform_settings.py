"""The platform's GLA_* settings, read by pydantic-settings: every variable, booleans and the
comma list as before, a value a setting cannot take one line naming the variable, and
``Settings(...)`` untouched by the shell's environment."""

from __future__ import annotations

import pytest

from platform_api.core.config import Settings, SettingsError


def test_variables_are_read_and_overrides_win():
    env = {
        "GLA_DATABASE_URL": "postgres://u@db/gla",
        "GLA_MODE": "concentrator",
        "GLA_FORWARD": "events, readings",
        "GLA_BACKGROUND": "0",
        "GLA_AUTO_PROVISION": " Yes ",
        "GLA_SQL_ECHO": "",
        "GLA_KEY_GRACE_S": "60",
        "GLA_MAX_BODY_BYTES": "2048",
        "GLA_TEST_DATABASE_URL": "not a setting: ignored",
        "OTHER": "x",
    }
    st = Settings.from_env(env, substation_id="sub-9")
    assert st.database_url == "postgresql+psycopg://u@db/gla" and st.is_concentrator
    assert st.forward == ["events", "readings"] and st.background is False and st.auto_provision is True
    assert st.sql_echo is False and st.key_grace_s == 60.0 and st.max_body_bytes == 2048
    assert st.substation_id == "sub-9"
    assert Settings.from_env({}) == Settings()  # the embedded defaults


@pytest.mark.parametrize(
    "env, start",
    [
        ({"GLA_MAX_BODY_BYTES": "abc"}, "GLA_MAX_BODY_BYTES='abc': Input should be a valid integer"),
        ({"GLA_BACKGROUND": "maybe"}, "GLA_BACKGROUND='maybe': Value error, expected 1/true/yes/on or 0/false/no/off"),
        ({"GLA_FORWARD": "events,nope"}, "GLA_FORWARD='events,nope': Input should be 'events', 'map' or 'readings'"),
        ({"GLA_MODE": "central"}, "GLA_MODE='central': Input should be 'substation' or 'concentrator'"),
        ({"GLA_REPORTS_PER_DAY": "0"}, "GLA_REPORTS_PER_DAY='0': Input should be greater than 0"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(env, start):
    with pytest.raises(SettingsError) as e:
        Settings.from_env(env)
    assert str(e.value).startswith(start) and "\n" not in str(e.value)


def test_only_from_env_reads_the_environment(monkeypatch):
    monkeypatch.setenv("GLA_SQL_ECHO", "1")
    monkeypatch.setenv("GLA_SUBSTATION_ID", "sub-env")
    assert Settings().sql_echo is False and Settings(substation_id="x").substation_id == "x"
    st = Settings.from_env()
    assert st.sql_echo is True and st.substation_id == "sub-env"
    assert Settings.from_env({}).sql_echo is False  # a given mapping replaces os.environ
