"""`outboundcalls-mcp demo` walks a newcomer through a whole session on the sandbox, in order, and succeeds."""

from __future__ import annotations

import pytest

from outboundcalls_mcp.server.cli import main
from outboundcalls_mcp.server.demo import run_demo


def test_the_demo_shows_every_step_of_a_session_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo() == 0
    out = capsys.readouterr().out
    steps = [
        "1. Connected. The server offers",
        "dispatch_call",
        "2. get_balance: 1000 credits (enough to dispatch: a call needs 25); sandbox: yes.",
        "3. list_agents",
        "Ava — appointment reminders",
        "4. dispatch_call",
        "[SANDBOX: simulated call",
        "+14155550134 (US",
        "estimate",
        "answers yes",
        "5. Dispatched: call",
        "6. wait_for_call",
        "in simulated time",
        "ringing",
        "in_progress",
        "completed",
        "s of waiting on the simulated clock",
        "7. get_call: the transcript (4 of",
        "agent: ",
        "8. Cost: ",
        "Balance 1000 -> ",
    ]
    position = 0
    for step in steps:
        found = out.find(step, position)
        assert found >= 0, f"missing or out of order: {step!r}"
        position = found + len(step)


def test_the_demo_is_the_cli_demo_command_and_writes_nothing_but_its_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    assert "8. Cost: " in captured.out and "Traceback" not in captured.err
