"""The floor plus one upstream GET: a minimal MCPServer whose one tool sends the same request our read tools send.

It separates what any server on this SDK and this HTTP stack pays for a read (stdio, the SDK's
dispatch, httpx2's async client on a kept-alive loopback connection, the sandbox answering) from
what our server adds on top (argument checks, parsing into models, the structured result). The
tool returns the body as text, unparsed: nothing of ours runs.
"""

from __future__ import annotations

import os
import sys

import httpx2
from mcp.server.mcpserver import MCPServer

mcp = MCPServer("floor-read", log_level="WARNING")
_pool: list[httpx2.AsyncClient] = []  # one client, built on the first call (as our server does)


@mcp.tool()
async def read(path: str) -> str:
    """GET the path from the API; return the body."""
    if not _pool:
        _pool.append(
            httpx2.AsyncClient(
                base_url=sys.argv[1],
                headers={"Authorization": f"Bearer {os.environ['BENCH_API_KEY']}"},
                trust_env=False,
                verify=False,
            )
        )
    response = await _pool[0].get(path)
    return response.text


if __name__ == "__main__":
    mcp.run("stdio")
