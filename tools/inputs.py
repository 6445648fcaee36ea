"""Argument types shared by the tools, checked before any request leaves.

Checks that the model does not need to read (id alphabets, control characters) are validators,
not schema keywords: they still refuse bad input, with a clearer message, and cost no context.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = [
    "AgentId",
    "CallId",
    "CampaignId",
    "ContactListId",
    "OptionalId",
    "ShortText",
    "StatusFilter",
    "Token",
    "check_custom_fields",
    "check_email",
    "check_id",
    "check_status",
    "check_tag",
    "check_text",
    "check_token",
]

# Vendor ids are opaque (`clx...`); this alphabet can never change the path or query sent upstream.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# C0 and C1 controls, line/paragraph separators, and the bidirectional overrides and isolates
# that make text display differently from what it is (a name that reads "Ada" but is not).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def check_id(value: str) -> str:
    """An opaque vendor id: letters, digits, _ and -, at most 64."""
    if not _ID.fullmatch(value):
        raise ValueError("an id has only letters, digits, _ and - (at most 64), as returned by the list_* tools")
    return value


def check_text(value: str) -> str:
    """Printable text: no control characters (NUL, newlines) reach the vendor."""
    if _CONTROL.search(value):
        raise ValueError("control characters (NUL, newlines, tabs, bidirectional overrides) are not allowed")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# A description that only restates the argument's name ("Call id.") is left out: it costs every
# turn's context and tells the assistant nothing; one that says where the id comes from is kept.
CallId = Annotated[str, AfterValidator(check_id)]
AgentId = Annotated[str, AfterValidator(check_id), Field(description="Agent id (list_agents).")]
ContactListId = Annotated[str, AfterValidator(check_id)]
CampaignId = Annotated[str, AfterValidator(check_id)]
OptionalId = Annotated[str, AfterValidator(check_id)]
ShortText = Annotated[str, AfterValidator(check_text), Field(max_length=200)]


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_STATUS = re.compile(r"[a-z_]{1,32}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
_FIELD_NAME = re.compile(r"[A-Za-z0-9_ .-]{1,64}")


def check_status(value: str) -> str:
    """A status filter word such as completed or no_answer."""
    if not _STATUS.fullmatch(value):
        raise ValueError("a status is a lowercase word such as completed or no_answer")
    return value


def check_token(value: str) -> str:
    """A confirmation token exactly as a preview returned it."""
    if not _TOKEN.fullmatch(value):
        raise ValueError("not a confirmation token; pass the confirmation_token from the preview unchanged")
    return value


def check_email(value: str) -> str:
    """An email address, checked for shape only."""
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValueError("not an email address like jane@example.com")
    return value


def check_tag(value: str) -> str:
    """A short printable tag."""
    check_text(value)
    if len(value) > 50:
        raise ValueError("a tag has at most 50 characters")
    return value


def check_custom_fields(value: dict[str, object]) -> dict[str, object]:
    """At most 50 fields, simple names, printable string values of at most 1000 characters."""
    if len(value) > 50:
        raise ValueError("at most 50 custom fields")
    for name, item in value.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"custom field name {name[:40]!r}: letters, digits, space, _ . - only (at most 64)")
        if isinstance(item, str):
            if len(item) > 1000:
                raise ValueError(f"custom field {name!r}: at most 1000 characters")
            if _CONTROL.search(item.replace("\n", "")):
                raise ValueError(f"custom field {name!r}: control characters are not allowed")
    return value


StatusFilter = Annotated[str, AfterValidator(check_status)]
Token = Annotated[str, AfterValidator(check_token)]
