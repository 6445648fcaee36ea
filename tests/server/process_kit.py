"""Server processes sharing one state directory and one sandbox on a loopback socket, and what they leave behind.

The sandbox runs in the test's process, served by uvicorn on a free loopback port, so its request
log (`sandbox.requests`) counts every POST /calls any server process sent. Servers are the
installed console script over stdio, as a host spawns them; a spawn costs about half a second, so
the servers of a test are spawned together and reused across its rounds. What they wrote is read
from the ledger file read-only, as an operator would.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import Client, StdioServerParameters

from outboundcalls.sandbox import SANDBOX_API_KEY, Sandbox
from outboundcalls.sandbox.clock import Clock
from outboundcalls.sandbox.standalone import create_server, serve
from outboundcalls_mcp.server.ledger_sqlite import LEDGER_FILENAME
from tests.harness import ElicitAction, console_script
from tests.places import LedgerPlace
from tests.server.dispatch_kit import text_of

# Generous bounds for anything that waits on another process: never reached unless something hangs.
PROCESS_SECONDS = 60
YES = {"confirm": True}
# San Francisco numbers, a range no other test dials.
SF_NUMBERS = tuple(f"+1415555{n:04d}" for n in range(200, 260))


@dataclass
class SharedSandbox:
    """The sandbox every server process dials through, and its base URL on the loopback socket."""

    sandbox: Sandbox
    url: str

    @property
    def agent_id(self) -> str:
        """The sandbox's deployed agent."""
        return self.sandbox.seed_ids.deployed_agent_id

    def posts(self) -> int:
        """How many POST /calls reached the sandbox, from any process."""
        return self.sandbox.count("POST", "/calls")

    def posted_numbers(self) -> list[str]:
        """The toNumber of every POST /calls that reached the sandbox, in arrival order."""
        posts = [r for r in self.sandbox.requests if r.method == "POST" and r.path.endswith("/calls")]
        return [str(r.body["toNumber"]) for r in posts]

    def created_call_ids(self) -> set[str]:
        """The ids of the calls POST /calls created (not the seeded history)."""
        return {call.id for call in self.sandbox.dialed_calls()}

    def env(self, home: Path, state_dir: Path | LedgerPlace, **settings: str | int | float) -> dict[str, str]:
        """A server process's whole environment: this sandbox, this state directory, calling at any hour.

        The stdio client passes the child almost nothing of ours, so everything is spelled out.
        Keyword settings become OUTBOUNDCALLS_<NAME> (confirm="token" -> OUTBOUNDCALLS_CONFIRM=token).
        """
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "OUTBOUNDCALLS_API_KEY": SANDBOX_API_KEY,
            "OUTBOUNDCALLS_BASE_URL": self.url,
            # The processes run on the wall clock: the hours must not depend on when the test runs.
            "OUTBOUNDCALLS_CALLING_HOURS": "00:00-24:00",
        }
        env |= state_dir.env() if isinstance(state_dir, LedgerPlace) else {"OUTBOUNDCALLS_STATE_DIR": str(state_dir)}
        return env | {f"OUTBOUNDCALLS_{name.upper()}": str(value) for name, value in settings.items()}


@asynccontextmanager
async def sandbox_on_a_socket(*, clock: Clock | None = None) -> AsyncIterator[SharedSandbox]:
    """The sandbox served on a free loopback port for as long as the block runs (on its own clock unless given one)."""
    sandbox = Sandbox(credits=1_000_000.0) if clock is None else Sandbox(credits=1_000_000.0, clock=clock)
    http = create_server(sandbox, host="127.0.0.1", port=0, log_level="critical", shutdown_grace_seconds=0)
    ready: list[str] = []
    bound, stopped = anyio.Event(), anyio.Event()

    def on_ready(url: str) -> None:
        ready.append(url)
        bound.set()

    async def serve_until_told() -> None:
        try:
            await serve(sandbox, http, on_ready=on_ready)
        finally:
            stopped.set()

    async with anyio.create_task_group() as group:
        group.start_soon(serve_until_told)
        with anyio.fail_after(PROCESS_SECONDS):
            await bound.wait()
        try:
            yield SharedSandbox(sandbox, ready[0])
        finally:
            # A graceful stop even when the block failed: cancelled, uvicorn would leave its sockets open.
            http.should_exit = True
            with anyio.CancelScope(shield=True), anyio.move_on_after(PROCESS_SECONDS):
                await stopped.wait()


def console_server(env: dict[str, str], cwd: Path) -> StdioServerParameters:
    """The installed console script, `outboundcalls-mcp` with no arguments, as a host starts it."""
    return StdioServerParameters(command=console_script(), args=[], cwd=str(cwd), env=env)


