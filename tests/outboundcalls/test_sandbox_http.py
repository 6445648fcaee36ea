"""The standalone sandbox over a real loopback socket, and its command line."""

from __future__ import annotations

import functools

import anyio
import httpx2
import pytest

from outboundcalls.sandbox import SANDBOX_API_KEY, Fault, Sandbox
from outboundcalls.sandbox.__main__ import main
from outboundcalls.sandbox.standalone import create_server, ensure_loopback, serve

pytestmark = pytest.mark.anyio


async def test_the_standalone_server_answers_drops_and_hangs_over_a_real_socket() -> None:
    sandbox = Sandbox()
    server = create_server(sandbox, host="127.0.0.1", port=0, log_level="critical", shutdown_grace_seconds=0)
    ready: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(functools.partial(serve, sandbox, server, on_ready=ready.append))
        with anyio.fail_after(10):
            while not ready:
                await anyio.sleep(0)
        base_url = ready[0]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/v1")
        headers = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
        async with httpx2.AsyncClient(base_url=base_url, headers=headers, trust_env=False, timeout=5) as http:
            me = await http.get("/me")
            sandbox.faults.add(Fault("drop", path="/calls", after_processing=True))
            with pytest.raises(httpx2.RemoteProtocolError):
                await http.post(
                    "/calls", json={"agentId": sandbox.seed_ids.deployed_agent_id, "toNumber": "+14155551212"}
                )
            sandbox.faults.add(Fault("hang", path="/me"))
            with pytest.raises(httpx2.ReadTimeout):
                await http.get("/me", timeout=httpx2.Timeout(5, read=0.2))
        server.should_exit = True
    assert me.status_code == 200 and me.json()["credits"] == 1000.0
    assert sandbox.count("GET", "/me") == 2 and sandbox.dispatched == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_are_allowed(host: str) -> None:
    assert ensure_loopback(host) == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "sandbox.example.com"])
def test_a_host_reachable_from_the_network_is_refused(host: str) -> None:
    with pytest.raises(ValueError):
        ensure_loopback(host)


def test_the_command_line_refuses_a_public_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "0.0.0.0", "--port", "0"])
    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err
