"""Settings from OUTBOUNDCALLS_* variables: unknown names and bad values stop start-up naming them; blanks are unset."""

from __future__ import annotations

import pytest

from outboundcalls_mcp.server.settings import Settings, SettingsError, load_settings

SECRET = "oc_live_" + "Zk3v9QpL2mXr7TbW4nYc8HsJ6dFg1AeU"


def test_no_variables_gives_the_documented_defaults() -> None:
    settings = load_settings({})
    assert settings.api_key is None and settings.sandbox is False and settings.read_only is False
    assert (settings.default_region, settings.confirm, settings.base_url) == (
        "US",
        "auto",
        "https://outboundcalls.ai/api/v1",
    )


def test_variables_of_other_programs_are_ignored() -> None:
    assert load_settings({"PATH": "/usr/bin", "OUTBOUND_API_KEY": "x", "MY_OUTBOUNDCALLS_X": "y"}) == load_settings({})


def test_each_variable_sets_its_field() -> None:
    settings = load_settings(
        {
            "OUTBOUNDCALLS_API_KEY": SECRET,
            "OUTBOUNDCALLS_SANDBOX": "true",
            "OUTBOUNDCALLS_READ_ONLY": "1",
            "OUTBOUNDCALLS_DEFAULT_REGION": "gb",
            "OUTBOUNDCALLS_ALLOWED_COUNTRIES": "us, ca",
            "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": "7",
        }
    )
    assert settings.api_key is not None and settings.api_key.get_secret_value() == SECRET
    assert settings.sandbox is True and settings.read_only is True
    assert settings.default_region == "GB" and settings.allowed_countries == frozenset({"US", "CA"})
    assert settings.max_calls_per_day == 7


@pytest.mark.parametrize("name", ["OUTBOUNDCALLS_MAX_CALL_PER_DAY", "OUTBOUNDCALLS_APIKEY", "OUTBOUNDCALLS_READONLY"])
def test_an_unknown_outboundcalls_variable_stops_start_up_naming_it(name: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: "5"})
    assert name in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OUTBOUNDCALLS_TIMEOUT_SECONDS", "soon"),
        ("OUTBOUNDCALLS_TIMEOUT_SECONDS", "0"),
        ("OUTBOUNDCALLS_DEFAULT_REGION", "USA"),
        ("OUTBOUNDCALLS_SANDBOX", "perhaps"),
        ("OUTBOUNDCALLS_CONFIRM", "sometimes"),
        ("OUTBOUNDCALLS_BASE_URL", "http://api.example.com"),
        ("OUTBOUNDCALLS_LOG_LEVEL", "LOUD"),
        ("OUTBOUNDCALLS_ALLOWED_COUNTRIES", "US,Canada"),
        ("OUTBOUNDCALLS_ALLOWED_NUMBER_TYPES", "MOBILE,FAX"),
        ("OUTBOUNDCALLS_MAX_CALLS_PER_DAY", "0"),
        ("OUTBOUNDCALLS_MAX_CREDITS_PER_MINUTE", "-1"),
    ],
)
def test_an_invalid_value_stops_start_up_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value})
    assert name in str(raised.value)


def test_every_invalid_variable_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"OUTBOUNDCALLS_DEFAULT_REGION": "USA", "OUTBOUNDCALLS_LOG_LEVEL": "LOUD"})
    assert "OUTBOUNDCALLS_DEFAULT_REGION" in str(raised.value) and "OUTBOUNDCALLS_LOG_LEVEL" in str(raised.value)


def test_an_error_never_echoes_a_secret_value() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(
            {"OUTBOUNDCALLS_API_KEY": SECRET, "OUTBOUNDCALLS_HTTP_TOKEN": SECRET, "OUTBOUNDCALLS_SANDBOX": "perhaps"}
        )
    assert SECRET not in str(raised.value)


