"""Seeded random interleavings across two server processes on one state directory and one sandbox: afterwards the
ledger, its audit trail and the sandbox's request log agree, and no rule was broken.

Each seed draws a plan over a small pool of numbers, so that flows collide: a flow is a dispatch_call or a
dispatch_calls shown by one process (a preview with a token, or a 2026-07-28 question), then confirmed or answered
in waves: several copies at once, on either process (a token) or on the one that asked (a sealed round), and again
after they return; some confirmations carry other arguments. Every flow starts at once; how the two processes
interleave them is real concurrency. Then each shown consent is confirmed or answered once more, one at a time.
The seed is in the case's id and in every assertion: running that case again replays the same plan.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from tests.places import LedgerPlace
from tests.server.dispatch_kit import ERAS, Person, text_of
from tests.server.process_kit import (
    PROCESS_SECONDS,
    SF_NUMBERS,
    LedgerFile,
    SharedSandbox,
    answer,
    ask,
    call_ids_reported,
    console_server,
    running,
    sandbox_on_a_socket,
    status_of,
)

pytestmark = pytest.mark.anyio

POOL = SF_NUMBERS[:8]
CAP = 6  # OUTBOUNDCALLS_MAX_CALLS_PER_DAY: below the pool's size, so it is hit
COOLDOWN_MINUTES = 60  # the whole test runs inside it: no number may be dialed twice
FLOWS = 16
TOKEN_SEEDS = [1, 2, 3, 4, 5, 6]
ELICIT_SEEDS = [101, 102, 103]

Mode = Literal["token", "elicit"]


@dataclass(frozen=True)
class Send:
    """One confirmation (or one copy of the answering round), to one process; maybe with other arguments."""

    process: int
    other_number: str | None = None  # the last destination swapped for this one: a consent for other arguments


@dataclass
class Flow:
    """One consent shown and used: its plan, then what each call returned."""

    index: int
    tool: Literal["dispatch_call", "dispatch_calls"]
    numbers: tuple[str, ...]
    shown_on: int
    waves: tuple[tuple[Send, ...], ...]
    replay_on: int
    stagger: int  # checkpoints before it starts, so the flows leave this process in a drawn order
    says_yes: bool = True
    shown: types.CallToolResult | types.InputRequiredResult | None = None
    confirmed: list[types.CallToolResult] = field(default_factory=list)
    other_arguments: list[types.CallToolResult] = field(default_factory=list)
    replayed: list[types.CallToolResult] = field(default_factory=list)

    def arguments(self, agent_id: str, other_number: str | None = None) -> dict[str, Any]:
        numbers = self.numbers if other_number is None else (*self.numbers[:-1], other_number)
        if self.tool == "dispatch_call":
            return {"agent_id": agent_id, "to_number": numbers[0]}
        return {"agent_id": agent_id, "to_numbers": list(numbers)}

    @property
    def token(self) -> str | None:
        """The preview's confirmation token, if it was shown one (token mode)."""
        if not isinstance(self.shown, types.CallToolResult) or status_of(self.shown) != "needs_confirmation":
            return None
        content = self.shown.structured_content
        assert content is not None
        token = (content.get("preview") or content)["confirmation_token"]
        assert isinstance(token, str)
        return token

    @property
    def asked(self) -> types.InputRequiredResult | None:
        """The question put to the person, if one was (elicit mode)."""
        return self.shown if isinstance(self.shown, types.InputRequiredResult) else None


def draw_plan(seed: int, mode: Mode) -> list[Flow]:
    """The flows of one seed: which tool, which numbers, which process, how many confirmations and when."""
    rng = random.Random(seed)
    flows = []
    for index in range(FLOWS):
        batch = rng.random() < 0.35
        if not batch:
            numbers: tuple[str, ...] = (rng.choice(POOL),)
        elif rng.random() < 0.25:
            numbers = tuple(rng.choices(POOL, k=rng.randint(2, 4)))  # maybe a number twice in one batch
        else:
            numbers = tuple(rng.sample(POOL, k=rng.randint(2, 4)))
        shown_on = rng.randrange(2)
        waves = []
        for wave_index in range(rng.choice((1, 1, 2, 3))):
            copies = rng.choice((1, 1, 2, 3))
            if mode == "token":
                # The first confirmation of a flow carries its own arguments, so the replays at the end are replays.
                wave = tuple(
                    Send(
                        rng.randrange(2),
                        rng.choice([n for n in POOL if n != numbers[-1]])
                        if (wave_index, copy) != (0, 0) and rng.random() < 0.1
                        else None,
                    )
                    for copy in range(copies)
                )
            else:
                # A sealed round belongs to the process that asked; now and then a host carries it to the other one.
                wave = tuple(
                    Send(1 - shown_on if (wave_index, copy) != (0, 0) and rng.random() < 0.1 else shown_on)
                    for copy in range(copies)
                )
            waves.append(wave)
        flows.append(Flow(
            index=index, tool="dispatch_calls" if batch else "dispatch_call", numbers=numbers, shown_on=shown_on,
            waves=tuple(waves), replay_on=rng.randrange(2) if mode == "token" else shown_on, stagger=rng.randrange(30),
            says_yes=mode == "token" or rng.random() < 0.85,
        ))  # fmt: skip
    return flows


