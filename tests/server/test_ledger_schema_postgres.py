"""The PostgreSQL ledger's schema: made on first start, by one replica however many start at once; newer refused."""

from __future__ import annotations

import anyio
import psycopg
import pytest

from outboundcalls_mcp.server.ledger import NewerSchemaError
from outboundcalls_mcp.server.ledger_schema_postgres import SCHEMA_VERSION
from outboundcalls_mcp.server.ledger_sql import SqlLedger
from tests.places import LedgerPlace
from tests.server.ledger_kit import new_token, single_consent

pytestmark = pytest.mark.anyio


def meta(place: LedgerPlace) -> dict[str, str]:
    assert place.database_url is not None
    with psycopg.connect(place.database_url, options=f"-c search_path={place.schema}") as conn:
        return {key: value for key, value in conn.execute("SELECT key, value FROM meta").fetchall()}


async def test_replicas_opening_a_new_schema_at_once_all_open_it_and_it_is_migrated_once(pg_place: LedgerPlace) -> None:
    opened: list[SqlLedger] = []

    async def open_one() -> None:
        opened.append(await pg_place.open())

    async with anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(open_one)
    try:
        await single_consent(opened[0], token=new_token())
        assert len({(await ledger.recent_audit())[0].id for ledger in opened}) == 1  # one ledger, seen by all
    finally:
        for ledger in opened:
            await ledger.aclose()
    assert meta(pg_place)["schema_version"] == str(SCHEMA_VERSION)


async def test_a_schema_written_by_a_newer_release_is_refused_naming_the_release_to_run(pg_place: LedgerPlace) -> None:
    await (await pg_place.open()).aclose()
    assert pg_place.database_url is not None
    with psycopg.connect(pg_place.database_url, options=f"-c search_path={pg_place.schema}") as conn:
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
        conn.execute("UPDATE meta SET value = '9.9.9' WHERE key = 'written_by'")
    with pytest.raises(NewerSchemaError) as refused:
        await pg_place.open()
    assert refused.value.written_by == "9.9.9"
    assert "outboundcalls-mcp 9.9.9 or newer" in str(refused.value) and "OUTBOUNDCALLS_DATABASE_SCHEMA" in str(
        refused.value
    )
