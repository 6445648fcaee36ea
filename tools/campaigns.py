"""get_campaign: a campaign's progress, success rate and spend."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from outboundcalls.campaigns import Campaign
from outboundcalls_mcp.tools.contracts import ToolModel
from outboundcalls_mcp.tools.deps import ToolDeps, api_of
from outboundcalls_mcp.tools.errors import upstream_errors
from outboundcalls_mcp.tools.inputs import CampaignId
from outboundcalls_mcp.tools.results import structured

__all__ = ["CampaignProgress", "campaign_progress", "get_campaign"]


class CampaignProgress(ToolModel):
    id: str
    name: str | None = None
    status: str | None = None
    calls_total: int | None = None
    completed: int | None = None
    successful: int | None = None
    failed: int | None = None
    credits_used: float | None = None
    success_rate: float | None = None


def campaign_progress(c: Campaign) -> CampaignProgress:
    """The assistant's view of a campaign (also the outboundcalls://campaigns/{id} resource)."""
    return CampaignProgress(
        id=c.id,
        name=c.name,
        status=c.status,
        calls_total=c.calls_total,
        completed=c.calls_completed,
        successful=c.calls_successful,
        failed=c.calls_failed,
        credits_used=c.credits_used,
        success_rate=c.success_rate,
    )


async def get_campaign(ctx: Context[ToolDeps], campaign_id: CampaignId) -> Annotated[CallToolResult, CampaignProgress]:
    """Campaign progress: calls completed, successful and failed, credits used, success rate (0..1)."""
    api = api_of(ctx)
    with upstream_errors(f"campaign_id {campaign_id!r}"):
        c = await api.get_campaign(campaign_id)
    return structured(campaign_progress(c))
