"""Contacts in contact lists (GET /contacts, POST /contacts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from outboundcalls.wire import RequestModel, WireModel

__all__ = ["Contact", "NewContact"]


class Contact(WireModel):
    """One contact as the API returns it."""

    id: str
    contact_list_id: str | None = None
    phone: str | None = None
    name: str | None = None
    email: str | None = None
    company: str | None = None
    tags: list[str] = Field(default_factory=list)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None

    @field_validator("tags", "custom_fields", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        """A null collection means an empty one, not a broken response."""
        if value is None:
            return [] if info.field_name == "tags" else {}
        return value


class NewContact(RequestModel):
    """The body of POST /contacts; fields not given are not sent."""

    contact_list_id: str = Field(min_length=1)
    phone: str = Field(min_length=1)
    name: str | None = None
    email: str | None = None
    company: str | None = None
    tags: list[str] | None = None
    custom_fields: dict[str, Any] | None = None
