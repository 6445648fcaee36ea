"""A refused argument reads as one sentence: the argument, what was wrong, and an example of what is right."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from outboundcalls_mcp.tools import build_tools
from outboundcalls_mcp.tools.argument_errors import EXAMPLES, describe_argument_errors


class Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=200)] = 20
    tags: list[Annotated[str, Field(max_length=5)]] = []
    custom_fields: dict[str, str | int | float | bool] = {}
    confirmation_token: Annotated[str, Field(min_length=16)] | None = None


def refused(**arguments: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        Arguments.model_validate(arguments)
    return describe_argument_errors("a_tool", caught.value, arguments=Arguments.model_fields)


def test_every_argument_any_tool_takes_has_an_example() -> None:
    names = {name for tool in build_tools(read_only=False) for name in tool.parameters.get("properties", {})}
    assert names == set(EXAMPLES)


def test_a_range_error_names_the_argument_the_value_and_an_example() -> None:
    assert refused(limit=0) == "limit 0 is not accepted: it must be greater than or equal to 1; for example 20."


def test_an_item_of_a_list_is_named_by_its_position() -> None:
    text = refused(tags=["ok", "far too long"])
    assert text.startswith('tags item 2 "far too long" is not accepted: it must be at most 5 characters long')


def test_a_union_that_fits_no_type_is_one_sentence_not_one_per_type() -> None:
    text = refused(custom_fields={"plan": {"nested": 1}})
    assert text.count("is not accepted") == 1 and 'custom_fields "plan"' in text


def test_an_unknown_argument_lists_what_the_tool_takes_and_never_repeats_its_value() -> None:
    text = refused(api_key="oc_live_secret_value")
    assert "oc_live_secret_value" not in text
    assert text == (
        "api_key is not an argument of a_tool, which takes confirmation_token, custom_fields, limit, tags; "
        "nothing was sent."
    )


def test_a_token_value_is_never_repeated_back() -> None:
    text = refused(confirmation_token="short-secret")
    assert "short-secret" not in text and text.startswith("confirmation_token is not accepted:")


def test_a_value_with_line_breaks_and_direction_marks_is_shown_on_one_visible_line() -> None:
    text = refused(limit="1\n\u202e2")
    assert "\n" not in text and "\u202e" not in text and "\\u202e" in text


def test_several_refused_arguments_are_one_sentence_each() -> None:
    text = refused(limit=0, tags="x", extra=1)
    assert text.count(". ") + text.endswith(".") == 3
