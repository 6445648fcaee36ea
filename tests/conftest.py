"""Fixtures shared across the test tree."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


class Everything(logging.Handler):
    """Keeps every record, formatted with its traceback, as the first handler sees it (before any redaction)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log line of the test, from the root logger at DEBUG."""
    root = logging.getLogger()
    handler = Everything()
    # First in line, so that a redacting filter on a later handler cannot hide a leak from this test.
    root.handlers.insert(0, handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
