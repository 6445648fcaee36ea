"""Phone parsing to E.164, refusal of look-alikes, and recognition of emergency and short numbers."""

from __future__ import annotations

import pytest

from outboundcalls.errors import InvalidRequestError
from outboundcalls.numbers import (
    InvalidPhoneNumberError,
    PhoneNumber,
    classify_short_number,
    is_emergency,
    normalize_region,
    parse_phone,
)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+14155550134", "US"),
        ("+1 (415) 555-0134", "US"),
        ("415-555-0134", "US"),
        ("(415) 555 0134", "US"),
        ("415.555.0134", "US"),
        ("  +1 415 555 0134\n", "US"),
        ("+1 415\u00a0555\u20130134", "US"),
        ("001 415 555 0134", "GB"),
        ("011 1 415 555 0134", "US"),
    ],
)
def test_common_written_forms_of_one_number_become_the_same_e164(raw: str, region: str) -> None:
    assert parse_phone(raw, region).e164 == "+14155550134"


def test_a_parsed_number_carries_region_type_national_form_and_country_code() -> None:
    number = parse_phone("+44 20 7946 0958")
    assert number == PhoneNumber(
        e164="+442079460958", region="GB", number_type="FIXED_LINE", national="020 7946 0958", country_code=44
    )


def test_national_forms_are_read_in_the_default_region() -> None:
    assert parse_phone("020 7946 0958", "GB").e164 == "+442079460958"
    assert parse_phone("020 7946 0958", "gb").region == "GB"


def test_a_leading_00_is_read_as_the_international_prefix_even_where_it_is_not_the_local_one() -> None:
    assert parse_phone("00 44 20 7946 0958", "US").e164 == "+442079460958"


@pytest.mark.parametrize(
    ("raw", "number_type"),
    [
        ("+19005550100", "PREMIUM_RATE"),
        ("+18005550100", "TOLL_FREE"),
        ("+447400123456", "MOBILE"),
        ("+79161234567", "MOBILE"),
    ],
)
def test_the_number_type_is_named_as_phonenumbers_names_it(raw: str, number_type: str) -> None:
    assert parse_phone(raw).number_type == number_type


def test_a_non_geographic_number_has_no_region() -> None:
    number = parse_phone("+800 1234 5678")
    assert (number.region, number.country_code, number.number_type) == (None, 800, "TOLL_FREE")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("+1" + "4" * 63, "too_long"),
        ("+1 415 555 0134\x00", "control_character"),
        ("+1 415\t555 0134", "control_character"),
        ("+1 415 555\u200b0134", "control_character"),
        ("+1 415 555 0134\u202e", "control_character"),
        ("1-800-FLOWERS", "letters"),
        ("+1 415 555 0134 ext 12", "letters"),
        ("tel:+14155550134", "letters"),
        ("+\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff13\uff14", "non_ascii_digit"),
        ("+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0663\u0664", "non_ascii_digit"),
        ("+1 415 555 013\u2074", "non_ascii_digit"),
        ("\uff0b14155550134", "unexpected_character"),
        ("+1 415 555 0134 #", "unexpected_character"),
        ("+1 415 555 0134;", "unexpected_character"),
        ("+-()", "not_a_number"),
        ("+999 1234 5678", "invalid_country_code"),
        ("+1 415 555 01345", "invalid"),
        ("12", "invalid"),
        ("+44 20 7946", "invalid"),
    ],
)
def test_input_that_is_not_a_dialable_number_is_refused_with_its_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumberError) as caught:
        parse_phone(raw, "US")
    assert caught.value.reason == reason
    assert caught.value.raw == raw


def test_the_refusal_names_the_input_and_the_expected_form() -> None:
    with pytest.raises(InvalidPhoneNumberError) as caught:
        parse_phone("1-800-FLOWERS", "US")
    message = str(caught.value)
    assert "'1-800-FLOWERS'" in message
    assert "E.164 like +14155550134, or a national number for region US" in message


def test_a_long_input_is_cut_in_the_message() -> None:
    with pytest.raises(InvalidPhoneNumberError) as caught:
        parse_phone("9" * 60, "US")
    assert "9" * 60 not in str(caught.value)
    assert "..." in str(caught.value)


def test_an_invalid_number_is_a_local_request_error_and_a_value_error() -> None:
    with pytest.raises(InvalidPhoneNumberError) as caught:
        parse_phone("12")
    assert isinstance(caught.value, InvalidRequestError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("911", "US"),
        ("112", "US"),
        ("+1 911", "US"),
        ("999", "GB"),
        ("+44 999", "US"),
        ("112", "DE"),
        ("110", "DE"),
        ("000", "AU"),
        ("110", "JP"),
        ("119", "JP"),
        ("119", "KR"),
        ("15", "FR"),
        ("9-1-1", "US"),
    ],
)
def test_emergency_numbers_are_recognised_by_their_own_country(raw: str, region: str) -> None:
    assert is_emergency(raw, region)
    short = classify_short_number(raw, region)
    assert short is not None
    assert short.destination_region in short.regions


def test_an_emergency_number_of_another_country_is_still_named_emergency() -> None:
    short = classify_short_number("999", "US")
    assert short is not None
    assert short.kind == "emergency"
    assert "GB" in short.regions and "US" not in short.regions
    assert "(not in US)" in short.describe()
    assert "other regions" in short.describe()


def test_parsing_an_emergency_number_refuses_it_as_emergency_not_merely_invalid() -> None:
    with pytest.raises(InvalidPhoneNumberError) as caught:
        parse_phone("911", "US")
    assert caught.value.reason == "emergency"
    assert caught.value.short_number is not None
    assert "emergency number in US" in str(caught.value)


@pytest.mark.parametrize(("raw", "region"), [("411", "US"), ("116000", "FR")])
def test_short_service_numbers_are_recognised_and_refused(raw: str, region: str) -> None:
    short = classify_short_number(raw, region)
    assert short is not None and short.kind == "short_service"
    assert not is_emergency(raw, region)
    with pytest.raises(InvalidPhoneNumberError) as caught:
        parse_phone(raw, region)
    assert caught.value.reason == "short_service"


@pytest.mark.parametrize("raw", ["+14155550134", "415-555-0134", "1-800-FLOWERS", "", "+1 415 555 01345"])
def test_ordinary_and_malformed_input_is_not_a_short_number(raw: str) -> None:
    assert classify_short_number(raw, "US") is None
    assert not is_emergency(raw, "US")


def test_an_unknown_default_region_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'XX'"):
        parse_phone("415-555-0134", "XX")
    assert normalize_region(" gb ") == "GB"
