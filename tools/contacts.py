"""list_contacts and add_contact: the people a call can be linked to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import AfterValidator, Field

from outboundcalls.contacts import Contact, NewContact
from outboundcalls_mcp.tools.contracts import ToolModel
from outboundcalls_mcp.tools.deps import ToolDeps, api_of, deps_of
from outboundcalls_mcp.tools.errors import upstream_errors
from outboundcalls_mcp.tools.inputs import ContactListId, ShortText, check_custom_fields, check_email, check_tag
from outboundcalls_mcp.tools.phone import e164_or_tool_error
from outboundcalls_mcp.tools.results import READ_FROM_API, read_all, structured

__all__ = ["ContactInfo", "ContactList", "add_contact", "contact_info", "contact_infos", "list_contacts"]

CustomValue = str | int | float | bool | None


class ContactInfo(ToolModel):
    id: str
    contact_list_id: str | None = None
    phone: str | None = None
    name: str | None = None
    email: str | None = None
    company: str | None = None
    tags: list[str] | None = None
    custom_fields: dict[str, Any] | None = None
    created_at: datetime | None = None


class ContactList(ToolModel):
    contacts: list[ContactInfo]


def _empty_is_none(value: Any) -> Any:
    return value or None  # an empty collection is left out of the result, like an unset field


class _ContactInfoFromApi(ContactInfo):
    """ContactInfo read from the API's contact (tools/results.py: READ_FROM_API)."""

    model_config = READ_FROM_API
    tags: Annotated[list[str] | None, AfterValidator(_empty_is_none)] = None
    custom_fields: Annotated[dict[str, Any] | None, AfterValidator(_empty_is_none)] = None


def contact_info(c: Contact) -> ContactInfo:
    """The assistant's view of a vendor contact."""
    return _ContactInfoFromApi.model_validate(c)


def contact_infos(contacts: list[Contact]) -> list[ContactInfo]:
    """contact_info for each, in one pass."""
    return read_all(_ContactInfoFromApi, contacts)


async def list_contacts(
    ctx: Context[ToolDeps],
    contact_list_id: ContactListId | None = None,
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
) -> Annotated[CallToolResult, ContactList]:
    """Contacts, optionally from one contact list."""
    api = api_of(ctx)
    with upstream_errors(f"contact_list_id {contact_list_id!r}" if contact_list_id else None):
        contacts = await api.list_contacts(contact_list_id=contact_list_id, limit=limit)
    return structured(ContactList(contacts=contact_infos(contacts)))


async def add_contact(
    ctx: Context[ToolDeps],
    contact_list_id: ContactListId,
    phone: Annotated[str, Field(max_length=64, description="Phone number; E.164 or national form.")],
    name: ShortText | None = None,
    email: Annotated[str, AfterValidator(check_email)] | None = None,
    company: ShortText | None = None,
    tags: Annotated[list[Annotated[str, AfterValidator(check_tag)]], Field(max_length=20)] | None = None,
    custom_fields: Annotated[dict[str, CustomValue], AfterValidator(check_custom_fields)] | None = None,
) -> Annotated[CallToolResult, ContactInfo]:
    """Add a contact to a contact list (the number is stored as E.164)."""
    deps = deps_of(ctx)
    e164 = e164_or_tool_error("phone", phone, deps.default_region)
    api = api_of(ctx)
    body = NewContact(
        contact_list_id=contact_list_id,
        phone=e164,
        name=name,
        email=email,
        company=company,
        tags=tags,
        custom_fields=custom_fields,
    )
    with upstream_errors(f"contact_list_id {contact_list_id!r}", after_write="list_contacts"):
        contact = await api.create_contact(body)
    return structured(contact_info(contact))
