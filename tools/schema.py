"""Lean JSON schemas: every byte of tools/list is paid for in the assistant's context on every turn.

What is dropped never changes what validates or what a field means: pydantic's titles, null
defaults, `format` on outputs (the `_at` names say it), keywords that restate the JSON Schema
default (`additionalProperties: true`), and `$defs` used once (inlined where they are used).
"""

from __future__ import annotations

from typing import Any

__all__ = ["compact_schema"]

NULL = {"type": "null"}
REF_PREFIX = "#/$defs/"


def _type_union(node: dict[str, Any]) -> dict[str, Any]:
    """`anyOf` of bare types as one `type` list; integer goes where number already is (it is a number)."""
    options = node.get("anyOf")
    if not isinstance(options, list) or len(options) < 2:
        return node
    if not all(isinstance(o, dict) and set(o) == {"type"} and isinstance(o["type"], str) for o in options):
        return node
    kinds = [o["type"] for o in options]
    if "number" in kinds:
        kinds = [k for k in kinds if k != "integer"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**rest, "type": kinds if len(kinds) > 1 else kinds[0]}


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """Collapse pydantic's `anyOf: [X, {type: null}]` to X."""
    # Outputs never carry null (None is left out); an optional argument is one the assistant
    # leaves out, so the schema need not offer null either (the tool still accepts it).
    options = node.get("anyOf")
    if not isinstance(options, list) or NULL not in options or len(options) != 2:
        return node
    (other,) = [o for o in options if o != NULL]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**other, **rest}


def _strip(schema: Any, *, output: bool) -> Any:
    """Drop what carries no meaning for the assistant, recursively."""
    if isinstance(schema, list):
        return [_strip(item, output=output) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and (value is None or output):
            continue
        if key == "additionalProperties" and (value is True or (output and value is False)):
            continue
        if output and key == "format":
            continue
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: _strip(sub, output=output) for name, sub in value.items()}
        else:
            out[key] = _strip(value, output=output)
    return _type_union(_nullable(out))


def _ref_counts(schema: Any, counts: dict[str, int]) -> dict[str, int]:
    """How often each `#/$defs/Name` is referenced."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            name = ref[len(REF_PREFIX) :]
            counts[name] = counts.get(name, 0) + 1
        for value in schema.values():
            _ref_counts(value, counts)
    elif isinstance(schema, list):
        for item in schema:
            _ref_counts(item, counts)
    return counts


def _inline(schema: Any, defs: dict[str, Any], once: set[str]) -> Any:
    """Replace each reference to a definition used once by the definition itself."""
    if isinstance(schema, list):
        return [_inline(item, defs, once) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF_PREFIX) and ref[len(REF_PREFIX) :] in once:
        target = _inline(defs[ref[len(REF_PREFIX) :]], defs, once)
        rest = {k: _inline(v, defs, once) for k, v in schema.items() if k != "$ref"}
        return {**target, **rest}
    return {k: _inline(v, defs, once) for k, v in schema.items() if k != "$defs"}


def compact_schema(schema: Any, *, output: bool = False) -> Any:
    """The same schema, smaller: see the module docstring for what goes and why meaning is kept."""
    lean = _strip(schema, output=output)
    if not isinstance(lean, dict) or not isinstance(lean.get("$defs"), dict):
        return lean
    defs: dict[str, Any] = lean["$defs"]
    counts = _ref_counts({k: v for k, v in lean.items() if k != "$defs"}, {})
    for name in defs:
        # References between definitions count too; a definition that refers to itself is kept.
        counts[name] = counts.get(name, 0) + sum(_ref_counts(d, {}).get(name, 0) for n, d in defs.items() if n != name)
    once = {name for name in defs if counts.get(name, 0) == 1 and _ref_counts(defs[name], {}).get(name, 0) == 0}
    inlined = _inline(lean, defs, once)
    kept = {name: _inline(d, defs, once) for name, d in defs.items() if name not in once and counts.get(name, 0)}
    if kept:
        inlined["$defs"] = kept
    return inlined
