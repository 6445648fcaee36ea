"""The API key is a SecretStr from the environment or the bundle's sensitive config, and nothing ever shows it.

The whole fault matrix runs with a live-looking key, and everything it produces is scanned: tool
results, every log record at DEBUG (seen before any redaction), client exceptions with their
chains and tracebacks, the audit trail and the ledger file itself, and a crash report.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import string
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import httpx2
import pytest
from pydantic import SecretStr

from outboundcalls.client import OutboundCallsClient
from outboundcalls.errors import OutboundCallsError
from outboundcalls.retry import RetryPolicy
from outboundcalls.sandbox import SANDBOX_BASE_URL, Fault, ManualClock, Sandbox
from outboundcalls_mcp.server.app import build_server
from outboundcalls_mcp.server.cli import build_parser
from outboundcalls_mcp.server.ledger_sqlite import LEDGER_FILENAME, SqliteLedger
from outboundcalls_mcp.server.logs import StderrHandler
from outboundcalls_mcp.server.settings import Settings, load_settings
from outboundcalls_mcp.server.state_dir import resolve_state_dir
from tests.harness import NOON_NEW_YORK, make_settings
from tests.test_fault_matrix import FAULTS, TOOLS, Upstream, run_case

pytestmark = pytest.mark.anyio

KEY = "oc_live_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
ROOT = Path(__file__).resolve().parent.parent


def sandbox_with_key() -> Sandbox:
    """A sandbox that accepts only KEY."""
    return Sandbox(api_key=KEY, clock=ManualClock(datetime.fromisoformat(NOON_NEW_YORK)))


def test_the_command_line_has_no_way_to_pass_a_key() -> None:
    """Arguments show up in `ps` and shell history, so the key never is one."""
    options = [opt for action in build_parser()._actions for opt in action.option_strings]
    assert not [opt for opt in options if "key" in opt or "token" in opt or "secret" in opt]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--api-key", KEY])


def test_the_key_comes_from_the_environment_as_a_secret_that_hides_in_every_rendering() -> None:
    """load_settings reads OUTBOUNDCALLS_API_KEY into a SecretStr; repr, str and dumps show no key."""
    settings = load_settings({"OUTBOUNDCALLS_API_KEY": KEY})
    assert isinstance(settings.api_key, SecretStr)
    assert settings.api_key.get_secret_value() == KEY
    renderings = [repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())]
    assert not [text for text in renderings if KEY in text]


def test_the_bundle_marks_the_key_sensitive_and_passes_it_only_through_the_environment() -> None:
    """The host stores it in the OS keychain and hands it over as OUTBOUNDCALLS_API_KEY, never in args."""
    manifest = json.loads((ROOT / "manifest.json").read_text())
    assert manifest["user_config"]["api_key"]["sensitive"] is True
    config = manifest["server"]["mcp_config"]
    assert config["env"]["OUTBOUNDCALLS_API_KEY"] == "${user_config.api_key}"
    assert not [arg for arg in config["args"] if "api_key" in arg]


async def test_client_exceptions_under_every_fault_never_carry_the_key() -> None:
    """repr, str and the formatted chain of every client error, for every fault and method."""
    sandbox = sandbox_with_key()
    ids = sandbox.seed_ids

    async def no_wait(seconds: float) -> None:
        return None

    retry = RetryPolicy(sleep=no_wait)
    seen: list[str] = []
    async with OutboundCallsClient(KEY, base_url=SANDBOX_BASE_URL, transport=sandbox.transport(), retry=retry) as api:
        seen.append(repr(api))
        calls: list[Callable[[], Awaitable[object]]] = [
            api.get_account, api.list_calls, api.list_agents, api.list_contacts,
            lambda: api.get_call(ids.completed_call_id), lambda: api.get_agent(ids.deployed_agent_id),
            lambda: api.get_campaign(ids.campaign_id),
        ]  # fmt: skip
        for upstream in FAULTS:
            for method in calls:
                sandbox.faults.clear()
                sandbox.faults.add(Fault(times=None, **upstream.fault))
                with pytest.raises(OutboundCallsError) as raised:
                    await method()
                exc = raised.value
                seen += [repr(exc), str(exc), "".join(traceback.format_exception(exc))]
    assert len(seen) > 100
    assert not [text for text in seen if KEY in text]


@pytest.mark.parametrize("upstream", FAULTS, ids=[f.name for f in FAULTS])
async def test_the_fault_matrix_run_with_a_live_key_leaks_it_nowhere(
    tmp_path: Path, upstream: Upstream, log_lines: list[str]
) -> None:
    """Every tool under this fault: results, DEBUG logs, the audit trail and the ledger file stay clean."""
    produced: list[str] = []
    ledgers: list[Path] = []
    for index, tool in enumerate(TOOLS):
        state = tmp_path / str(index)
        out = await run_case(
            state, tool, upstream, "legacy", sandbox=sandbox_with_key(), api_key=KEY, log_level="DEBUG"
        )
        assert out.rig.sandbox.requests, "nothing reached the API"
        assert not [r for r in out.rig.sandbox.requests if r.status == 401 and upstream.name != "401"], "key refused"
        produced += [out.text, repr(out.result), repr(out.rig.settings)]
        ledger = SqliteLedger(resolve_state_dir(out.rig.settings))
        try:
            produced += [repr(entry) for entry in await ledger.recent_audit(limit=1000)]
        finally:
            await ledger.aclose()
        ledgers.append(resolve_state_dir(out.rig.settings) / LEDGER_FILENAME)
    assert [line for line in log_lines if line.startswith("DEBUG")], "DEBUG records were not captured"
    produced += log_lines
    assert not [text for text in produced if KEY in text]
    assert not [path for path in ledgers if path.exists() and KEY.encode() in path.read_bytes()]


class Exploding(httpx2.AsyncBaseTransport):
    """An upstream adapter failing with a message that holds the key: the worst case for a crash report."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        raise RuntimeError(f"adapter state dump: authorization=Bearer {KEY}")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_crash_report_is_logged_with_its_traceback_and_the_key_redacted(
    tmp_path: Path, mode: str, log_lines: list[str]
) -> None:
    """The SDK logs an unexpected tool exception with its traceback; the product's handler writes it scrubbed."""
    from mcp import Client

    settings: Settings = make_settings(tmp_path, api_key=KEY, log_level="DEBUG")
    server = build_server(settings, transport=Exploding())
    product = next(h for h in logging.getLogger().handlers if isinstance(h, StderrHandler))
    assert isinstance(product, logging.StreamHandler)
    written = io.StringIO()
    previous = product.setStream(written)
    assert previous is not None  # the stream it had: stderr
    try:
        async with Client(server, mode=mode) as client:
            result = await client.call_tool("get_balance", {})
    finally:
        product.setStream(previous)
    assert result.is_error
    assert [block.text for block in result.content if hasattr(block, "text")] == ["Error executing tool get_balance"]
    report = written.getvalue()
    assert "Traceback" in report and "RuntimeError: adapter state dump: authorization=Bearer ***" in report
    assert KEY not in report
    # The raw record did hold the key (this scan sees records before redaction): the filter did the work.
    assert any(KEY in line for line in log_lines)


