"""SingleFlight on its own: one piece of work per key and generation, nothing kept after it lands."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc
import pytest

from outboundcalls import RateLimitError
from outboundcalls.single_flight import SingleFlight

pytestmark = pytest.mark.anyio

# Only turns a hang into a failure; nothing is timed.
HANG_GUARD_SECONDS = 10


class Work:
    """Work that counts its runs and finishes, one way or another, when the test says so."""

    def __init__(self, error: Exception | None = None) -> None:
        self.runs = 0
        self.release = anyio.Event()
        self.error = error

    async def __call__(self) -> str:
        self.runs += 1
        run = self.runs
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return f"answer {run}"


async def _run(
    flights: SingleFlight[str, str],
    work: Work,
    outcomes: list[Any],
    scope: anyio.CancelScope | None = None,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """One caller of flights.run, keeping its value or error."""
    task_status.started()
    with scope or anyio.CancelScope():
        try:
            outcomes.append(await flights.run("key", work))
        except Exception as exc:
            outcomes.append(exc)


@pytest.mark.parametrize("ending", ["value", "error", "cancelled"])
async def test_a_flight_is_forgotten_when_it_lands_however_it_lands(ending: str) -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    work = Work(ValueError("no") if ending == "error" else None)
    outcomes: list[Any] = []
    scope = anyio.CancelScope()
    with anyio.fail_after(HANG_GUARD_SECONDS):
        async with anyio.create_task_group() as group:
            await group.start(_run, flights, work, outcomes, scope)
            assert len(flights) == 1
            if ending == "cancelled":
                scope.cancel()
            work.release.set()
    assert len(flights) == 0
    assert len(outcomes) == (0 if ending == "cancelled" else 1)


async def test_a_new_generation_starts_a_new_flight_and_the_old_one_still_lands() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    work = Work()
    outcomes: list[Any] = []
    with anyio.fail_after(HANG_GUARD_SECONDS):
        async with anyio.create_task_group() as group:
            await group.start(_run, flights, work, outcomes)
            await group.start(_run, flights, work, outcomes)
            flights.new_generation()
            await group.start(_run, flights, work, outcomes)
            assert len(flights) == 2
            work.release.set()
    assert work.runs == 2
    assert sorted(outcomes) == ["answer 1", "answer 1", "answer 2"]
    assert len(flights) == 0


async def test_waiters_raise_their_own_copy_with_every_attribute_and_the_cause() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    cause = ConnectionResetError("reset")
    error = RateLimitError(429, "slow down", "rate_limited", "req_1", retry_after=3.0)
    error.__cause__ = cause
    work = Work(error)
    outcomes: list[Any] = []
    with anyio.fail_after(HANG_GUARD_SECONDS):
        async with anyio.create_task_group() as group:
            for _ in range(3):
                await group.start(_run, flights, work, outcomes)
            work.release.set()
    assert work.runs == 1
    assert outcomes[0] is error
    for copy in outcomes[1:]:
        assert copy is not error
        assert type(copy) is RateLimitError
        assert (copy.status, copy.message, copy.code, copy.request_id, copy.retry_after) == (
            429,
            "slow down",
            "rate_limited",
            "req_1",
            3.0,
        )
        assert str(copy) == str(error)
        assert copy.__cause__ is cause
