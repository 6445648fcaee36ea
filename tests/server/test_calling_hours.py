"""Calling-hours windows, and the time zones a destination is checked in."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import phonenumbers
import pytest

from outboundcalls.numbers import parse_phone
from outboundcalls_mcp.server.calling_hours import CAPITAL_ZONES, CallingHours, destination_zones, local_times

WINTER_NOON_UTC = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("08:00-21:00", 8 * 60, 21 * 60),
        ("8:00-21:00", 8 * 60, 21 * 60),
        (" 09:30 - 17:45 ", 9 * 60 + 30, 17 * 60 + 45),
        ("00:00-24:00", 0, 24 * 60),
    ],
)
def test_calling_hours_read_hh_mm_windows(text: str, start: int, end: int) -> None:
    assert CallingHours.parse(text) == CallingHours(start, end)


@pytest.mark.parametrize(
    "text",
    [
        "21:00-08:00",
        "08:00-08:00",
        "24:00-24:00",
        "08:00-24:30",
        "25:00-26:00",
        "08:60-21:00",
        "0800-2100",
        "08:00",
        "8am-9pm",
        "",
    ],
)
def test_malformed_or_overnight_calling_hours_are_refused_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        CallingHours.parse(text)
    assert repr(text) in str(caught.value)
    assert "HH:MM-HH:MM" in str(caught.value)


def test_the_window_includes_its_start_and_excludes_its_end() -> None:
    hours = CallingHours.parse("08:00-21:00")
    zone = ZoneInfo("Europe/London")
    assert hours.contains(datetime(2026, 1, 15, 8, 0, tzinfo=zone))
    assert hours.contains(datetime(2026, 1, 15, 20, 59, 59, tzinfo=zone))
    assert not hours.contains(datetime(2026, 1, 15, 21, 0, tzinfo=zone))
    assert not hours.contains(datetime(2026, 1, 15, 7, 59, tzinfo=zone))


def test_a_window_ending_at_24_00_includes_the_last_minute_of_the_day() -> None:
    hours = CallingHours.parse("18:00-24:00")
    assert hours.contains(datetime(2026, 1, 15, 23, 59, tzinfo=UTC))
    assert str(hours) == "18:00-24:00"


def test_a_geographic_number_is_checked_in_its_own_zone() -> None:
    zones = destination_zones(parse_phone("+1 415 555 0134"), "US")
    assert zones.zones == ("America/Los_Angeles",)
    assert not zones.fallback and zones.note is None


def test_a_number_whose_area_spans_two_zones_is_checked_in_both() -> None:
    # Idaho's 208 area code straddles Mountain (Boise) and Pacific time.
    zones = destination_zones(parse_phone("+1 208 555 0100"), "US")
    assert zones.zones == ("America/Boise", "America/Los_Angeles")
    assert not zones.fallback


@pytest.mark.parametrize(
    ("number", "default_region", "zone"),
    [
        ("+1 800 555 0100", "US", "America/New_York"),
        ("+1 800 555 0100", "CA", "America/Toronto"),
        ("+1 800 555 0100", "GB", "America/New_York"),
        ("+7 916 123 45 67", "US", "Europe/Moscow"),
        ("+61 412 345 678", "US", "Australia/Sydney"),
        ("+44 7400 123456", "US", "Europe/London"),
    ],
)
def test_a_number_without_a_geographic_area_is_checked_in_the_capital_or_default_zone(
    number: str, default_region: str, zone: str
) -> None:
    zones = destination_zones(parse_phone(number), default_region)
    assert zones.zones == (zone,)
    assert zones.fallback
    assert zones.note is not None and zone in zones.note


def test_without_a_capital_on_file_every_zone_of_the_country_is_checked() -> None:
    zones = destination_zones(parse_phone("+299 22 1234"), "US")
    assert zones.zones == ("America/Godthab", "America/Scoresbysund", "America/Thule")
    assert zones.fallback and zones.note is not None and "every zone" in zones.note


def test_a_number_with_no_known_zone_has_none() -> None:
    zones = destination_zones(parse_phone("+800 1234 5678"), "US")
    assert zones.zones == ()
    assert zones.fallback


def test_local_times_give_the_wall_clock_in_each_zone_and_whether_it_is_inside() -> None:
    hours = CallingHours.parse("08:00-21:00")
    at = datetime(2026, 1, 15, 15, 30, tzinfo=UTC)
    times = local_times(("America/Boise", "America/Los_Angeles"), at, hours)
    assert [(t.zone, t.local_time.strftime("%H:%M"), t.inside_hours) for t in times] == [
        ("America/Boise", "08:30", True),
        ("America/Los_Angeles", "07:30", False),
    ]


def test_local_times_refuse_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_times(("Europe/London",), datetime(2026, 1, 15, 12, 0), CallingHours.parse("08:00-21:00"))


def test_every_capital_zone_exists_and_belongs_to_a_known_region() -> None:
    for region, zone in CAPITAL_ZONES.items():
        assert region in phonenumbers.SUPPORTED_REGIONS
        assert WINTER_NOON_UTC.astimezone(ZoneInfo(zone)).tzinfo is not None
