"""Lean tool schemas: smaller, and still accepting exactly what the full pydantic schema accepts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, Field

from outboundcalls_mcp.tools.calls import CallItem, CallView, Turn, WaitResult
from outboundcalls_mcp.tools.schema import compact_schema


class Leaf(BaseModel):
    name: str


class Tree(BaseModel):
    label: str | None = None
    children: list[Tree] = []


class Pair(BaseModel):
    left: Leaf
    right: Leaf


class Args(BaseModel):
    limit: int | None = Field(default=None, ge=1, le=200)
    data: dict[str, Any] | None = None
    value: str | int | float | bool | None = None
    closed: dict[str, str] = Field(default_factory=dict)


def test_titles_null_defaults_and_null_options_are_dropped_from_arguments() -> None:
    schema = compact_schema(Args.model_json_schema())
    assert "title" not in schema and "title" not in schema["properties"]["limit"]
    assert schema["properties"]["limit"] == {"maximum": 200, "minimum": 1, "type": "integer"}


def test_a_union_of_bare_types_becomes_one_type_list_and_integer_folds_into_number() -> None:
    schema = compact_schema(Args.model_json_schema())
    assert schema["properties"]["value"] == {"type": ["string", "number", "boolean", "null"]}


def test_additional_properties_true_is_dropped_because_it_is_the_default() -> None:
    schema = compact_schema(Args.model_json_schema())
    assert schema["properties"]["data"] == {"type": "object"}


def test_output_schemas_drop_format_and_defaults_but_keep_types_and_required() -> None:
    schema = compact_schema(CallItem.model_json_schema(), output=True)
    assert schema["properties"]["created_at"] == {"type": "string"}
    assert schema["required"] == ["id", "status"] and schema["type"] == "object"


def test_a_definition_used_once_is_inlined_and_one_used_twice_is_kept() -> None:
    once = compact_schema(WaitResult.model_json_schema(), output=True)
    assert "$defs" not in once and once["properties"]["call"]["properties"]["id"] == {"type": "string"}
    twice = compact_schema(Pair.model_json_schema(), output=True)
    assert set(twice["$defs"]) == {"Leaf"}
    assert twice["properties"]["left"] == twice["properties"]["right"] == {"$ref": "#/$defs/Leaf"}


def test_a_recursive_definition_is_kept() -> None:
    schema = compact_schema(Tree.model_json_schema(), output=True)
    assert schema["$ref"] == "#/$defs/Tree"
    assert schema["$defs"]["Tree"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    jsonschema.validate({"children": [{"label": "a", "children": []}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"children": [{"label": 1}]}, schema)


@pytest.mark.parametrize("output", [False, True])
def test_the_compact_schema_accepts_what_the_model_produces_and_refuses_what_it_refuses(output: bool) -> None:
    view = CallView(
        id="c1",
        status="completed",
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
        credits=1.5,
        extracted_data={"k": [1, 2]},
        transcript=[Turn(role="agent", text="Hi", t=0.5)],
        transcript_turns=1,
    )
    schema = compact_schema(CallView.model_json_schema(), output=output)
    jsonschema.validate(view.model_dump(mode="json", exclude_none=True), schema)
    for bad in (
        {"status": "completed"},
        {"id": "c1", "status": 3},
        {"id": "c1", "status": "x", "transcript": [{"role": "a"}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
