"""A persistent sandbox account: one SQLite file that sandboxes and processes interleave on, reopen and reset."""

from __future__ import annotations

import stat
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from outboundcalls.sandbox import DEFAULT_CREDITS, ManualClock, Sandbox
from outboundcalls.sandbox.clock import DEFAULT_START

pytestmark = pytest.mark.anyio

US = "+14155551212"


@contextmanager
def opened(path: Path, **options: Any) -> Iterator[Sandbox]:
    """A persistent sandbox on a manual base clock, closed afterwards."""
    sandbox = Sandbox.persistent(path, clock=options.pop("clock", ManualClock()), **options)
    try:
        yield sandbox
    finally:
        sandbox.close()


@asynccontextmanager
async def clients(*sandboxes: Sandbox) -> AsyncIterator[list[httpx2.AsyncClient]]:
    """An API client on each sandbox."""
    opened_clients = [sandbox.http_client() for sandbox in sandboxes]
    try:
        yield opened_clients
    finally:
        for client in opened_clients:
            await client.aclose()


async def dial(http: httpx2.AsyncClient, sandbox: Sandbox, to_number: str = US) -> str:
    """POST /calls through the seeded deployed agent; the new call's id."""
    response = await http.post("/calls", json={"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": to_number})
    assert response.status_code == 201, response.text
    call_id = response.json()["id"]
    assert isinstance(call_id, str)
    return call_id


async def listed_ids(http: httpx2.AsyncClient) -> list[str]:
    """The ids GET /calls lists, newest first."""
    return [call["id"] for call in (await http.get("/calls", params={"limit": 200})).json()["calls"]]


