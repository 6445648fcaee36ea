"""The API key appears in no tool output and no log line, across a realistic session with failures, in both eras."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext

from outboundcalls.sandbox import Fault, ManualClock, Sandbox
from tests.harness import NOON_NEW_YORK, connected, make_rig

pytestmark = pytest.mark.anyio

KEY = "oc_live_" + "Zk3v9QpL2mXr7TbW4nYc8HsJ6dFg1AeU"


async def _approve(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"confirm": True})


def _seen(result: Any) -> str:
    """All a client received from one tool call."""
    return repr(result.content) + repr(result.structured_content)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_live_looking_key_is_never_in_a_tool_result_or_a_log_line(
    tmp_path: Path, mode: str, log_lines: list[str]
) -> None:
    sandbox = Sandbox(api_key=KEY, clock=ManualClock(datetime.fromisoformat(NOON_NEW_YORK)))
    rig = make_rig(tmp_path, sandbox=sandbox, api_key=KEY, log_level="DEBUG")
    ids = sandbox.seed_ids
    outputs: list[str] = [repr(rig.settings)]
    dial = {"agent_id": ids.deployed_agent_id, "to_number": "415-555-0134"}
    async with connected(rig, mode, elicitation_callback=_approve) as client:
        outputs.append(str(client.instructions))
        outputs.append(repr((await client.list_tools()).tools))
        calls: list[tuple[str, dict[str, Any]]] = [
            ("get_balance", {}),
            ("list_agents", {"status": "deployed"}),
            ("get_agent", {"agent_id": ids.deployed_agent_id}),
            ("get_agent", {"agent_id": ids.foreign_agent_id}),
            ("list_calls", {"limit": 5}),
            ("get_call", {"call_id": ids.completed_call_id}),
            ("list_contacts", {"contact_list_id": ids.contact_list_id, "limit": 2}),
            ("add_contact", {"contact_list_id": ids.contact_list_id, "phone": "+1 212 555 0100", "name": "Ada"}),
            ("add_contact", {"contact_list_id": ids.contact_list_id, "phone": "12345"}),
            ("get_campaign", {"campaign_id": ids.campaign_id}),
            ("list_calls", {"limit": 999}),
            ("dispatch_call", dial),
        ]
        for name, args in calls:
            outputs.append(_seen(await client.call_tool(name, args)))
        dialed = await client.call_tool("dispatch_call", {**dial, "to_number": "+1 212 555 0100"})
        outputs.append(_seen(dialed))
        assert dialed.structured_content is not None and dialed.structured_content["status"] == "dialed"
        call_id = dialed.structured_content["call"]["id"]
        outputs.append(_seen(await client.call_tool("wait_for_call", {"call_id": call_id})))
        for fault in (
            Fault(kind="status", status=401, times=None),
            Fault(kind="status", status=502, times=None),
            Fault(kind="malformed"),
            Fault(kind="drop", times=None),
            Fault(kind="timeout_before_send", times=None),
        ):
            sandbox.faults.add(fault)
            outputs.append(_seen(await client.call_tool("get_balance", {})))
            outputs.append(_seen(await client.call_tool("get_call", {"call_id": call_id})))
            sandbox.faults.clear()
        sandbox.faults.add(Fault(kind="drop", method="POST", path="/calls", after_processing=True))
        outputs.append(_seen(await client.call_tool("dispatch_call", {**dial, "to_number": "+1 312 555 0100"})))
    assert sandbox.count("GET", "/me") > 0, "the session never reached the API"
    assert any(line.startswith("DEBUG") for line in log_lines), "DEBUG logs were not captured"
    assert len(outputs) > 20
    for text in [*outputs, *log_lines]:
        assert KEY not in text
        assert KEY[8:] not in text  # not even the secret part without its prefix
