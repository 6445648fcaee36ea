"""first_error: a failed task group's first error of one kind comes out alone, on 3.11.2 as on 3.13."""

from __future__ import annotations

import anyio
import pytest

from outboundcalls_mcp.tools.task_groups import first_error

pytestmark = pytest.mark.anyio


class Refused(Exception):
    """The kind first_error is asked for."""


async def test_the_first_error_of_the_kind_comes_out_of_a_task_group_alone_with_no_cause() -> None:
    refused = Refused("first")
    never = anyio.Event()

    async def fail() -> None:
        raise refused

    with pytest.raises(Refused) as raised:
        with first_error(Refused):
            async with anyio.create_task_group() as group:
                group.start_soon(never.wait)  # cancelled by the failure, so not part of the group
                group.start_soon(fail)
    assert raised.value is refused
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_nested_group_gives_its_first_leaf() -> None:
    first = Refused("first")
    with pytest.raises(Refused) as raised:
        with first_error(Refused):
            raise ExceptionGroup("outer", [ExceptionGroup("inner", [first, Refused("second")]), Refused("third")])
    assert raised.value is first


def test_an_unexpected_error_beside_it_leaves_the_group_whole() -> None:
    group = ExceptionGroup("both", [Refused(), ValueError()])
    with pytest.raises(ExceptionGroup) as raised:
        with first_error(Refused):
            raise group
    assert raised.value is group


def test_a_group_without_the_kind_passes_unchanged() -> None:
    group = ExceptionGroup("other", [ValueError()])
    with pytest.raises(ExceptionGroup) as raised:
        with first_error(Refused):
            raise group
    assert raised.value is group


def test_an_error_outside_any_group_passes_unchanged() -> None:
    refused = Refused()
    with pytest.raises(Refused) as raised:
        with first_error(Refused):
            raise refused
    assert raised.value is refused
