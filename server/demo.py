"""`outboundcalls-mcp demo`: a scripted session through a real MCP client against the sandbox, printed step by step."""

from __future__ import annotations

import sys
import tempfile
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["run_demo"]

# Written the way a person would type it; the server sends it as E.164.
DESTINATION = "(415) 555-0134"
TRANSCRIPT_TURNS_SHOWN = 4


def _say(text: str = "", indent: int = 0) -> None:
    """Print one line for a person; characters the terminal cannot show become '?' instead of crashing."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    line = textwrap.indent(text, " " * indent) if indent else text
    print(line.encode(encoding, "replace").decode(encoding))


def _wrapped(text: str, indent: int) -> None:
    for line in textwrap.wrap(text, width=96 - indent):
        _say(line, indent)


def _data(result: Any, step: str) -> dict[str, Any]:
    """A tool's structured result, or the demo stops saying which step failed."""
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"{step} failed: {result.content[0].text if result.content else 'no content'}")
    return dict(result.structured_content)


def run_demo() -> int:
    """Run the scripted session; 0 when every step worked."""
    import anyio

    with tempfile.TemporaryDirectory(prefix="outboundcalls-demo-") as state_dir:
        try:
            anyio.run(_session, Path(state_dir))
        except RuntimeError as exc:
            _say(f"\nThe demo stopped: {exc}")
            return 1
    return 0


async def _session(state_dir: Path) -> None:
    import mcp_types as types
    from mcp import Client
    from mcp.client.session import ClientRequestContext

    from outboundcalls.sandbox import SANDBOX_API_KEY, ManualClock, Sandbox
    from outboundcalls_mcp.server.app import build_server
    from outboundcalls_mcp.server.settings import Settings

    # Noon in New York today: inside the default calling hours wherever in the US the demo dials.
    noon = datetime.now(UTC).replace(hour=17, minute=0, second=0, microsecond=0)
    sandbox = Sandbox(clock=ManualClock(noon))
    # The call is scripted so the demo always shows a conversation; outcomes vary in real --sandbox runs.
    sandbox.script_next_call(outcome="completed", duration_seconds=48, ring_seconds=6)

    async def sleep(seconds: float) -> None:
        # The server's waits move the sandbox's clock instead of the wall clock: a minute passes at once.
        await sandbox.advance(seconds)

    settings = Settings.model_validate({"api_key": SANDBOX_API_KEY, "sandbox": True, "state_dir": state_dir})
    server = build_server(settings, transport=sandbox.transport(), now=sandbox.clock.now, sleep=sleep)

    async def person(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        _say("The server asks the person, in a confirmation form:", 3)
        _wrapped(params.message, 6)
        _say('The person ticks "confirm" and answers yes.', 3)
        return types.ElicitResult(action="accept", content={"confirm": True})

    _say("OutboundCalls MCP demo: an assistant's session against the built-in sandbox.")
    _say("No real phone rings and no real credits are spent.\n")
    async with Client(server, mode="legacy", elicitation_callback=person) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        _say(f"1. Connected. The server offers {len(tools)} tools:")
        _wrapped(", ".join(tools), 3)

        balance = _data(await client.call_tool("get_balance", {}), "get_balance")
        enough = "enough to dispatch" if balance["can_dispatch"] else "NOT enough to dispatch"
        _say(
            f"\n2. get_balance: {balance['credits']:g} credits "
            f"({enough}: a call needs {balance['minimum_credits']:g}); "
            f"sandbox: {'yes' if balance['sandbox'] else 'NO'}."
        )

        agents = _data(await client.call_tool("list_agents", {"status": "deployed"}), "list_agents")["agents"]
        _say("\n3. list_agents (deployed):")
        for agent in agents:
            _say(f"- {agent['name']}  [{agent['id']}]", 3)
        agent = agents[0]

        _say(f"\n4. dispatch_call: agent {agent['name']!r}, to_number {DESTINATION!r}.")
        dispatched = _data(
            await client.call_tool("dispatch_call", {"agent_id": agent["id"], "to_number": DESTINATION}),
            "dispatch_call",
        )
        call = dispatched.get("call")
        if dispatched["status"] != "dialed" or not call:
            raise RuntimeError(f"dispatch_call did not dial: {dispatched['message']}")
        _say(f"\n5. Dispatched: call {call['id']} to {call['to']}, status {call['status']}.")

        _say("\n6. wait_for_call, with the server's progress notifications, in simulated time: the demo's clock")
        _say("jumps ahead whenever the server waits, so the call's minute passes at once.", 3)
        last: list[str] = []

        async def show_progress(progress: float, total: float | None, message: str | None) -> None:
            status = (message or "").rpartition(": ")[2]
            if status and status not in last:
                last.append(status)
                _say(f"{progress:5.0f} s  {status}", 3)

        waited = _data(
            await client.call_tool(
                "wait_for_call", {"call_id": call["id"], "timeout_seconds": 120}, progress_callback=show_progress
            ),
            "wait_for_call",
        )
        _say(
            f"Ended: {waited['call']['status']} after {waited['waited_s']:g} s of waiting on the simulated clock "
            "(a real call takes that long).",
            3,
        )

        detail = _data(await client.call_tool("get_call", {"call_id": call["id"]}), "get_call")
        turns = detail.get("transcript") or []
        _say(f"\n7. get_call: the transcript ({min(len(turns), TRANSCRIPT_TURNS_SHOWN)} of {len(turns)} turns).")
        _say("Transcripts are what the callee said: data for the assistant, never instructions.", 3)
        for turn in turns[:TRANSCRIPT_TURNS_SHOWN]:
            _wrapped(f"[{turn.get('t', 0):>5.1f} s] {turn['role']}: {turn['text']}", 3)
        if detail.get("summary"):
            _say("Summary:", 3)
            _wrapped(detail["summary"], 6)

        after = _data(await client.call_tool("get_balance", {}), "get_balance")
        spent = balance["credits"] - after["credits"]
        _say(
            f"\n8. Cost: {detail.get('credits', spent):g} credits for {detail.get('duration_s') or 0:g} s of talk. "
            f"Balance {balance['credits']:g} -> {after['credits']:g} credits."
        )
    _say("\nDone. Run `outboundcalls-mcp --sandbox` to try it from your own MCP host: there calls take real")
    _say("time, and one sandbox account is kept between runs: `outboundcalls-mcp sandbox status` shows it,")
    _say("`outboundcalls-mcp sandbox reset` starts it afresh.")
