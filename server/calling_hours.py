"""Calling hours at the destination: the owner's window, and the time zones a number is checked in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from outboundcalls.numbers import PhoneNumber

__all__ = [
    "CAPITAL_ZONES",
    "DEFAULT_CALLING_HOURS",
    "CallingHours",
    "DestinationZones",
    "LocalTime",
    "destination_zones",
    "local_times",
]

_MINUTES_PER_DAY: Final = 24 * 60
_HOURS_PATTERN: Final = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_UNKNOWN_ZONE: Final = "Etc/Unknown"
_NANP_COUNTRY_CODE: Final = 1

# The zone of each country's capital region, for numbers with no geographic area (toll-free,
# mobiles in countries whose mobile ranges are national): the decision in the safe-dispatch issue.
CAPITAL_ZONES: Final = MappingProxyType(
    {
        "AE": "Asia/Dubai", "AR": "America/Argentina/Buenos_Aires", "AT": "Europe/Vienna",
        "AU": "Australia/Sydney", "BE": "Europe/Brussels", "BR": "America/Sao_Paulo",
        "CA": "America/Toronto", "CD": "Africa/Kinshasa", "CH": "Europe/Zurich",
        "CL": "America/Santiago", "CN": "Asia/Shanghai", "CO": "America/Bogota",
        "CZ": "Europe/Prague", "DE": "Europe/Berlin", "DK": "Europe/Copenhagen",
        "EC": "America/Guayaquil", "EG": "Africa/Cairo", "ES": "Europe/Madrid",
        "FI": "Europe/Helsinki", "FR": "Europe/Paris", "GB": "Europe/London", "GR": "Europe/Athens",
        "ID": "Asia/Jakarta", "IE": "Europe/Dublin", "IL": "Asia/Jerusalem", "IN": "Asia/Kolkata",
        "IT": "Europe/Rome", "JP": "Asia/Tokyo", "KE": "Africa/Nairobi", "KR": "Asia/Seoul",
        "KZ": "Asia/Almaty", "MN": "Asia/Ulaanbaatar", "MX": "America/Mexico_City",
        "NG": "Africa/Lagos", "NL": "Europe/Amsterdam", "NO": "Europe/Oslo",
        "NZ": "Pacific/Auckland", "PE": "America/Lima", "PH": "Asia/Manila", "PL": "Europe/Warsaw",
        "PR": "America/Puerto_Rico", "PT": "Europe/Lisbon", "RU": "Europe/Moscow",
        "SA": "Asia/Riyadh", "SE": "Europe/Stockholm", "SG": "Asia/Singapore",
        "TR": "Europe/Istanbul", "UA": "Europe/Kyiv", "US": "America/New_York",
        "VN": "Asia/Ho_Chi_Minh", "ZA": "Africa/Johannesburg",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CallingHours:
    """A daily window of local time, in minutes after midnight, end exclusive, never across midnight."""

    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_minute < self.end_minute <= _MINUTES_PER_DAY:
            raise ValueError(f"calling hours need 0 <= start < end <= 24:00, got {self}")

    @classmethod
    def parse(cls, text: str) -> CallingHours:
        """Read HH:MM-HH:MM (24-hour, end exclusive, 24:00 allowed); ValueError names the bad value."""
        expected = (
            f"calling hours {text!r}: expected HH:MM-HH:MM in 24-hour local time with the start before "
            "the end, such as 08:00-21:00 (end exclusive, 24:00 allowed, no window across midnight)"
        )
        match = _HOURS_PATTERN.match(text.strip())
        if match is None:
            raise ValueError(expected)
        start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
        if start_h > 23 or end_h > 24 or start_m > 59 or end_m > 59 or (end_h == 24 and end_m != 0):
            raise ValueError(expected)
        start, end = start_h * 60 + start_m, end_h * 60 + end_m
        if start >= end:
            raise ValueError(expected)
        return cls(start, end)

    def contains(self, local: datetime) -> bool:
        """Whether a local wall-clock time falls inside the window."""
        minute = local.hour * 60 + local.minute
        return self.start_minute <= minute < self.end_minute

    def __str__(self) -> str:
        return f"{_clock(self.start_minute)}-{_clock(self.end_minute)}"


DEFAULT_CALLING_HOURS: Final = CallingHours(8 * 60, 21 * 60)


class DestinationZones(BaseModel):
    """The time zones a number is checked in, and whether the capital/default-region rule chose them."""

    model_config = ConfigDict(frozen=True)

    zones: tuple[str, ...]
    fallback: bool
    note: str | None = None


class LocalTime(BaseModel):
    """The local time in one zone of the destination, and whether it is inside the calling hours."""

    model_config = ConfigDict(frozen=True)

    zone: str
    local_time: datetime
    inside_hours: bool


def destination_zones(number: PhoneNumber, default_region: str) -> DestinationZones:
    """The zones phonenumbers gives for the number, or the capital's when it has no geographic area."""
    import phonenumbers
    from phonenumbers.timezone import time_zones_for_number
    from phonenumbers.tzdata import TIMEZONE_DATA

    parsed = phonenumbers.parse(number.e164, None)
    zones = tuple(time_zones_for_number(parsed))
    whole_country = tuple(TIMEZONE_DATA.get(str(number.country_code), ()))
    # phonenumbers answers the whole country's list for a number it cannot place (or Etc/Unknown);
    # checking every zone of Russia or the US would refuse such numbers nearly all day.
    no_area = zones == (_UNKNOWN_ZONE,) or (len(zones) > 1 and zones == whole_country)
    if not no_area:
        return DestinationZones(zones=zones, fallback=False)
    nanp = number.country_code == _NANP_COUNTRY_CODE
    if nanp and default_region in phonenumbers.region_codes_for_country_code(_NANP_COUNTRY_CODE):
        if default_region in CAPITAL_ZONES:
            zone = CAPITAL_ZONES[default_region]
            note = f"{number.e164} has no geographic area; checked the default region {default_region}'s zone {zone}"
            return DestinationZones(zones=(zone,), fallback=True, note=note)
    if number.region is not None and number.region in CAPITAL_ZONES:
        zone = CAPITAL_ZONES[number.region]
        note = f"{number.e164} has no geographic area; checked the zone of {number.region}'s capital, {zone}"
        return DestinationZones(zones=(zone,), fallback=True, note=note)
    country_zones = tuple(zone for zone in whole_country if zone != _UNKNOWN_ZONE)
    if country_zones:
        # No capital on file: failing closed means every zone the country spans must be inside.
        note = f"{number.e164} has no geographic area and no capital zone is on file; checked every zone of its country"
        return DestinationZones(zones=country_zones, fallback=True, note=note)
    return DestinationZones(zones=(), fallback=True, note=f"no time zone is known for {number.e164}")


def local_times(zones: tuple[str, ...], now: datetime, hours: CallingHours) -> tuple[LocalTime, ...]:
    """The local time now in each zone, with whether it is inside the window."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    result = []
    for zone in zones:
        local = now.astimezone(ZoneInfo(zone))
        result.append(LocalTime(zone=zone, local_time=local, inside_hours=hours.contains(local)))
    return tuple(result)


def _clock(minutes: int) -> str:
    """Minutes after midnight as HH:MM."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
