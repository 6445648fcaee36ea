"""The sandbox's request-log route, which lets a benchmark in another process count upstream requests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import httpx2
import pytest

from outboundcalls.sandbox import SANDBOX_API_KEY, Fault, Sandbox

pytestmark = pytest.mark.anyio

LOG = "http://sandbox.local/_sandbox/requests"


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=sandbox.app),
        base_url="http://sandbox.local/api/v1",
        headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
    ) as client:
        yield client


async def test_the_log_lists_api_requests_with_method_path_and_status(http: httpx2.AsyncClient) -> None:
    await http.get("/me")
    await http.get("/calls/nope")
    answer = await http.get(LOG)
    assert answer.status_code == 200
    assert answer.json() == {
        "count": 2,
        "requests": [
            {"method": "GET", "path": "/me", "status": 200},
            {"method": "GET", "path": "/calls/nope", "status": 404},
        ],
    }


async def test_since_returns_only_the_requests_after_that_entry(http: httpx2.AsyncClient) -> None:
    await http.get("/me")
    await http.get("/agents")
    answer = (await http.get(LOG, params={"since": "1"})).json()
    assert answer["count"] == 2 and [r["path"] for r in answer["requests"]] == ["/agents"]


async def test_reading_the_log_is_never_recorded_nor_faulted(sandbox: Sandbox, http: httpx2.AsyncClient) -> None:
    sandbox.faults.add(Fault("status", status=502))
    first = await http.get(LOG)
    second = await http.get(LOG)
    assert first.status_code == second.status_code == 200
    assert second.json()["count"] == 0 and sandbox.requests == []


async def test_the_log_needs_no_key_but_is_refused_to_a_client_off_this_machine(sandbox: Sandbox) -> None:
    remote = httpx2.ASGITransport(app=sandbox.app, client=("203.0.113.9", 4000))
    async with httpx2.AsyncClient(transport=remote) as client:
        answer = await client.get(LOG)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sandbox.app)) as client:
        local = await client.get(LOG)
    assert answer.status_code == 403 and "loopback" in answer.json()["error"]
    assert local.status_code == 200


@pytest.mark.parametrize("since", ["-1", "x", "1.5"])
async def test_a_malformed_since_is_a_400(http: httpx2.AsyncClient, since: str) -> None:
    answer = await http.get(LOG, params={"since": since})
    assert answer.status_code == 400 and "since" in answer.json()["error"]


def test_the_standalone_sandbox_serves_the_log_over_a_socket_and_logs_no_line_per_request_below_info() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "outboundcalls.sandbox", "--port", "0", "--log-level", "warning"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        base_url = first.rsplit(" at ", 1)[1].strip()
        headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
        with httpx2.Client(base_url=base_url, headers=headers, trust_env=False, timeout=10) as http:
            assert http.get("/me").status_code == 200
            log = http.get(base_url.removesuffix("/api/v1") + "/_sandbox/requests").json()
    finally:
        process.terminate()
        _, rest = process.communicate(timeout=10)
    assert log["requests"] == [{"method": "GET", "path": "/me", "status": 200}]
    assert "GET /api/v1/me" not in rest