@asynccontextmanager
async def running(
    *servers: StdioServerParameters, mode: str = "legacy", **client_kwargs: Any
) -> AsyncIterator[list[Client]]:
    """Spawn every server at once and hold an MCP client session on each until the block ends.

    mode "legacy" is the handshake era; "auto" negotiates 2026-07-28.
    """
    clients: list[Client | None] = [None] * len(servers)
    opened = [anyio.Event() for _ in servers]
    done = anyio.Event()

    async def hold(index: int) -> None:
        async with Client(servers[index], mode=mode, **client_kwargs) as client:
            clients[index] = client
            opened[index].set()
            await done.wait()

    async with anyio.create_task_group() as group:
        for index in range(len(servers)):
            group.start_soon(hold, index)
        with anyio.fail_after(PROCESS_SECONDS):
            for event in opened:
                await event.wait()
        try:
            yield [client for client in clients if client is not None]
        finally:
            done.set()


async def start_alone(env: dict[str, str], cwd: Path) -> tuple[int | None, str]:
    """Start the console script as a host would (stdin open, nothing sent yet) and wait for it to exit.

    Its exit status and stderr; the status is None if it was still serving after PROCESS_SECONDS.
    """
    async with await anyio.open_process([console_script()], env=env, cwd=cwd) as process:
        assert process.stderr is not None
        with anyio.move_on_after(PROCESS_SECONDS):
            stderr = b"".join([chunk async for chunk in process.stderr])
            return await process.wait(), stderr.decode()
        process.kill()
    return None, f"still serving after {PROCESS_SECONDS} s"


def status_of(result: types.CallToolResult) -> str:
    """A dispatch tool's status, or "error" for a tool error."""
    if result.is_error or result.structured_content is None:
        return "error"
    return str(result.structured_content["status"])


def data_of(result: types.CallToolResult) -> dict[str, Any]:
    """The structured result of a call that must have succeeded."""
    assert not result.is_error and result.structured_content is not None, text_of(result)
    return dict(result.structured_content)


async def ask(client: Client, tool: str, args: dict[str, Any]) -> types.InputRequiredResult | types.CallToolResult:
    """The first round of a 2026-07-28 call: the question as an input request, or the result if nothing is asked."""
    return await client.session.call_tool(tool, args, allow_input_required=True)


async def answer(
    client: Client,
    tool: str,
    args: dict[str, Any],
    asked: types.InputRequiredResult,
    *,
    content: Any = YES,
    action: ElicitAction = "accept",
) -> types.CallToolResult:
    """The round that carries the person's answer to `asked`; sending it again is a replay of that round."""
    assert asked.input_requests is not None
    (key,) = asked.input_requests
    responses: types.InputResponses = {key: types.ElicitResult(action=action, content=content)}
    final = await client.session.call_tool(
        tool, args, input_responses=responses, request_state=asked.request_state, allow_input_required=True
    )
    assert isinstance(final, types.CallToolResult), final
    return final


@dataclass(frozen=True)
class LedgerFile:
    """Every consent, intent and audit entry in a state directory's ledger, as rows."""

    consents: list[dict[str, Any]]
    intents: list[dict[str, Any]]
    audit: list[dict[str, Any]]

    @classmethod
    def read(cls, state_dir: Path | LedgerPlace) -> LedgerFile:
        """Read the ledger read-only, as an operator would: the SQLite file, or the PostgreSQL schema."""
        if isinstance(state_dir, LedgerPlace):
            if state_dir.backend == "postgres":
                return cls._read_postgres(state_dir)
            state_dir = state_dir.state_dir
        with closing(sqlite3.connect(f"file:{state_dir / LEDGER_FILENAME}?mode=ro", uri=True)) as conn:
            conn.row_factory = sqlite3.Row
            consents = [dict(row) for row in conn.execute("SELECT * FROM consents ORDER BY rowid")]
            intents = [dict(row) for row in conn.execute("SELECT * FROM intents ORDER BY rowid")]
            audit = [dict(row) for row in conn.execute("SELECT * FROM audit ORDER BY id")]
        for consent in consents:
            consent["destinations"] = json.loads(consent["destinations"])
        for entry in audit:
            entry["detail"] = json.loads(entry["detail"])
        return cls(consents, intents, audit)

    @classmethod
    def _read_postgres(cls, place: LedgerPlace) -> LedgerFile:
        import psycopg
        from psycopg.rows import dict_row

        assert place.database_url is not None
        options = f"-c search_path={place.schema} -c default_transaction_read_only=on"
        with psycopg.connect(place.database_url, options=options, row_factory=dict_row) as conn:
            consents = conn.execute("SELECT * FROM consents ORDER BY rowid").fetchall()
            intents = conn.execute("SELECT * FROM intents ORDER BY rowid").fetchall()
            audit = conn.execute("SELECT * FROM audit ORDER BY id").fetchall()
        return cls(consents, intents, audit)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The audit entries of one kind, in order."""
        return [entry for entry in self.audit if entry["kind"] == kind]


def call_ids_reported(results: Sequence[types.CallToolResult]) -> set[str]:
    """Every call id a dispatch_call or dispatch_calls result reported as dialed."""
    found: set[str] = set()
    for result in results:
        if status_of(result) == "error":
            continue
        content = result.structured_content
        assert content is not None
        if content["status"] == "dialed" and content.get("call"):
            found.add(content["call"]["id"])
        for destination in content.get("destinations") or []:
            if destination["status"] == "dialed":
                found.add(destination["call_id"])
    return found
