"""Start-up refuses a policy it cannot enforce: unknown or malformed settings, unattended without caps, a mismatch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from outboundcalls_mcp.server.cli import _announce
from outboundcalls_mcp.server.dispatch_setup import keep_policy_lease
from outboundcalls_mcp.server.do_not_call import DoNotCallFileError
from outboundcalls_mcp.server.ledger import PolicyMismatchError
from outboundcalls_mcp.server.ledger_sqlite import SqliteLedger
from outboundcalls_mcp.server.policy import DispatchPolicy, PolicyError
from outboundcalls_mcp.server.settings import SettingsError, load_settings
from outboundcalls_mcp.server.startup import build_policy, check_startup, find_startup_error
from tests.harness import make_rig, make_settings

SANDBOX_KEY = "oc_live_sandbox"


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, serving by default, with a clean environment plus `env`."""
    script = shutil.which("outboundcalls-mcp", path=str(Path(sys.executable).parent))
    assert script is not None
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "OUTBOUNDCALLS_STATE_DIR": str(tmp_path / "state"),
    }
    return subprocess.run(
        [script, *args], env=base | env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
    )


def refused_to_start(done: subprocess.CompletedProcess[str], *names: str) -> None:
    """Exit status 2, every name on stderr in one clean message, nothing on stdout (it belongs to the protocol)."""
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("outboundcalls-mcp: configuration error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    for name in names:
        assert name in done.stderr, done.stderr


def test_none_mode_without_both_caps_refuses_to_start_naming_them(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as neither:
        load_settings({"OUTBOUNDCALLS_CONFIRM": "none"})
    assert "OUTBOUNDCALLS_MAX_CALLS_PER_DAY and OUTBOUNDCALLS_MAX_CREDITS_PER_DAY" in str(neither.value)
    with pytest.raises(SettingsError) as one:
        load_settings({"OUTBOUNDCALLS_CONFIRM": "none", "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": "50"})
    assert "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY" in str(one.value) and "MAX_CALLS_PER_DAY" not in str(one.value)
    settings = load_settings(
        {
            "OUTBOUNDCALLS_CONFIRM": "none",
            "OUTBOUNDCALLS_MAX_CALLS_PER_DAY": "50",
            "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY": "5000",
        }
    )
    assert settings.confirm == "none"


def test_the_console_script_refuses_none_mode_without_caps(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "--sandbox", OUTBOUNDCALLS_CONFIRM="none", OUTBOUNDCALLS_MAX_CALLS_PER_DAY="10")
    refused_to_start(done, "OUTBOUNDCALLS_CONFIRM=none", "OUTBOUNDCALLS_MAX_CREDITS_PER_DAY")


def test_none_mode_is_announced_on_stderr_with_its_caps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _announce(make_settings(tmp_path, confirm="none", max_calls_per_day=12, max_credits_per_day=800))
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        "CONFIRM=none" in err
        and "without asking anyone" in err
        and "12 calls" in err
        and "800 estimated credits" in err
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OUTBOUNDCALLS_MAX_CALS_PER_DAY", "5"),  # misspelt: silently ignored it would fail open
        ("OUTBOUNDCALLS_ALLOWED_NUMBER_TYPES", "MOBILE,PREMIUM"),
        ("OUTBOUNDCALLS_ALLOWED_COUNTRIES", "USA"),
        ("OUTBOUNDCALLS_MAX_CALLS_PER_DAY", "fifty"),
        ("OUTBOUNDCALLS_MAX_CALLS_PER_DAY", "0"),
        ("OUTBOUNDCALLS_MAX_CREDITS_PER_DAY", "-1"),
        ("OUTBOUNDCALLS_MAX_CREDITS_PER_MINUTE", "lots"),
        ("OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES", "-5"),
        ("OUTBOUNDCALLS_CONFIRM", "ask"),
    ],
)
def test_unknown_and_malformed_policy_settings_are_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value})
    assert name in str(raised.value)


@pytest.mark.parametrize("hours", ["22:00-06:00", "9-5", "08:00-25:00", "21:00-08:00", "08:00"])
def test_calling_hours_that_do_not_parse_stop_the_server_naming_the_setting(tmp_path: Path, hours: str) -> None:
    with pytest.raises(PolicyError) as raised:
        make_rig(tmp_path, calling_hours=hours)
    assert raised.value.setting == "OUTBOUNDCALLS_CALLING_HOURS" and hours in str(raised.value)


def test_a_missing_do_not_call_file_stops_the_server_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-list.txt"
    with pytest.raises(DoNotCallFileError) as raised:
        make_rig(tmp_path, do_not_call_file=missing)
    assert str(missing) in str(raised.value) and "OUTBOUNDCALLS_DO_NOT_CALL_FILE" in str(raised.value)