DATABASE_PASSWORD = "pw_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
REQUEST_STATE_KEY = secrets.token_hex(32)


def test_the_database_password_and_the_request_state_key_hide_in_every_rendering_of_the_settings() -> None:
    url = f"postgresql://outbound:{DATABASE_PASSWORD}@db.example:5432/calls"
    settings = load_settings({"OUTBOUNDCALLS_DATABASE_URL": url, "OUTBOUNDCALLS_REQUEST_STATE_KEY": REQUEST_STATE_KEY})
    assert settings.database_url is not None and settings.database_url.get_secret_value() == url
    renderings = [repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())]
    assert not [text for text in renderings if DATABASE_PASSWORD in text or REQUEST_STATE_KEY in text]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OUTBOUNDCALLS_DATABASE_URL", f"mysql://root:{DATABASE_PASSWORD}@db/x"),
        ("OUTBOUNDCALLS_REQUEST_STATE_KEY", DATABASE_PASSWORD[:20]),
    ],
)
def test_a_malformed_database_url_or_short_key_is_refused_without_echoing_it(name: str, value: str) -> None:
    from outboundcalls_mcp.server.settings import SettingsError

    with pytest.raises(SettingsError) as refused:
        load_settings({name: value})
    assert name in str(refused.value) and DATABASE_PASSWORD[:20] not in str(refused.value)


def test_a_database_that_cannot_be_reached_stops_start_up_naming_it_without_its_password(
    log_lines: list[str], tmp_path: Path
) -> None:
    from outboundcalls_mcp.server.ledger import LedgerUnavailableError
    from outboundcalls_mcp.server.startup import check_startup

    # A loopback port nothing listens on: refused at once.
    url = f"postgresql://outbound:{DATABASE_PASSWORD}@127.0.0.1:9/calls"
    settings = make_settings(tmp_path, database_url=url)
    with pytest.raises(LedgerUnavailableError) as refused:
        check_startup(settings)
    rendered = "".join(traceback.format_exception(refused.value))
    assert "127.0.0.1:9/calls" in str(refused.value)
    assert DATABASE_PASSWORD not in rendered and "outbound:" not in rendered
    assert not [line for line in log_lines if DATABASE_PASSWORD in line]


def test_logs_redact_the_database_url_and_its_password_quoted_apart(tmp_path: Path) -> None:
    from outboundcalls_mcp.server.logs import configure_logging

    url = f"postgresql://outbound:{DATABASE_PASSWORD}@db.example/calls"
    configure_logging(make_settings(tmp_path, database_url=url, request_state_key=REQUEST_STATE_KEY))
    stream = io.StringIO()
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, StderrHandler))
    assert isinstance(handler, logging.StreamHandler)
    handler.stream = stream
    try:
        logging.getLogger("outboundcalls.test").warning(
            "url %s, password %s, key %s", url, DATABASE_PASSWORD, REQUEST_STATE_KEY
        )
    finally:
        handler.stream = __import__("sys").stderr
    assert DATABASE_PASSWORD not in stream.getvalue() and REQUEST_STATE_KEY not in stream.getvalue()
    assert "***" in stream.getvalue()


async def test_a_server_whose_database_is_unreachable_stops_in_its_lifespan_naming_it_without_its_password(
    tmp_path: Path,
) -> None:
    from mcp import Client

    from outboundcalls_mcp.server.ledger import LedgerUnavailableError
    from outboundcalls_mcp.server.startup import find_startup_error

    url = f"postgresql://outbound:{DATABASE_PASSWORD}@127.0.0.1:9/calls"
    server = build_server(make_settings(tmp_path, database_url=url), transport=sandbox_with_key().transport())
    with pytest.raises(BaseException) as stopped:  # the lifespan's failure arrives wrapped in exception groups
        async with Client(server):
            pass
    found = find_startup_error(stopped.value)
    assert isinstance(found, LedgerUnavailableError) and "127.0.0.1:9/calls" in str(found)
    assert DATABASE_PASSWORD not in "".join(traceback.format_exception(stopped.value))
