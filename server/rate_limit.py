"""A per-client token bucket in front of the MCP endpoint: 429 with Retry-After once a client runs dry."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["RateLimitMiddleware", "TokenBuckets"]

# Past this many tracked clients, buckets that have refilled completely are forgotten: a full
# bucket holds no information, and a flood of spoofed addresses must not grow memory forever.
MAX_TRACKED_CLIENTS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One bucket per client key: `per_minute` tokens, refilled continuously, a minute's worth at most."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float:
        """Spend one token for `key`: 0.0 if allowed, otherwise the seconds until one is available."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_CLIENTS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(tokens=self.capacity, updated=now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_full(self, now: float) -> None:
        self._buckets = {
            key: b for key, b in self._buckets.items() if b.tokens + (now - b.updated) * self.rate < self.capacity
        }


class RateLimitMiddleware:
    """429 for a client address that exceeds its budget on the MCP path; other routes pass untouched."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets, *, path: str) -> None:
        self.app = app
        self.buckets = buckets
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path):
            await self.app(scope, receive, send)
            return
        # Keyed by address, not by bearer token: a guessed token must not buy a fresh bucket.
        client = scope.get("client")
        key = client[0] if client else "unknown"
        wait = self.buckets.take(key)
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        retry_after = str(max(1, math.ceil(wait)))
        body = json.dumps(
            {
                "error": "rate_limited",
                "error_description": f"Too many requests from this client; retry after {retry_after} s.",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", retry_after.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
