"""Lean JSON schemas: every byte of tools/list is paid for in the assistant's context on every turn."""

from __future__ import annotations

from typing import Any

__all__ = ["compact_schema"]

NULL = {"type": "null"}


def _nullable(node: dict[str, Any], *, output: bool) -> dict[str, Any]:
    """Collapse pydantic's `anyOf: [X, {type: null}]`; outputs never carry null (None is left out)."""
    options = node.get("anyOf")
    if not isinstance(options, list) or NULL not in options or len(options) != 2:
        return node
    (other,) = [o for o in options if o != NULL]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if output:
        return {**other, **rest}
    kind = other.get("type")
    if not isinstance(kind, str):
        return node
    return {**other, **rest, "type": [kind, "null"]}


def compact_schema(schema: Any, *, output: bool = False) -> Any:
    """Drop titles, null defaults and closed-object markers; collapse nullable unions. Meaning is kept."""
    if isinstance(schema, list):
        return [compact_schema(item, output=output) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if output and key == "additionalProperties" and value is False:
            continue
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: compact_schema(sub, output=output) for name, sub in value.items()}
        else:
            out[key] = compact_schema(value, output=output)
    return _nullable(out, output=output)
