"""Health for a load balancer: /healthz (the process serves) and /readyz (its ledger and policy lease are good).

Both are served beside /mcp, outside the bearer token (a balancer's probe carries none), and say
nothing a stranger could use: a status word and, when not ready, which of the two is not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from outboundcalls_mcp.server.ledger import LedgerError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from starlette.requests import Request
    from starlette.responses import Response

    from outboundcalls_mcp.server.ledger import LedgerStore

__all__ = ["HEALTH_PATH", "READY_PATH", "Readiness", "add_health_routes"]

log = logging.getLogger("outboundcalls.health")

HEALTH_PATH: Final = "/healthz"
READY_PATH: Final = "/readyz"


class Readiness:
    """What /readyz asks: the ledger this process dials through (if any) answers and holds its policy lease."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._ledger: LedgerStore | None = None

    def watch(self, ledger: LedgerStore) -> Callable[[], None]:
        """Judge readiness by this ledger until the returned function is called."""
        self._ledger = ledger

        def forget() -> None:
            self._ledger = None

        return forget

    async def problem(self) -> str | None:
        """Why this process should get no traffic now, or None when it is ready."""
        ledger = self._ledger
        if ledger is None:
            return None  # nothing dials here (read-only, no key): reads need no ledger
        try:
            held = await ledger.policy_lease_held(now=self._now())
        except LedgerError as exc:
            log.warning("not ready: %s", type(exc).__name__)
            return "ledger unreachable"
        return None if held else "policy lease not held"


def add_health_routes(mcp: MCPServer[Any], readiness: Readiness) -> None:
    """Serve /healthz and /readyz on the server's HTTP app (custom routes bypass the bearer check)."""
    # starlette is imported when the routes are, not at start-up: a stdio host never pays for it.
    from starlette.responses import JSONResponse

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problem = await readiness.problem()
        if problem is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": problem}, status_code=503)

    mcp.custom_route(HEALTH_PATH, methods=["GET"], name="healthz", include_in_schema=False)(healthz)
    mcp.custom_route(READY_PATH, methods=["GET"], name="readyz", include_in_schema=False)(readyz)