async def run_flow(flow: Flow, clients: list[Client], agent_id: str) -> None:
    """Show the consent, then send each wave of confirmations at once, wave after wave."""
    for _ in range(flow.stagger):
        await anyio.sleep(0)
    args = flow.arguments(agent_id)
    shown_by = clients[flow.shown_on]
    flow.shown = await ask(shown_by, flow.tool, args)
    for wave in flow.waves:
        async with anyio.create_task_group() as group:
            for send in wave:
                group.start_soon(send_one, flow, send, clients, agent_id)


async def send_one(flow: Flow, send: Send, clients: list[Client], agent_id: str, *, replay: bool = False) -> None:
    """One confirmation by token, or one copy of the answering round; its result kept with the flow."""
    client = clients[send.process]
    if flow.token is not None:
        args = flow.arguments(agent_id, send.other_number) | {"confirmation_token": flow.token}
        result = await client.call_tool(flow.tool, args)
    elif flow.asked is not None:
        yes = {"content": {"confirm": True}} if flow.says_yes else {"content": None, "action": "decline"}
        if send.process != flow.shown_on:
            # The other process never minted this round: it refuses it as a protocol error, before any tool runs.
            with pytest.raises(MCPError) as refused:
                await answer(client, flow.tool, flow.arguments(agent_id), flow.asked, **yes)
            assert refused.value.code == INVALID_PARAMS, refused.value
            return
        result = await answer(client, flow.tool, flow.arguments(agent_id), flow.asked, **yes)
    else:
        return  # refused when shown: nothing to confirm
    kept = flow.replayed if replay else flow.other_arguments if send.other_number else flow.confirmed
    kept.append(result)


def plan_text(flows: list[Flow]) -> str:
    return "\n".join(
        f"{f.index}: {f.tool} {list(f.numbers)} shown on {f.shown_on}, waves "
        f"{[[(s.process, s.other_number) for s in w] for w in f.waves]}, yes={f.says_yes}"
        for f in flows
    )


@pytest.mark.parametrize(
    ("mode", "era", "seed"),
    # Tokens work alike in both protocol eras: half the seeds each. Questions are answered by 2026-07-28 rounds.
    [
        pytest.param("token", era, seed, id=f"token-{era}-seed{seed}")
        for era, seed in zip(ERAS * len(TOKEN_SEEDS), TOKEN_SEEDS, strict=False)
    ]
    + [pytest.param("elicit", "auto", seed, id=f"elicit-2026-07-28-seed{seed}") for seed in ELICIT_SEEDS],
)
async def test_random_interleavings_across_two_processes_keep_every_dispatch_rule(
    tmp_path: Path, place: LedgerPlace, mode: Mode, era: str, seed: int
) -> None:
    flows = draw_plan(seed, mode)
    print(f"seed {seed}, {mode} mode, {era} era; plan:\n{plan_text(flows)}")  # shown with a failure
    state = place / "state"
    async with sandbox_on_a_socket() as shared:
        env = shared.env(
            tmp_path,
            state,
            confirm=mode,
            redial_cooldown_minutes=COOLDOWN_MINUTES,
            max_calls_per_day=CAP,
            max_credits_per_day=1_000_000,
        )
        server = console_server(env, tmp_path)
        async with running(server, server, mode=era, elicitation_callback=Person()) as clients:
            with anyio.fail_after(PROCESS_SECONDS):
                async with anyio.create_task_group() as group:
                    for flow in flows:
                        group.start_soon(run_flow, flow, clients, shared.agent_id)
                after_flows = shared.posts()
                # Every consent used once more, one at a time: nothing new may be dialed.
                for flow in flows:
                    await send_one(flow, Send(flow.replay_on), clients, shared.agent_id, replay=True)
    assert shared.posts() == after_flows, f"seed {seed}: a replay dialed"
    check_each_flow(flows, seed)
    check_invariants(shared, LedgerFile.read(state), flows, mode, seed)


