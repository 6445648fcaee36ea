"""Post-call webhooks delivered into a small Starlette receiver through an ASGI transport."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from outboundcalls.sandbox import ManualClock, Sandbox

pytestmark = pytest.mark.anyio

HOOK_URL = "http://hooks.test/outboundcalls/ended"


class Receiver:
    """A webhook endpoint that keeps what it receives and answers a chosen status."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.app = Starlette(routes=[Route("/outboundcalls/ended", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        self.received.append((request.headers["content-type"], await request.json()))
        return Response(status_code=self.status)


def sandbox_for(receiver: Receiver, **options: Any) -> Sandbox:
    return Sandbox(webhook_url=HOOK_URL, webhook_transport=httpx2.ASGITransport(app=receiver.app), **options)


async def dial(sandbox: Sandbox, **script: Any) -> str:
    sandbox.script_next_call(**script)
    async with sandbox.http_client() as http:
        response = await http.post(
            "/calls", json={"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155551212"}
        )
    call_id: str = response.json()["id"]
    return call_id


async def test_an_ended_call_is_posted_once_with_the_same_json_as_get_call() -> None:
    receiver = Receiver()
    sandbox = sandbox_for(receiver)
    call_id = await dial(sandbox, duration_seconds=40)
    assert await sandbox.advance(10) == []
    deliveries = await sandbox.advance(60)
    assert len(deliveries) == 1 and deliveries[0].ok and deliveries[0].call_id == call_id
    content_type, payload = receiver.received[0]
    assert content_type == "application/json"
    async with sandbox.http_client() as http:
        assert payload == (await http.get(f"/calls/{call_id}")).json()
    assert payload["status"] == "completed" and payload["transcript"]
    await sandbox.advance(600)
    assert len(receiver.received) == 1 and sandbox.webhooks.deliveries == deliveries


async def test_the_wrapped_form_names_the_event() -> None:
    receiver = Receiver()
    sandbox = sandbox_for(receiver, webhook_wrapped=True)
    call_id = await dial(sandbox, outcome="no_answer")
    await sandbox.advance(60)
    _, payload = receiver.received[0]
    assert payload["event"] == "call.ended"
    assert (payload["call"]["id"], payload["call"]["status"]) == (call_id, "no_answer")


async def test_a_request_ends_the_call_and_the_next_tick_delivers() -> None:
    receiver = Receiver()
    sandbox = sandbox_for(receiver)
    call_id = await dial(sandbox, outcome="busy")
    assert isinstance(sandbox.clock, ManualClock)
    sandbox.clock.advance(60)
    async with sandbox.http_client() as http:
        assert (await http.get(f"/calls/{call_id}")).json()["status"] == "busy"
    assert receiver.received == []
    assert [d.call_id for d in await sandbox.tick()] == [call_id]


async def test_calls_are_delivered_in_the_order_they_ended() -> None:
    receiver = Receiver()
    sandbox = sandbox_for(receiver)
    slow = await dial(sandbox, duration_seconds=90)
    fast = await dial(sandbox, outcome="busy")
    await sandbox.advance(300)
    assert [payload["id"] for _, payload in receiver.received] == [fast, slow]


async def test_a_failing_receiver_is_recorded_and_not_retried() -> None:
    receiver = Receiver(status=500)
    sandbox = sandbox_for(receiver)
    await dial(sandbox, outcome="failed")
    [delivery] = await sandbox.advance(60)
    assert (delivery.ok, delivery.status_code, delivery.url) == (False, 500, HOOK_URL)
    await sandbox.advance(60)
    assert len(receiver.received) == 1


async def test_an_unreachable_receiver_is_recorded_as_an_error() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    sandbox = Sandbox(webhook_url=HOOK_URL, webhook_transport=httpx2.MockTransport(refuse))
    await dial(sandbox, outcome="busy")
    [delivery] = await sandbox.advance(60)
    assert delivery.status_code is None and delivery.error and "ConnectError" in delivery.error


async def test_without_a_webhook_url_nothing_is_sent() -> None:
    sandbox = Sandbox()
    await dial(sandbox, outcome="busy")
    assert await sandbox.advance(60) == []
    assert sandbox.webhooks.deliveries == [] and sandbox.webhooks.pending == []


async def test_history_calls_never_trigger_webhooks() -> None:
    receiver = Receiver()
    sandbox = sandbox_for(receiver)
    assert await sandbox.advance(3600) == [] and receiver.received == []
