"""When and how long to wait before retrying a read; writes are never retried."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from random import random as _uniform

import anyio

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy"]

# Rate limiting and the gateway family: the request did not do anything and may work later.
RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry budget for GETs: exponential backoff with full jitter, Retry-After honoured up to a cap."""

    max_attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 2.0
    max_total_wait: float = 5.0
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=_uniform, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_total_wait) < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, attempt: int) -> float:
        """Full-jitter delay after the given failed attempt (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return self.random() * ceiling

    def next_delay(self, attempt: int, waited: float, retry_after: float | None = None) -> float | None:
        """Seconds to wait before another attempt after `attempt` failed, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        remaining = self.max_total_wait - waited
        if retry_after is not None:
            # Retrying sooner than the server asked is pointless; waiting past the budget is too long.
            return retry_after if retry_after <= remaining else None
        return max(0.0, min(self.backoff(attempt), remaining))
