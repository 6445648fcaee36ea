"""The API's routes under /api/v1: authentication, input validation, and JSON answers."""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from .gateway import API_PREFIX, DEBUG_PREFIX, Gateway, Served
from .lifecycle import CALL_STATUSES
from .state import ApiError

__all__ = ["AGENT_STATUSES", "DEFAULT_LIMITS", "MAX_LIMITS", "build_app", "request_log"]

AGENT_STATUSES: Final = ("deployed", "draft", "paused")
MAX_LIMITS: Final = {"agents": 200, "contacts": 500, "calls": 200}
DEFAULT_LIMITS: Final = {"agents": 50, "contacts": 100, "calls": 50}
_E164: Final = re.compile(r"^\+[1-9]\d{6,14}$")


def _sandbox(request: Request) -> Served:
    """The sandbox this app serves."""
    sandbox: Served = request.app.state.sandbox
    return sandbox


def _authorize(request: Request) -> Served:
    """The sandbox, once the request has shown its key; 401 otherwise."""
    sandbox = _sandbox(request)
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "Malformed Authorization header: expected 'Bearer <key>'")
    if not hmac.compare_digest(key.strip().encode(), sandbox.api_key.encode()):
        raise ApiError(401, "Invalid or revoked API key")
    return sandbox


def _limit(request: Request, resource: str) -> int:
    """The `limit` query parameter, within 1..max for the resource."""
    raw = request.query_params.get("limit")
    maximum = MAX_LIMITS[resource]
    if raw is None:
        return DEFAULT_LIMITS[resource]
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(400, f"limit must be an integer between 1 and {maximum}, got {raw!r}")
    return int(raw)


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    """An optional query parameter that must be one of `allowed`."""
    raw = request.query_params.get(name)
    if raw is not None and raw not in allowed:
        raise ApiError(400, f"{name} must be one of {', '.join(allowed)}; got {raw!r}")
    return raw


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ApiError(400, "Request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    """A string field of the body (400 naming the field when missing or of the wrong type)."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    return value


def _e164(body: dict[str, Any], name: str) -> str:
    """A required phone number field in E.164 form."""
    value = _text(body, name, required=True)
    assert value is not None
    if not _E164.match(value):
        raise ApiError(400, f"{name} must be E.164, like +14155551212; got {value!r}")
    return value


async def get_me(request: Request) -> Response:
    """GET /me."""
    return JSONResponse(_authorize(request).state.account.to_json())


async def list_agents(request: Request) -> Response:
    """GET /agents."""
    state = _authorize(request).state
    agents = state.list_agents(status=_choice(request, "status", AGENT_STATUSES), limit=_limit(request, "agents"))
    return JSONResponse({"agents": [agent.to_json() for agent in agents]})


async def get_agent(request: Request) -> Response:
    """GET /agents/{id}."""
    return JSONResponse(_authorize(request).state.agent(request.path_params["id"]).to_json())


async def list_contacts(request: Request) -> Response:
    """GET /contacts."""
    state = _authorize(request).state
    contacts = state.list_contacts(
        contact_list_id=request.query_params.get("contactListId"), limit=_limit(request, "contacts")
    )
    return JSONResponse({"contacts": [contact.to_json() for contact in contacts]})


async def create_contact(request: Request) -> Response:
    """POST /contacts."""
    sandbox = _authorize(request)
    body = await _json_object(request)
    fields: dict[str, Any] = {
        "contactListId": _text(body, "contactListId", required=True),
        "phone": _e164(body, "phone"),
    }
    for name in ("name", "email", "company"):
        fields[name] = _text(body, name, required=False)
    if fields["email"] is not None and "@" not in fields["email"]:
        raise ApiError(400, f"email is not a valid email address: {fields['email']!r}")
    tags = body.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)):
        raise ApiError(400, "tags must be a list of strings")
    custom = body.get("customFields")
    if custom is not None and not isinstance(custom, dict):
        raise ApiError(400, "customFields must be an object")
    fields.update(tags=tags, customFields=custom)
    contact = sandbox.state.create_contact(fields, sandbox.clock.now())
    return JSONResponse(contact.to_json(), status_code=201)


async def list_calls(request: Request) -> Response:
    """GET /calls."""
    state = _authorize(request).state
    calls = state.list_calls(
        status=_choice(request, "status", CALL_STATUSES),
        agent_id=request.query_params.get("agentId"),
        campaign_id=request.query_params.get("campaignId"),
        limit=_limit(request, "calls"),
    )
    return JSONResponse({"calls": [call.summary_json() for call in calls]})


async def create_call(request: Request) -> Response:
    """POST /calls."""
    sandbox = _authorize(request)
    body = await _json_object(request)
    fields = {
        "agentId": _text(body, "agentId", required=True),
        "toNumber": _e164(body, "toNumber"),
        "phoneNumberId": _text(body, "phoneNumberId", required=False),
        "contactId": _text(body, "contactId", required=False),
    }
    call = sandbox.state.create_call(fields, sandbox.clock.now())
    return JSONResponse(call.summary_json(), status_code=201)


async def get_call(request: Request) -> Response:
    """GET /calls/{id}."""
    return JSONResponse(_authorize(request).state.call(request.path_params["id"]).detail_json())


async def get_campaign(request: Request) -> Response:
    """GET /campaigns/{id}."""
    return JSONResponse(_authorize(request).state.campaign_json(request.path_params["id"]))


def _from_loopback(request: Request) -> bool:
    """Whether the request came from this machine."""
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def request_log(request: Request) -> Response:
    """GET /_sandbox/requests?since=N: the request log from entry N, for benchmarks in another process."""
    if not _from_loopback(request):
        # The log holds request bodies (phone numbers): only this machine may read it.
        raise ApiError(403, "The sandbox request log is served to loopback clients only")
    raw = request.query_params.get("since", "0")
    if not raw.isdigit():
        raise ApiError(400, f"since must be a non-negative integer, got {raw!r}")
    log = _sandbox(request).requests
    entries = [{"method": r.method, "path": r.path, "status": r.status} for r in log[int(raw) :]]
    return JSONResponse({"count": len(log), "requests": entries})


async def _api_error(request: Request, exc: Exception) -> Response:
    """An ApiError as the vendor's {"error": text} body."""
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": exc.message}, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) in the same {"error": text} shape."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def build_app(sandbox: Served) -> Starlette:
    """The sandbox's ASGI app: every API route under /api/v1, behind the recording gateway."""
    routes = [
        Route("/me", get_me, methods=["GET"]),
        Route("/agents", list_agents, methods=["GET"]),
        Route("/agents/{id}", get_agent, methods=["GET"]),
        Route("/contacts", list_contacts, methods=["GET"]),
        Route("/contacts", create_contact, methods=["POST"]),
        Route("/calls", list_calls, methods=["GET"]),
        Route("/calls", create_call, methods=["POST"]),
        Route("/calls/{id}", get_call, methods=["GET"]),
        Route("/campaigns/{id}", get_campaign, methods=["GET"]),
    ]
    app = Starlette(
        routes=[Mount(API_PREFIX, routes=routes), Route(f"{DEBUG_PREFIX}/requests", request_log, methods=["GET"])],
        middleware=[Middleware(Gateway, sandbox=sandbox)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.state.sandbox = sandbox
    return app
