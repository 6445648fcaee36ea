"""get_balance: the credit balance and whether a call can be dispatched."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from outboundcalls.account import Account
from outboundcalls.pricing import MINIMUM_BALANCE_CREDITS
from outboundcalls_mcp.tools.contracts import ToolModel
from outboundcalls_mcp.tools.deps import ToolDeps, api_of, deps_of
from outboundcalls_mcp.tools.errors import upstream_errors
from outboundcalls_mcp.tools.results import structured

__all__ = ["Balance", "balance_view", "get_balance"]


class Balance(ToolModel):
    credits: float
    can_dispatch: bool
    minimum_credits: float
    email: str | None = None
    plan: str | None = None
    subscription_status: str | None = None
    renews_at: datetime | None = None
    sandbox: bool


def balance_view(account: Account, *, sandbox: bool) -> Balance:
    """The assistant's view of the account (also the outboundcalls://account resource)."""
    sub = account.subscription
    return Balance(
        credits=account.credits,
        can_dispatch=account.credits >= MINIMUM_BALANCE_CREDITS,
        minimum_credits=MINIMUM_BALANCE_CREDITS,
        email=account.user.email if account.user else None,
        plan=sub.plan if sub else None,
        subscription_status=sub.status if sub else None,
        renews_at=sub.current_period_end if sub else None,
        sandbox=sandbox,
    )


async def get_balance(ctx: Context[ToolDeps]) -> Annotated[CallToolResult, Balance]:
    """Credit balance, whether a call can be dispatched (at least minimum_credits), plan and account email."""
    api = api_of(ctx)
    with upstream_errors():
        account = await api.get_account()
    return structured(balance_view(account, sandbox=deps_of(ctx).sandbox))
