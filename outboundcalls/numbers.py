"""Phone numbers: any common written form to E.164, and emergency and short numbers recognised.

`phonenumbers` (Google's libphonenumber data) is imported inside the functions that use it: a
host spawns the server and waits for its tools, and nothing before that needs it (bench/README.md).
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Final, Literal

from pydantic import BaseModel, ConfigDict

from outboundcalls.display import one_line
from outboundcalls.errors import InvalidRequestError

if TYPE_CHECKING:
    from phonenumbers import PhoneNumber as ParsedNumber

__all__ = [
    "MAX_INPUT_CHARS",
    "InvalidPhoneNumberError",
    "InvalidReason",
    "PhoneNumber",
    "ShortNumber",
    "classify_short_number",
    "e164_or_none",
    "is_emergency",
    "normalize_region",
    "number_type_names",
    "parse_phone",
]

MAX_INPUT_CHARS: Final = 64
_SHOWN_CHARS: Final = 40
_REGIONS_SHOWN: Final = 5
_FORMATTING: Final = frozenset("+-.()/ ")
# Emergency and service numbers are short; longer invalid input is just invalid, which keeps
# "emergency" for what is one and bounds the scan over every region's list.
_SHORT_SCAN_DIGITS: Final = 6
# libphonenumber's region code for non-geographic entities such as +800 international freephone.
_NON_GEOGRAPHIC_REGION: Final = "001"

InvalidReason = Literal[
    "empty",
    "too_long",
    "control_character",
    "letters",
    "non_ascii_digit",
    "unexpected_character",
    "not_a_number",
    "invalid_country_code",
    "too_short",
    "invalid",
    "emergency",
    "short_service",
]


class PhoneNumber(BaseModel):
    """A valid phone number, in E.164 and the facts the dispatch policy needs."""

    model_config = ConfigDict(frozen=True)

    e164: str
    region: str | None
    number_type: str
    national: str
    country_code: int


class ShortNumber(BaseModel):
    """An emergency or short service number, which is never a valid full number and never called."""

    model_config = ConfigDict(frozen=True)

    digits: str
    kind: Literal["emergency", "short_service"]
    destination_region: str
    regions: tuple[str, ...]

    def describe(self) -> str:
        """Say what the number is and where, for a message a person reads."""
        where = ", ".join(self.regions[:_REGIONS_SHOWN])
        if len(self.regions) > _REGIONS_SHOWN:
            where += f" and {len(self.regions) - _REGIONS_SHOWN} other regions"
        if self.kind == "short_service":
            return f"{self.digits} is a short service number in {where}"
        if self.destination_region in self.regions:
            return f"{self.digits} is an emergency number in {self.destination_region}"
        return f"{self.digits} is an emergency number in {where} (not in {self.destination_region})"


class InvalidPhoneNumberError(InvalidRequestError):
    """A destination that is not a dialable phone number; nothing was sent."""

    def __init__(
        self,
        raw: str,
        reason: InvalidReason,
        detail: str,
        *,
        default_region: str,
        short_number: ShortNumber | None = None,
    ) -> None:
        self.raw = raw
        self.reason: InvalidReason = reason
        self.default_region = default_region
        self.short_number = short_number
        self.detail = detail
        super().__init__(
            f"Invalid phone number {_shown(raw)}: {detail}. Expected E.164 like +14155550134, "
            f"or a national number for region {default_region}"
        )


def normalize_region(code: str) -> str:
    """The upper-case ISO 3166 region code phonenumbers knows, or ValueError naming the code."""
    import phonenumbers

    region = code.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {code!r}: expected an ISO 3166 two-letter code such as US or GB")
    return region


def parse_phone(raw: str, default_region: str = "US") -> PhoneNumber:
    """Parse a written phone number (national forms read in default_region) to a valid E.164 number."""
    import phonenumbers

    region = normalize_region(default_region)
    text = _screen(raw, region)
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        reason, detail = _parse_failure(exc)
        raise InvalidPhoneNumberError(raw, reason, detail, default_region=region) from exc
    if not phonenumbers.is_valid_number(parsed):
        by_00 = _international_by_00(text)
        parsed = parsed if by_00 is None else by_00
    if not phonenumbers.is_valid_number(parsed):
        short = classify_short_number(raw, region)
        if short is not None:
            detail = f"{short.describe()}, and such numbers are never called"
            raise InvalidPhoneNumberError(raw, short.kind, detail, default_region=region, short_number=short)
        detail = f"it is not a valid phone number for country code +{parsed.country_code}"
        raise InvalidPhoneNumberError(raw, "invalid", detail, default_region=region)
    number_region = phonenumbers.region_code_for_number(parsed)
    return PhoneNumber(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        region=None if number_region in (None, _NON_GEOGRAPHIC_REGION, "ZZ") else number_region,
        number_type=phonenumbers.PhoneNumberType.to_string(phonenumbers.number_type(parsed)),
        national=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL),
        country_code=country_code_of(parsed),
    )


def e164_or_none(raw: str, default_region: str = "US") -> str | None:
    """The number in E.164, or None when it is not a dialable number."""
    try:
        return parse_phone(raw, default_region).e164
    except InvalidPhoneNumberError:
        return None


def classify_short_number(raw: str, default_region: str = "US") -> ShortNumber | None:
    """The emergency or short service number raw is (destination's own list first), else None."""
    import phonenumbers
    from phonenumbers import shortnumberinfo

    region = normalize_region(default_region)
    try:
        text = _screen(raw, region)
        parsed = phonenumbers.parse(text, region)
    except (InvalidPhoneNumberError, phonenumbers.NumberParseException):
        return None
    if phonenumbers.is_valid_number(parsed):
        return None
    international = text.lstrip("(").startswith("+")
    # National forms keep their leading zeros (Australia's 000); phonenumbers would drop them.
    digits = phonenumbers.national_significant_number(parsed) if international else _digits(text)
    if len(digits) > _SHORT_SCAN_DIGITS:
        return None
    regions = phonenumbers.region_codes_for_country_code(country_code_of(parsed)) if international else (region,)
    destination = regions[0] if international else region
    for candidate in regions:
        # Prefix matching as well: in most countries 112 followed by more digits still connects.
        if shortnumberinfo.connects_to_emergency_number(digits, candidate):
            return ShortNumber(digits=digits, kind="emergency", destination_region=candidate, regions=(candidate,))
    # Not an emergency number where it would ring, but 999 typed in the US is still someone's
    # emergency number: naming that beats calling it merely "invalid".
    elsewhere = tuple(
        r for r in sorted(phonenumbers.SUPPORTED_SHORT_REGIONS) if shortnumberinfo.is_emergency_number(digits, r)
    )
    if elsewhere:
        return ShortNumber(digits=digits, kind="emergency", destination_region=destination, regions=elsewhere)
    for candidate in regions:
        if shortnumberinfo.is_valid_short_number_for_region(parsed, candidate):
            return ShortNumber(digits=digits, kind="short_service", destination_region=candidate, regions=(candidate,))
    return None


def is_emergency(raw: str, region: str = "US") -> bool:
    """Whether raw is an emergency number: of its destination country, or of any for short input."""
    short = classify_short_number(raw, region)
    return short is not None and short.kind == "emergency"


def _screen(raw: str, region: str) -> str:
    """Refuse what phonenumbers would silently reinterpret, and return the text worth parsing."""
    if len(raw) > MAX_INPUT_CHARS:
        raise InvalidPhoneNumberError(
            raw, "too_long", f"it is longer than {MAX_INPUT_CHARS} characters", default_region=region
        )
    stripped = raw.strip(" \t\r\n")
    if not stripped:
        raise InvalidPhoneNumberError(raw, "empty", "it is empty", default_region=region)
    cleaned: list[str] = []
    for char in stripped:
        cleaned.append(_screen_char(raw, char, region))
    text = "".join(cleaned)
    if not any(char.isdigit() for char in text):
        raise InvalidPhoneNumberError(raw, "not_a_number", "it contains no digits", default_region=region)
    return text


def _screen_char(raw: str, char: str, region: str) -> str:
    """One character of a written number: kept, turned into plain formatting, or refused."""
    if char.isascii() and (char.isdigit() or char in _FORMATTING):
        return char
    category = unicodedata.category(char)
    code = f"U+{ord(char):04X}"
    if category[0] == "C" or category in ("Zl", "Zp"):
        detail = f"it contains a control or invisible character ({code})"
        raise InvalidPhoneNumberError(raw, "control_character", detail, default_region=region)
    if char.isalpha():
        detail = "it contains letters; vanity numbers such as 1-800-FLOWERS are not accepted, give the digits"
        raise InvalidPhoneNumberError(raw, "letters", detail, default_region=region)
    if category[0] == "N":
        # phonenumbers would quietly read fullwidth or Arabic-Indic digits as 0-9; a look-alike
        # digit in a destination is more often a trick than a typing habit, so ask for 0-9.
        detail = f"it contains the non-ASCII digit {char!r} ({code}); write the number with the digits 0-9"
        raise InvalidPhoneNumberError(raw, "non_ascii_digit", detail, default_region=region)
    # Copied numbers often carry no-break spaces or typographic dashes: formatting, not content.
    if category == "Zs":
        return " "
    if category == "Pd":
        return "-"
    detail = f"it contains the character {char!r} ({code}), which does not belong in a phone number"
    raise InvalidPhoneNumberError(raw, "unexpected_character", detail, default_region=region)


def _international_by_00(text: str) -> ParsedNumber | None:
    """Read a leading 00 as the international prefix where the default region's own prefix differs."""
    import phonenumbers

    digits = _digits(text)
    if text.lstrip("(").startswith("+") or not digits.startswith("00"):
        return None
    try:
        parsed = phonenumbers.parse("+" + digits[2:], None)
    except phonenumbers.NumberParseException:
        return None
    return parsed if phonenumbers.is_valid_number(parsed) else None


def country_code_of(parsed: ParsedNumber) -> int:
    """The country code of a number phonenumbers parsed (its type allows None, which parse() never leaves)."""
    if parsed.country_code is None:
        raise ValueError("a parsed phone number has no country code")
    return parsed.country_code


def _digits(text: str) -> str:
    """Only the digits of already screened (ASCII) text."""
    return "".join(char for char in text if char.isdigit())


def _parse_failure(exc: Exception) -> tuple[InvalidReason, str]:
    """The reason code and wording for a phonenumbers parse error."""
    import phonenumbers

    error_type = getattr(exc, "error_type", None)
    kinds = phonenumbers.NumberParseException
    if error_type == kinds.INVALID_COUNTRY_CODE:
        return "invalid_country_code", "its country code is not valid"
    if error_type in (kinds.TOO_SHORT_NSN, kinds.TOO_SHORT_AFTER_IDD):
        return "too_short", "it is too short"
    if error_type == kinds.TOO_LONG:
        return "too_long", "it is too long"
    return "not_a_number", "it does not look like a phone number"


def number_type_names() -> frozenset[str]:
    """The names of phonenumbers' PhoneNumberType values (MOBILE, TOLL_FREE, ...): what a number type is called here."""
    from phonenumbers import PhoneNumberType

    return frozenset(PhoneNumberType.to_string(value) for value in PhoneNumberType.values())


def _shown(raw: str) -> str:
    """The input quoted on one visible line, cut so that a pasted essay cannot flood the message."""
    return f"'{one_line(raw, limit=_SHOWN_CHARS)}'"
