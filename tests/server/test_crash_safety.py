"""SIGKILL the server at chosen points of a stream of confirmed dispatches, restart it, and audit the ledger.

The server is a real process (tests/server/crash_child.py: build_server over stdio) against the
sandbox served on a loopback socket. Kill points: with a preview's token unconfirmed; between the
claim and the outcome while the vendor holds the POST it already acted on; the same while the
POST was never acted on; and right after an outcome was recorded. Afterwards every intent has an
outcome (or is unknown and reconciled), each call the vendor created belongs to exactly one
intent, and no number was dialed twice, however often its token is confirmed again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from outboundcalls.client import OutboundCallsClient
from outboundcalls.sandbox import SANDBOX_API_KEY, SANDBOX_BASE_URL, Fault, RecordedRequest, Sandbox
from outboundcalls.sandbox.standalone import base_url, create_server, serve
from outboundcalls_mcp.server.ledger_sqlite import LEDGER_FILENAME

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
# Past the stale-claim window (10 minutes): a restart this much "later" abandons a dead process's claims.
LATER = timedelta(minutes=11)
NUMBERS = [f"+1617555015{i}" for i in range(10)]
PERMISSIVE = {
    "OUTBOUNDCALLS_CONFIRM": "token",
    "OUTBOUNDCALLS_CALLING_HOURS": "00:00-24:00",
    "OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES": "0",
    "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": "1000",
    "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY": "1000000",
}
PHASE_SECONDS = 60


class OffsetClock:
    """Real time plus an offset the test moves forward, shared by the sandbox and each server process."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


class Server:
    """One server process spoken to in raw JSON-RPC over its stdio, so the test holds its pid."""

    def __init__(self, process: Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self._out = BufferedByteReceiveStream(process.stdout)
        self._next_id = 0

    async def send(self, method: str, params: dict[str, Any]) -> int:
        """Send a request without waiting for its answer; its id."""
        self._next_id += 1
        await self._write({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    async def answer(self, request_id: int) -> dict[str, Any]:
        """The response to one request (notifications in between are skipped)."""
        while True:
            line = await self._out.receive_until(b"\n", 10_000_000)
            message = json.loads(line)
            if message.get("id") == request_id:
                assert "result" in message, message
                return dict(message["result"])

    async def initialize(self) -> None:
        """The handshake-era opening a host sends."""
        params = {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "crash-test", "version": "1"},
        }
        await self.answer(await self.send("initialize", params))
        await self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def dispatch(self, args: dict[str, Any]) -> dict[str, Any]:
        """dispatch_call's structured result (or its error text)."""
        result = await self.answer(await self.send("tools/call", {"name": "dispatch_call", "arguments": args}))
        if result.get("isError"):
            return {"status": "error", "message": result["content"][0]["text"]}
        return dict(result["structuredContent"])

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is flushed."""
        self.process.kill()
        await self.process.wait()

    async def _write(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send((json.dumps(message) + "\n").encode())


@dataclass
class Rig:
    """The sandbox on a socket, its clock, and how to start server processes against it."""

    sandbox: Sandbox
    clock: OffsetClock
    url: str
    state_dir: Path
    stderr: Path
    agent_id: str

    @asynccontextmanager
    async def server(self) -> AsyncIterator[Server]:
        """A fresh server process, its clock as far ahead as the sandbox's; killed if still running at the end."""
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), **PERMISSIVE}
        env |= {
            "OUTBOUNDCALLS_API_KEY": SANDBOX_API_KEY,
            "OUTBOUNDCALLS_BASE_URL": self.url,
            "OUTBOUNDCALLS_STATE_DIR": str(self.state_dir),
        }
        command = [sys.executable, "-m", "tests.server.crash_child", str(self.clock.offset.total_seconds())]
        with self.stderr.open("ab") as errors:
            process = await anyio.open_process(command, cwd=ROOT, env=env, stderr=errors)
        server = Server(process)
        try:
            with anyio.fail_after(PHASE_SECONDS):
                await server.initialize()
                yield server
        finally:
            if process.returncode is None:
                await server.kill()

    def args(self, index: int, token: str | None = None) -> dict[str, Any]:
        """dispatch_call arguments for the index-th destination."""
        args = {"agent_id": self.agent_id, "to_number": NUMBERS[index]}
        return args | ({"confirmation_token": token} if token else {})

    async def confirm_into_a_hang(
        self, server: Server, index: int, token: str, *, after_processing: bool
    ) -> RecordedRequest:
        """Confirm, and return once the vendor holds the POST unanswered (the sandbox logs it before holding it)."""
        seen = len(self.sandbox.requests)
        self.sandbox.faults.add(Fault(kind="hang", method="POST", path="/calls", after_processing=after_processing))
        await server.send("tools/call", {"name": "dispatch_call", "arguments": self.args(index, token)})
        while True:
            held = [r for r in self.sandbox.requests[seen:] if r.method == "POST" and r.fault == "hang"]
            if held:
                return held[0]
            await anyio.sleep(0.01)  # polling another process's progress: there is nothing to await


