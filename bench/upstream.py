"""The sandbox API in its own process on a loopback port: the upstream our server talks to."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2

from bench.stdio_rpc import stop

__all__ = ["Upstream"]

ROUND_TRIP_SAMPLES = 200


@dataclass
class Upstream:
    """`python -m outboundcalls.sandbox` on a free port, with a generous balance, read over HTTP."""

    credits: float = 1e9
    base_url: str = field(default="", init=False)
    api_key: str = field(default="", init=False)
    process: subprocess.Popen[str] = field(init=False)
    _http: httpx2.Client = field(init=False)

    def __enter__(self) -> Upstream:
        from outboundcalls.sandbox import SANDBOX_API_KEY

        self.api_key = SANDBOX_API_KEY
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "outboundcalls.sandbox",
                "--port",
                "0",
                "--credits",
                f"{self.credits:g}",
                "--log-level",
                "warning",
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stderr is not None
        first = self.process.stderr.readline()
        if " at " not in first:
            self.process.kill()
            raise RuntimeError(f"the sandbox did not start: {first.strip()!r}")
        self.base_url = first.rsplit(" at ", 1)[1].strip()
        # The rest of stderr (two more lines, then warnings only) is left unread: it never fills the pipe.
        self._http = httpx2.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.api_key}"}, trust_env=False, timeout=10
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()
        stop(self.process)

    def server_env(self) -> dict[str, str]:
        """OUTBOUNDCALLS_* settings pointing a server at this sandbox."""
        return {"OUTBOUNDCALLS_BASE_URL": self.base_url, "OUTBOUNDCALLS_API_KEY": self.api_key}

    def request_count(self) -> int:
        """How many API requests the sandbox has received so far."""
        return int(self._log(since=None)["count"])

    def requests_since(self, since: int) -> list[str]:
        """`METHOD /path` of every API request from entry `since` on."""
        return [f"{r['method']} {r['path']}" for r in self._log(since=since)["requests"]]

    def _log(self, *, since: int | None) -> dict[str, Any]:
        url = self.base_url.rsplit("/api/v1", 1)[0] + "/_sandbox/requests"
        # `since` past the end returns just the count, which keeps count reads cheap.
        answer = self._http.get(url, params={"since": str(since if since is not None else 10**9)})
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    def body(self, path: str, params: dict[str, str] | None = None) -> bytes:
        """The body of one GET, as our server receives it."""
        answer = self._http.get(path.lstrip("/"), params=params)
        answer.raise_for_status()
        return answer.content

    def round_trip_ms(
        self, path: str, params: dict[str, str] | None = None, samples: int = ROUND_TRIP_SAMPLES
    ) -> list[float]:
        """Latencies (ms) of the GET sent directly, the way our server sends it: httpx2's async client, kept alive."""
        # The upstream's share of a tool call: the API's own time, the socket and the HTTP client
        # library; parsing the body into models is left out, because that is our code.
        headers = {"Authorization": f"Bearer {self.api_key}"}

        async def measure() -> list[float]:
            times = []
            async with httpx2.AsyncClient(base_url=self.base_url, headers=headers, trust_env=False, timeout=10) as http:
                await http.get(path, params=params)
                for _ in range(samples):
                    started = time.perf_counter()
                    (await http.get(path, params=params)).raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
            return times

        return anyio.run(measure)
