"""list_agents and get_agent: the voice agents a call can be dispatched through."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from outboundcalls.agents import Agent
from outboundcalls_mcp.tools.contracts import ToolModel
from outboundcalls_mcp.tools.deps import ToolDeps, api_of
from outboundcalls_mcp.tools.errors import upstream_errors
from outboundcalls_mcp.tools.inputs import AgentId, StatusFilter
from outboundcalls_mcp.tools.results import READ_FROM_API, read_all, structured

__all__ = ["AgentInfo", "AgentItem", "AgentList", "agent_detail", "agent_items", "get_agent", "list_agents"]


class AgentItem(ToolModel):
    id: str
    name: str | None = None
    status: str | None = None


class AgentInfo(AgentItem):
    language: str | None = None
    created_at: datetime | None = None


class AgentList(ToolModel):
    # Lists carry the compact item only, so their outputSchema names only what they send.
    agents: list[AgentItem]


class _AgentItemFromApi(AgentItem):
    """AgentItem read from the API's agent (tools/results.py: READ_FROM_API; the names are the same)."""

    model_config = READ_FROM_API


class _AgentInfoFromApi(AgentInfo):
    """AgentInfo read from the API's agent."""

    model_config = READ_FROM_API


def agent_detail(agent: Agent) -> AgentInfo:
    """The assistant's full view of a vendor agent."""
    return _AgentInfoFromApi.model_validate(agent)


def agent_items(agents: list[Agent]) -> list[AgentItem]:
    """The compact item for each, in one pass."""
    return read_all(_AgentItemFromApi, agents)


async def list_agents(
    ctx: Context[ToolDeps],
    status: Annotated[StatusFilter | None, Field(description="deployed, draft or paused.")] = None,
    limit: Annotated[int, Field(ge=1, le=200)] = 50,
) -> Annotated[CallToolResult, AgentList]:
    """Voice agents with id, name and status; only deployed agents can dial."""
    api = api_of(ctx)
    with upstream_errors():
        agents = await api.list_agents(status=status, limit=limit)
    return structured(AgentList(agents=agent_items(agents)))


async def get_agent(ctx: Context[ToolDeps], agent_id: AgentId) -> Annotated[CallToolResult, AgentInfo]:
    """One agent."""
    api = api_of(ctx)
    with upstream_errors(f"agent_id {agent_id!r}"):
        agent = await api.get_agent(agent_id)
    return structured(agent_detail(agent))
