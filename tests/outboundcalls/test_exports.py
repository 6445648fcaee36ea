"""The public surface of outboundcalls is its __all__, pinned here so a change to it is a reviewed change."""

from __future__ import annotations

import subprocess
import sys

import outboundcalls

PUBLIC = {
    "DEFAULT_BASE_URL",
    "TERMINAL_STATUSES",
    "APIStatusError",
    "Account",
    "AccountUser",
    "Agent",
    "AuthenticationError",
    "BadRequestError",
    "CallDetail",
    "CallStatus",
    "CallSummary",
    "Campaign",
    "ConnectTimeoutError",
    "ConnectionFailedError",
    "Contact",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "NewCall",
    "NewContact",
    "NotFoundError",
    "OutboundCallsClient",
    "OutboundCallsError",
    "OutcomeUnknownError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseValidationError",
    "RetryPolicy",
    "Subscription",
    "TranscriptTurn",
    "TransportError",
    "UpstreamError",
    "WireModel",
    "error_from_response",
    "is_terminal_status",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(outboundcalls.__all__) == PUBLIC
    assert len(outboundcalls.__all__) == len(PUBLIC)


def test_every_exported_name_exists() -> None:
    for name in outboundcalls.__all__:
        assert getattr(outboundcalls, name) is not None, name


def test_exported_classes_live_in_outboundcalls_not_httpx2() -> None:
    for name in outboundcalls.__all__:
        module = getattr(getattr(outboundcalls, name), "__module__", "outboundcalls")
        assert module.startswith("outboundcalls"), name


def test_importing_the_client_package_does_not_import_mcp() -> None:
    code = "import sys, outboundcalls; print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
