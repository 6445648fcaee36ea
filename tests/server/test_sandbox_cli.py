"""`sandbox status` shows the account; `sandbox reset` asks, refuses under a live server, empties all three files."""

from __future__ import annotations

import io
import sqlite3
import subprocess
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from outboundcalls.calls import CallDetail
from outboundcalls.sandbox import DEFAULT_CREDITS, ManualClock, Sandbox
from outboundcalls_mcp.server.call_events import CallEndStore
from outboundcalls_mcp.server.cli import main
from outboundcalls_mcp.server.ledger_sqlite import LEDGER_FILENAME, POLICY_LEASE, SqliteLedger, read_audit, to_db
from outboundcalls_mcp.server.sandbox_cli import LATEST_CALLS_SHOWN, print_status, run_reset
from outboundcalls_mcp.server.sandbox_mode import sandbox_account_path
from outboundcalls_mcp.server.sandbox_reset import reset_sandbox
from outboundcalls_mcp.server.settings import Settings
from tests.harness import console_script, make_settings

NOW = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


def sandbox_dir(tmp_path: Path) -> Path:
    return tmp_path / "sandbox"


def dial_on_account(tmp_path: Path, count: int) -> list[str]:
    """Dial `count` calls on the state directory's sandbox account; their ids, oldest first."""

    async def dial() -> list[str]:
        sandbox = Sandbox.persistent(sandbox_account_path(sandbox_dir(tmp_path)), clock=ManualClock(NOW))
        try:
            async with sandbox.http_client() as http:
                ids = []
                for index in range(count):
                    body = {"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": f"+1415555{1200 + index:04d}"}
                    ids.append((await http.post("/calls", json=body)).json()["id"])
                return ids
        finally:
            sandbox.close()

    return anyio.run(dial)


def fill_ledger(tmp_path: Path, *, lease_seen_at: datetime) -> None:
    """An audit entry, a stored call end, and a policy lease renewed at `lease_seen_at`."""

    async def fill() -> None:
        ledger = SqliteLedger(sandbox_dir(tmp_path))
        try:
            await ledger.append_audit("preview", at=lease_seen_at, to_number="+14155551200")
        finally:
            await ledger.aclose()
        ended = CallDetail.model_validate({"id": "clxended", "status": "completed"})
        await CallEndStore(lambda: sandbox_dir(tmp_path)).record(ended, event="call.ended", received_at=lease_seen_at)

    anyio.run(fill)
    # The lease a server holds while it runs, and leaves behind if it dies (a clean exit deletes it).
    with closing(sqlite3.connect(sandbox_dir(tmp_path) / LEDGER_FILENAME)) as conn, conn:
        conn.execute(
            "INSERT INTO policy_holders (holder_id, fingerprint, summary, started_at, seen_at) "
            "VALUES ('server', 'fingerprint', '{}', ?, ?)",
            (to_db(lease_seen_at), to_db(lease_seen_at)),
        )
    conn.close()


def audit(tmp_path: Path) -> list[str]:
    return [entry.kind for entry in anyio.run(read_audit, sandbox_dir(tmp_path))]


