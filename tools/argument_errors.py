"""A refused tool argument said as a person (or a model) reads it: one sentence per argument, with an example.

Built from pydantic's structured errors (type, location, message), never from its printed form:
no library boilerplate, internal model names or documentation links. Values are shown on one
visible line and cut short, and never for an argument that is not the tool's (it may be a key
smuggled in) or for a confirmation token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from outboundcalls.display import one_line

__all__ = ["EXAMPLES", "describe_argument_errors"]

# What a right value looks like, for each argument any tool takes (a test keeps this complete).
EXAMPLES: Final[Mapping[str, str]] = {
    "agent_id": "an id from list_agents, such as clx7agent01",
    "call_id": "an id from list_calls, such as clx7call0001",
    "call_ids": 'ids from list_calls, such as ["clx7call0001", "clx7call0002"]',
    "campaign_id": "an id from the OutboundCalls dashboard, such as clx7camp0001",
    "company": '"Acme Ltd"',
    "confirmation_token": "the confirmation_token of the preview, unchanged",
    "contact_id": "an id from list_contacts, such as clx7cont0001",
    "contact_list_id": "an id from list_contacts, such as clx7list0001",
    "custom_fields": '{"plan": "pro", "seats": 5}',
    "email": '"ada@example.com"',
    "include_transcript": "true or false",
    "limit": "20",
    "max_transcript_chars": "4000",
    "name": '"Ada Lovelace"',
    "phone": '"+14155550134" or "(415) 555-0134"',
    "phone_number_id": "a caller id from the OutboundCalls dashboard, such as clx7phone001",
    "status": '"completed" or "no_answer"',
    "tags": '["vip", "renewal"]',
    "timeout_seconds": "60",
    "to_number": '"+14155550134" or "(415) 555-0134"',
    "to_numbers": '["+14155550134", "+12125550177"]',
}
_SECRET_LOOKING: Final = ("token", "key", "secret", "password", "authorization")
_UNION_BRANCHES: Final = frozenset({"str", "int", "float", "bool"})
_SHOWN: Final = 40


def describe_argument_errors(tool: str, error: ValidationError, *, arguments: Iterable[str]) -> str:
    """Every refused argument of one call as a sentence; `arguments` are the names the tool takes."""
    known = sorted(arguments)
    sentences: list[str] = []
    seen: set[tuple[str | int, ...]] = set()
    for detail in error.errors(include_url=False):
        where = _location(detail["loc"])
        if where in seen:
            continue  # one sentence per place, even where a union tried several types there
        seen.add(where)
        sentences.append(_sentence(tool, detail, where, known))
    return " ".join(sentences)


def _sentence(tool: str, detail: ErrorDetails, where: tuple[str | int, ...], known: list[str]) -> str:
    name = str(where[0]) if where else "arguments"
    shown_name = _place(where)
    if detail["type"] == "extra_forbidden":
        takes = ", ".join(known) if known else "no arguments"
        return f"{one_line(name)} is not an argument of {tool}, which takes {takes}; nothing was sent."
    example = EXAMPLES.get(name)
    fix = f"; for example {example}." if example else "."
    if detail["type"] == "missing":
        return f"{shown_name} is required{fix}"
    problem = _problem(detail, where)
    if _hidden(name):
        return f"{shown_name} is not accepted: {problem}{fix}"
    return f"{shown_name} {_value(detail['input'])} is not accepted: {problem}{fix}"


def _problem(detail: ErrorDetails, where: tuple[str | int, ...]) -> str:
    """What was wrong, in plain words, from the error's type and pydantic's own message."""
    kind, message = detail["type"], detail["msg"]
    context: Mapping[str, Any] = detail.get("ctx") or {}
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind in ("too_long", "string_too_long") and isinstance(detail["input"], str):
        return f"it must be at most {context.get('max_length')} characters long"
    if kind == "too_long":
        return f"it must have at most {context.get('max_length')} items"
    if kind == "too_short":
        return f"it must have at least {context.get('min_length')} item(s)"
    if kind.endswith("_type") and len(where) > 1 and str(where[-1]) in _UNION_BRANCHES:
        return "each value must be text, a number, or true or false"
    return "it " + message.replace("Input should be", "must be").replace("input", "it")


def _location(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Where an error is, without the type tag a union adds (custom_fields.k.str -> custom_fields.k)."""
    if len(loc) > 1 and str(loc[-1]) in _UNION_BRANCHES:
        return loc[:-1]
    return loc


def _place(where: tuple[str | int, ...]) -> str:
    """An argument, or one item of it, as a person names it: tags item 2, custom_fields "plan"."""
    if not where:
        return "the arguments"
    text = one_line(str(where[0]), limit=_SHOWN)
    for part in where[1:]:
        text += f" item {part + 1}" if isinstance(part, int) else f' "{one_line(str(part), limit=_SHOWN)}"'
    return text


def _value(value: Any) -> str:
    """The refused value on one visible line, cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return one_line(text, limit=_SHOWN)


def _hidden(name: str) -> bool:
    """Whether an argument's value is never repeated back (it may be a credential)."""
    return any(word in name.lower() for word in _SECRET_LOOKING)
