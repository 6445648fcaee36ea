"""Post-call webhooks: the full call JSON POSTed to a URL once a call ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import httpx2

__all__ = ["WEBHOOK_EVENT", "WebhookDelivery", "WebhookSender"]

WEBHOOK_EVENT: Final = "call.ended"


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One attempt to deliver a post-call webhook, and how the receiver answered."""

    call_id: str
    url: str
    payload: dict[str, Any]
    status_code: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the receiver answered with a 2xx status."""
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(slots=True)
class WebhookSender:
    """Queues the payload of each ended call and POSTs it when flushed (one attempt, no retry)."""

    url: str | None
    transport: httpx2.AsyncBaseTransport | None = None
    wrapped: bool = False
    timeout: float = 10.0
    deliveries: list[WebhookDelivery] = field(default_factory=list)
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def enqueue(self, call_id: str, call_json: dict[str, Any]) -> None:
        """Remember an ended call's data, as it was when it ended, for the next flush."""
        if self.url is None:
            return
        payload = {"event": WEBHOOK_EVENT, "call": call_json} if self.wrapped else call_json
        self.pending.append((call_id, payload))

    async def flush(self) -> list[WebhookDelivery]:
        """POST every queued payload, in the order the calls ended, and return the attempts."""
        if not self.pending or self.url is None:
            return []
        # Taken before the first await so that a concurrent flush never sends a payload twice.
        batch, self.pending = self.pending, []
        transport = _Borrowed(self.transport) if self.transport is not None else None
        sent: list[WebhookDelivery] = []
        async with httpx2.AsyncClient(transport=transport, timeout=self.timeout, trust_env=False) as client:
            for call_id, payload in batch:
                try:
                    response = await client.post(
                        self.url, json=payload, headers={"User-Agent": "OutboundCalls-Sandbox-Webhooks/1"}
                    )
                except httpx2.HTTPError as exc:
                    delivery = WebhookDelivery(call_id, self.url, payload, None, f"{type(exc).__name__}: {exc}")
                else:
                    delivery = WebhookDelivery(call_id, self.url, payload, response.status_code)
                sent.append(delivery)
                self.deliveries.append(delivery)
        return sent


class _Borrowed(httpx2.AsyncBaseTransport):
    """A caller's transport that the per-flush client may close without closing it."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Forward the request to the caller's transport."""
        return await self._inner.handle_async_request(request)
