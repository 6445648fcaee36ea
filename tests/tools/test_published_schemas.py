"""The schemas read at start-up are the ones the SDK derives from the code: the file cannot drift.

`tools/published_schemas.json` exists so start-up skips deriving 24 JSON Schemas with pydantic.
After an intended change to a tool's arguments or result, regenerate it with
`UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/tools/test_published_schemas.py`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from pydantic import ValidationError

from outboundcalls_mcp.tools import catalogue
from outboundcalls_mcp.tools.registration import SCHEMA_FILE, build_tool, derive_schemas, published_schemas


def _derived() -> dict[str, dict[str, Any]]:
    return {fn.__name__: derive_schemas(fn) for fn, _ in catalogue()}


def test_the_published_schemas_are_derived_from_the_code() -> None:
    derived = _derived()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SCHEMA_FILE.write_text(json.dumps(derived, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        published_schemas.cache_clear()
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == derived, (
        "a tool's arguments or result changed: regenerate with UPDATE_SNAPSHOTS=1 and review the diff"
    )


def test_every_argument_model_matches_its_published_input_schema() -> None:
    """The lazily built argument model accepts exactly the published names, and refuses others."""
    schemas = published_schemas()
    for fn, hints in catalogue():
        tool = build_tool(fn, hints, schemas[fn.__name__])
        model = tool.fn_metadata.arguments_model()  # type: ignore[attr-defined]
        assert set(model.model_fields) == set(schemas[fn.__name__]["inputSchema"].get("properties", {})), fn.__name__
        with pytest.raises(ValidationError, match="extra_forbidden"):
            model.model_validate({"no_such_argument": 1})


@pytest.mark.parametrize("name", ["dispatch_call", "dispatch_calls"])
def test_consent_parameters_are_resolved_not_arguments(name: str) -> None:
    fn, hints = next((fn, hints) for fn, hints in catalogue() if fn.__name__ == name)
    tool = build_tool(fn, hints, published_schemas()[name])
    assert set(tool.resolved_params) == {"route", "answer"}
    assert tool.context_kwarg == "ctx"
    fields = tool.fn_metadata.arguments_model().model_fields  # type: ignore[attr-defined]
    assert not {"route", "answer"} & set(fields)


def test_building_a_tool_creates_no_argument_model_until_its_first_call() -> None:
    from outboundcalls_mcp.tools.registration import LazyArguments

    fn, hints = next((fn, hints) for fn, hints in catalogue() if fn.__name__ == "list_calls")
    tool = build_tool(fn, hints, published_schemas()["list_calls"])
    assert tool.fn_metadata.arg_model is LazyArguments
    assert tool.fn_metadata.validate_arguments({"limit": 5}) == {
        "status": None, "agent_id": None, "campaign_id": None, "limit": 5,
    }
    assert set(tool.fn_metadata.arg_model.model_fields) == {"status", "agent_id", "campaign_id", "limit"}
    with pytest.raises(ValidationError, match="extra_forbidden"):
        tool.fn_metadata.validate_arguments({"limt": 5})


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda props: props.pop("limit"), "limit"),  # an argument the file does not list
        (lambda props: props.update(page={"type": "integer"}), "page"),  # a listed one the code lacks
    ],
)
def test_a_stale_schema_file_stops_the_build_naming_the_parameter(change: Any, named: str) -> None:
    fn, hints = next((fn, hints) for fn, hints in catalogue() if fn.__name__ == "list_calls")
    schemas = json.loads(json.dumps(published_schemas()["list_calls"]))
    change(schemas["inputSchema"]["properties"])
    with pytest.raises(TypeError, match=rf"list_calls: .*disagree on \['{named}'\]; regenerate"):
        build_tool(fn, hints, schemas)
