"""Waiting on calls: cancellation stops the server's wait at once, progress per call, the timeout a hard bound."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from outboundcalls.sandbox import Fault, ManualClock, Sandbox
from outboundcalls_mcp.server.app import build_server
from tests.harness import NOON_NEW_YORK, Rig, connected, first_text, make_settings

pytestmark = pytest.mark.anyio


async def _place_call(sandbox: Sandbox, duration: float = 30) -> str:
    sandbox.script_next_call(outcome="completed", duration_seconds=duration, ring_seconds=2)
    async with sandbox.http_client() as http:
        response = await http.post(
            "/calls", json={"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155550134"}
        )
    return str(response.json()["id"])


class HeldSleep:
    """A poll pause that never ends by itself and records whether the server cancelled it."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0

    async def __call__(self, seconds: float) -> None:
        self.started += 1
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise


async def test_cancelling_a_wait_stops_the_servers_wait_at_once_and_it_polls_no_more(tmp_path: Path, mode: str) -> None:
    sandbox = Sandbox(clock=ManualClock(datetime.fromisoformat(NOON_NEW_YORK)))
    held = HeldSleep()
    server = build_server(make_settings(tmp_path), transport=sandbox.transport(), now=sandbox.clock.now, sleep=held)
    call_id = await _place_call(sandbox)
    async with Client(server, mode=mode) as client:
        async with anyio.create_task_group() as group:
            scope = anyio.CancelScope()

            async def wait() -> None:
                with scope:
                    await client.call_tool("wait_for_call", {"call_id": call_id, "timeout_seconds": 600})

            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert held.started == 1 and held.cancelled == 0
            polled = sandbox.count("GET", f"/calls/{call_id}")
            scope.cancel()
        await anyio.wait_all_tasks_blocked()
        assert held.cancelled == 1
        await sandbox.advance(600)
        await anyio.wait_all_tasks_blocked()
        assert sandbox.count("GET", f"/calls/{call_id}") == polled == 1
        after = await client.call_tool("get_call", {"call_id": call_id, "include_transcript": False})
    assert after.structured_content is not None and after.structured_content["status"] == "completed"


async def test_wait_for_calls_reports_each_call_as_it_ends_and_returns_when_all_have(rig: Rig, mode: str) -> None:
    short, middle, long = [await _place_call(rig.sandbox, d) for d in (10, 40, 90)]
    messages: list[str | None] = []
    totals: set[float | None] = set()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message)
        totals.add(total)

    async with connected(rig, mode) as client:
        result = await client.call_tool(
            "wait_for_calls",
            {"call_ids": [long, short, middle, short], "timeout_seconds": 300},
            progress_callback=on_progress,
        )
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["timed_out"] is False
    assert [c["id"] for c in result.structured_content["calls"]] == [long, short, middle]
    assert {c["status"] for c in result.structured_content["calls"]} == {"completed"}
    assert messages == [
        f"{short}: completed (1/3 ended)",
        f"{middle}: completed (2/3 ended)",
        f"{long}: completed (3/3 ended)",
    ]
    assert totals == {3}


async def test_wait_for_calls_times_out_with_each_calls_last_state(rig: Rig, mode: str) -> None:
    ended, live = await _place_call(rig.sandbox, 5), await _place_call(rig.sandbox, 300)
    async with connected(rig, mode) as client:
        result = await client.call_tool("wait_for_calls", {"call_ids": [ended, live], "timeout_seconds": 30})
    assert result.structured_content is not None
    assert result.structured_content["timed_out"] is True and result.structured_content["waited_s"] <= 30
    assert [c["status"] for c in result.structured_content["calls"]] == ["completed", "in_progress"]


async def test_wait_for_calls_names_a_call_that_does_not_exist(rig: Rig, mode: str) -> None:
    real = await _place_call(rig.sandbox)
    async with connected(rig, mode) as client:
        result = await client.call_tool("wait_for_calls", {"call_ids": [real, "clxnosuchcall000000000000"]})
    assert result.is_error and "clxnosuchcall000000000000" in first_text(result)


async def test_wait_for_calls_takes_at_most_twenty_ids_and_sends_nothing_beyond(rig: Rig, mode: str) -> None:
    before = len(rig.sandbox.requests)
    async with connected(rig, mode) as client:
        result = await client.call_tool("wait_for_calls", {"call_ids": [f"c{i}" for i in range(21)]})
    assert result.is_error and len(rig.sandbox.requests) == before


@pytest.mark.parametrize("tool", ["wait_for_call", "wait_for_calls"])
async def test_a_wait_never_outlasts_its_timeout_even_when_the_api_hangs(tmp_path: Path, mode: str, tool: str) -> None:
    sandbox = Sandbox(clock=ManualClock(datetime.fromisoformat(NOON_NEW_YORK)))
    server = build_server(make_settings(tmp_path), transport=sandbox.transport(), now=sandbox.clock.now)
    call_id = await _place_call(sandbox)
    # Ten seconds late: far longer than the 0.05 s asked for, yet short of the client's read timeout.
    sandbox.faults.add(Fault(kind="latency", delay=10.0, method="GET", path="/calls/*", times=None))
    args: dict[str, Any] = {"call_id": call_id} if tool == "wait_for_call" else {"call_ids": [call_id]}
    async with Client(server, mode=mode) as client:
        with anyio.fail_after(5):  # a guard for a broken bound, not a measurement
            result = await client.call_tool(tool, {**args, "timeout_seconds": 0.05})
    if tool == "wait_for_call":
        assert result.is_error and "did not answer" in first_text(result)
    else:
        assert result.structured_content is not None and result.structured_content["timed_out"] is True
        assert result.structured_content["calls"] == [{"id": call_id, "status": "unknown"}]
