"""`--sandbox`: the simulated API in this process, moving calls along in real time."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    import httpx2

__all__ = ["start_sandbox"]


async def start_sandbox(stack: AsyncExitStack) -> tuple[httpx2.AsyncBaseTransport, SecretStr, str]:
    """Start a real-time sandbox for this server's life; returns its transport, key and base URL."""
    from outboundcalls.sandbox import SANDBOX_API_KEY, SANDBOX_BASE_URL, RealClock, Sandbox

    sandbox = Sandbox(clock=RealClock())
    await stack.enter_async_context(sandbox.running())
    return sandbox.transport(), SecretStr(SANDBOX_API_KEY), SANDBOX_BASE_URL
