"""Every tool against every way the upstream API can fail: one table, one test.

Each failure must reach the assistant as a tool error (or, for a dial whose fate is unknown, an
`outcome_unknown` result) that names what happened and what to do: never a crash, a hang, a
traceback, a protocol error or a second dial.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext

from outboundcalls.sandbox import Fault, Sandbox, SeedIds
from outboundcalls_mcp.server.ledger_sqlite import LEDGER_FILENAME
from outboundcalls_mcp.server.state_dir import resolve_state_dir
from tests.harness import Rig, make_rig

pytestmark = pytest.mark.anyio

RETRY_AFTER = 7.0
DESTINATION = "+14155550123"
BATCH = ("+14155550123", "+14155550124")
# A guard, not a measurement: a tool that hangs fails the test instead of stalling CI.
HANG_GUARD_SECONDS = 30


@dataclass(frozen=True)
class Upstream:
    """One way the API fails, and the words the assistant must read about it."""

    name: str
    fault: dict[str, Any]
    says: tuple[str, ...]  # lowercase phrases every affected tool's message contains
    write_says: tuple[str, ...] | None = None  # when a lost write reads differently
    uncertain: bool = False  # a write may have happened: a dial reports outcome_unknown


# The table the README's "what each upstream failure looks like" section mirrors.
FAULTS: tuple[Upstream, ...] = (
    Upstream("400", {"kind": "status", "status": 400}, ("400", "invalid", "check the arguments")),
    Upstream("401", {"kind": "status", "status": 401}, ("401", "api key", "outboundcalls_api_key")),
    Upstream("402", {"kind": "status", "status": 402}, ("402", "insufficient credits", "top up")),
    Upstream("404", {"kind": "status", "status": 404}, ("404", "not found")),
    Upstream(
        "429", {"kind": "status", "status": 429, "retry_after": RETRY_AFTER}, ("429", "rate limit", "try again in 7 s")
    ),
    Upstream("500", {"kind": "status", "status": 500}, ("500", "failed", "try again")),
    Upstream("502", {"kind": "status", "status": 502}, ("502", "failed", "try again")),
    Upstream("503", {"kind": "status", "status": 503}, ("503", "failed", "try again")),
    Upstream(
        "hang",
        {"kind": "hang"},
        ("did not answer in time", "try again"),
        write_says=("may or may not have been", "list_"),
        uncertain=True,
    ),
    Upstream(
        "drop",
        {"kind": "drop"},
        ("connection", "broke", "try again"),
        write_says=("may or may not have been", "list_"),
        uncertain=True,
    ),
    Upstream(
        "malformed JSON",
        {"kind": "malformed"},
        ("unexpected", "not valid json", "try again"),
        write_says=("list_",),
        uncertain=True,
    ),
    Upstream("HTML error page", {"kind": "html"}, ("502", "bad gateway", "try again")),
    Upstream(
        "empty body",
        {"kind": "empty"},
        ("unexpected", "empty", "try again"),
        write_says=("list_",),
        uncertain=True,
    ),
    Upstream(
        "200 missing fields",
        {"kind": "missing_fields"},
        ("unexpected", "field required", "try again"),
        write_says=("list_",),
        uncertain=True,
    ),
)

ActionWords = ("try again", "check", "set ", "top up", "fix")


async def approve(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    """The person ticks confirm on the dispatch form."""
    return types.ElicitResult(action="accept", content={"confirm": True})


@dataclass(frozen=True)
class ToolCase:
    """How to call one tool, and which requests the fault is armed for."""

    name: str
    args: Callable[[SeedIds], dict[str, Any]]
    writes: bool = False  # the fault hits its write (POST) and the write rules apply
    flow: str = "plain"  # dispatch_call: "token", "elicit", or "preview" (fault on its reads)
    client_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The test id: the tool, and the dispatch flow when there is one."""
        return self.name if self.flow == "plain" else f"{self.name}[{self.flow}]"


def _dispatch_args(ids: SeedIds) -> dict[str, Any]:
    return {"agent_id": ids.deployed_agent_id, "to_number": DESTINATION}


def _batch_args(ids: SeedIds) -> dict[str, Any]:
    return {"agent_id": ids.deployed_agent_id, "to_numbers": list(BATCH)}


