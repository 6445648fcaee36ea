"""Pre-flight rules: each one's pass and refusal, their order, and the policy's fingerprint."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from outboundcalls_mcp.server.calling_hours import CallingHours
from outboundcalls_mcp.server.policy import (
    RULE_ORDER,
    RULE_SETTINGS,
    AgentFacts,
    DispatchPolicy,
    PolicyError,
    PreflightResult,
    UsageFacts,
)

# 17:00 UTC in January: 12:00 in New York, 09:00 in Los Angeles, 17:00 in London.
AFTERNOON = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)
DEPLOYED = AgentFacts(agent_id="agent_1", exists=True, status="deployed", name="Reminders")
SF = "+14155550134"
LONDON = "+442079460958"
PREMIUM = "+19005550100"


def check(
    raw: str = SF,
    *,
    policy: DispatchPolicy | None = None,
    now: datetime = AFTERNOON,
    agent: AgentFacts = DEPLOYED,
    balance: float = 500.0,
    usage: UsageFacts | None = None,
    default_region: str = "US",
) -> PreflightResult:
    chosen = replace(policy or DispatchPolicy(), default_region=default_region)
    return chosen.evaluate(raw=raw, now=now, agent=agent, balance=balance, usage=usage or UsageFacts())


def test_an_ordinary_number_in_calling_hours_passes_every_rule() -> None:
    result = check("(415) 555-0134")
    assert result.allowed and result.refusals == []
    assert result.number is not None and result.number.e164 == SF
    assert result.region == "US"


def test_the_result_carries_the_estimate_and_the_five_minute_figure_used_by_the_daily_cap() -> None:
    result = check()
    assert result.estimated_credits_per_minute == 19.95
    assert result.estimated_credits_per_call == 99.75


def test_the_result_shows_the_local_time_at_the_destination() -> None:
    result = check()
    assert [(t.zone, t.local_time.strftime("%H:%M")) for t in result.local_times] == [("America/Los_Angeles", "09:00")]
    assert not result.zones_fallback


def test_an_invalid_number_is_refused_by_validity_and_skips_destination_rules() -> None:
    result = check("+1 415 555 01345")
    assert result.rules == ["validity"]
    assert result.number is None
    assert "'+1 415 555 01345'" in result.refusals[0].value
    assert "E.164 like +14155550134" in result.refusals[0].message


@pytest.mark.parametrize(
    ("raw", "region"), [("911", "US"), ("112", "DE"), ("999", "GB"), ("+44 999", "US"), ("411", "US")]
)
def test_emergency_and_short_service_numbers_are_refused_as_emergency_whatever_the_settings(
    raw: str, region: str
) -> None:
    permissive = DispatchPolicy(
        allowed_number_types=frozenset({"UNKNOWN", "PREMIUM_RATE", "SHARED_COST", "FIXED_LINE"}),
        max_credits_per_minute=10_000,
        calling_hours=CallingHours.parse("00:00-24:00"),
    )
    result = check(raw, policy=permissive, default_region=region)
    assert result.rules == ["emergency"]
    assert result.short_number is not None
    assert result.refusals[0].setting is None


def test_an_unknown_agent_is_refused() -> None:
    result = check(agent=AgentFacts(agent_id="nope", exists=False))
    assert result.rules == ["agent"]
    assert "'nope'" in result.refusals[0].value


@pytest.mark.parametrize("status", ["draft", "paused", None])
def test_an_agent_that_is_not_deployed_is_refused(status: str | None) -> None:
    assert check(agent=AgentFacts(agent_id="agent_1", exists=True, status=status)).rules == ["agent"]


def test_the_deployed_status_is_read_without_regard_to_case() -> None:
    assert check(agent=AgentFacts(agent_id="agent_1", exists=True, status="Deployed")).allowed


def test_a_balance_under_the_vendor_minimum_is_refused_and_the_minimum_itself_passes() -> None:
    assert check(balance=24.99).rules == ["balance"]
    assert check(balance=25.0).allowed


def test_a_premium_rate_number_is_refused_by_type_naming_the_setting() -> None:
    result = check(PREMIUM)
    assert result.rules == ["number_type"]
    refusal = result.refusals[0]
    assert refusal.value == "+19005550100 is PREMIUM_RATE"
    assert refusal.setting == "OUTBOUNDCALLS_ALLOWED_NUMBER_TYPES"


def test_a_number_type_the_owner_allows_passes() -> None:
    policy = DispatchPolicy(allowed_number_types=frozenset({"PREMIUM_RATE"}))
    assert "number_type" not in check(PREMIUM, policy=policy).rules


def test_a_country_outside_the_allowed_list_is_refused_and_one_inside_passes() -> None:
    policy = DispatchPolicy(allowed_countries=frozenset({"GB"}))
    assert check(SF, policy=policy).rules == ["country"]
    assert check(LONDON, policy=policy).allowed


def test_a_non_geographic_number_is_outside_any_allowed_country_list() -> None:
    policy = DispatchPolicy(allowed_countries=frozenset({"US"}))
    result = check("+800 1234 5678", policy=policy)
    assert "country" in result.rules
    assert "no country" in result.refusals[result.rules.index("country")].value


def test_a_destination_estimated_over_the_rate_cap_is_refused() -> None:
    result = check("+688 20123", now=datetime(2026, 1, 15, 0, 0, tzinfo=UTC))  # Tuvalu: 455 credits/min estimated
    assert result.rules == ["rate"]
    assert result.refusals[0].setting == "OUTBOUNDCALLS_MAX_CREDITS_PER_MINUTE"
    assert "455" in result.refusals[0].value


def test_a_lower_rate_cap_refuses_an_ordinary_destination() -> None:
    assert check(policy=DispatchPolicy(max_credits_per_minute=19.9)).rules == ["rate"]
    assert check(policy=DispatchPolicy(max_credits_per_minute=19.95)).allowed


def test_a_destination_without_a_rate_estimate_is_refused_by_the_rate_rule() -> None:
    result = check("+213 123 45 67 8", now=datetime(2026, 1, 15, 12, 0, tzinfo=UTC))  # Algeria: not in the table
    assert result.rules == ["rate"]
    assert result.estimated_credits_per_minute is None
    assert "no rate estimate" in result.refusals[0].value


def test_a_number_on_the_do_not_call_list_is_refused_and_others_pass(tmp_path: Path) -> None:
    listed = tmp_path / "owners-private-list.txt"
    listed.write_text(SF + "\n", encoding="utf-8")
    policy = DispatchPolicy.from_values(do_not_call_file=listed)
    result = check("415-555-0134", policy=policy)
    assert result.rules == ["do_not_call"]
    # Where the owner keeps the list is never shown to the assistant.
    assert "owners-private-list" not in result.refusal_text() and str(tmp_path) not in result.refusal_text()
    assert check(LONDON, policy=policy).allowed


def test_a_night_time_destination_is_refused_by_hours() -> None:
    late_in_london = datetime(2026, 1, 15, 22, 30, tzinfo=UTC)
    result = check(LONDON, now=late_in_london)
    assert result.rules == ["hours"]
    assert "22:30 in Europe/London" in result.refusals[0].value
    assert result.refusals[0].setting == "OUTBOUNDCALLS_CALLING_HOURS"
    assert check(SF, now=late_in_london).allowed


def test_a_multi_zone_number_is_refused_while_any_of_its_zones_is_outside_hours() -> None:
    idaho = "+12085550100"
    boise_0830_la_0730 = datetime(2026, 1, 15, 15, 30, tzinfo=UTC)
    result = check(idaho, now=boise_0830_la_0730)
    assert result.rules == ["hours"]
    assert "America/Los_Angeles" in result.refusals[0].value
    assert "America/Boise" not in result.refusals[0].value
    assert check(idaho, now=boise_0830_la_0730 + timedelta(hours=1)).allowed


def test_a_toll_free_number_is_checked_in_the_default_regions_zone_and_says_so() -> None:
    new_york_0730 = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
    result = check("+1 800 555 0100", now=new_york_0730)
    assert result.rules == ["hours"]
    assert result.zones_fallback
    assert result.zone_note is not None and "America/New_York" in result.zone_note
    assert check("+1 800 555 0100", now=new_york_0730, default_region="CA").zones_fallback


def test_a_number_with_no_known_time_zone_is_refused_by_hours() -> None:
    policy = DispatchPolicy(max_credits_per_minute=10_000)
    result = check("+800 1234 5678", policy=policy)
    assert "hours" in result.rules
    assert "unknown" in result.refusals[result.rules.index("hours")].value


def test_the_daily_call_cap_refuses_the_call_that_would_exceed_it() -> None:
    assert check(usage=UsageFacts(calls_last_24h=49)).allowed
    result = check(usage=UsageFacts(calls_last_24h=50))
    assert result.rules == ["daily_calls"]
    assert result.refusals[0].setting == "OUTBOUNDCALLS_MAX_CALLS_PER_DAY"


def test_the_daily_credit_cap_counts_five_minutes_of_this_call_at_its_estimated_rate() -> None:
    assert check(usage=UsageFacts(credits_last_24h=4900.25)).allowed
    result = check(usage=UsageFacts(credits_last_24h=4900.26))
    assert result.rules == ["daily_credits"]
    assert result.refusals[0].setting == "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY"


def test_the_daily_caps_still_refuse_when_the_number_is_invalid() -> None:
    result = check("12", usage=UsageFacts(calls_last_24h=50, credits_last_24h=5000.01))
    assert result.rules == ["validity", "daily_calls", "daily_credits"]


def test_the_same_number_is_refused_until_the_cooldown_since_its_last_dial_ends() -> None:
    just_before = UsageFacts(to_number=SF, last_dial_at=AFTERNOON - timedelta(minutes=59))
    result = check(usage=just_before)
    assert result.rules == ["cooldown"]
    assert "59 minutes ago" in result.refusals[0].value
    assert check(usage=UsageFacts(to_number=SF, last_dial_at=AFTERNOON - timedelta(minutes=60))).allowed


def test_a_dial_in_flight_to_the_number_refuses_another_even_with_no_cooldown() -> None:
    zero = DispatchPolicy(redial_cooldown_minutes=0)
    busy = UsageFacts(to_number=SF, last_dial_at=AFTERNOON, in_flight=True)
    refused = check(SF, policy=zero, usage=busy)
    assert refused.rules == ["cooldown"] and "being dialed right now" in refused.refusals[0].value
    assert check(SF, policy=zero, usage=busy.model_copy(update={"in_flight": False})).allowed


def test_a_zero_cooldown_never_refuses() -> None:
    policy = DispatchPolicy(redial_cooldown_minutes=0)
    assert check(policy=policy, usage=UsageFacts(to_number=SF, last_dial_at=AFTERNOON)).allowed


def test_an_unreconciled_unknown_outcome_holds_the_number_until_the_cooldown_ends() -> None:
    recent = AFTERNOON - timedelta(minutes=10)
    result = check(usage=UsageFacts(to_number=SF, last_dial_at=recent, unknown_outcome_at=recent))
    assert result.rules == ["cooldown", "unknown_outcome_hold"]
    assert "list_calls" in result.refusals[1].message
    old = AFTERNOON - timedelta(minutes=61)
    assert check(usage=UsageFacts(to_number=SF, last_dial_at=old, unknown_outcome_at=old)).allowed


def test_every_refusing_rule_is_named_most_fundamental_first() -> None:
    policy = DispatchPolicy(
        allowed_countries=frozenset({"GB"}),
        max_credits_per_minute=10,
        do_not_call=frozenset({PREMIUM}),
    )
    midnight_in_new_york = datetime(2026, 1, 15, 5, 0, tzinfo=UTC)
    recent = midnight_in_new_york - timedelta(minutes=1)
    usage = UsageFacts(
        to_number=PREMIUM, calls_last_24h=50, credits_last_24h=5000, last_dial_at=recent, unknown_outcome_at=recent
    )
    result = check(
        PREMIUM,
        policy=policy,
        now=midnight_in_new_york,
        agent=AgentFacts(agent_id="x", exists=False),
        balance=0,
        usage=usage,
    )
    assert result.rules == [rule for rule in RULE_ORDER if rule not in ("validity", "emergency")]


def test_every_refusal_names_its_rules_setting_and_says_what_to_do() -> None:
    policy = DispatchPolicy(
        allowed_countries=frozenset({"GB"}), max_credits_per_minute=10, do_not_call=frozenset({PREMIUM})
    )
    result = check(PREMIUM, policy=policy, balance=0, usage=UsageFacts(calls_last_24h=99))
    for refusal in result.refusals:
        assert refusal.setting == RULE_SETTINGS[refusal.rule]
        assert refusal.message and refusal.value
    text = result.refusal_text()
    assert text.startswith(f"Not dialed: {len(result.refusals)} rule(s)")
    assert "(setting OUTBOUNDCALLS_ALLOWED_COUNTRIES)" in text


def test_evaluate_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check(now=datetime(2026, 1, 15, 17, 0))


def test_evaluate_refuses_usage_facts_gathered_for_another_number() -> None:
    with pytest.raises(ValueError, match=re.escape(LONDON)):
        check(SF, usage=UsageFacts(to_number=LONDON))


def test_from_values_normalizes_settings_and_parses_the_hours() -> None:
    policy = DispatchPolicy.from_values(
        allowed_countries=[" gb", "us "], allowed_number_types=["mobile", "FIXED_LINE"], calling_hours="9:00-17:00"
    )
    assert policy.allowed_countries == frozenset({"GB", "US"})
    assert policy.allowed_number_types == frozenset({"MOBILE", "FIXED_LINE"})
    assert policy.calling_hours == CallingHours(9 * 60, 17 * 60)


def test_from_values_defaults_are_the_documented_ones() -> None:
    assert DispatchPolicy.from_values() == DispatchPolicy(
        confirm_mode="auto",
        default_region="US",
        max_batch=20,
        allowed_countries=frozenset(),
        allowed_number_types=frozenset({"FIXED_LINE", "MOBILE", "FIXED_LINE_OR_MOBILE", "TOLL_FREE", "VOIP"}),
        max_credits_per_minute=100.0,
        calling_hours=CallingHours(8 * 60, 21 * 60),
        max_calls_per_day=50,
        max_credits_per_day=5000.0,
        redial_cooldown_minutes=60,
    )


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        ({"calling_hours": "21:00-08:00"}, "OUTBOUNDCALLS_CALLING_HOURS"),
        ({"allowed_number_types": ["MOBILE", "SATELLITE"]}, "OUTBOUNDCALLS_ALLOWED_NUMBER_TYPES"),
        ({"allowed_countries": ["GBR"]}, "OUTBOUNDCALLS_ALLOWED_COUNTRIES"),
        ({"max_credits_per_minute": 0}, "OUTBOUNDCALLS_MAX_CREDITS_PER_MINUTE"),
        ({"max_calls_per_day": 0}, "OUTBOUNDCALLS_MAX_CALLS_PER_DAY"),
        ({"max_credits_per_day": -1}, "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY"),
        ({"redial_cooldown_minutes": -5}, "OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES"),
    ],
)
def test_a_setting_that_makes_no_sense_is_a_policy_error_naming_it(values: dict[str, Any], setting: str) -> None:
    with pytest.raises(PolicyError) as caught:
        DispatchPolicy.from_values(**values)
    assert caught.value.setting == setting
    assert str(caught.value).startswith(setting)


def test_the_fingerprint_is_stable_across_instances_input_order_and_case() -> None:
    first = DispatchPolicy.from_values(allowed_countries=["US", "GB"], allowed_number_types=["MOBILE", "VOIP"])
    second = DispatchPolicy.from_values(allowed_countries=["gb", "us"], allowed_number_types=["voip", "mobile"])
    assert first.fingerprint() == second.fingerprint()
    assert len(first.fingerprint()) == 64


def test_the_default_policys_fingerprint_is_pinned_so_a_format_change_is_a_reviewed_change() -> None:
    assert DispatchPolicy().fingerprint() == "b4637ade8e28a7726b171343bf35778b91743295d75704d4822589da844f5f40"


def test_the_fingerprint_is_the_same_in_another_process() -> None:
    code = "from outboundcalls_mcp.server.policy import DispatchPolicy; print(DispatchPolicy().fingerprint())"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == DispatchPolicy().fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        {"allowed_countries": frozenset({"US"})},
        {"allowed_number_types": frozenset({"MOBILE"})},
        {"max_credits_per_minute": 99.5},
        {"calling_hours": CallingHours(9 * 60, 21 * 60)},
        {"do_not_call": frozenset({SF})},
        {"max_calls_per_day": 51},
        {"max_credits_per_day": 4999.0},
        {"redial_cooldown_minutes": 61},
        {"confirm_mode": "elicit"},
        {"confirm_mode": "token"},
        {"confirm_mode": "none"},
        {"default_region": "GB"},
        {"max_batch": 21},
    ],
)
def test_changing_any_rule_changes_the_fingerprint(change: dict[str, Any]) -> None:
    assert replace(DispatchPolicy(), **change).fingerprint() != DispatchPolicy().fingerprint()


def test_the_do_not_call_files_location_is_not_part_of_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(SF + "\n")
    (tmp_path / "b.txt").write_text(SF + "\n")
    here = DispatchPolicy.from_values(do_not_call_file=tmp_path / "a.txt")
    there = DispatchPolicy.from_values(do_not_call_file=tmp_path / "b.txt")
    assert here.fingerprint() == there.fingerprint()


def test_every_policy_field_is_in_the_settings_summary() -> None:
    """A field the summary leaves out would let two processes with different rules share a ledger."""
    from dataclasses import fields

    summary = DispatchPolicy().settings_summary()
    for field in fields(DispatchPolicy):
        setting = "OUTBOUNDCALLS_CONFIRM" if field.name == "confirm_mode" else f"OUTBOUNDCALLS_{field.name.upper()}"
        setting = "OUTBOUNDCALLS_DO_NOT_CALL_FILE" if field.name == "do_not_call" else setting
        assert setting in summary, field.name
    assert next(iter(summary)) == "OUTBOUNDCALLS_CONFIRM"


def test_the_settings_summary_never_lists_do_not_call_numbers() -> None:
    summary = DispatchPolicy(do_not_call=frozenset({SF})).settings_summary()
    assert SF not in repr(summary)
    assert summary["OUTBOUNDCALLS_DO_NOT_CALL_FILE"].startswith("1 numbers, sha256 ")


def test_the_default_number_types_are_phonenumbers_type_names() -> None:
    from outboundcalls.numbers import number_type_names
    from outboundcalls_mcp.server.policy import DEFAULT_ALLOWED_NUMBER_TYPES

    assert DEFAULT_ALLOWED_NUMBER_TYPES <= number_type_names()
