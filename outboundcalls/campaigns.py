"""Campaign progress (GET /campaigns/{id})."""

from __future__ import annotations

from outboundcalls.wire import WireModel

__all__ = ["Campaign"]


class Campaign(WireModel):
    """Progress of one campaign; success_rate is kept as the API sends it (documented 0..1)."""

    id: str
    name: str | None = None
    status: str | None = None
    calls_total: int | None = None
    calls_completed: int | None = None
    calls_successful: int | None = None
    calls_failed: int | None = None
    credits_used: float | None = None
    success_rate: float | None = None