TOOLS: tuple[ToolCase, ...] = (
    ToolCase("get_balance", lambda ids: {}),
    ToolCase("list_calls", lambda ids: {"limit": 5}),
    ToolCase("get_call", lambda ids: {"call_id": ids.completed_call_id}),
    ToolCase("wait_for_call", lambda ids: {"call_id": ids.completed_call_id, "timeout_seconds": 30}),
    ToolCase("list_agents", lambda ids: {}),
    ToolCase("get_agent", lambda ids: {"agent_id": ids.deployed_agent_id}),
    ToolCase("list_contacts", lambda ids: {"contact_list_id": ids.contact_list_id, "limit": 5}),
    ToolCase("add_contact", lambda ids: {"contact_list_id": ids.contact_list_id, "phone": DESTINATION}, writes=True),
    ToolCase("get_campaign", lambda ids: {"campaign_id": ids.campaign_id}),
    ToolCase("wait_for_calls", lambda ids: {"call_ids": [ids.completed_call_id, ids.long_transcript_call_id]}),
    ToolCase("dispatch_call", _dispatch_args, flow="preview"),
    ToolCase("dispatch_call", _dispatch_args, writes=True, flow="token"),
    ToolCase(
        "dispatch_call", _dispatch_args, writes=True, flow="elicit", client_kwargs={"elicitation_callback": approve}
    ),
    ToolCase("dispatch_calls", _batch_args, flow="preview"),
    ToolCase("dispatch_calls", _batch_args, writes=True, flow="token"),
)


@dataclass
class Outcome:
    """What one tool call under one fault produced, for this test and the secrets scan."""

    result: types.CallToolResult
    text: str
    posts: int
    rig: Rig


async def run_case(
    tmp_path: Path, tool: ToolCase, upstream: Upstream, mode: str, *, sandbox: Sandbox | None = None, **settings: Any
) -> Outcome:
    """Call one tool with one fault armed on every matching request; the preview step runs clean."""
    rig = make_rig(tmp_path, sandbox=sandbox, **settings)
    args = tool.args(rig.sandbox.seed_ids)
    method = "POST" if tool.writes else None
    async with rig.client(mode, **tool.client_kwargs) as client:
        if tool.flow == "token":
            preview = await client.call_tool(tool.name, args)
            assert not preview.is_error, preview.content
            assert preview.structured_content is not None
            found = preview.structured_content.get("preview", preview.structured_content)
            args = {**args, "confirmation_token": found["confirmation_token"]}
        rig.sandbox.faults.add(Fault(times=None, method=method, **upstream.fault))
        with anyio.fail_after(HANG_GUARD_SECONDS):
            result = await client.call_tool(tool.name, args)
    text = " ".join(block.text for block in result.content if isinstance(block, types.TextContent))
    return Outcome(result=result, text=text, posts=rig.posts(), rig=rig)


def dialing_intents(rig: Rig) -> int:
    """Intents claimed for a dial whose outcome was never recorded."""
    path = resolve_state_dir(rig.settings) / LEDGER_FILENAME
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM intents WHERE state = 'dialing'").fetchone()[0])


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("tool", TOOLS, ids=[t.label for t in TOOLS])
@pytest.mark.parametrize("upstream", FAULTS, ids=[f.name for f in FAULTS])
async def test_every_upstream_failure_reaches_the_assistant_as_an_actionable_tool_error(
    tmp_path: Path, upstream: Upstream, tool: ToolCase, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A tool error naming the failure and the next step: no crash, hang, traceback, protocol error or redial."""
    caplog.set_level(logging.WARNING)
    out = await run_case(tmp_path, tool, upstream, mode)

    says = upstream.write_says if tool.writes and upstream.write_says else upstream.says
    text = out.text.lower()
    dials = tool.writes and tool.name.startswith("dispatch_")
    if tool.name == "dispatch_calls" and tool.writes:
        # A batch reports per destination: each one failed (or has an unknown fate), with its reason.
        assert out.result.structured_content is not None, out.text
        assert out.result.structured_content["status"] == "not_dialed"
        expected = "outcome_unknown" if upstream.uncertain else "failed"
        assert [d["status"] for d in out.result.structured_content["destinations"]] == [expected] * len(BATCH)
    elif tool.name == "dispatch_call" and tool.writes and upstream.uncertain:
        assert not out.result.is_error, out.text
        assert out.result.structured_content is not None
        assert out.result.structured_content["status"] == "outcome_unknown"
    else:
        assert out.result.is_error, out.text
        # A masked crash reads exactly "Error executing tool NAME"; ours always says more.
        assert text.startswith(f"error executing tool {tool.name}: "), out.text
    for phrase in says:
        assert phrase in text, f"{phrase!r} missing from: {out.text}"
    assert any(word in text for word in ActionWords), out.text
    assert "traceback" not in text
    # At most one POST per destination, and none at all for a tool that does not dial.
    assert out.posts <= ((len(BATCH) if tool.name == "dispatch_calls" else 1) if dials else 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    if tool.name.startswith("dispatch_"):
        assert dialing_intents(out.rig) == 0
