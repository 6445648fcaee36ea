"""A stateful, in-process fake of the OutboundCalls API, for tests, benchmarks and `--sandbox` runs.

    sandbox = Sandbox(seed=0, credits=1000.0)           # ManualClock by default: deterministic
    async with sandbox.http_client() as http:             # or httpx2.ASGITransport(app=sandbox.app)
        await http.post("/calls", json={"agentId": sandbox.seed_ids.deployed_agent_id,
                                        "toNumber": "+14155551212"})
    await sandbox.advance(30)                             # the call ends, is charged, webhook sent

Seeded ids (`sandbox.seed_ids`, a `SeedIds`): user_id; deployed_agent_id (Ava, appointment
reminders) and deployed_agent_ids (3); draft_agent_id; paused_agent_id; foreign_agent_id (exists,
owned by another account: 404); phone_number_id (default caller id), inactive_phone_number_id;
contact_list_id, contact_id, contact_ids (40); foreign_contact_list_id, foreign_contact_id;
campaign_id (running), foreign_campaign_id; long_transcript_call_id (200 turns);
completed_call_id; foreign_call_id; call_ids_by_status (one call per terminal status). The
history holds 240 finished calls, newest first, so `limit=200` returns 200.

Live calls: queued 0-2 s, ringing, in_progress, then completed/voicemail/no_answer/busy/failed
within ~20 s; outcome drawn from the seed and a per-call counter unless `script_next_call(...)`
says otherwise. Charged on completion by `pricing.credits_for_call` for the destination region,
capped at the balance (it never goes negative). POST /calls answers 402 below
the minimum balance (pricing.MINIMUM_BALANCE_CREDITS).

Time: requests bring state up to `clock.now()`; `await sandbox.tick()` also delivers webhooks,
`await sandbox.advance(s)` moves a ManualClock first. With `clock=RealClock()`, wrap serving in
`async with sandbox.running():` so calls end and webhooks fire without any request.

Faults: `sandbox.faults.add(Fault(kind=..., times=1, method=None, path=None, status=None,
retry_after=None, delay=0.0, after_processing=False))`; see `Fault`. Use `sandbox.transport()` in
process so hang/drop/timeouts become httpx2 exceptions at once. The request log is
`sandbox.requests` (`RecordedRequest`); `sandbox.count("POST", "/calls")` counts and
`sandbox.dispatched` is how many calls were really created. `sandbox.credits` can be set. From
another process, GET /_sandbox/requests?since=N (loopback clients only, no key) serves the log.

Webhooks: `Sandbox(webhook_url=..., webhook_transport=..., webhook_wrapped=False)` POSTs the
GET /calls/{id} JSON of each ended call once (wrapped: {"event": "call.ended", "call": ...});
attempts are in `sandbox.webhooks.deliveries`.
Standalone: `python -m outboundcalls.sandbox --port 8787` (loopback only, real clock).

Persistent: `Sandbox.persistent(path, clock=RealClock())` keeps the account in a SQLite file that
any number of processes share (`store.py` says how); its time is the base clock plus an offset that
`await sandbox.advance(s)` moves for all of them, `await sandbox.reset()` starts it afresh, and
`sandbox.close()` closes the file. `Sandbox()` stays in memory.
"""

from __future__ import annotations

from .clock import Clock, ManualClock, RealClock
from .faults import Fault, FaultKind, Faults
from .gateway import API_PREFIX, RecordedRequest
from .lifecycle import CallScript
from .seed import SeedIds
from .simulation import DEFAULT_CREDITS, SANDBOX_API_KEY, SANDBOX_BASE_URL, Sandbox
from .transport import SandboxTransport
from .webhooks import WebhookDelivery

__all__ = [
    "API_PREFIX",
    "DEFAULT_CREDITS",
    "SANDBOX_API_KEY",
    "SANDBOX_BASE_URL",
    "CallScript",
    "Clock",
    "Fault",
    "FaultKind",
    "Faults",
    "ManualClock",
    "RealClock",
    "RecordedRequest",
    "Sandbox",
    "SandboxTransport",
    "SeedIds",
    "WebhookDelivery",
]
