"""A client subscribed to a call's resources hears when the call ends: resources/subscribe and subscriptions/listen."""

from __future__ import annotations

import anyio
import mcp_types as types
import pytest
from mcp.server.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPError

from tests.harness import Rig, connected
from tests.tools.subscription_kit import Heard, place_call, subscribe

pytestmark = pytest.mark.anyio


async def test_a_handshake_era_subscriber_hears_once_when_wait_for_call_sees_the_end(rig: Rig) -> None:
    call_id = await place_call(rig)
    heard = Heard()
    async with connected(rig, "legacy", message_handler=heard) as client:
        assert client.server_capabilities is not None and client.server_capabilities.resources is not None
        assert client.server_capabilities.resources.subscribe is True
        await subscribe(client, f"outboundcalls://calls/{call_id}")
        await subscribe(client, f"outboundcalls://calls/{call_id}/transcript")
        result = await client.call_tool("wait_for_call", {"call_id": call_id, "timeout_seconds": 120})
        with anyio.fail_after(5):
            await heard.arrived.wait()
        await client.call_tool("get_call", {"call_id": call_id})  # seen ended again: no second notice
        await client.list_prompts()  # a round trip: anything sent before it has arrived
    assert result.structured_content is not None and result.structured_content["call"]["status"] == "completed"
    assert sorted(heard.uris) == [f"outboundcalls://calls/{call_id}", f"outboundcalls://calls/{call_id}/transcript"]


async def test_an_unsubscribed_client_hears_nothing(rig: Rig) -> None:
    call_id = await place_call(rig)
    heard = Heard()
    async with connected(rig, "legacy", message_handler=heard) as client:
        await subscribe(client, f"outboundcalls://calls/{call_id}")
        await subscribe(client, f"outboundcalls://calls/{call_id}", unsubscribe=True)
        await client.call_tool("wait_for_call", {"call_id": call_id, "timeout_seconds": 120})
        await client.list_prompts()  # a round trip: anything sent before it has arrived
    assert heard.uris == []


async def test_only_this_servers_resources_can_be_subscribed_to(rig: Rig) -> None:
    async with connected(rig, "legacy") as client:
        with pytest.raises(MCPError) as raised:
            await subscribe(client, "file:///etc/passwd")
    assert raised.value.code == types.INVALID_PARAMS


async def test_a_modern_listener_hears_when_get_call_sees_the_end(rig: Rig) -> None:
    call_id = await place_call(rig)
    uri = f"outboundcalls://calls/{call_id}/transcript"
    async with connected(rig) as client, client.listen(resource_subscriptions=[uri]) as events:
        await client.call_tool("get_call", {"call_id": call_id})  # still live: nothing to hear
        await rig.sandbox.advance(120)
        await client.call_tool("get_call", {"call_id": call_id})
        with anyio.fail_after(5):
            assert await anext(aiter(events)) == ResourceUpdated(uri=uri)


async def test_a_modern_listener_hears_when_wait_for_calls_sees_each_end(rig: Rig) -> None:
    first, second = await place_call(rig), await place_call(rig)
    uris = [f"outboundcalls://calls/{first}", f"outboundcalls://calls/{second}"]
    async with connected(rig) as client, client.listen(resource_subscriptions=uris) as events:
        await client.call_tool("wait_for_calls", {"call_ids": [first, second], "timeout_seconds": 120})
        with anyio.fail_after(5):
            heard = {await anext(aiter(events)), await anext(aiter(events))}
    assert heard == {ResourceUpdated(uri=uri) for uri in uris}