def rows(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as conn, conn:
        count: int = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    conn.close()
    return count


def status_text(settings: Settings) -> str:
    out = io.StringIO()
    assert print_status(settings, out=out, now=NOW) == 0
    return out.getvalue()


def reset(settings: Settings, *, yes: bool = False, answer: str | None = None) -> tuple[int, str, str, list[str]]:
    """run_reset with a scripted terminal; exit status, stdout, stderr and the prompts shown."""
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        assert answer is not None
        return answer

    out, err = io.StringIO(), io.StringIO()
    code = run_reset(settings, yes=yes, ask=None if answer is None else ask, out=out, err=err, now=NOW)
    return code, out.getvalue(), err.getvalue(), asked


def test_status_before_any_sandbox_ran_says_where_the_account_will_be(tmp_path: Path) -> None:
    text = status_text(make_settings(tmp_path))
    assert text.startswith("No sandbox account yet") and str(sandbox_account_path(sandbox_dir(tmp_path))) in text
    assert not sandbox_account_path(sandbox_dir(tmp_path)).exists()


def test_status_shows_the_path_the_balance_and_the_latest_calls_one_a_line(tmp_path: Path) -> None:
    ids = dial_on_account(tmp_path, LATEST_CALLS_SHOWN + 2)
    lines = status_text(make_settings(tmp_path)).splitlines()
    assert lines[0] == f"Sandbox account: {sandbox_account_path(sandbox_dir(tmp_path))}"
    assert lines[1].startswith("Balance: ") and lines[1].endswith(" credits (simulated)")
    assert lines[2] == f"Calls dialed: {len(ids)} (newest first)"
    shown = lines[3 : 3 + LATEST_CALLS_SHOWN]
    assert [line.split()[0] for line in shown] == list(reversed(ids))[:LATEST_CALLS_SHOWN]
    assert all(len(line.split()) == 3 and line.split()[1].startswith("+1415555") for line in shown)
    assert lines[3 + LATEST_CALLS_SHOWN] == "  ... and 2 more"


def test_reset_empties_the_account_the_ledger_and_the_call_ends_and_keeps_the_audit_append_only(tmp_path: Path) -> None:
    dial_on_account(tmp_path, 2)
    fill_ledger(tmp_path, lease_seen_at=NOW - POLICY_LEASE - timedelta(seconds=1))  # that server is long gone
    settings = make_settings(tmp_path)
    code, said, errors, asked = reset(settings, yes=True)
    assert (code, errors, asked) == (0, "", [])
    assert said.startswith(f"The sandbox in {sandbox_dir(tmp_path)} starts afresh")
    fresh = status_text(settings)
    assert "Calls dialed: 0" in fresh and f"Balance: {DEFAULT_CREDITS:.2f} credits" in fresh
    assert audit(tmp_path) == []
    assert rows(sandbox_dir(tmp_path) / LEDGER_FILENAME, "policy_holders") == 0
    assert rows(sandbox_dir(tmp_path) / "call_ends.sqlite3", "call_ends") == 0
    fill_ledger(tmp_path, lease_seen_at=NOW)
    with (
        closing(sqlite3.connect(sandbox_dir(tmp_path) / LEDGER_FILENAME)) as conn,
        conn,
        pytest.raises(sqlite3.IntegrityError),
    ):
        conn.execute("DELETE FROM audit")
    conn.close()


def test_reset_is_refused_while_a_live_server_holds_the_ledger_and_changes_nothing(tmp_path: Path) -> None:
    ids = dial_on_account(tmp_path, 1)
    fill_ledger(tmp_path, lease_seen_at=NOW - POLICY_LEASE + timedelta(seconds=1))
    before = status_text(make_settings(tmp_path))
    code, said, errors, asked = reset(make_settings(tmp_path), answer="y")
    assert (code, said, asked) == (1, "", [])  # refused before asking anything
    assert errors.startswith("outboundcalls-mcp: a sandbox server still uses") and errors.count("\n") == 1
    assert "stop it" in errors and "outboundcalls-mcp sandbox reset" in errors
    assert status_text(make_settings(tmp_path)) == before and ids[0] in before
    assert "In use by a running server (last seen" in before
    assert audit(tmp_path) == ["preview"]


def test_the_reset_itself_checks_the_lease_under_the_ledgers_lock(tmp_path: Path) -> None:
    from outboundcalls_mcp.server.sandbox_reset import SandboxInUseError

    dial_on_account(tmp_path, 1)
    fill_ledger(tmp_path, lease_seen_at=NOW)
    account = sandbox_account_path(sandbox_dir(tmp_path))
    with pytest.raises(SandboxInUseError):
        anyio.run(lambda: reset_sandbox(sandbox_dir(tmp_path), account=account, now=NOW))
    assert audit(tmp_path) == ["preview"] and "Calls dialed: 1" in status_text(make_settings(tmp_path))


def test_a_reset_answered_no_changes_nothing(tmp_path: Path) -> None:
    dial_on_account(tmp_path, 1)
    fill_ledger(tmp_path, lease_seen_at=NOW - POLICY_LEASE - timedelta(seconds=1))
    before = status_text(make_settings(tmp_path))
    code, said, errors, asked = reset(make_settings(tmp_path), answer="n")
    assert (code, said, errors) == (1, "Nothing was reset.\n", "")
    assert len(asked) == 1 and str(sandbox_dir(tmp_path)) in asked[0] and asked[0].endswith("[y/N] ")
    assert status_text(make_settings(tmp_path)) == before and audit(tmp_path) == ["preview"]


@pytest.mark.parametrize("answer", ["", "maybe", "no"])
def test_anything_but_yes_is_no(tmp_path: Path, answer: str) -> None:
    dial_on_account(tmp_path, 1)
    assert reset(make_settings(tmp_path), answer=answer)[0] == 1
    assert "Calls dialed: 1" in status_text(make_settings(tmp_path))


def test_a_reset_answered_yes_starts_afresh(tmp_path: Path) -> None:
    dial_on_account(tmp_path, 1)
    assert reset(make_settings(tmp_path), answer="y")[0] == 0
    assert "Calls dialed: 0" in status_text(make_settings(tmp_path))


def test_without_a_terminal_or_yes_reset_refuses_naming_the_flag(tmp_path: Path) -> None:
    dial_on_account(tmp_path, 1)
    code, said, errors, _ = reset(make_settings(tmp_path))
    assert (code, said) == (2, "") and "--yes" in errors and errors.count("\n") == 1
    assert "Calls dialed: 1" in status_text(make_settings(tmp_path))


def test_a_reset_never_touches_a_state_directory_that_is_not_the_sandboxs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a sandbox state directory"):
        anyio.run(lambda: reset_sandbox(tmp_path, account=tmp_path / "account.sqlite3", now=NOW))


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(tmp_path), "OUTBOUNDCALLS_STATE_DIR": str(tmp_path)}
    return subprocess.run(
        [console_script(), *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def test_the_console_script_resets_with_yes_and_refuses_to_ask_without_a_terminal(tmp_path: Path) -> None:
    dial_on_account(tmp_path, 1)
    asked = _run(tmp_path, "sandbox", "reset")
    assert asked.returncode == 2 and "--yes" in asked.stderr and asked.stdout == ""
    done = _run(tmp_path, "sandbox", "reset", "--yes")
    assert done.returncode == 0 and "starts afresh" in done.stdout
    shown = _run(tmp_path, "sandbox", "status")
    assert shown.returncode == 0 and "Calls dialed: 0" in shown.stdout


@pytest.mark.parametrize(("argv", "fix"), [(["sandbox"], "sandbox status"), (["audit", "reset"], "sandbox reset")])
def test_a_misplaced_or_missing_sandbox_action_is_one_line_naming_the_command_to_run(
    argv: list[str], fix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    errors = capsys.readouterr().err
    assert errors.count("\n") == 1 and f"`outboundcalls-mcp {fix}`" in errors


def test_a_sandbox_account_that_cannot_be_read_stops_the_server_with_one_line_naming_it(tmp_path: Path) -> None:
    account = sandbox_account_path(sandbox_dir(tmp_path))
    account.parent.mkdir(parents=True)
    account.write_text("not a database: something else wrote here\n" * 4)
    done = _run(tmp_path, "--sandbox")
    assert done.returncode == 2 and done.stdout == ""
    error = done.stderr.splitlines()[-1]
    assert error.startswith("outboundcalls-mcp: configuration error: the sandbox account") and str(account) in error
    assert "Traceback" not in done.stderr


def test_status_and_reset_on_an_unreadable_account_say_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = sandbox_account_path(sandbox_dir(tmp_path))
    account.parent.mkdir(parents=True)
    account.write_text("not a database: something else wrote here\n" * 4)
    assert print_status(make_settings(tmp_path), now=NOW) == 1
    code, said, errors, _ = reset(make_settings(tmp_path), yes=True)
    for error in (capsys.readouterr().err, errors):
        assert error.count("\n") == 1 and "cannot be read" in error and "move the directory aside" in error
    assert (code, said) == (1, "")


def test_a_reset_with_a_shared_database_refuses_and_names_the_schema_without_its_password(tmp_path: Path) -> None:
    import io

    from pydantic import SecretStr

    from outboundcalls_mcp.server.sandbox_cli import run_reset
    from outboundcalls_mcp.server.settings import Settings

    url = SecretStr("postgresql://u:pw_secret_value@db:5432/x")
    settings = Settings(sandbox=True, state_dir=tmp_path, database_url=url)
    err = io.StringIO()
    assert run_reset(settings, yes=True, ask=None, err=err) == 2
    assert "outboundcalls_sandbox" in err.getvalue() and "pw_secret_value" not in err.getvalue()
