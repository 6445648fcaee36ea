"""The floor: the smallest useful MCPServer on this SDK, one echo tool, served over stdio or HTTP."""

from __future__ import annotations

import argparse

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("floor", log_level="WARNING")


@mcp.tool()
async def echo(text: str) -> str:
    """Echo the text back."""
    return text


def main() -> None:
    """Serve over stdio, or over streamable HTTP on a loopback port with --http PORT."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor_server")
    parser.add_argument("--http", type=int, default=None, metavar="PORT")
    args = parser.parse_args()
    if args.http is None:
        mcp.run("stdio")
        return
    import uvicorn

    uvicorn.run(mcp.streamable_http_app(host="127.0.0.1"), host="127.0.0.1", port=args.http, log_level="warning")


if __name__ == "__main__":
    main()
