"""A retry sleep that records the delays it was asked for instead of waiting (nothing in a test sleeps)."""

from __future__ import annotations

__all__ = ["Sleeps"]


class Sleeps:
    """An injected sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
