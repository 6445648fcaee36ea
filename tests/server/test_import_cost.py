"""Start-up cost: the policy and the ledger load without the MCP SDK or phonenumbers."""

from __future__ import annotations

import subprocess
import sys


def test_policy_and_ledger_import_no_mcp_module() -> None:
    code = (
        "import sys, outboundcalls_mcp.server.policy, outboundcalls_mcp.server.ledger, outboundcalls_mcp.server.ledger_sqlite; "
        "assert not any(m == 'mcp' or m.startswith('mcp.') for m in sys.modules), 'mcp imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_policy_and_ledger_import_phonenumbers_only_when_a_number_is_parsed() -> None:
    code = "import sys, outboundcalls_mcp.server.policy, outboundcalls_mcp.server.ledger_sqlite; assert 'phonenumbers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
