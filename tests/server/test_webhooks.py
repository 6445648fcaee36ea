"""The post-call webhook end to end: the sandbox delivers to our HTTP app, which ends waits and notifies."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPDeprecationWarning
from starlette.types import ASGIApp

from outboundcalls.sandbox import ManualClock, Sandbox
from outboundcalls_mcp.server.app import build_server
from outboundcalls_mcp.server.call_events import CallEndStore
from outboundcalls_mcp.server.http_transport import build_http_app
from outboundcalls_mcp.server.ledger import AuditEntry
from outboundcalls_mcp.server.ledger_place import read_audit_trail
from outboundcalls_mcp.server.settings import Settings, SettingsError, load_settings
from outboundcalls_mcp.server.state_dir import resolve_state_dir
from tests.harness import NOON_NEW_YORK, make_settings
from tests.places import LedgerPlace

pytestmark = pytest.mark.anyio

SECRET = "wh_" + "k3y" * 10
BASE = "http://127.0.0.1:8765"
HOOK = f"/webhooks/outboundcalls/{SECRET}"


@dataclass
class HookRig:
    """A sandbox whose webhooks go to our HTTP app, and a server whose waits never time out by themselves."""

    sandbox: Sandbox
    settings: Settings
    server: MCPServer[Any]
    app: ASGIApp

    def gets(self, call_id: str) -> int:
        """GET /calls/{id} requests that reached the sandbox."""
        return self.sandbox.count("GET", f"/calls/{call_id}")

    def stored(self, call_id: str) -> Any:
        """The call end stored in the state directory, if any."""
        return CallEndStore(lambda: resolve_state_dir(self.settings)).get(call_id)

    def http(self) -> httpx2.AsyncClient:
        """A client of our HTTP app, in process."""
        return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app), base_url=BASE)


async def _stalled_sleep(seconds: float) -> None:
    """A poll pause that only ends when cancelled: any progress must come from a webhook."""
    await anyio.sleep_forever()


def make_hook_rig(tmp_path: Path, *, wrapped: bool = False, **overrides: Any) -> HookRig:
    sandbox = Sandbox(clock=ManualClock(datetime.fromisoformat(NOON_NEW_YORK)), webhook_wrapped=wrapped)
    settings = make_settings(tmp_path, webhook_secret=SECRET, **overrides)
    server = build_server(settings, transport=sandbox.transport(), now=sandbox.clock.now, sleep=_stalled_sleep)
    app = build_http_app(settings, server)
    # The sandbox is built first (the server needs its transport); its webhook target is set once the app exists.
    sandbox.webhooks.url = BASE + HOOK
    sandbox.webhooks.transport = httpx2.ASGITransport(app=app)
    return HookRig(sandbox, settings, server, app)


async def _place_call(sandbox: Sandbox) -> str:
    sandbox.script_next_call(outcome="completed", duration_seconds=40)
    async with sandbox.http_client() as http:
        response = await http.post(
            "/calls", json={"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155550134"}
        )
    return str(response.json()["id"])


async def audit_of(hook: HookRig) -> list[AuditEntry]:
    """The rig's audit trail."""
    return await read_audit_trail(hook.settings, 200)


@asynccontextmanager
async def serving(hook: HookRig) -> AsyncIterator[None]:
    """The HTTP app's lifespan, as uvicorn runs it (httpx2's ASGITransport sends no lifespan events)."""
    async with hook.server.session_manager.run():
        yield


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def hook(tmp_path: Path) -> AsyncIterator[HookRig]:
    yield make_hook_rig(tmp_path)


async def test_a_webhook_ends_a_wait_at_once_with_no_further_get(hook: HookRig, mode: str) -> None:
    call_id = await _place_call(hook.sandbox)
    outcome: dict[str, Any] = {}
    messages: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message)

    async with Client(hook.server, mode=mode) as client:
        async with anyio.create_task_group() as group:

            async def wait() -> None:
                outcome["result"] = await client.call_tool(
                    "wait_for_call", {"call_id": call_id, "timeout_seconds": 600}, progress_callback=on_progress
                )

            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            gets_before = hook.gets(call_id)
            deliveries = await hook.sandbox.advance(120)
    result = outcome["result"]
    # One GET by the wait's first look, one by the webhook to confirm the end with the API; no more polling.
    assert gets_before == 1 and hook.gets(call_id) == 2
    assert [d.status_code for d in deliveries] == [200]
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["timed_out"] is False
    assert result.structured_content["call"]["status"] == "completed"
    assert result.structured_content["call"]["duration_s"] == 40
    assert messages[0] == f"{call_id}: queued" and messages[-1] == f"{call_id}: completed"


