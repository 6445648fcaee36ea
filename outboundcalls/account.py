"""The account behind an API key: user, credit balance and subscription (GET /me)."""

from __future__ import annotations

from datetime import datetime

from outboundcalls.wire import WireModel

__all__ = ["Account", "AccountUser", "Subscription"]


class AccountUser(WireModel):
    """The user who owns the API key."""

    id: str | None = None
    email: str | None = None
    name: str | None = None


class Subscription(WireModel):
    """The active subscription, if any."""

    plan: str | None = None
    status: str | None = None
    current_period_end: datetime | None = None


class Account(WireModel):
    """User info, credit balance and active subscription."""

    user: AccountUser | None = None
    credits: float
    subscription: Subscription | None = None
