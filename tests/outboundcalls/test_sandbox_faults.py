"""Armed faults: each kind, processed or not, through the in-process transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
import pytest

from outboundcalls.sandbox import SANDBOX_API_KEY, SANDBOX_BASE_URL, Fault, Sandbox

pytestmark = pytest.mark.anyio


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        transport=sandbox.transport(),
        base_url=SANDBOX_BASE_URL,
        headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
        timeout=5.0,
    ) as client:
        yield client


def dial_body(sandbox: Sandbox) -> dict[str, str]:
    return {"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155551212"}


@pytest.mark.parametrize("status", [400, 401, 402, 404, 500, 502, 503])
async def test_a_status_fault_answers_that_status_with_an_error_body_and_dials_nothing(
    http: httpx2.AsyncClient, sandbox: Sandbox, status: int
) -> None:
    sandbox.faults.add(Fault("status", status=status, method="POST", path="/calls"))
    response = await http.post("/calls", json=dial_body(sandbox))
    assert response.status_code == status
    assert response.json()["error"]
    assert sandbox.dispatched == 0
    assert (await http.post("/calls", json=dial_body(sandbox))).status_code == 201
    assert [r.fault for r in sandbox.requests] == ["status", None]
    assert not sandbox.requests[0].processed


async def test_a_429_carries_retry_after(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("status", status=429, retry_after=3))
    response = await http.get("/me")
    assert (response.status_code, response.headers["retry-after"]) == (429, "3")
    sandbox.faults.add(Fault("status", status=429, message="slow down please"))
    response = await http.get("/me")
    assert "retry-after" not in response.headers and response.json() == {"error": "slow down please"}


async def test_a_502_after_processing_has_still_dialed(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("status", status=502, path="/calls", after_processing=True))
    assert (await http.post("/calls", json=dial_body(sandbox))).status_code == 502
    assert sandbox.dispatched == 1
    assert (sandbox.requests[0].status, sandbox.requests[0].handled_status) == (502, 201)


async def test_a_fault_affects_only_matching_requests_and_only_times_times(
    http: httpx2.AsyncClient, sandbox: Sandbox
) -> None:
    fault = sandbox.faults.add(Fault("status", status=503, times=2, method="GET", path="/calls/*"))
    assert (await http.get("/calls")).status_code == 200
    assert (await http.post("/calls", json=dial_body(sandbox))).status_code == 201
    call_id = sandbox.seed_ids.completed_call_id
    assert [(await http.get(f"/calls/{call_id}")).status_code for _ in range(3)] == [503, 503, 200]
    assert sandbox.faults.remaining(fault) == 0 and sandbox.faults.armed == []


async def test_an_unlimited_fault_lasts_until_cleared(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    fault = sandbox.faults.add(Fault("status", status=500, times=None))
    assert [(await http.get("/me")).status_code for _ in range(3)] == [500, 500, 500]
    assert sandbox.faults.remaining(fault) is None
    sandbox.faults.clear()
    assert (await http.get("/me")).status_code == 200


async def test_a_hang_before_processing_times_out_and_dials_nothing(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("hang", method="POST"))
    with pytest.raises(httpx2.ReadTimeout):
        await http.post("/calls", json=dial_body(sandbox))
    assert sandbox.dispatched == 0
    record = sandbox.requests[0]
    assert (record.fault, record.processed, record.delivered, record.status) == ("hang", False, False, None)


async def test_a_hang_after_processing_times_out_but_the_call_was_placed(
    http: httpx2.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add(Fault("hang", method="POST", path="/calls", after_processing=True))
    with pytest.raises(httpx2.ReadTimeout):
        await http.post("/calls", json=dial_body(sandbox))
    assert sandbox.dispatched == 1 and sandbox.count("POST", "/calls") == 1
    assert sandbox.requests[0].handled_status == 201 and not sandbox.requests[0].delivered
    calls = (await http.get("/calls", params={"limit": 1})).json()["calls"]
    assert calls[0]["status"] == "queued"


async def test_a_timeout_before_send_never_reaches_the_sandbox(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("timeout_before_send"))
    with pytest.raises(httpx2.ConnectTimeout):
        await http.post("/calls", json=dial_body(sandbox))
    assert sandbox.requests == [] and sandbox.dispatched == 0


@pytest.mark.parametrize(("after_processing", "dialed"), [(False, 0), (True, 1)])
async def test_a_drop_is_a_protocol_error_processed_or_not(
    http: httpx2.AsyncClient, sandbox: Sandbox, after_processing: bool, dialed: int
) -> None:
    sandbox.faults.add(Fault("drop", path="/calls", after_processing=after_processing))
    with pytest.raises(httpx2.RemoteProtocolError):
        await http.post("/calls", json=dial_body(sandbox))
    assert sandbox.dispatched == dialed
    assert sandbox.requests[0].fault == "drop" and not sandbox.requests[0].delivered


async def test_malformed_json_comes_with_a_200(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("malformed"))
    response = await http.get("/me")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_a_proxy_html_page_is_a_502_by_default(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("html"))
    sandbox.faults.add(Fault("html", status=504))
    first, second = await http.get("/me"), await http.get("/me")
    assert (first.status_code, second.status_code) == (502, 504)
    assert first.headers["content-type"] == "text/html" and "<html>" in first.text


async def test_an_empty_body_keeps_the_success_status_when_processed(
    http: httpx2.AsyncClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add(Fault("empty"))
    sandbox.faults.add(Fault("empty", path="/calls", after_processing=True))
    empty = await http.get("/me")
    assert (empty.status_code, empty.content) == (200, b"")
    created = await http.post("/calls", json=dial_body(sandbox))
    assert (created.status_code, created.content, sandbox.dispatched) == (201, b"", 1)


async def test_missing_fields_strips_ids_credits_and_statuses(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("missing_fields", times=2, method="GET"))
    me = (await http.get("/me")).json()
    calls = (await http.get("/calls", params={"limit": 2})).json()["calls"]
    assert "credits" not in me and "user" in me
    assert len(calls) == 2 and all("id" not in call and "status" not in call and "toNumber" in call for call in calls)


async def test_missing_fields_on_a_dial_processed_or_not(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("missing_fields", method="POST"))
    sandbox.faults.add(Fault("missing_fields", method="POST", after_processing=True))
    unprocessed = await http.post("/calls", json=dial_body(sandbox))
    assert (unprocessed.status_code, "id" in unprocessed.json(), sandbox.dispatched) == (200, False, 0)
    processed = await http.post("/calls", json=dial_body(sandbox))
    assert processed.status_code == 201 and "id" not in processed.json() and "toNumber" in processed.json()
    assert sandbox.dispatched == 1


async def test_latency_past_the_read_timeout_times_out_at_once_but_is_processed(sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("latency", delay=30.0))
    async with sandbox.http_client(timeout=1.0) as http:
        with pytest.raises(httpx2.ReadTimeout):
            await http.post("/calls", json=dial_body(sandbox))
    assert sandbox.dispatched == 1
    assert (sandbox.requests[0].status, sandbox.requests[0].delivered) == (201, False)


async def test_small_latency_is_only_late(http: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("latency", delay=0.001))
    assert (await http.get("/me")).status_code == 200
    assert sandbox.requests[0].fault == "latency" and sandbox.requests[0].delivered


async def test_a_plain_asgi_transport_also_plays_answering_faults(sandbox: Sandbox) -> None:
    sandbox.faults.add(Fault("status", status=503, retry_after=1.5))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=sandbox.app),
        base_url=SANDBOX_BASE_URL,
        headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
    ) as http:
        response = await http.get("/me")
    assert (response.status_code, response.headers["retry-after"]) == (503, "1.5")


@pytest.mark.parametrize(
    "arguments",
    [
        {"kind": "explode"},
        {"kind": "status"},
        {"kind": "status", "status": 200},
        {"kind": "hang", "times": 0},
        {"kind": "latency", "delay": -1},
    ],
)
def test_a_fault_that_cannot_happen_is_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Fault(**arguments)  # type: ignore[arg-type]  # impossible faults on purpose
