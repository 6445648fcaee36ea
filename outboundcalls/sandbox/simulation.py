"""The Sandbox: one simulated OutboundCalls account behind an ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import httpx2
from starlette.applications import Starlette

from ..calls import CallSummary
from .app import build_app
from .clock import Clock, ManualClock, RealClock
from .faults import Faults
from .gateway import API_PREFIX, RecordedRequest, api_path
from .lifecycle import CallScript, LiveOutcome
from .records import CallRecord
from .seed import build_state
from .store import AccountStore
from .transport import SandboxTransport
from .webhooks import WebhookDelivery, WebhookSender

__all__ = ["DEFAULT_CREDITS", "SANDBOX_API_KEY", "SANDBOX_BASE_URL", "Sandbox"]

# Shaped like a vendor key but with a test prefix, so it can never be mistaken for a live one.
SANDBOX_API_KEY: Final = "oc_test_sandbox_not_a_live_key_0000"
SANDBOX_BASE_URL: Final = "http://sandbox.test" + API_PREFIX
DEFAULT_CREDITS: Final = 1000.0


class Sandbox:
    """A stateful, deterministic fake of the OutboundCalls API (see the package docstring)."""

    def __init__(
        self,
        *,
        api_key: str = SANDBOX_API_KEY,
        clock: Clock | None = None,
        seed: int = 0,
        credits: float = DEFAULT_CREDITS,
        webhook_url: str | None = None,
        webhook_transport: httpx2.AsyncBaseTransport | None = None,
        webhook_wrapped: bool = False,
        store: AccountStore | None = None,
    ) -> None:
        self.api_key = api_key
        self._store = store
        if store is not None:  # the account, its seed and its clock are the file's (see persistent())
            self.clock: Clock = store.clock
            self.seed = store.state.seed
            self.state, self.seed_ids = store.state, store.seed_ids
        else:
            self.clock = clock if clock is not None else ManualClock()
            self.seed = seed
            self.state, self.seed_ids = build_state(seed=seed, now=self.clock.now(), credits=credits)
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.webhooks = WebhookSender(webhook_url, transport=webhook_transport, wrapped=webhook_wrapped)
        self.base_url = SANDBOX_BASE_URL
        self._app: Starlette | None = None
        self._request_counter = 0

    @classmethod
    def persistent(
        cls,
        path: Path,
        *,
        clock: Clock | None = None,
        seed: int = 0,
        credits: float = DEFAULT_CREDITS,
        api_key: str = SANDBOX_API_KEY,
        webhook_url: str | None = None,
        webhook_transport: httpx2.AsyncBaseTransport | None = None,
        webhook_wrapped: bool = False,
    ) -> Sandbox:
        """The account in the SQLite file at `path` (made on first use), shared by every process that opens it."""
        # `clock` (the wall clock unless given) is the base each process adds the account's shared offset
        # to; `seed` and `credits` shape a new account only. Opening waits while another process writes.
        store = AccountStore(path, clock=clock if clock is not None else RealClock(), seed=seed, credits=credits)
        return cls(
            api_key=api_key,
            webhook_url=webhook_url,
            webhook_transport=webhook_transport,
            webhook_wrapped=webhook_wrapped,
            store=store,
        )

    @property
    def path(self) -> Path | None:
        """The file a persistent account lives in; None in memory."""
        return None if self._store is None else self._store.path

    def close(self) -> None:
        """Close a persistent account's file (the account stays in it); nothing to do in memory."""
        if self._store is not None:
            self._store.close()

    def __repr__(self) -> str:
        where = "" if self._store is None else f", path={str(self._store.path)!r}"
        return f"Sandbox(seed={self.seed}, credits={self.credits}, clock={self.clock!r}{where})"

    @property
    def app(self) -> Starlette:
        """The ASGI app serving the API under /api/v1 (built on first use)."""
        if self._app is None:
            self._app = build_app(self)
        return self._app

    def transport(self) -> SandboxTransport:
        """An in-process httpx2 transport into the app that plays hang/drop/timeout faults at once."""
        return SandboxTransport(self.app, self.faults)

    def http_client(self, **kwargs: Any) -> httpx2.AsyncClient:
        """A raw httpx2 client on `transport()`, with the base URL and the key already set."""
        kwargs.setdefault("headers", {"Authorization": f"Bearer {self.api_key}"})
        return httpx2.AsyncClient(transport=self.transport(), base_url=self.base_url, **kwargs)

    @property
    def credits(self) -> float:
        """The account's current balance."""
        return self.state.account.credits

    @credits.setter
    def credits(self, value: float) -> None:
        if self._store is not None:
            raise TypeError("a persistent account's balance changes only by its calls, or by a reset")
        self.state.account.credits = float(value)

    @property
    def dispatched(self) -> int:
        """How many calls POST /calls has created so far."""
        return self.state.dispatched

    def call_json(self, call_id: str) -> dict[str, Any]:
        """Any call's full JSON as GET /calls/{id} would show it (foreign ones included)."""
        return self.state.calls[call_id].detail_json()

    def count(self, method: str, path: str) -> int:
        """How many requests with this method reached this path ("/calls" or "/api/v1/calls")."""
        wanted = api_path(path)
        return sum(1 for r in self.requests if r.method == method.upper() and r.path == wanted)

    def next_request_id(self) -> str:
        """A fresh request id for the x-request-id header."""
        self._request_counter += 1
        return f"req_sandbox_{self._request_counter:06d}"

    def script_next_call(
        self,
        *,
        outcome: LiveOutcome = "completed",
        duration_seconds: float | None = None,
        ring_seconds: float | None = None,
    ) -> None:
        """Decide how the next dispatched call goes; several scripts apply to calls in order."""
        self.state.script_next_call(CallScript(outcome, duration_seconds, ring_seconds))

    def dialed_calls(self) -> list[CallSummary]:
        """The calls POST /calls created (not the seeded history), newest first, as of the last request or tick."""
        return [CallSummary.model_validate(call.summary_json()) for call in self.state.dialed_calls()]

    def sync(self) -> None:
        """Bring calls up to the clock's time, charging and queuing webhooks for those that ended (in memory only)."""
        if self._store is not None:
            raise TypeError("a persistent account is brought up to date by tick(), in a transaction")
        for call in self.state.advance(self.clock.now()):
            self.webhooks.enqueue(call.id, call.detail_json())

    @asynccontextmanager
    async def serving(self, *, read_only: bool) -> AsyncIterator[None]:
        """The account for one request: brought up to the clock first; a persistent one written back after."""
        if self._store is None:
            self.sync()
            yield
            return
        ended: list[CallRecord] = []
        async with self._store.transaction(read_only=read_only) as writable:
            if writable:
                ended = self.state.advance(self.clock.now())
            yield
        # Queued only once committed: a rolled-back end was never an end.
        for call in ended:
            self.webhooks.enqueue(call.id, call.detail_json())

    async def tick(self) -> list[WebhookDelivery]:
        """Bring the account up to the clock and deliver any queued webhooks."""
        async with self.serving(read_only=True):
            pass
        return await self.webhooks.flush()

    async def advance(self, seconds: float) -> list[WebhookDelivery]:
        """Move a ManualClock (or a persistent account's shared time) forward, then tick."""
        if self._store is not None:
            await self._store.advance_clock(seconds)
        elif isinstance(self.clock, ManualClock):
            self.clock.advance(seconds)
        else:
            raise TypeError("advance() needs a ManualClock; a real clock moves by itself")
        return await self.tick()

    async def reset(self) -> None:
        """Start a persistent account afresh: the seed data, the starting balance, no call dialed."""
        if self._store is None:
            raise TypeError("reset() is for a persistent account; make a new Sandbox() instead")
        await self._store.reset()  # the seed is kept, so seed_ids stay as they were

    @asynccontextmanager
    async def running(self, *, interval: float = 0.5) -> AsyncIterator[Sandbox]:
        """Tick every `interval` seconds in the background, so calls end and webhooks fire unasked."""
        async with anyio.create_task_group() as group:

            async def ticker() -> None:
                while True:
                    await self.tick()
                    await anyio.sleep(interval)

            group.start_soon(ticker)
            try:
                yield self
            finally:
                group.cancel_scope.cancel()
