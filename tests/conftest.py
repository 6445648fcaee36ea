"""Fixtures shared across the test tree."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.places import LedgerPlace


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


@pytest.fixture(scope="session")
def database_url() -> str | None:
    """The test database, checked reachable once; None when the PostgreSQL runs are to be skipped."""
    from tests.places import check_reachable, configured_database_url

    url = configured_database_url()
    if url is not None:
        check_reachable(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def place(request: pytest.FixtureRequest, tmp_path: Path, database_url: str | None) -> Iterator[LedgerPlace]:
    """Where this test's ledger lives; the test runs once with each backend."""
    from tests.places import LedgerPlace

    if request.param == "sqlite":
        yield LedgerPlace("sqlite", tmp_path)
        return
    yield from _postgres_place(tmp_path, database_url)


@pytest.fixture
def pg_place(tmp_path: Path, database_url: str | None) -> Iterator[LedgerPlace]:
    """A PostgreSQL schema of this test's own, for what only a shared database does (replicas)."""
    yield from _postgres_place(tmp_path, database_url)


def _postgres_place(tmp_path: Path, database_url: str | None) -> Iterator[LedgerPlace]:
    from tests.places import SKIP_REASON, LedgerPlace, drop_schemas, new_schema_prefix

    if database_url is None:
        pytest.skip(SKIP_REASON)
    prefix = new_schema_prefix()
    try:
        yield LedgerPlace("postgres", tmp_path, database_url=database_url, schema=prefix)
    finally:
        drop_schemas(database_url, prefix)