def test_the_account_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sandbox" / "account.sqlite3"
    with opened(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_in_memory_sandbox_has_no_file_and_keeps_its_seeded_ids(tmp_path: Path) -> None:
    memory, again = Sandbox(), Sandbox()
    assert memory.path is None and memory.seed_ids == again.seed_ids
    with opened(tmp_path / "account.sqlite3") as stored:
        assert stored.seed_ids == memory.seed_ids  # an agent id stays the same in every sandbox


async def test_two_sandboxes_on_one_file_see_each_others_calls_and_contacts(tmp_path: Path) -> None:
    path = tmp_path / "account.sqlite3"
    with opened(path) as one, opened(path) as two:
        async with clients(one, two) as (http_one, http_two):
            first = await dial(http_one, one)
            second = await dial(http_two, two, "+14155551213")
            third = await dial(http_one, one, "+14155551214")
            new_contact = {"contactListId": two.seed_ids.contact_list_id, "phone": US}
            contact = await http_two.post("/contacts", json=new_contact)
            assert contact.status_code == 201
            assert (await listed_ids(http_one))[:3] == (await listed_ids(http_two))[:3] == [third, second, first]
            found = await http_one.get(f"/calls/{second}")
            assert found.status_code == 200 and found.json()["toNumber"] == "+14155551213"
            contacts = (await http_one.get("/contacts", params={"limit": 500})).json()["contacts"]
            assert contacts[-1]["id"] == contact.json()["id"]
        assert one.dispatched == two.dispatched == 3


async def test_sandboxes_dialing_at_once_on_one_file_never_hand_out_the_same_id(tmp_path: Path) -> None:
    path = tmp_path / "account.sqlite3"
    ids: list[str] = []
    with opened(path) as one, opened(path) as two, opened(path) as three:
        sandboxes = (one, two, three)
        async with clients(*sandboxes) as https:

            async def dial_some(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
                for index in range(5):
                    ids.append(await dial(http, sandbox, f"+1415555{1300 + index:04d}"))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    for http, sandbox in zip(https, sandboxes, strict=True):
                        for _ in range(2):
                            group.start_soon(dial_some, http, sandbox)
            everyone_sees = [set(await listed_ids(http)) for http in https]
    assert len(ids) == len(set(ids)) == 30
    assert all(seen >= set(ids) for seen in everyone_sees)
    with opened(path) as later:
        assert later.dispatched == 30 and {call.id for call in later.dialed_calls()} == set(ids)


async def test_a_reopened_account_keeps_its_calls_contacts_balance_and_time(tmp_path: Path) -> None:
    path = tmp_path / "account.sqlite3"
    with opened(path) as first:
        async with first.http_client() as http:
            call_id = await dial(http, first)
            contact = await http.post("/contacts", json={"contactListId": first.seed_ids.contact_list_id, "phone": US})
        await first.advance(60)
        ended = first.call_json(call_id)
        balance, time = first.credits, first.clock.now()
    assert ended["status"] in ("completed", "voicemail") and ended["transcript"]
    assert balance < DEFAULT_CREDITS
    # A new process's base clock starts where this one's did: the account's time still continues.
    with opened(path, clock=ManualClock(DEFAULT_START)) as again:
        assert again.credits == balance and again.clock.now() >= time
        assert [call.id for call in again.dialed_calls()] == [call_id]
        async with again.http_client() as http:
            assert (await http.get(f"/calls/{call_id}")).json() == ended
            assert (await http.get("/contacts", params={"limit": 500})).json()["contacts"][-1] == contact.json()


async def test_time_moved_on_in_one_sandbox_ends_the_call_in_another(tmp_path: Path) -> None:
    path = tmp_path / "account.sqlite3"
    with opened(path) as dialer, opened(path) as waiter:
        async with clients(dialer, waiter) as (http_dialer, http_waiter):
            call_id = await dial(http_dialer, dialer)
            assert (await http_waiter.get(f"/calls/{call_id}")).json()["status"] == "queued"
            await dialer.advance(60)
            assert (await http_waiter.get(f"/calls/{call_id}")).json()["status"] in ("completed", "voicemail")
        assert waiter.clock.now() - DEFAULT_START >= timedelta(seconds=60)


async def test_a_request_that_fails_midway_leaves_the_account_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "account.sqlite3"
    with opened(path) as sandbox:
        fields = {"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": US}
        with pytest.raises(RuntimeError):
            async with sandbox.serving(read_only=False):
                sandbox.state.create_call(fields, sandbox.clock.now())
                raise RuntimeError("the request died after changing the account in memory")
        assert sandbox.dialed_calls() == [] and sandbox.dispatched == 0  # memory reloaded from the file
    with opened(path) as again:
        assert again.dialed_calls() == [] and again.dispatched == 0


CRASH_HOLDING_THE_WRITE_LOCK = """
import os, sys, anyio
from pathlib import Path
from outboundcalls.sandbox import ManualClock, Sandbox

async def main():
    sandbox = Sandbox.persistent(Path(sys.argv[1]), clock=ManualClock())
    async with sandbox.serving(read_only=False):
        sandbox.state.create_call({"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155551299"},
                                  sandbox.clock.now())
        print("holding", flush=True)
        os._exit(3)

anyio.run(main)
"""


async def test_a_process_that_dies_mid_request_neither_corrupts_nor_locks_the_account(tmp_path: Path) -> None:
    path = tmp_path / "account.sqlite3"
    with opened(path) as sandbox:
        async with sandbox.http_client() as http:
            kept = await dial(http, sandbox)
            with anyio.fail_after(60):
                done = await anyio.run_process(
                    [sys.executable, "-c", CRASH_HOLDING_THE_WRITE_LOCK, str(path)], check=False
                )
            assert (done.returncode, done.stdout) == (3, b"holding\n"), done.stderr
            after = await dial(http, sandbox, "+14155551213")  # the dead process's lock went with it
    with opened(path) as again:
        assert [call.id for call in again.dialed_calls()] == [after, kept] and again.dispatched == 2


async def test_a_reset_starts_afresh_for_every_sandbox_on_the_file_and_never_reuses_an_id(tmp_path: Path) -> None:
    path = tmp_path / "account.sqlite3"
    with opened(path) as one, opened(path) as two:
        async with one.http_client() as http_one:
            before = await dial(http_one, one)
            await one.advance(60)
            await two.reset()
            assert (await http_one.get(f"/calls/{before}")).status_code == 404
            assert one.dialed_calls() == [] and one.credits == DEFAULT_CREDITS and one.dispatched == 0
            after = await dial(http_one, one)
        assert after != before and one.seed_ids == two.seed_ids


def test_a_persistent_balance_is_not_set_by_hand(tmp_path: Path) -> None:
    with opened(tmp_path / "account.sqlite3") as sandbox, pytest.raises(TypeError):
        sandbox.credits = 5


def test_a_file_from_a_newer_version_is_refused_naming_it(tmp_path: Path) -> None:
    import sqlite3

    from outboundcalls.sandbox.store import SCHEMA_VERSION, AccountStoreError

    path = tmp_path / "account.sqlite3"
    with opened(path):
        pass
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    with pytest.raises(AccountStoreError, match="newer version"), opened(path):
        pass
