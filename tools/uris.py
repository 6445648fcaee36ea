"""The `outboundcalls://` resource addresses: what the resources serve and what tools and subscribers name."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACCOUNT_URI",
    "AGENTS_URI",
    "CALL_TEMPLATE",
    "CAMPAIGN_TEMPLATE",
    "CONTACT_LIST_TEMPLATE",
    "SCHEME",
    "TRANSCRIPT_TEMPLATE",
    "call_uri",
    "transcript_uri",
]

SCHEME: Final = "outboundcalls://"
CALL_TEMPLATE: Final = SCHEME + "calls/{call_id}"
TRANSCRIPT_TEMPLATE: Final = SCHEME + "calls/{call_id}/transcript"
CAMPAIGN_TEMPLATE: Final = SCHEME + "campaigns/{campaign_id}"
CONTACT_LIST_TEMPLATE: Final = SCHEME + "contact-lists/{contact_list_id}"
AGENTS_URI: Final = SCHEME + "agents"
ACCOUNT_URI: Final = SCHEME + "account"


def call_uri(call_id: str) -> str:
    """The resource holding one call's detail."""
    return CALL_TEMPLATE.replace("{call_id}", call_id)


def transcript_uri(call_id: str) -> str:
    """The resource holding one call's full transcript as text."""
    return TRANSCRIPT_TEMPLATE.replace("{call_id}", call_id)
