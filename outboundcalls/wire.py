"""The WireModel base and the tolerant helpers that turn vendor bodies into models."""

from __future__ import annotations

import json
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic.alias_generators import to_camel
from pydantic_core import from_json

from outboundcalls.errors import ResponseValidationError

__all__ = [
    "RequestModel",
    "WireModel",
    "decode_json",
    "parse_list",
    "parse_one",
    "unwrap_list",
    "unwrap_one",
]

ModelT = TypeVar("ModelT", bound=BaseModel)

_LIST_KEYS = ("data", "items")
_ONE_KEYS = ("data",)
_MAX_REPORTED_ERRORS = 3


class WireModel(BaseModel):
    """Base of every vendor model: snake_case in Python, camelCase on the wire, extras kept."""

    model_config = ConfigDict(
        extra="allow",
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        # Ids are opaque strings; a vendor that sends 123 instead of "123" is still understood.
        coerce_numbers_to_str=True,
        # Validators are built when a model first validates: a server spawned to list its tools parses
        # no response, and start-up is held to issue 18's budget (bench/README.md).
        defer_build=True,
    )


class RequestModel(WireModel):
    """Base of request bodies we send: unknown fields refused, unset fields never sent."""

    # A misspelt optional field would otherwise be sent verbatim and silently ignored by the API.
    model_config = ConfigDict(extra="forbid")

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: camelCase keys, fields not given (or None) left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def decode_json(body: bytes) -> Any:
    """Parse a 2xx body as JSON, or raise ResponseValidationError saying why it is not."""
    try:
        # pydantic-core's parser decodes a body in about half the time json.loads takes; it is
        # stricter (no byte-order mark, no lone surrogates), so whatever it refuses goes to
        # json.loads, which accepts what it always did and says why it refuses the rest. Only
        # keys go in its process-wide string cache: the few field names, not every value read.
        return from_json(body, cache_strings="keys")
    except ValueError:
        pass
    if not body.strip():
        raise ResponseValidationError("the response body is empty")
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise ResponseValidationError("the response body is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise ResponseValidationError(
            f"the response body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc


def _kind(value: Any) -> str:
    """A JSON type name for error messages; never the value itself."""
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def unwrap_list(body: Any, plural: str) -> list[Any]:
    """The items of a list body: a bare array, or one under plural, "data" or "items"."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in (plural, *_LIST_KEYS):
            items = body.get(key)
            if isinstance(items, list):
                return items
        keys = ", ".join(repr(k) for k in (plural, *_LIST_KEYS))
        raise ResponseValidationError(f"expected a list of {plural} as an array or under {keys}; none found")
    raise ResponseValidationError(f"expected a list of {plural}, got a JSON {_kind(body)}")


def unwrap_one(body: Any, singular: str) -> dict[str, Any]:
    """One resource: the object itself, or the object under singular or "data"."""
    if not isinstance(body, dict):
        raise ResponseValidationError(f"expected a {singular} object, got a JSON {_kind(body)}")
    for key in (singular, *_ONE_KEYS):
        inner = body.get(key)
        if isinstance(inner, dict):
            return inner
    return body


def _describe(exc: ValidationError, what: str) -> str:
    """Name the fields that failed, without echoing their values (they may be long or secret)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:_MAX_REPORTED_ERRORS]:
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
        problems.append(f"{what}{where}: {error['msg']}")
    more = exc.error_count() - len(problems)
    suffix = f" (and {more} more)" if more > 0 else ""
    return "the response does not fit the expected shape: " + "; ".join(problems) + suffix


def parse_one(model: type[ModelT], body: bytes, singular: str) -> ModelT:
    """Decode, unwrap and validate one resource from a 2xx body."""
    data = unwrap_one(decode_json(body), singular)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ResponseValidationError(_describe(exc, singular)) from exc


def parse_list(model: type[ModelT], body: bytes, plural: str) -> list[ModelT]:
    """Decode, unwrap and validate a list of resources from a 2xx body."""
    try:
        # The usual shape ({"calls": [...]}) straight from the bytes into models, with no page of
        # Python dicts in between: what keeps a 200-item read within issue 18's latency budget
        # (bench/README.md).
        items: list[ModelT] = getattr(_page_of(model, plural).model_validate_json(body), plural)
        return items
    except ValidationError:
        pass  # another accepted shape, or a bad body: the tolerant path below says which
    items = unwrap_list(decode_json(body), plural)
    try:
        return _list_of(model).validate_python(items)
    except ValidationError as exc:
        raise ResponseValidationError(_describe(exc, plural)) from exc


@cache
def _page_of(model: type[ModelT], plural: str) -> type[BaseModel]:
    """A page with the items under `plural`, other keys (pagination) ignored."""
    fields: dict[str, Any] = {plural: (list[model], ...)}  # type: ignore[valid-type]  # a type known at run time
    # Only keys go in pydantic-core's process-wide string cache (as in decode_json): values such
    # as ids and timestamps are seldom read twice, and a long-lived server would keep them alive.
    config = ConfigDict(extra="ignore", cache_strings="keys")
    return create_model(f"{model.__name__}Page", __config__=config, **fields)


@cache
def _list_of(model: type[ModelT]) -> TypeAdapter[list[ModelT]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]  # a type known at run time
