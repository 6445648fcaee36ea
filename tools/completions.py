"""Completions for every id argument of the prompts and resource templates, from the live account."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Final

import mcp_types as types
from mcp.server.mcpserver import MCPServer

from outboundcalls.client import OutboundCallsClient
from outboundcalls.errors import OutboundCallsError
from outboundcalls_mcp.tools.deps import OpenDeps

__all__ = ["CACHE_TTL", "COMPLETED_ARGUMENTS", "AccountIds", "register_completions"]

log = logging.getLogger("outboundcalls.completions")

# Ids change rarely while a person types; one read per kind per half minute is plenty.
CACHE_TTL: Final = timedelta(seconds=30)
MAX_VALUES: Final = 100  # the protocol's cap on values per completion
# Which listing answers which argument; call and campaign ids both come from the recent calls.
COMPLETED_ARGUMENTS: Final = {
    "agent_id": "agents",
    "call_id": "calls",
    "campaign_id": "campaigns",
    "contact_list_id": "contact_lists",
}


async def _agents(api: OutboundCallsClient) -> list[str]:
    found = await api.list_agents(limit=200)
    # Deployed agents first: only they can dial.
    return [a.id for a in sorted(found, key=lambda a: (a.status or "") != "deployed")]


async def _calls(api: OutboundCallsClient) -> list[str]:
    return [c.id for c in await api.list_calls(limit=200)]


async def _campaigns(api: OutboundCallsClient) -> list[str]:
    # The API has no campaign listing; recent calls name the campaigns that are in use.
    return list(dict.fromkeys(c.campaign_id for c in await api.list_calls(limit=200) if c.campaign_id))


async def _contact_lists(api: OutboundCallsClient) -> list[str]:
    return list(dict.fromkeys(c.contact_list_id for c in await api.list_contacts(limit=500) if c.contact_list_id))


_SOURCES: Final[dict[str, Callable[[OutboundCallsClient], Awaitable[list[str]]]]] = {
    "agents": _agents,
    "calls": _calls,
    "campaigns": _campaigns,
    "contact_lists": _contact_lists,
}


class AccountIds:
    """Ids from the live account, each kind read at most once per CACHE_TTL."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[datetime, list[str]]] = {}

    async def ids(self, kind: str, api: OutboundCallsClient, now: datetime) -> list[str]:
        """The ids of one kind, from the cache while it is fresh."""
        cached = self._cache.get(kind)
        if cached is not None and now - cached[0] < CACHE_TTL:
            return cached[1]
        ids = await _SOURCES[kind](api)
        self._cache[kind] = (now, ids)
        return ids


def register_completions(mcp: MCPServer[Any], open_deps: OpenDeps) -> None:
    """Answer completion/complete for agent_id, call_id, campaign_id and contact_list_id arguments."""
    # The SDK calls a completion handler without a request context: the API client is the open lifespan's.
    cache = AccountIds()

    @mcp.completion()  # type: ignore[untyped-decorator, no-untyped-call]  # the SDK leaves completion() unannotated
    async def complete(
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
    ) -> types.Completion:
        kind = COMPLETED_ARGUMENTS.get(argument.name)
        deps = open_deps.current()
        if kind is None or deps is None or deps.api is None:
            return types.Completion(values=[])
        try:
            ids = await cache.ids(kind, deps.api, deps.now())
        except OutboundCallsError as exc:
            # A completion is a convenience: an upstream failure offers nothing rather than an error.
            log.info("completion of %s failed: %s", argument.name, type(exc).__name__)
            return types.Completion(values=[])
        typed = argument.value.lower()
        matches = [i for i in ids if i.lower().startswith(typed)]
        return types.Completion(values=matches[:MAX_VALUES], total=len(matches), has_more=len(matches) > MAX_VALUES)
