"""What the subscription tests share: a call that will end, a subscriber's ears, and subscribing."""

from __future__ import annotations

import warnings
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPDeprecationWarning

from tests.harness import Rig

__all__ = ["Heard", "place_call", "subscribe"]


async def place_call(rig: Rig) -> str:
    """A call placed straight on the sandbox, scripted to complete after 30 s of sandbox time."""
    rig.sandbox.script_next_call(outcome="completed", duration_seconds=30)
    async with rig.sandbox.http_client() as http:
        response = await http.post(
            "/calls", json={"agentId": rig.sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155550134"}
        )
    return str(response.json()["id"])


class Heard:
    """Resource-updated notifications a handshake-era client received."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self.arrived = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))
            self.arrived.set()


async def subscribe(client: Any, uri: str, *, unsubscribe: bool = False) -> None:
    """resources/subscribe (or unsubscribe), deprecated in 2026-07-28 and current in 2025-11-25."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        if unsubscribe:
            await client.unsubscribe_resource(uri)
        else:
            await client.subscribe_resource(uri)
