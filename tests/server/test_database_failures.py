"""When the shared database goes away: what needs it says so and dials nothing, reads go on, and it comes back."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.harness import connected, make_rig
from tests.places import LedgerPlace
from tests.server.dispatch_kit import call_id_of, dispatch_args, text_of
from tests.server.tcp_proxy import tcp_proxy

pytestmark = pytest.mark.anyio


def through(url: str, port: int) -> str:
    """The same database URL, reached through a proxy on this loopback port."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    where = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{where}" if len(netloc) == 2 else where))


async def test_a_dispatch_while_the_database_is_away_dials_nothing_and_reads_go_on_until_it_is_back(
    pg_place: LedgerPlace,
) -> None:
    assert pg_place.database_url is not None
    target = urlsplit(pg_place.database_url)
    async with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        rig = make_rig(pg_place, database_url=through(pg_place.database_url, proxy.port), confirm="none",
                       max_calls_per_day=10, max_credits_per_day=10_000)  # fmt: skip
        async with connected(rig) as client:
            proxy.cut()
            refused = await client.call_tool("dispatch_call", dispatch_args(rig))
            balance = await client.call_tool("get_balance", {})
            agents = await client.call_tool("list_agents", {})
            await proxy.restore()
            placed = await client.call_tool("dispatch_call", dispatch_args(rig))
    assert (
        refused.is_error
        and "cannot be reached" in text_of(refused)
        and "nothing was decided or dialed" in text_of(refused)
    )
    assert not balance.is_error and not agents.is_error
    assert call_id_of(placed)
    assert rig.posts() == 1
