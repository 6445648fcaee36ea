"""Health for a load balancer: /healthz while the process serves, /readyz while its ledger answers and lease holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from outboundcalls_mcp.server.http_transport import build_http_app
from outboundcalls_mcp.server.ledger_place import open_ledger
from tests.harness import Rig, make_rig
from tests.places import LedgerPlace

pytestmark = pytest.mark.anyio

TOKEN = "t0k3n-" + "h" * 40


@asynccontextmanager
async def probe(rig: Rig) -> AsyncIterator[httpx2.AsyncClient]:
    """A balancer's HTTP client on the rig's app, its lifespan running, with no bearer token."""
    app: Any = build_http_app(rig.settings, rig.server, host="127.0.0.1", port=8765)
    async with rig.server.session_manager.run():
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1:8765"
        ) as http:
            yield http


async def test_both_probes_answer_without_the_bearer_token_and_say_ready(place: LedgerPlace) -> None:
    rig = make_rig(place, http_token=TOKEN)
    async with probe(rig) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
        refused = await http.post("/mcp", json={})
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert refused.status_code == 401  # the probes are open; MCP is not


async def test_a_lost_policy_lease_makes_the_replica_not_ready_while_it_still_lives(place: LedgerPlace) -> None:
    rig = make_rig(place)
    async with probe(rig) as http:
        assert (await http.get("/readyz")).status_code == 200
        # The lease gone (as after a long cut from the database): this replica must not take dials.
        other = await open_ledger(rig.settings)
        try:
            await other.backend.write(lambda tx: tx.execute("DELETE FROM policy_holders"))
        finally:
            await other.aclose()
        ready = await http.get("/readyz")
        health = await http.get("/healthz")
    assert (ready.status_code, ready.json()) == (503, {"status": "not ready", "reason": "policy lease not held"})
    assert health.status_code == 200
