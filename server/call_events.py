"""Call ends: stored when a webhook brings them, waited on by the wait tools, published to subscribers.

A call ends once. Its end is learned either from the vendor's post-call webhook (stored in the
state directory, so a restarted process or another one sharing the directory knows it too) or by
a tool observing a terminal status. Either way every waiter on that call wakes at once, and every
client subscribed to the call's resources is told, on both protocol eras.

With OUTBOUNDCALLS_DATABASE_URL the store is PostgreSQL (server.call_ends_postgres): every end
learned by any replica, webhook or tool, is stored and announced there, and each replica wakes
its own waiters and subscribers when it hears of one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio
import anyio.to_thread
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus

from outboundcalls.calls import CallDetail
from outboundcalls.errors import OutboundCallsError
from outboundcalls_mcp.server.sdk_patches import connection_key
from outboundcalls_mcp.tools.uris import call_uri, transcript_uri

if TYPE_CHECKING:
    from outboundcalls_mcp.server.settings import Settings

__all__ = ["CALL_ENDS_FILENAME", "CallEndStore", "CallEvents", "SharedCallEnds", "call_end_store"]

log = logging.getLogger("outboundcalls.call_events")

CALL_ENDS_FILENAME: Final = "call_ends.sqlite3"
# Ended calls kept in memory (without transcripts) so waiters need no request; older ones are in the store.
MEMORY_LIMIT: Final = 512
# A handshake-era subscriber that never reads must not stall the publisher.
NOTIFY_TIMEOUT_SECONDS: Final = 2.0
MAX_LEGACY_SUBSCRIPTIONS: Final = 10_000

_SCHEMA = """CREATE TABLE IF NOT EXISTS call_ends (
    call_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    event TEXT,
    received_at TEXT NOT NULL,
    call_json TEXT NOT NULL
)"""


class CallEndStore:
    """Call ends received by webhook, one row per call in a SQLite file in the state directory."""

    def __init__(self, directory: Callable[[], Path]) -> None:
        # Resolved on first use: building the server must not touch the disk (a host may only list tools).
        self._directory = directory
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """The database file."""
        if self._path is None:
            self._path = self._directory() / CALL_ENDS_FILENAME
        return self._path

    async def record(self, call: CallDetail, *, event: str | None, received_at: datetime) -> None:
        """Store (or replace) the end of one call as the webhook carried it."""
        row = (call.id, call.status, event, received_at.isoformat(), call.model_dump_json(by_alias=True))
        await anyio.to_thread.run_sync(self._write, row)

    async def get(self, call_id: str) -> CallDetail | None:
        """The stored end of a call, if a webhook brought one."""
        if not self.path.exists():
            return None
        try:
            text = await anyio.to_thread.run_sync(self._read, call_id)
        except (OSError, sqlite3.Error) as exc:
            # The store only saves a request; an unreadable one must not break a wait.
            log.warning("could not read stored call ends: %s", type(exc).__name__)
            return None
        return None if text is None else CallDetail.model_validate_json(text)

    def _connect(self) -> sqlite3.Connection:
        fresh = not self.path.exists()
        conn = sqlite3.connect(self.path, timeout=5.0)
        if fresh:
            # Transcripts are personal data: readable by the owner only.
            os.chmod(self.path, 0o600)
        conn.execute(_SCHEMA)
        return conn

    def _write(self, row: tuple[str, str, str | None, str, str]) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute("INSERT OR REPLACE INTO call_ends VALUES (?, ?, ?, ?, ?)", row)

    def _read(self, call_id: str) -> str | None:
        with closing(self._connect()) as conn:
            found = conn.execute("SELECT call_json FROM call_ends WHERE call_id = ?", (call_id,)).fetchone()
        return None if found is None else str(found[0])


class SharedCallEnds(Protocol):
    """A call-end store shared by replicas, which tells each of them of every end recorded in it."""

    async def open(self, stack: AsyncExitStack) -> None:
        """Connect; closed with the stack."""
        ...

    async def record(self, call: CallDetail, *, event: str | None, received_at: datetime) -> None:
        """Store the end of one call and announce it to every replica."""
        ...

    async def get(self, call_id: str) -> CallDetail | None:
        """The stored end of a call, if one is known."""
        ...

    async def listen(
        self, on_end: Callable[[str], Awaitable[None]], on_reconnect: Callable[[], Awaitable[None]]
    ) -> None:
        """Hear every replica's call ends until cancelled."""
        ...


