"""The server process the crash test kills: the product's build_server over stdio, its clock ahead by argv[1] seconds.

Start-up recovery treats a claim as abandoned only once it is older than any dial could take, so
the test restarts the server "later" by moving this process's clock (and the sandbox's) forward.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from outboundcalls_mcp.server.app import build_server
from outboundcalls_mcp.server.settings import load_settings


def main() -> None:
    """Serve over stdio with settings from the environment and the given clock offset."""
    offset = timedelta(seconds=float(sys.argv[1]))
    build_server(load_settings(), now=lambda: datetime.now(UTC) + offset).run("stdio")


if __name__ == "__main__":
    main()
