"""The vendor's post-call webhook over HTTP: POST /webhooks/outboundcalls/<secret>.

The secret in the path is the only credential (the vendor sends no signature), so it is compared
in constant time and a wrong one is answered exactly like an unknown path. Bodies are capped.
The route is served beside /mcp and is not behind the bearer token: it carries its own secret.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from pydantic import SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from outboundcalls.calls import CallDetail
from outboundcalls_mcp.tools.inputs import check_id

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from outboundcalls_mcp.server.call_events import CallEvents

__all__ = ["MAX_WEBHOOK_BYTES", "WEBHOOK_PATH", "WEBHOOK_ROUTE", "add_webhook_route", "parse_call_webhook"]

log = logging.getLogger("outboundcalls.webhooks")

WEBHOOK_PATH: Final = "/webhooks/outboundcalls"
WEBHOOK_ROUTE: Final = WEBHOOK_PATH + "/{secret}"
# A call's JSON with a long transcript is tens of KiB; anything much larger is not a call.
MAX_WEBHOOK_BYTES: Final = 256 * 1024


class WebhookBodyError(ValueError):
    """The body is not a call, bare or wrapped as {"event": ..., "call": ...}."""


def parse_call_webhook(body: bytes) -> tuple[CallDetail, str | None]:
    """The call a webhook body carries, and its event name if it was wrapped."""
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookBodyError("the body is not JSON") from None
    event: str | None = None
    if isinstance(data, dict) and isinstance(data.get("call"), dict):
        raw_event = data.get("event")
        event = raw_event[:64] if isinstance(raw_event, str) else None
        data = data["call"]
    if not isinstance(data, dict):
        raise WebhookBodyError("the body is not a call object")
    try:
        call = CallDetail.model_validate(data)
        check_id(call.id)
    except (ValidationError, ValueError):
        raise WebhookBodyError("the call has no valid id and status") from None
    return call, event


def _not_found() -> Response:
    return JSONResponse({"detail": "Not Found"}, status_code=404)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds `limit` bytes (nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def add_webhook_route(
    mcp: MCPServer[Any],
    secret: SecretStr,
    events: CallEvents,
    *,
    now: Callable[[], datetime],
    max_bytes: int = MAX_WEBHOOK_BYTES,
) -> None:
    """Serve the post-call webhook on the server's HTTP app (custom routes bypass the bearer check)."""
    expected = secret.get_secret_value().encode()

    async def receive_call_webhook(request: Request) -> Response:
        given = str(request.path_params.get("secret", "")).encode()
        if not hmac.compare_digest(given, expected):
            return _not_found()
        body = await _read_capped(request, max_bytes)
        if body is None:
            return JSONResponse({"detail": f"body over {max_bytes} bytes"}, status_code=413)
        try:
            call, event = parse_call_webhook(body)
        except WebhookBodyError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        confirmed = await events.hinted(call, event=event, at=now()) if call.is_terminal else None
        if confirmed is not None:
            log.info("webhook: the API confirms call %s ended (%s)", confirmed.id, confirmed.status)
        return JSONResponse({"received": call.id, "ended": confirmed is not None})

    mcp.custom_route(WEBHOOK_ROUTE, methods=["POST"], name="call_webhook", include_in_schema=False)(
        receive_call_webhook
    )
