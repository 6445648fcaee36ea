"""A failed task group's first error of one kind, raised on its own, the same on every supported Python.

`except* Kind as group: raise group.exceptions[0]` reads well but misbehaves before 3.11.4 (Debian 12
ships 3.11.2): an exception raised inside an `except*` block comes out wrapped in a new exception
group, so a tool error meant for the assistant reaches the SDK as an unexpected failure. A plain
`except` has no such quirk, so the group is caught whole and split here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["first_error"]


@contextmanager
def first_error(kind: type[BaseException]) -> Iterator[None]:
    """Raise the first `kind` error of a task group that failed in the block, alone (`from None`)."""
    try:
        yield
    except BaseExceptionGroup as group:
        matched, rest = group.split(kind)
        if matched is None or rest is not None:
            raise  # none of that kind, or something unexpected beside it: the group as it came
        raise _first_leaf(matched) from None


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
