"""Hostile and malformed tool arguments: refused before any request leaves, or passed upstream as inert data.

Unknown arguments are refused too: the SDK's argument models ignore extra keys by default, so a
misspelt `limt` would silently become the default; server/sdk_patches.py makes them an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest

from outboundcalls.sandbox import RecordedRequest, SeedIds
from tests.harness import make_rig

pytestmark = pytest.mark.anyio

Args = Callable[[SeedIds], dict[str, Any]]
Check = Callable[[list[RecordedRequest], SeedIds], None]
BIG = "x" * 100_000
NUMBER = "+14155550123"


@dataclass(frozen=True)
class Case:
    """One hostile call: refused with these words and nothing sent, or (`sent`) what must reach the API."""

    label: str
    tool: str
    args: Args
    says: tuple[str, ...] = ()
    sent: Check | None = None


def fixed(**args: Any) -> Args:
    """Arguments that need no seeded id."""
    return lambda ids: dict(args)


def contact(**override: Any) -> Args:
    """add_contact arguments on the seeded list, with some replaced."""
    return lambda ids: {"contact_list_id": ids.contact_list_id, "phone": NUMBER} | override


def dial(**override: Any) -> Args:
    """dispatch_call arguments with the seeded deployed agent, with some replaced."""
    return lambda ids: {"agent_id": ids.deployed_agent_id, "to_number": NUMBER} | override


def call(**extra: Any) -> Args:
    """get_call arguments on the seeded completed call, plus extra ones."""
    return lambda ids: {"call_id": ids.completed_call_id} | extra


def refuse(label: str, tool: str, args: Args, *says: str) -> Case:
    """A case that must be refused before anything is sent, naming these (lowercase) words."""
    return Case(label, tool, args, says=says)


def passes(label: str, tool: str, args: Args, sent: Check) -> Case:
    """A case that is legitimate data: what reaches the API is checked instead."""
    return Case(label, tool, args, sent=sent)


def only_path(path: str, query: dict[str, str] | None = None) -> Check:
    """Exactly one request, to exactly this path and query."""

    def check(requests: list[RecordedRequest], ids: SeedIds) -> None:
        assert [(r.path, r.query) for r in requests] == [(path, query or {})]

    return check


def contact_body(**expected: Any) -> Check:
    """One POST /contacts whose body holds these fields exactly, and the number as E.164."""

    def check(requests: list[RecordedRequest], ids: SeedIds) -> None:
        (post,) = [r for r in requests if r.method == "POST"]
        assert post.path == "/contacts"
        assert post.body["phone"] == NUMBER
        assert post.body["contactListId"] == ids.contact_list_id
        for key, value in expected.items():
            assert post.body[key] == value, (key, post.body)

    return check


INJECTED = '", "phone": "+19005550000", "tags": ["admin"], "x": "'
SQLISH = "'; DROP TABLE contacts; --"

CASES: tuple[Case, ...] = (
    # Ids: only letters, digits, _ and - ever reach a path, so no id can change the path or query.
    refuse("call_id empty", "get_call", fixed(call_id=""), "call_id"),
    refuse("call_id blank", "get_call", fixed(call_id="   "), "call_id"),
    refuse("call_id dot-dot", "get_call", fixed(call_id=".."), "call_id"),
    refuse("call_id single dot", "get_call", fixed(call_id="."), "call_id"),
    refuse("call_id traversal", "get_call", fixed(call_id="../me"), "call_id"),
    refuse("call_id encoded traversal", "get_call", fixed(call_id="%2e%2e%2fme"), "call_id"),
    refuse("call_id with query", "get_call", fixed(call_id="c1?limit=1"), "call_id"),
    refuse("call_id with fragment", "get_call", fixed(call_id="c1#x"), "call_id"),
    refuse("call_id with slash", "get_call", fixed(call_id="c1/transcript"), "call_id"),
    refuse("call_id with ampersand", "get_call", fixed(call_id="c1&status=failed"), "call_id"),
    refuse("call_id with NUL", "get_call", fixed(call_id="c1\x00"), "call_id"),
    refuse("call_id with CRLF header injection", "get_call", fixed(call_id="c1\r\nX-Injected: 1"), "call_id"),
    refuse("call_id 100 kB", "get_call", fixed(call_id=BIG), "call_id"),
    refuse("call_id fullwidth look-alikes", "get_call", fixed(call_id="ｃｌｘ１"), "call_id"),
    refuse("call_id trailing space", "get_call", fixed(call_id="clx1 "), "call_id"),
    refuse("call_id integer", "get_call", fixed(call_id=12345), "call_id", "valid string"),
    refuse("call_id null", "get_call", fixed(call_id=None), "call_id"),
    refuse("call_id list", "get_call", fixed(call_id=["c1"]), "call_id"),
    refuse("call_id object", "get_call", fixed(call_id={"$ne": ""}), "call_id"),
    refuse("call_id missing", "get_call", fixed(), "call_id", "required"),
    refuse("include_transcript not a boolean", "get_call", call(include_transcript="maybe"), "include_transcript"),
    refuse("max_transcript_chars negative", "get_call", call(max_transcript_chars=-5), "max_transcript_chars"),
    refuse("agent_id traversal", "get_agent", fixed(agent_id="../calls"), "agent_id"),
    refuse("agent_id bidi override", "get_agent", fixed(agent_id="abc\u202edef"), "agent_id"),
    refuse("campaign_id SQL-ish", "get_campaign", fixed(campaign_id=SQLISH), "campaign_id"),
    refuse("campaign_id encoded NUL", "get_campaign", fixed(campaign_id="c%00"), "campaign_id"),
    # Numbers: ranges, types, look-alike digits.
    refuse("wait timeout negative", "wait_for_call", call(timeout_seconds=-1), "timeout_seconds", "greater than 0"),
    refuse("wait timeout zero", "wait_for_call", call(timeout_seconds=0), "timeout_seconds"),
    refuse("wait timeout huge", "wait_for_call", call(timeout_seconds=1e300), "timeout_seconds", "600"),
    refuse("wait timeout with unit", "wait_for_call", call(timeout_seconds="60s"), "timeout_seconds"),
    refuse("wait timeout nan", "wait_for_call", call(timeout_seconds="nan"), "timeout_seconds"),
    refuse("wait timeout infinity", "wait_for_call", call(timeout_seconds="inf"), "timeout_seconds"),
    refuse("wait call_id traversal", "wait_for_call", fixed(call_id="../calls"), "call_id"),
    refuse("limit negative", "list_calls", fixed(limit=-1), "limit", "greater than or equal to 1"),
    refuse("limit zero", "list_calls", fixed(limit=0), "limit"),
    refuse("limit over the maximum", "list_calls", fixed(limit=201), "limit", "200"),
    refuse("limit huge", "list_calls", fixed(limit=10**30), "limit"),
    refuse("limit with letters", "list_calls", fixed(limit="20abc"), "limit", "valid integer"),
    refuse("limit fullwidth digits", "list_calls", fixed(limit="２０"), "limit"),
    refuse("limit Arabic-Indic digits", "list_calls", fixed(limit="٢٠"), "limit"),
    refuse("limit fractional", "list_calls", fixed(limit=1.5), "limit"),
    refuse("limit list", "list_calls", fixed(limit=[5]), "limit"),
    refuse("status uppercase", "list_calls", fixed(status="COMPLETED"), "status"),
    refuse("status with query injection", "list_calls", fixed(status="completed&agentId=x"), "status"),
    refuse("status with NUL", "list_calls", fixed(status="completed\x00"), "status"),
    refuse("status empty", "list_calls", fixed(status=""), "status"),
    refuse("status 100 kB", "list_calls", fixed(status=BIG), "status"),
    refuse("agent filter traversal", "list_calls", fixed(agent_id="../x"), "agent_id"),
    refuse("campaign filter with space", "list_calls", fixed(campaign_id="a b"), "campaign_id"),
    refuse("agents limit over the maximum", "list_agents", fixed(limit=1000), "limit"),
    refuse("agents status injection", "list_agents", fixed(status="deployed;paused"), "status"),
    refuse("contacts limit over the maximum", "list_contacts", fixed(limit=501), "limit", "500"),
    refuse("contact_list_id with query", "list_contacts", fixed(contact_list_id="x?limit=500"), "contact_list_id"),
    refuse("contact_list_id blank", "list_contacts", fixed(contact_list_id="   "), "contact_list_id"),
    # add_contact: phone numbers, text fields, tags, custom fields.
    refuse("phone with a letter O", "add_contact", contact(phone="+1415555O123"), "phone", "letters"),
    refuse(
        "phone fullwidth digits", "add_contact", contact(phone="+１４１５５５５０１２３"), "phone", "non-ascii digit"
    ),
    refuse("phone Arabic-Indic digits", "add_contact", contact(phone="+١٤١٥٥٥٥٠١٢٣"), "phone", "non-ascii digit"),
    refuse("phone empty", "add_contact", contact(phone=""), "phone", "empty"),
    refuse("phone blank", "add_contact", contact(phone="   "), "phone", "empty"),
    refuse("phone with NUL", "add_contact", contact(phone=NUMBER + "\x00"), "phone", "control"),
    refuse("phone emergency", "add_contact", contact(phone="911"), "phone", "emergency"),
    refuse("phone 100 kB", "add_contact", contact(phone=BIG), "phone", "at most 64"),
    refuse("phone integer", "add_contact", contact(phone=14155550123), "phone", "valid string"),
    refuse("phone with extension injection", "add_contact", contact(phone=NUMBER + ";ext=1"), "phone"),
    refuse("name with NUL", "add_contact", contact(name="Ada\x00"), "name", "control"),
    refuse("name 100 kB", "add_contact", contact(name=BIG), "name", "at most 200"),
    refuse("name blank", "add_contact", contact(name="   "), "name", "blank"),
    refuse("name with bidi override", "add_contact", contact(name="Ada\u202eevil"), "name", "control"),
    refuse("email not an address", "add_contact", contact(email="not-an-email"), "email"),
    refuse("email with header injection", "add_contact", contact(email="a@b.co\nBcc: x@y.z"), "email"),
    refuse("tag with a control character", "add_contact", contact(tags=["ok", "bell\x07"]), "tags"),
    refuse("too many tags", "add_contact", contact(tags=["t"] * 21), "tags"),
    refuse("tags not a list", "add_contact", contact(tags="vip"), "tags"),
    refuse("custom field nested object", "add_contact", contact(custom_fields={"k": {"nested": 1}}), "custom_fields"),
    refuse(
        "custom fields too many", "add_contact", contact(custom_fields={f"k{i}": i for i in range(51)}), "custom_fields"
    ),
    refuse("custom field value too long", "add_contact", contact(custom_fields={"k": "x" * 1001}), "custom_fields"),
    refuse("custom field name traversal", "add_contact", contact(custom_fields={"../k": "v"}), "custom_fields"),
    refuse("custom field value with NUL", "add_contact", contact(custom_fields={"k": "a\x00b"}), "custom_fields"),
    refuse("contact list traversal", "add_contact", contact(contact_list_id="../../calls"), "contact_list_id"),
    # dispatch_call: refused before any read, question or dial.
    refuse("to_number with a letter O", "dispatch_call", dial(to_number="+1415555O123"), "letters"),
    refuse("to_number emergency 911", "dispatch_call", dial(to_number="911"), "emergency"),
    refuse("to_number emergency 112", "dispatch_call", dial(to_number="112"), "emergency"),
    refuse("to_number empty", "dispatch_call", dial(to_number=""), "empty"),
    refuse("to_number Arabic-Indic digits", "dispatch_call", dial(to_number="+١٤١٥٥٥٥٠١٢٣"), "non-ascii digit"),
    refuse("to_number 100 kB", "dispatch_call", dial(to_number=BIG), "to_number"),
    refuse("to_number integer", "dispatch_call", dial(to_number=14155550123), "to_number"),
    refuse("agent_id traversal", "dispatch_call", dial(agent_id="../calls"), "agent_id"),
    refuse("phone_number_id traversal", "dispatch_call", dial(phone_number_id="p/../../me"), "phone_number_id"),
    refuse("contact_id with query", "dispatch_call", dial(contact_id="c?x=1"), "contact_id"),
    refuse("confirmation_token too short", "dispatch_call", dial(confirmation_token="short"), "confirmation_token"),
    refuse("confirmation_token traversal", "dispatch_call", dial(confirmation_token="../" * 10), "confirmation_token"),
    refuse("confirmation_token 100 kB", "dispatch_call", dial(confirmation_token="A" * 100_000), "confirmation_token"),
    # Batch tools: list shapes and sizes.
    refuse("to_numbers empty", "dispatch_calls", fixed(agent_id="clx1", to_numbers=[]), "to_numbers"),
    refuse("to_numbers a string", "dispatch_calls", fixed(agent_id="clx1", to_numbers=NUMBER), "to_numbers"),
    refuse(
        "to_numbers over the limit", "dispatch_calls", fixed(agent_id="clx1", to_numbers=[NUMBER] * 201), "to_numbers"
    ),
    refuse(
        "to_numbers with a 100 kB entry",
        "dispatch_calls",
        fixed(agent_id="clx1", to_numbers=[NUMBER, BIG]),
        "to_numbers",
    ),
    refuse("batch agent_id traversal", "dispatch_calls", fixed(agent_id="../calls", to_numbers=[NUMBER]), "agent_id"),
    refuse("call_ids empty", "wait_for_calls", fixed(call_ids=[]), "call_ids"),
    refuse("call_ids with traversal", "wait_for_calls", fixed(call_ids=["ok", "../me"]), "call_ids"),
    refuse("call_ids over the limit", "wait_for_calls", fixed(call_ids=[f"c{i}" for i in range(21)]), "call_ids"),
    # Unknown arguments.
    refuse("unknown argument", "get_balance", fixed(verbose=True), "verbose", "not an argument"),
    refuse("misspelt argument", "list_calls", fixed(limt=5), "limt", "not an argument"),
    refuse("wire-cased argument", "list_calls", fixed(agentId="clx1"), "agentid", "not an argument"),
    refuse("smuggled api_key", "get_call", call(api_key="oc_live_x"), "api_key", "not an argument"),
    refuse("invented consent flag", "dispatch_call", dial(confirmed=True), "confirmed", "not an argument"),
    # Legitimate data, passed upstream as data and nothing else.
    passes(
        "unknown but well-formed id",
        "get_call",
        fixed(call_id="does-not_exist-1"),
        only_path("/calls/does-not_exist-1"),
    ),
    passes("numeric string limit", "list_calls", fixed(limit="20"), only_path("/calls", {"limit": "20"})),
    passes(
        "filter id kept in its parameter",
        "list_calls",
        fixed(agent_id="clx-abc_123"),
        only_path("/calls", {"agentId": "clx-abc_123", "limit": "20"}),
    ),
    passes(
        "JSON injection in a custom field",
        "add_contact",
        contact(custom_fields={"note": INJECTED}),
        contact_body(customFields={"note": INJECTED}),
    ),
    passes("JSON injection in the name", "add_contact", contact(name=INJECTED), contact_body(name=INJECTED)),
    passes("SQL-looking text in the company", "add_contact", contact(company=SQLISH), contact_body(company=SQLISH)),
    passes(
        "prototype-pollution field names",
        "add_contact",
        contact(custom_fields={"__proto__": "x", "constructor": "y"}),
        contact_body(customFields={"__proto__": "x", "constructor": "y"}),
    ),
    passes(
        "custom fields given as a JSON string",
        "add_contact",
        contact(custom_fields='{"k": "v"}'),
        contact_body(customFields={"k": "v"}),
    ),
    passes(
        "a multi-line note",
        "add_contact",
        contact(custom_fields={"note": "line 1\nline 2"}),
        contact_body(customFields={"note": "line 1\nline 2"}),
    ),
    passes(
        "accents and emoji in the name", "add_contact", contact(name="Zoë Ñandú 🚀"), contact_body(name="Zoë Ñandú 🚀")
    ),
    passes("a national-format number", "add_contact", contact(phone="(415) 555-0123"), contact_body()),
)


WORDING_FILE = Path(__file__).with_name("hostile_input_refusals.json")
WORDING: dict[str, str] = json.loads(WORDING_FILE.read_text(encoding="utf-8")) if WORDING_FILE.exists() else {}


def test_the_table_holds_at_least_sixty_hostile_inputs() -> None:
    """The issue asks for 60 or more; the table is the evidence."""
    assert len([c for c in CASES if c.sent is None]) >= 60
    assert len({c.label + c.tool for c in CASES}) == len(CASES)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c.tool}:{c.label}" for c in CASES])
async def test_hostile_arguments_are_refused_before_sending_or_sent_only_as_data(
    tmp_path: Path, case: Case, mode: str
) -> None:
    """Refusals name the argument and send nothing; legitimate oddities reach the API unchanged and in place."""
    rig = make_rig(tmp_path)
    ids = rig.sandbox.seed_ids
    async with rig.client(mode) as client:
        before = len(rig.sandbox.requests)
        with anyio.fail_after(30):
            result = await client.call_tool(case.tool, case.args(ids))
        sent = rig.sandbox.requests[before:]
    text = " ".join(b.text for b in result.content if isinstance(b, types.TextContent))
    if case.sent is not None:
        case.sent(sent, ids)
        return
    assert result.is_error, text
    assert sent == [], [(r.method, r.path) for r in sent]
    if os.environ.get("UPDATE_SNAPSHOTS") and mode == "legacy":
        WORDING[f"{case.tool}:{case.label}"] = text
        WORDING_FILE.write_text(
            json.dumps(WORDING, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
        )
    assert text.lower().startswith(f"error executing tool {case.tool}: "), text
    for word in case.says:
        assert word in text.lower(), f"{word!r} missing from: {text[:500]}"
    assert len(text) < 2_000, "a refusal must not echo a 100 kB argument back"
    # Words for a person: no library report, internal model name, error code or documentation link.
    for boilerplate in (
        "validation error",
        "arguments\n",
        "Arguments",
        "[type=",
        "input_value",
        "pydantic",
        "https://",
    ):
        assert boilerplate not in text, f"{boilerplate!r} in: {text[:500]}"
    assert "oc_live_x" not in text, "a smuggled key is never repeated back"
    assert text == WORDING[f"{case.tool}:{case.label}"], (
        f"the refusal's wording changed; if on purpose, run with UPDATE_SNAPSHOTS=1 and review {WORDING_FILE.name}"
    )
