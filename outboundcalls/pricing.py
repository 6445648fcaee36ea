"""Estimated call prices, by destination country.

The vendor charges on completion by destination country: per minute, (carrier mobile rate +
0.10 USD ElevenLabs) x 1.75, and 1 credit is assumed to be 0.01 USD. It publishes no pricing
endpoint, so every figure here is an ESTIMATE from an illustrative carrier-rate table (not the
vendor's price list), and anything shown to a person must say so.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = [
    "CARRIER_MOBILE_USD_PER_MINUTE",
    "CREDITS_PER_USD",
    "ELEVENLABS_USD_PER_MINUTE",
    "MARGIN_MULTIPLIER",
    "MINIMUM_BALANCE_CREDITS",
    "credits_for_call",
    "estimate_credits_per_minute",
]

ELEVENLABS_USD_PER_MINUTE: Final = 0.10
MARGIN_MULTIPLIER: Final = 1.75
CREDITS_PER_USD: Final = 100.0
MINIMUM_BALANCE_CREDITS: Final = 25.0

# Illustrative carrier mobile termination rates in USD per minute, by ISO 3166 region code.
# Shaped like public wholesale price lists, not copied from any; expensive destinations are
# included on purpose so that the per-minute rate cap has something to refuse.
CARRIER_MOBILE_USD_PER_MINUTE: Final = MappingProxyType(
    {
        "US": 0.0140,
        "CA": 0.0140,
        "GB": 0.0400,
        "IE": 0.0550,
        "FR": 0.0600,
        "DE": 0.0750,
        "ES": 0.0400,
        "IT": 0.0450,
        "NL": 0.0700,
        "BE": 0.0750,
        "CH": 0.1200,
        "AT": 0.0600,
        "SE": 0.0350,
        "NO": 0.0450,
        "DK": 0.0400,
        "FI": 0.0650,
        "PL": 0.0300,
        "PT": 0.0400,
        "AU": 0.0500,
        "NZ": 0.1000,
        "JP": 0.1100,
        "KR": 0.0400,
        "SG": 0.0300,
        "IN": 0.0150,
        "BR": 0.0600,
        "MX": 0.0250,
        "AR": 0.0900,
        "ZA": 0.0600,
        "NG": 0.1500,
        "AE": 0.1800,
        "IL": 0.0500,
        "PH": 0.1400,
        "CU": 0.9500,
        "SO": 0.9000,
        "TV": 2.5000,
        "SH": 2.8000,
    }
)


def estimate_credits_per_minute(region: str) -> float | None:
    """Estimated credits per minute to a region (ISO code), or None when it is not in the table."""
    carrier = CARRIER_MOBILE_USD_PER_MINUTE.get(region.upper())
    if carrier is None:
        return None
    usd = (carrier + ELEVENLABS_USD_PER_MINUTE) * MARGIN_MULTIPLIER
    return round(usd * CREDITS_PER_USD, 2)


def credits_for_call(region: str, duration_seconds: float) -> float:
    """Credits a finished call costs, prorated by the second (the vendor does not say how it rounds)."""
    per_minute = estimate_credits_per_minute(region)
    if per_minute is None:
        raise KeyError(f"no rate for region {region!r}")
    if duration_seconds <= 0:
        return 0.0
    return round(per_minute * duration_seconds / 60, 2)
