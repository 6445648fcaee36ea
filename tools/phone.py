"""Phone numbers from the assistant, made E.164 or refused with a tool error before anything is sent."""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

from outboundcalls.numbers import InvalidPhoneNumberError, parse_phone

__all__ = ["e164_or_tool_error"]


def e164_or_tool_error(field: str, raw: str, default_region: str) -> str:
    """The number in E.164, or a ToolError naming the argument, the value and the expected form."""
    try:
        return parse_phone(raw, default_region).e164
    except InvalidPhoneNumberError as exc:
        raise ToolError(f"{field}: {exc}. Nothing was sent.") from exc