def call_end_store(settings: Settings) -> CallEndStore | SharedCallEnds:
    """Where call ends are kept: PostgreSQL when the ledger is there, else a file in the state directory."""
    if settings.database_url is None:
        from outboundcalls_mcp.server.state_dir import resolve_state_dir

        return CallEndStore(lambda: resolve_state_dir(settings))
    from outboundcalls_mcp.server.call_ends_postgres import PostgresCallEnds
    from outboundcalls_mcp.server.ledger_place import describe_ledger, ledger_schema

    return PostgresCallEnds(
        settings.database_url.get_secret_value(), ledger_schema(settings), describe_ledger(settings)
    )


class CallEvents:
    """Implements tools.contracts.CallEndWaiter; also keeps the handshake era's resource subscribers."""

    def __init__(
        self,
        *,
        store: CallEndStore | SharedCallEnds,
        bus: SubscriptionBus,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    ) -> None:
        self.store = store
        self.bus = bus
        self._sleep = sleep
        self._ended: OrderedDict[str, CallDetail] = OrderedDict()
        self._waiters: dict[str, set[anyio.Event]] = {}
        self._subscribers: dict[str, dict[int, Any]] = {}
        self._listeners: list[Callable[[CallDetail], Awaitable[Any]]] = []
        self._lookup: Callable[[str], Awaitable[CallDetail]] | None = None

    async def open(self, stack: AsyncExitStack) -> None:
        """For a shared store: connect, and hear the other replicas' call ends until the stack closes."""
        if isinstance(self.store, CallEndStore):
            return
        shared = self.store
        await shared.open(stack)
        tasks = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tasks.cancel_scope.cancel)
        tasks.start_soon(shared.listen, self._heard, self._catch_up)

    async def _heard(self, call_id: str) -> None:
        """Another replica (or this one) announced a call's end: wake the waiters and subscribers here."""
        if call_id in self._ended:
            return
        call = await self.store.get(call_id)
        if call is not None:
            await self._ended_here(call)

    async def _catch_up(self) -> None:
        """After the notices were cut off: read again each call still waited on."""
        for call_id in list(self._waiters):
            await self._heard(call_id)

    def confirm_with(self, lookup: Callable[[str], Awaitable[CallDetail]]) -> Callable[[], None]:
        """Read each call a webhook names from the API (`lookup`) before believing it ended; returns its remover."""
        self._lookup = lookup

        def remove() -> None:
            self._lookup = None

        return remove

    async def hinted(self, call: CallDetail, *, event: str | None, at: datetime) -> CallDetail | None:
        """A webhook says this call ended: the API's record of it if the API agrees it ended, otherwise None.

        The webhook's secret proves who may knock, not what is true: its body is never stored,
        announced or audited. Only the call as the API returns it is.
        """
        if self._lookup is None:
            log.warning("a post-call webhook arrived with no API to confirm it against; it changed nothing")
            return None
        known = self._ended.get(call.id)
        if known is not None:
            # Already confirmed with the API: a vendor's retry of the webhook costs no second lookup.
            return known
        try:
            actual = await self._lookup(call.id)
        except OutboundCallsError as exc:
            log.warning(
                "could not confirm a post-call webhook with the API (%s); it changed nothing", type(exc).__name__
            )
            return None
        if not actual.is_terminal or actual.status != call.status or actual.credits_charged != call.credits_charged:
            # Its contents stay out of the log: only that it disagreed, and what the API says.
            log.warning("a post-call webhook disagreed with the API, which says the call is %s", actual.status)
        if not actual.is_terminal:
            return None
        await self.received(actual, event=event, at=at)
        return actual

    def add_listener(self, listener: Callable[[CallDetail], Awaitable[Any]]) -> Callable[[], None]:
        """Call listener with each call the first time it is known to have ended; returns its remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def received(self, call: CallDetail, *, event: str | None, at: datetime) -> None:
        """A webhook brought this call's end: store it (announcing it to the other replicas), then wake and notify."""
        await self._store(call, event=event, at=at)
        await self._ended_here(call)

    async def call_ended(self, call: CallDetail) -> None:
        """A call is known to have ended: wake its waiters, tell subscribers (every replica's), the first time only."""
        if not call.is_terminal:
            return
        if call.id not in self._ended and not isinstance(self.store, CallEndStore):
            # Replicas hear of it through the shared store; a file store is read by later waiters instead.
            await self._store(call, event=None, at=datetime.now(UTC))
        await self._ended_here(call)

    async def _store(self, call: CallDetail, *, event: str | None, at: datetime) -> None:
        try:
            await self.store.record(call, event=event, received_at=at)
        except (OSError, sqlite3.Error) as exc:
            # Waiters and subscribers here still hear of it; only a later process would miss it.
            log.warning("could not store the end of call %s: %s", call.id, type(exc).__name__)

    async def _ended_here(self, call: CallDetail) -> None:
        """Wake this process's waiters and notify its subscribers, the first time this process hears of the end."""
        if not call.is_terminal:
            return
        first = call.id not in self._ended
        self._remember(call)
        for event in self._waiters.get(call.id, ()):
            event.set()
        if first:
            await self._publish(call.id)
            for listener in list(self._listeners):
                try:
                    await listener(call)
                except Exception:  # a listener (the audit of charges) must not fail the call's end
                    log.exception("a call-end listener failed for %s", call.id)

    async def wait(self, call_ids: Sequence[str], timeout: float) -> dict[str, CallDetail]:
        """Wait until one of these calls ends or `timeout` passes; the ended ones known by then."""
        known = await self._known(call_ids)
        if known:
            return known
        woken = anyio.Event()
        for call_id in call_ids:
            self._waiters.setdefault(call_id, set()).add(woken)
        try:
            async with anyio.create_task_group() as group:

                async def nap() -> None:
                    await self._sleep(timeout)
                    group.cancel_scope.cancel()

                group.start_soon(nap)
                await woken.wait()
                group.cancel_scope.cancel()
        finally:
            for call_id in call_ids:
                waiting = self._waiters.get(call_id)
                if waiting is not None:
                    waiting.discard(woken)
                    if not waiting:
                        del self._waiters[call_id]
        return {c: self._ended[c] for c in call_ids if c in self._ended}

    def subscribe(self, uri: str, session: Any) -> None:
        """Remember a handshake-era session that asked to hear when this resource changes."""
        if sum(len(s) for s in self._subscribers.values()) >= MAX_LEGACY_SUBSCRIPTIONS:
            raise OverflowError("too many resource subscriptions")
        self._subscribers.setdefault(uri, {})[connection_key(session)] = session

    def unsubscribe(self, uri: str, session: Any) -> None:
        """Forget a handshake-era subscription."""
        sessions = self._subscribers.get(uri)
        if sessions is not None:
            sessions.pop(connection_key(session), None)
            if not sessions:
                del self._subscribers[uri]

    async def _known(self, call_ids: Sequence[str]) -> dict[str, CallDetail]:
        known = {c: self._ended[c] for c in call_ids if c in self._ended}
        if known:
            return known
        for call_id in call_ids:
            try:
                stored = await self.store.get(call_id)
            except OSError as exc:
                log.warning("could not read stored call ends: %s", type(exc).__name__)
                continue
            if stored is not None and stored.is_terminal:
                self._remember(stored)
                known[call_id] = self._ended[call_id]
        return known

    def _remember(self, call: CallDetail) -> None:
        self._ended[call.id] = call.model_copy(update={"transcript": []})
        self._ended.move_to_end(call.id)
        while len(self._ended) > MEMORY_LIMIT:
            self._ended.popitem(last=False)

    async def _publish(self, call_id: str) -> None:
        for uri in (call_uri(call_id), transcript_uri(call_id)):
            await self.bus.publish(ResourceUpdated(uri=uri))
            # A call ends once: its subscribers have nothing more to hear, so they are dropped.
            for session in self._subscribers.pop(uri, {}).values():
                with anyio.move_on_after(NOTIFY_TIMEOUT_SECONDS):
                    try:
                        await session.send_resource_updated(uri)
                    except Exception as exc:
                        log.info("could not notify a subscriber of %s: %s", uri, type(exc).__name__)