async def preview(server: Server, rig: Rig, index: int) -> str:
    """The confirmation token of a fresh preview."""
    result = await server.dispatch(rig.args(index))
    assert result["status"] == "needs_confirmation", result
    return str(result["preview"]["confirmation_token"])


async def dispatch(server: Server, rig: Rig, index: int, tokens: dict[int, str]) -> dict[str, Any]:
    """Preview, then confirm: one full dispatch."""
    tokens[index] = await preview(server, rig, index)
    return await server.dispatch(rig.args(index, tokens[index]))


def reconcile_audits(state_dir: Path, intent_id: str) -> list[dict[str, Any]]:
    """The audit trail's reconciliation entries for one intent: what each look-up found."""
    with closing(sqlite3.connect(f"file:{state_dir / LEDGER_FILENAME}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT detail FROM audit WHERE kind = 'reconcile' AND intent_id = ?", (intent_id,)
        ).fetchall()
    return [json.loads(row[0]) for row in rows]


def intents(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Every intent in the ledger by destination, read from the file as an operator would."""
    with closing(sqlite3.connect(f"file:{state_dir / LEDGER_FILENAME}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM intents").fetchall()
    return {row["to_number"]: dict(row) for row in rows}


@asynccontextmanager
async def sandbox_on_a_socket(tmp_path: Path) -> AsyncIterator[Rig]:
    """The sandbox served by uvicorn on a free loopback port, ticking in real (offset) time."""
    clock = OffsetClock()
    sandbox = Sandbox(clock=clock, credits=1_000_000.0)
    uvicorn_server = create_server(sandbox, port=0, log_level="warning")
    async with anyio.create_task_group() as group:
        group.start_soon(serve, sandbox, uvicorn_server)
        with anyio.fail_after(PHASE_SECONDS):
            while not uvicorn_server.started:
                await anyio.sleep(0.01)
        yield Rig(
            sandbox,
            clock,
            base_url(uvicorn_server),
            tmp_path / "state",
            tmp_path / "server-stderr.log",
            sandbox.seed_ids.deployed_agent_id,
        )
        uvicorn_server.should_exit = True


async def test_sigkill_at_every_stage_of_a_dispatch_leaves_a_consistent_ledger_and_no_second_dial(
    tmp_path: Path,
) -> None:
    """Four kill points across five server processes; the ledger and the vendor agree, and nothing is dialed twice."""
    started = datetime.now(UTC)
    tokens: dict[int, str] = {}
    async with sandbox_on_a_socket(tmp_path) as rig:
        # A: two dispatches, then killed with a preview's token unconfirmed (a pending intent).
        async with rig.server() as server:
            for index in (0, 1):
                assert (await dispatch(server, rig, index, tokens))["status"] == "dialed"
            tokens[2] = await preview(server, rig, 2)
            await server.kill()
        # B: the pending token survived and dials once; then killed between claim and outcome,
        # while the vendor holds a POST it has acted on (the call exists).
        async with rig.server() as server:
            assert (await server.dispatch(rig.args(2, tokens[2])))["status"] == "dialed"
            assert (await dispatch(server, rig, 3, tokens))["status"] == "dialed"
            tokens[4] = await preview(server, rig, 4)
            assert (await rig.confirm_into_a_hang(server, 4, tokens[4], after_processing=True)).processed
            await server.kill()
        assert intents(rig.state_dir)[NUMBERS[4]]["state"] == "dialing"
        # C, later: start-up recovery finds the held call; its token then returns it and dials nothing.
        # Then killed between claim and outcome while the vendor holds a POST it never acted on.
        rig.clock.offset += LATER
        async with rig.server() as server:
            assert intents(rig.state_dir)[NUMBERS[4]]["state"] == "dialed"
            posts = rig.sandbox.count("POST", "/calls")
            again = await server.dispatch(rig.args(4, tokens[4]))
            assert again["status"] == "dialed" and "not dialed again" in again["message"]
            assert rig.sandbox.count("POST", "/calls") == posts
            assert (await dispatch(server, rig, 5, tokens))["status"] == "dialed"
            tokens[6] = await preview(server, rig, 6)
            assert not (await rig.confirm_into_a_hang(server, 6, tokens[6], after_processing=False)).processed
            await server.kill()
        # D, later still: recovery finds no call for it, so it stays unknown (reconciled) and is never redialed.
        # Then killed right after an outcome was recorded.
        rig.clock.offset += LATER
        async with rig.server() as server:
            posts = rig.sandbox.count("POST", "/calls")
            held = await server.dispatch(rig.args(6, tokens[6]))
            assert held["status"] == "outcome_unknown", held
            assert rig.sandbox.count("POST", "/calls") == posts
            assert (await dispatch(server, rig, 7, tokens))["status"] == "dialed"
            await server.kill()
        # E: every token confirmed again dials nothing; a new dispatch still works; a clean exit.
        async with rig.server() as server:
            posts = rig.sandbox.count("POST", "/calls")
            for index, token in sorted(tokens.items()):
                result = await server.dispatch(rig.args(index, token))
                assert result["status"] in ("dialed", "outcome_unknown"), (index, result)
            assert rig.sandbox.count("POST", "/calls") == posts
            assert (await dispatch(server, rig, 8, tokens))["status"] == "dialed"
        async with OutboundCallsClient(
            SANDBOX_API_KEY, base_url=SANDBOX_BASE_URL, transport=rig.sandbox.transport()
        ) as api:
            ours = [c for c in await api.list_calls(limit=200) if c.to_number in NUMBERS]
    created = [c for c in ours if c.created_at is not None and c.created_at >= started - timedelta(seconds=5)]
    ledger = intents(rig.state_dir)

    assert [r["state"] for r in ledger.values() if r["state"] == "dialing"] == []
    assert {n: r["state"] for n, r in ledger.items()} == {
        **{NUMBERS[i]: "dialed" for i in (0, 1, 2, 3, 4, 5, 7, 8)},
        NUMBERS[6]: "unknown",
    }
    assert ledger[NUMBERS[4]]["reconciled_at"] is not None
    assert reconcile_audits(rig.state_dir, ledger[NUMBERS[4]]["intent_id"])[0]["found"] is True
    # Unknown and reconciled: looked up (at start-up and again before the number could be reused), never found.
    lookups = reconcile_audits(rig.state_dir, ledger[NUMBERS[6]]["intent_id"])
    assert lookups and not [entry for entry in lookups if entry["found"]]
    assert ledger[NUMBERS[6]]["call_id"] is None and ledger[NUMBERS[6]]["unknown_reason"]
    # The vendor's calls and the ledger's are the same set, one call per number, one intent per call.
    assert sorted(c.id for c in created) == sorted(r["call_id"] for r in ledger.values() if r["state"] == "dialed")
    assert len({c.to_number for c in created}) == len(created) == 8
    # Every POST that reached the vendor is one intent that was dialed or is held as unknown.
    assert rig.sandbox.count("POST", "/calls") == len(ledger) == 9
