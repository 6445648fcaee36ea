"""What a host pays at spawn: building the stdio server loads only what answering initialize and tools/list needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Each is needed only later (a first tool call, a dispatch, HTTP, the sandbox) or never on stdio.
NOT_AT_START = (
    "pydantic_settings",  # settings are a plain model; load_settings reads the environment itself
    "httpcore2", "h11", "truststore",  # the API client's pool is built on its first request
    "phonenumbers",  # number metadata loads when a number is parsed
    "outboundcalls_mcp.server.http_transport",  # the HTTP transport
    "outboundcalls_mcp.server.ledger_sqlite",  # the ledger opens in the lifespan
    "outboundcalls.sandbox.simulation", "outboundcalls.sandbox.app",  # --sandbox only
    "outboundcalls_mcp.tools.prompts", "outboundcalls_mcp.server.audit_resource",  # registered on the first request that could read them
    "outboundcalls_mcp.server.webhooks",  # only with a webhook secret
)


@pytest.mark.parametrize("read_only", [False, True])
def test_building_the_stdio_server_loads_none_of_the_later_or_optional_modules(tmp_path: Path, read_only: bool) -> None:
    code = (
        "import sys\n"
        "from outboundcalls_mcp.server.settings import load_settings\n"
        "from outboundcalls_mcp.server.app import build_server\n"
        f"env = {{'OUTBOUNDCALLS_API_KEY': 'oc_live_startup', 'OUTBOUNDCALLS_STATE_DIR': {str(tmp_path)!r},"
        f" 'OUTBOUNDCALLS_READ_ONLY': {'true' if read_only else 'false'!r}}}\n"
        "build_server(load_settings(env))\n"
        f"loaded = [m for m in {NOT_AT_START!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
