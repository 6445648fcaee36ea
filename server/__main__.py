"""`python -m outboundcalls_mcp.server`: the console script, also run as a file (the bundle's entry_point)."""

import sys

from outboundcalls_mcp.server.cli import main

sys.exit(main())