def test_a_do_not_call_line_that_is_no_number_stops_the_server_naming_the_line(tmp_path: Path) -> None:
    listed = tmp_path / "dnc.txt"
    listed.write_text("+1 415 555 0134\n# comment\ncall me maybe\n")
    with pytest.raises(DoNotCallFileError) as raised:
        make_rig(tmp_path, do_not_call_file=listed)
    assert raised.value.line == 3 and f"{listed}:3" in str(raised.value)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"OUTBOUNDCALLS_CALLING_HOURS": "22:00-06:00"}, ("OUTBOUNDCALLS_CALLING_HOURS", "22:00-06:00")),
        (
            {"OUTBOUNDCALLS_DO_NOT_CALL_FILE": "/nonexistent/dnc.txt"},
            ("OUTBOUNDCALLS_DO_NOT_CALL_FILE", "/nonexistent/dnc.txt"),
        ),
        ({"OUTBOUNDCALLS_MAX_CREDITS_PER_MINUTE": "0"}, ("OUTBOUNDCALLS_MAX_CREDITS_PER_MINUTE",)),
    ],
)
def test_the_console_script_stops_on_a_bad_policy_with_one_clean_line(
    tmp_path: Path, env: dict[str, str], names: tuple[str, ...]
) -> None:
    refused_to_start(run_cli(tmp_path, "--sandbox", **env), *names)


def test_the_console_script_stops_when_a_live_process_on_its_state_directory_has_another_policy(tmp_path: Path) -> None:
    state = tmp_path / "state"
    running = DispatchPolicy(max_calls_per_day=50)

    async def hold_then_start_another() -> subprocess.CompletedProcess[str]:
        ledger = SqliteLedger(state)  # a server running now (the console script joins at real time)
        await ledger.ensure_policy_fingerprint(running.fingerprint(), running.settings_summary(), now=datetime.now(UTC))
        try:
            return await anyio.to_thread.run_sync(
                lambda: run_cli(tmp_path, OUTBOUNDCALLS_API_KEY=SANDBOX_KEY, OUTBOUNDCALLS_MAX_CALLS_PER_DAY="20")
            )
        finally:
            await ledger.aclose()

    done = anyio.run(hold_then_start_another)
    refused_to_start(done, "OUTBOUNDCALLS_MAX_CALLS_PER_DAY: 50 there, 20 here", str(state))
    assert SANDBOX_KEY not in done.stderr


def test_the_start_up_check_accepts_the_same_policy_and_leaves_no_lease(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    check_startup(settings)
    check_startup(make_settings(tmp_path, max_calls_per_day=9))  # the first check left: no live holder remains
    with pytest.raises(PolicyError):
        check_startup(make_settings(tmp_path, calling_hours="nine to five"))


def test_a_start_up_error_is_found_inside_the_groups_a_lifespan_wraps_it_in() -> None:
    mismatch = PolicyMismatchError("/state", {"OUTBOUNDCALLS_MAX_CALLS_PER_DAY": ("50", "20")}, datetime.now(UTC))
    wrapped = ExceptionGroup("outer", [ValueError("other"), ExceptionGroup("inner", [mismatch])])
    try:
        raise RuntimeError("lifespan failed") from wrapped
    except RuntimeError as exc:
        assert find_startup_error(exc) is mismatch
    assert find_startup_error(RuntimeError("unrelated")) is None


def test_build_policy_reads_every_policy_setting(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        allowed_countries="US,CA",
        allowed_number_types="MOBILE",
        max_credits_per_minute=30,
        calling_hours="09:00-17:30",
        max_calls_per_day=5,
        max_credits_per_day=900,
        redial_cooldown_minutes=15,
    )
    summary = build_policy(settings).settings_summary()
    assert summary["OUTBOUNDCALLS_ALLOWED_COUNTRIES"] == "CA,US"
    assert summary["OUTBOUNDCALLS_ALLOWED_NUMBER_TYPES"] == "MOBILE"
    assert (summary["OUTBOUNDCALLS_CALLING_HOURS"], summary["OUTBOUNDCALLS_MAX_CALLS_PER_DAY"]) == ("09:00-17:30", "5")
    assert summary["OUTBOUNDCALLS_REDIAL_COOLDOWN_MINUTES"] == "15"


@pytest.mark.anyio
async def test_a_running_server_renews_its_policy_lease(tmp_path: Path) -> None:
    t0 = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)
    policy, other = DispatchPolicy(), DispatchPolicy(max_calls_per_day=7)
    ledger = SqliteLedger(tmp_path)
    await ledger.ensure_policy_fingerprint(policy.fingerprint(), policy.settings_summary(), now=t0)
    beats: list[datetime] = []
    clock = iter([t0 + timedelta(minutes=4), t0 + timedelta(minutes=8)])

    def now() -> datetime:
        beats.append(next(clock))
        return beats[-1]

    async def sleep(_: float) -> None:
        if len(beats) == 2:
            await anyio.sleep_forever()  # stands for the next minute; the test cancels here

    with anyio.move_on_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: keep_policy_lease(ledger, now, sleep=sleep))
            while len(beats) < 2:
                await anyio.sleep(0)
            tg.cancel_scope.cancel()
    newcomer = SqliteLedger(tmp_path)
    with pytest.raises(PolicyMismatchError):  # without the beat at +8 min the lease would have lapsed at +5
        await newcomer.ensure_policy_fingerprint(
            other.fingerprint(), other.settings_summary(), now=t0 + timedelta(minutes=9)
        )
    await newcomer.aclose()
    await ledger.aclose()
