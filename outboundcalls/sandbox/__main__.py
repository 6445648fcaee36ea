"""`python -m outboundcalls.sandbox`: serve the sandbox API on a loopback port in real time."""

from __future__ import annotations

import argparse
import sys

import anyio

from .clock import RealClock
from .simulation import DEFAULT_CREDITS, Sandbox
from .standalone import DEFAULT_HOST, DEFAULT_PORT, create_server, ensure_loopback, serve


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m outboundcalls.sandbox", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST, help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8787; 0 picks one)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the generated data (default 0)")
    parser.add_argument("--credits", type=float, default=DEFAULT_CREDITS, help="starting balance")
    parser.add_argument("--webhook-url", default=None, help="where to POST each ended call")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level; below info there is no line per request (default info)",
    )
    args = parser.parse_args(argv)
    try:
        ensure_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    sandbox = Sandbox(clock=RealClock(), seed=args.seed, credits=args.credits, webhook_url=args.webhook_url)
    server = create_server(sandbox, host=args.host, port=args.port, log_level=args.log_level)

    def announce(url: str) -> None:
        print(f"OutboundCalls sandbox (simulated, no real calls) at {url}", file=sys.stderr)
        print(f"API key: {sandbox.api_key}", file=sys.stderr)
        print(f"Deployed agent to try: {sandbox.seed_ids.deployed_agent_id}", file=sys.stderr)

    anyio.run(lambda: serve(sandbox, server, on_ready=announce))
    return 0


if __name__ == "__main__":
    sys.exit(main())