async def test_a_received_call_end_is_stored_in_the_state_directory(hook: HookRig) -> None:
    call_id = await _place_call(hook.sandbox)
    async with serving(hook):
        await hook.sandbox.advance(120)
    stored = await hook.stored(call_id)
    assert stored is not None and stored.status == "completed" and stored.transcript
    assert (resolve_state_dir(hook.settings) / "call_ends.sqlite3").stat().st_mode & 0o077 == 0


async def test_a_store_that_cannot_be_written_still_ends_the_wait(hook: HookRig) -> None:
    (resolve_state_dir(hook.settings) / "call_ends.sqlite3").mkdir()  # not a database: every write fails
    call_id = await _place_call(hook.sandbox)
    outcome: dict[str, Any] = {}
    async with Client(hook.server) as client:
        async with anyio.create_task_group() as group:

            async def wait() -> None:
                outcome["result"] = await client.call_tool(
                    "wait_for_call", {"call_id": call_id, "timeout_seconds": 600}
                )

            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            deliveries = await hook.sandbox.advance(120)
    assert [d.status_code for d in deliveries] == [200]
    assert outcome["result"].structured_content["call"]["status"] == "completed"
    assert hook.gets(call_id) == 2  # the wait's first look and the webhook's confirmation


async def test_the_wrapped_form_with_an_event_name_is_accepted(tmp_path: Path) -> None:
    hook = make_hook_rig(tmp_path, wrapped=True)
    call_id = await _place_call(hook.sandbox)
    async with serving(hook):
        deliveries = await hook.sandbox.advance(120)
    assert deliveries[0].payload["event"] == "call.ended" and deliveries[0].status_code == 200
    assert (await hook.stored(call_id)) is not None


async def test_a_webhook_notifies_modern_subscribers_of_the_call(hook: HookRig) -> None:
    call_id = await _place_call(hook.sandbox)
    uri = f"outboundcalls://calls/{call_id}"
    async with Client(hook.server) as client, client.listen(resource_subscriptions=[uri]) as events:
        await hook.sandbox.advance(120)
        with anyio.fail_after(5):
            assert await anext(aiter(events)) == ResourceUpdated(uri=uri)


