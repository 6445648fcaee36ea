"""Faults a test can arm so that the next matching requests misbehave in a chosen way."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Final, Literal, get_args

__all__ = ["DEFAULT_FAULT_MESSAGES", "Fault", "FaultKind", "Faults"]

FaultKind = Literal[
    "status",
    "hang",
    "timeout_before_send",
    "drop",
    "malformed",
    "html",
    "empty",
    "missing_fields",
    "latency",
]

DEFAULT_FAULT_MESSAGES: Final = {
    400: "Bad request",
    401: "Invalid API key",
    402: "Insufficient credits to dispatch a call",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    429: "Rate limit exceeded, slow down",
    500: "Internal server error",
    502: "Upstream telephony provider error",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One kind of misbehaviour for the next `times` requests matching `method` and `path`."""

    # kind: "status" answers `status` (4xx/5xx) as {"error": message}, with Retry-After when
    #   `retry_after` is set; "hang" never answers (in process: httpx2.ReadTimeout at once);
    #   "timeout_before_send" never reaches the sandbox (in process: httpx2.ConnectTimeout; over a
    #   socket it behaves as an unprocessed hang); "drop" closes without a complete answer
    #   (httpx2.RemoteProtocolError); "malformed" is invalid JSON with a 2xx; "html" is a proxy's
    #   HTML page, 502 unless `status` says otherwise; "empty" is a 2xx with no body;
    #   "missing_fields" is the real 2xx body without id/credits/status (an unprocessed POST
    #   answers {"ok": true}); "latency" answers normally but `delay` seconds late.
    # after_processing: the API logic runs first (a call IS created) and only then the answer is
    #   replaced or lost, which is how exactly-once dialing is tested; otherwise it never runs.
    # path: the path under /api/v1 ("/calls"), exact or a glob ("/calls/*"); None matches any.
    # times: how many matching requests it affects; None means all of them until cleared.
    # delay: seconds to hold the answer back, for any kind; in process, a delay at least the
    #   request's read timeout raises httpx2.ReadTimeout at once instead of sleeping.
    kind: FaultKind
    times: int | None = 1
    method: str | None = None
    path: str | None = None
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    after_processing: bool = False
    message: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {get_args(FaultKind)}")
        if self.kind == "status" and (self.status is None or not 400 <= self.status <= 599):
            raise ValueError("a 'status' fault needs status= between 400 and 599")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1, or None for every request")
        if self.delay < 0:
            raise ValueError("delay cannot be negative")

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request with this method and API path."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or fnmatchcase(path, self.path)

    @property
    def error_message(self) -> str:
        """The text of the {"error": ...} body a status fault answers."""
        if self.message is not None:
            return self.message
        return DEFAULT_FAULT_MESSAGES.get(self.status or 500, "Injected error")


@dataclass(slots=True)
class _Armed:
    """A fault with the number of requests it still affects (None: unlimited)."""

    fault: Fault
    left: int | None


class Faults:
    """The armed faults, consulted in the order they were added."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def add(self, fault: Fault) -> Fault:
        """Arm a fault and return it (to pass to `remaining` later)."""
        self._armed.append(_Armed(fault, fault.times))
        return fault

    def clear(self) -> None:
        """Disarm every fault."""
        self._armed.clear()

    @property
    def armed(self) -> list[Fault]:
        """The faults that still have requests left to affect."""
        return [entry.fault for entry in self._armed]

    def remaining(self, fault: Fault) -> int | None:
        """How many more requests this fault affects: 0 once used up, None when unlimited."""
        for entry in self._armed:
            if entry.fault is fault:
                return entry.left
        return 0

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching this request, counting the request against it."""
        for index, entry in enumerate(self._armed):
            if not entry.fault.matches(method, path):
                continue
            if entry.left is not None:
                entry.left -= 1
                if entry.left == 0:
                    del self._armed[index]
            return entry.fault
        return None
