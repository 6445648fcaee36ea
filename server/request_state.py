"""2026-07-28 `requestState` that every replica can verify: sealed with the owner's shared key.

The SDK seals each InputRequiredResult's requestState (AES-GCM, bound to the request, the
principal and this server's name, ten minutes to live) under a key made per process unless told
otherwise: the answering round of a question asked by one replica is refused by another ("Invalid
or expired requestState") and nothing is dialed. With OUTBOUNDCALLS_REQUEST_STATE_KEY set alike
on every replica, any of them opens what any other sealed. The consent itself is in the shared
ledger (found again by the answering round's key), so the answer is used once whichever replica
receives it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp.server.mcpserver import RequestStateSecurity

    from outboundcalls_mcp.server.settings import Settings

__all__ = ["shared_request_state"]


def shared_request_state(settings: Settings) -> RequestStateSecurity | None:
    """The SDK's sealing under the owner's key ring, or None for the SDK's key per process."""
    if settings.request_state_key is None:
        return None
    from mcp.server.mcpserver import RequestStateSecurity

    from outboundcalls_mcp.server.settings import request_state_keys

    return RequestStateSecurity(keys=request_state_keys(settings.request_state_key))