async def test_a_wrong_secret_gets_404_like_an_unknown_path_and_nothing_is_stored(hook: HookRig) -> None:
    call_id = await _place_call(hook.sandbox)
    assert isinstance(hook.sandbox.clock, ManualClock)
    hook.sandbox.clock.advance(120)
    hook.sandbox.sync()
    body = hook.sandbox.call_json(call_id)
    async with hook.http() as http:
        wrong = await http.post("/webhooks/outboundcalls/" + "x" * len(SECRET), json=body)
        prefix = await http.post(HOOK[:-1], json=body)
        unknown = await http.post("/webhooks/nothing-here", json=body)
    assert wrong.status_code == prefix.status_code == unknown.status_code == 404
    assert wrong.json() == {"detail": "Not Found"}
    assert await hook.stored(call_id) is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"event": "call.ended"}',
        b'{"status": "completed"}',
        b'{"id": "../../etc", "status": "completed"}',
        b'{"event": "call.ended", "call": "c_1"}',
        b"\xff\xfe",
    ],
)
async def test_a_malformed_body_gets_400_and_nothing_is_stored(hook: HookRig, body: bytes) -> None:
    async with hook.http() as http:
        response = await http.post(HOOK, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert not (resolve_state_dir(hook.settings) / "call_ends.sqlite3").exists()


async def test_an_oversized_body_gets_413_whether_or_not_it_declares_its_length(hook: HookRig) -> None:
    call_id = await _place_call(hook.sandbox)
    padded = json.dumps({"id": call_id, "status": "completed", "summary": "x" * (300 * 1024)}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(padded), 16 * 1024):
            yield padded[start : start + 16 * 1024]

    async with hook.http() as http:
        declared = await http.post(HOOK, content=padded)
        streamed = await http.post(HOOK, content=chunks())
    assert declared.status_code == streamed.status_code == 413
    assert await hook.stored(call_id) is None


async def test_a_call_that_has_not_ended_is_acknowledged_but_ends_nothing(hook: HookRig) -> None:
    call_id = await _place_call(hook.sandbox)
    async with hook.http() as http:
        response = await http.post(HOOK, json=hook.sandbox.call_json(call_id))
    assert response.status_code == 200 and response.json() == {"received": call_id, "ended": False}
    assert await hook.stored(call_id) is None


async def test_a_forged_call_end_with_the_right_secret_changes_nothing_while_the_api_disagrees(
    hook: HookRig, mode: str, log_lines: list[str]
) -> None:
    call_id = await _place_call(hook.sandbox)  # queued at the vendor
    forged = {
        **hook.sandbox.call_json(call_id),
        "status": "completed",
        "toNumber": "+19005550100",
        "creditsCharged": 0.01,
        "summary": "FORGED SUMMARY",
    }
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        heard.append(type(message).__name__)

    async with serving(hook), Client(hook.server, mode=mode, message_handler=on_message) as client:
        if mode == "legacy":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await client.subscribe_resource(f"outboundcalls://calls/{call_id}")
        async with hook.http() as http:
            response = await http.post(HOOK, json=forged)
        waited = await client.call_tool("wait_for_call", {"call_id": call_id, "timeout_seconds": 1})
    assert response.status_code == 200 and response.json() == {"received": call_id, "ended": False}
    assert await hook.stored(call_id) is None
    assert waited.structured_content is not None and waited.structured_content["call"]["status"] == "queued"
    assert "ResourceUpdatedNotification" not in heard
    assert [e for e in await audit_of(hook) if e.kind == "charge"] == []
    warned = [line for line in log_lines if line.startswith("WARNING") and "webhook" in line]
    assert warned and all("FORGED" not in line and "+1900" not in line and "0.01" not in line for line in log_lines)


async def test_a_call_end_whose_body_disagrees_with_the_api_is_recorded_as_the_api_says(hook: HookRig) -> None:
    call_id = await _place_call(hook.sandbox)
    await hook.sandbox.advance(120)  # the call ended at the vendor (its own webhook goes nowhere here)
    forged = {**hook.sandbox.call_json(call_id), "creditsCharged": 0.01, "status": "failed"}
    async with serving(hook), hook.http() as http:
        response = await http.post(HOOK, json=forged)
    stored = await hook.stored(call_id)
    assert response.json() == {"received": call_id, "ended": True}
    assert stored is not None and stored.status == "completed" and stored.credits_charged != 0.01


async def test_a_retried_webhook_for_a_confirmed_end_reads_the_api_once(hook: HookRig) -> None:
    call_id = await _place_call(hook.sandbox)
    await hook.sandbox.advance(120)  # the call ended at the vendor (its own webhook goes nowhere here)
    body = hook.sandbox.call_json(call_id)
    async with serving(hook), hook.http() as http:
        answers = [(await http.post(HOOK, json=body)).json() for _ in range(3)]
    assert answers == [{"received": call_id, "ended": True}] * 3
    assert hook.gets(call_id) == 1


async def test_the_route_is_not_behind_the_bearer_token_but_mcp_is(tmp_path: Path) -> None:
    hook = make_hook_rig(tmp_path, http_token="t" * 32)
    call_id = await _place_call(hook.sandbox)
    async with serving(hook):
        await hook.sandbox.advance(120)
    async with hook.http() as http:
        mcp = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert hook.sandbox.webhooks.deliveries[0].status_code == 200 and mcp.status_code == 401
    assert (await hook.stored(call_id)) is not None


async def test_without_a_secret_there_is_no_webhook_route(place: LedgerPlace) -> None:
    settings = make_settings(place)
    sandbox = Sandbox()
    app = build_http_app(settings, build_server(settings, transport=sandbox.transport()))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.post(HOOK, json={"id": "c_1", "status": "completed"})
    assert response.status_code == 404


@pytest.mark.parametrize("secret", ["short", "has/a/slash/" + "x" * 20, "spaces are not url safe " * 2])
def test_a_short_or_unsafe_secret_stops_start_up_without_echoing_it(secret: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({"OUTBOUNDCALLS_WEBHOOK_SECRET": secret})
    assert "OUTBOUNDCALLS_WEBHOOK_SECRET" in str(raised.value) and secret.strip() not in str(raised.value)
