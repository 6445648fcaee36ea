"""`python -m outboundcalls_mcp.server`: the console script's entry point; it also runs as a file (the bundle's entry_point)."""

import sys

from outboundcalls_mcp.server.cli import main

sys.exit(main())