def test_the_key_is_hidden_in_the_settings_repr() -> None:
    settings = load_settings({"OUTBOUNDCALLS_API_KEY": SECRET})
    assert SECRET not in repr(settings) and SECRET not in str(settings)


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_values_are_treated_as_unset(blank: str) -> None:
    # Bundle hosts substitute "" for optional fields the user left blank.
    settings = load_settings(
        {
            "OUTBOUNDCALLS_API_KEY": blank,
            "OUTBOUNDCALLS_DEFAULT_REGION": blank,
            "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": blank,
            "OUTBOUNDCALLS_STATE_DIR": blank,
            "OUTBOUNDCALLS_DO_NOT_CALL_FILE": blank,
            "OUTBOUNDCALLS_SANDBOX": blank,
        }
    )
    assert settings == load_settings({})


def test_a_placeholder_the_bundle_host_left_unresolved_is_unset() -> None:
    # mcpb hosts pass `${user_config.<key>}` on verbatim for an optional field with no value and no default.
    env = {f"OUTBOUNDCALLS_{name.upper()}": f"${{user_config.{name}}}" for name in Settings.model_fields}
    assert load_settings(env) == load_settings({})


def test_a_value_that_only_contains_a_placeholder_is_still_a_value_and_checked() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"OUTBOUNDCALLS_MAX_CALLS_PER_DAY": "${user_config.max_calls_per_day}0"})
    assert "OUTBOUNDCALLS_MAX_CALLS_PER_DAY" in str(raised.value)


def test_command_line_flags_override_the_environment_and_absent_flags_do_not() -> None:
    settings = load_settings(
        {"OUTBOUNDCALLS_SANDBOX": "false", "OUTBOUNDCALLS_READ_ONLY": "true"}, sandbox=True, read_only=None
    )
    assert settings.sandbox is True and settings.read_only is True


def test_confirm_none_without_explicit_daily_caps_is_refused_naming_both() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"OUTBOUNDCALLS_CONFIRM": "none"})
    assert "OUTBOUNDCALLS_MAX_CALLS_PER_DAY" in str(raised.value)
    assert "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY" in str(raised.value)


def test_confirm_none_with_one_cap_names_the_missing_one() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"OUTBOUNDCALLS_CONFIRM": "none", "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": "10"})
    assert "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY" in str(raised.value)
    assert "OUTBOUNDCALLS_MAX_CALLS_PER_DAY" not in str(raised.value)


def test_confirm_none_with_blank_caps_is_refused_because_blank_is_unset() -> None:
    env = {
        "OUTBOUNDCALLS_CONFIRM": "none",
        "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": "",
        "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY": "",
    }
    with pytest.raises(SettingsError):
        load_settings(env)


def test_confirm_none_with_both_caps_set_explicitly_is_accepted() -> None:
    settings = load_settings(
        {
            "OUTBOUNDCALLS_CONFIRM": "none",
            "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": "50",
            "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY": "5000",
        }
    )
    assert (settings.confirm, settings.max_calls_per_day, settings.max_credits_per_day) == ("none", 50, 5000.0)


def test_settings_built_directly_refuse_unknown_fields() -> None:
    with pytest.raises(ValueError, match="max_call_per_day"):
        Settings.model_validate({"max_call_per_day": 3})


def test_blank_values_in_the_process_environment_are_unset_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a bundle host does for optional fields left blank; the server must still start.
    monkeypatch.setenv("OUTBOUNDCALLS_MAX_CALLS_PER_DAY", "")
    monkeypatch.setenv("OUTBOUNDCALLS_DEFAULT_REGION", "")
    settings = load_settings()
    assert (settings.max_calls_per_day, settings.default_region) == (50, "US")


def test_only_the_mapping_given_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOUNDCALLS_API_KEY", SECRET)
    monkeypatch.setenv("OUTBOUNDCALLS_SANDBOX", "true")
    assert load_settings({}) == Settings.model_validate({}) == Settings()
    assert Settings().api_key is None and Settings().sandbox is False
    assert load_settings().sandbox is True
