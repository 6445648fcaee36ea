"""Voice agents that place calls (GET /agents, GET /agents/{id})."""

from __future__ import annotations

from datetime import datetime

from outboundcalls.wire import WireModel

__all__ = ["Agent"]


class Agent(WireModel):
    """One voice agent; only deployed agents can dispatch calls."""

    id: str
    name: str | None = None
    status: str | None = None
    eleven_labs_agent_id: str | None = None
    language: str | None = None
    created_at: datetime | None = None