def check_each_flow(flows: list[Flow], seed: int) -> None:
    """What each flow was told: one call per destination however often it confirmed, and replays told the same."""
    for flow in flows:
        where = f"seed {seed}, flow {flow.index}"
        first = call_ids_reported(flow.confirmed)
        # One call per agreed destination: a dispatch_call reports at most one, a batch at most one per number,
        # and every answer about one destination names the same call.
        assert len(first) <= len(set(flow.numbers)), (where, [text_of(r) for r in flow.confirmed])
        by_position: dict[int, set[str]] = {}
        for result in flow.confirmed + flow.replayed:
            if flow.tool == "dispatch_calls" and result.structured_content is not None:
                for position, destination in enumerate(result.structured_content["destinations"]):
                    if destination["status"] == "dialed":
                        by_position.setdefault(position, set()).add(destination["call_id"])
        assert all(len(ids) == 1 for ids in by_position.values()), (where, by_position)
        assert len(set().union(*by_position.values())) == len(by_position), (where, by_position)
        for result in flow.confirmed:
            if flow.tool == "dispatch_calls":
                assert not result.is_error, (where, text_of(result))  # a batch's yes reports each destination
            if status_of(result) == "error":
                assert (
                    "- cooldown:" in text_of(result)
                    or "- daily_calls:" in text_of(result)
                    or "already decided: refused" in text_of(result)
                ), (where, text_of(result))
        # Other arguments dial nothing of their own: refused, or told what the consent's own yes did.
        assert call_ids_reported(flow.other_arguments) <= first, (where, [text_of(r) for r in flow.other_arguments])
        # Sent again later, a token or an answered round is told what its consent's first use did, and dials nothing.
        assert call_ids_reported(flow.replayed) == first, (where, [text_of(r) for r in flow.replayed])


def check_invariants(shared: SharedSandbox, ledger: LedgerFile, flows: list[Flow], mode: Mode, seed: int) -> None:
    """The rules held, and the ledger, the audit trail and the sandbox's request log tell one story."""
    posted = shared.posted_numbers()
    where = f"seed {seed}: posted {posted}"
    # No number dialed twice within its cooldown (the whole test runs inside it), and the cap never exceeded.
    assert [n for n, times in Counter(posted).items() if times > 1] == [], where
    assert len(posted) <= CAP, where
    assert shared.sandbox.dispatched == len(posted), where

    intents = ledger.intents
    consents = {c["consent_id"]: c for c in ledger.consents}
    claimed = [i for i in intents if i["state"] != "refused"]
    assert [i["intent_id"] for i in intents if i["state"] == "dialing"] == [], where
    # No fault was injected: every claim's POST was answered, so each claim is dialed.
    assert {i["state"] for i in claimed} <= {"dialed"}, where
    # Every POST is exactly one dialed intent, and every dialed intent is exactly one call the sandbox created.
    call_ids = [i["call_id"] for i in claimed]
    assert len(claimed) == len(posted), where
    assert len(set(call_ids)) == len(call_ids) and set(call_ids) == shared.created_call_ids(), where
    assert sorted(i["to_number"] for i in claimed) == sorted(posted), where
    # Every call the sandbox created was reported to the assistant by the confirmation that placed it.
    reported = set().union(*(call_ids_reported(f.confirmed + f.other_arguments + f.replayed) for f in flows))
    assert reported == shared.created_call_ids(), where

    # Every dial belongs to exactly one consent that was used with a yes, at a position it showed as "will be called".
    slots = Counter((i["consent_id"], i["position"]) for i in intents)
    assert [slot for slot, times in slots.items() if times > 1] == [], where
    yes = {"token"} if mode == "token" else {"accept"}
    for intent in intents:
        consent = consents.get(intent["consent_id"])
        assert consent is not None, (where, intent)
        assert consent["state"] == "used" and consent["answer"] in yes, (where, intent, consent)
        shown = consent["destinations"][intent["position"]]
        assert shown["dial"] is True and shown["to_number"] == intent["to_number"], (where, intent, shown)
    # Nothing agreed was refused without a rule: each number a used yes agreed to was dialed, or the cap was reached.
    agreed = {
        d["to_number"]
        for c in consents.values()
        if c["state"] == "used" and c["answer"] in yes
        for d in c["destinations"]
        if d["dial"]
    }
    assert len(posted) == min(CAP, len(agreed)), (where, sorted(agreed))

    # The audit trail: one preview or question per consent, one answer per used question, one dial per claim
    # (the same numbers the sandbox was sent), one outcome per finished claim.
    shown_kind = "preview" if mode == "token" else "question"
    assert Counter(e["detail"]["consent"] for e in ledger.of_kind(shown_kind)) == Counter(list(consents)), where
    answered = Counter(e["detail"]["consent"] for e in ledger.of_kind("answer"))
    used = Counter(c for c, row in consents.items() if row["state"] == "used")
    assert answered == (Counter() if mode == "token" else used), where
    dials = ledger.of_kind("dial")
    assert sorted(e["intent_id"] for e in dials) == sorted(i["intent_id"] for i in claimed), where
    assert sorted(e["to_number"] for e in dials) == sorted(posted), where
    outcomes = ledger.of_kind("outcome")
    assert sorted(e["intent_id"] for e in outcomes) == sorted(i["intent_id"] for i in claimed), where
    # Each consent shown to the assistant is one the test was shown: a token per preview, questions shared at most.
    if mode == "token":
        assert len(consents) == sum(1 for f in flows if f.token is not None), where
    else:
        assert len(consents) <= sum(1 for f in flows if f.asked is not None), where
