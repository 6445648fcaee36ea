"""The audit trail: every preview, question, answer, refusal, dial, outcome and charge, for assistant and owner."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import anyio
import mcp_types as types
import pytest

from outboundcalls_mcp.server.audit_cli import print_audit
from outboundcalls_mcp.server.audit_resource import AUDIT_URI
from tests.harness import NOON_NEW_YORK, connected, make_rig
from tests.places import LedgerPlace
from tests.server.dispatch_kit import (
    ERAS,
    OTHER_US_NUMBER,
    US_NUMBER,
    Person,
    audit_of,
    call_id_of,
    confirm,
    dispatch_args,
    kinds,
    preview_token,
)

NOON = datetime.fromisoformat(NOON_NEW_YORK)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_the_token_flow_is_audited_preview_dial_outcome_with_number_estimate_and_time(
    place: LedgerPlace, mode: str
) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig, "(415) 555-0134")
    async with connected(rig, mode) as client:
        call_id = call_id_of(await confirm(client, args, await preview_token(client, args)))
    entries = await audit_of(rig)
    assert kinds(entries) == ["preview", "dial", "outcome"]
    for entry in entries:
        assert (entry.to_number, entry.agent_id, entry.at) == (US_NUMBER, args["agent_id"], NOON)
        assert entry.estimated_credits_per_minute == 19.95
    # The preview is the consent; the dial under it and its outcome are one intent.
    assert entries[0].detail["mode"] == "token" and entries[0].detail["consent"] == entries[1].detail["consent"]
    assert entries[1].intent_id is not None and entries[1].intent_id == entries[2].intent_id
    assert entries[2].detail == {"kind": "dialed", "call_id": call_id}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_the_question_is_audited_once_as_asked_then_the_answer_the_dial_and_the_outcome(
    place: LedgerPlace, mode: str
) -> None:
    rig = make_rig(place)
    person = Person("accept")
    async with connected(rig, mode, elicitation_callback=person) as client:
        call_id_of(await client.call_tool("dispatch_call", dispatch_args(rig)))
    entries = await audit_of(rig)
    assert kinds(entries) == ["question", "answer", "dial", "outcome"]
    assert entries[0].detail["question"] == person.questions[0]  # the words the person saw
    consent = entries[0].detail["consent"]
    assert entries[1].detail == {"answer": "accept", "consent": consent}
    assert entries[2].detail == {"mode": "elicit", "consent": consent}
    assert all(entry.to_number == US_NUMBER and entry.estimated_credits_per_minute == 19.95 for entry in entries)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_a_declined_question_is_audited_with_its_answer_and_no_dial(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    async with connected(rig, mode, elicitation_callback=Person("decline")) as client:
        await client.call_tool("dispatch_call", dispatch_args(rig))
    entries = await audit_of(rig)
    assert kinds(entries) == ["question", "answer"]
    assert entries[1].detail == {"answer": "decline", "consent": entries[0].detail["consent"]}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_a_refusal_is_audited_with_every_rule_the_number_and_its_estimate(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place, allowed_countries="GB")
    async with connected(rig, mode) as client:
        await client.call_tool("dispatch_call", dispatch_args(rig, "1 900 555 0100"))
    (entry,) = await audit_of(rig)
    assert entry.kind == "refusal" and entry.to_number == "+19005550100"
    assert entry.detail == {"rules": ["number_type", "country"], "raw": "1 900 555 0100", "stage": "preview"}
    assert entry.estimated_credits_per_minute == 19.95


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_an_unknown_outcome_and_its_reconciliation_are_audited(place: LedgerPlace, mode: str) -> None:
    from outboundcalls.sandbox import Fault

    rig = make_rig(place)
    rig.sandbox.faults.add(Fault(kind="hang", method="POST", path="/calls", after_processing=True))
    async with connected(rig, mode) as client:
        args = dispatch_args(rig)
        call_id = call_id_of(await confirm(client, args, await preview_token(client, args)))
    entries = await audit_of(rig)
    assert kinds(entries) == ["preview", "dial", "outcome", "reconcile"]
    assert entries[2].detail["kind"] == "unknown"
    assert entries[3].detail == {"found": True, "call_id": call_id}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_the_charge_of_an_ended_call_is_audited_once(place: LedgerPlace, mode: str) -> None:
    rig = make_rig(place)
    args = dispatch_args(rig)
    async with connected(rig, mode) as client:
        call_id = call_id_of(await confirm(client, args, await preview_token(client, args)))
        await rig.sandbox.advance(120)
        await client.call_tool("get_call", {"call_id": call_id})
        await client.call_tool("get_call", {"call_id": call_id})
    charged = rig.sandbox.call_json(call_id)["creditsCharged"]
    charges = [entry for entry in await audit_of(rig) if entry.kind == "charge"]
    assert [(c.charge_credits, c.to_number, c.detail) for c in charges] == [(charged, US_NUMBER, {"call_id": call_id})]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ERAS)
async def test_the_assistant_reads_the_most_recent_entries_as_a_resource(
    tmp_path: Path, place: LedgerPlace, mode: str
) -> None:
    rig = make_rig(place)
    async with connected(rig, mode) as client:
        first = (await client.read_resource(AUDIT_URI)).contents[0]
        assert isinstance(first, types.TextResourceContents), first
        empty = json.loads(first.text)
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        token = await preview_token(client, dispatch_args(rig))
        await client.call_tool("dispatch_call", dispatch_args(rig, "911"))
        read = await client.read_resource(AUDIT_URI)
    assert empty == {"entries": []}
    assert AUDIT_URI in listed
    (content,) = read.contents
    assert isinstance(content, types.TextResourceContents), content
    assert content.mime_type == "application/json"
    entries = json.loads(content.text)["entries"]
    assert [e["kind"] for e in entries] == ["refusal", "preview"]  # newest first
    assert entries[1]["to_number"] == US_NUMBER and entries[1]["estimated_credits_per_minute"] == 19.95
    assert entries[0]["detail"]["rules"] == ["emergency"]
    assert token not in content.text


async def seeded_audit(tmp_path: Path) -> Path:
    """A state directory whose audit holds a refusal, then a dialed call."""
    rig = make_rig(tmp_path)
    async with connected(rig) as client:
        await client.call_tool("dispatch_call", dispatch_args(rig, "+1 900 555 0100"))
        args = dispatch_args(rig, OTHER_US_NUMBER)
        await confirm(client, args, await preview_token(client, args))
    return tmp_path


def test_the_owner_reads_the_trail_as_a_table_oldest_first(tmp_path: Path) -> None:
    rig = make_rig(anyio.run(seeded_audit, tmp_path))
    out = io.StringIO()
    assert print_audit(rig.settings, limit=50, as_json=False, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["TIME", "(UTC)", "KIND", "TO", "AGENT", "EST/MIN", "CHARGE", "DETAIL"]
    assert [line.split()[2] for line in lines[1:]] == ["refusal", "preview", "dial", "outcome"]
    assert "2026-11-30 17:00:00" in lines[1] and "+19005550100" in lines[1] and "rules=number_type" in lines[1]
    assert "+14155550135" in lines[-1] and "19.95" in lines[-1] and "kind=dialed" in lines[-1]


def test_the_owner_reads_the_trail_as_json_lines(tmp_path: Path) -> None:
    rig = make_rig(anyio.run(seeded_audit, tmp_path))
    out = io.StringIO()
    assert print_audit(rig.settings, limit=2, as_json=True, out=out) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [row["kind"] for row in rows] == ["dial", "outcome"]  # the two most recent, oldest first
    assert rows[1]["to_number"] == "+14155550135" and rows[1]["at"] == "2026-11-30T17:00:00Z"


def test_an_empty_trail_says_so_and_a_bad_limit_is_refused(place: LedgerPlace) -> None:
    rig = make_rig(place)
    out = io.StringIO()
    assert print_audit(rig.settings, limit=50, as_json=False, out=out) == 0
    assert out.getvalue().startswith("No dispatch has been audited yet")
    assert print_audit(rig.settings, limit=0, as_json=False, out=out) == 2


def test_the_console_script_prints_the_audit_as_json_lines(tmp_path: Path) -> None:
    state = anyio.run(seeded_audit, tmp_path)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "OUTBOUNDCALLS_STATE_DIR": str(state)}
    done = subprocess.run(
        [sys.executable, "-m", "outboundcalls_mcp.server", "audit", "--sandbox", "--json", "--limit", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["kind"] for line in done.stdout.splitlines()] == ["preview", "dial", "outcome"]
