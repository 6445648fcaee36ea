"""Single-flight reads: identical requests in the air at the same time share one upstream round trip.

Why: many MCP sessions on one HTTP server ask for the same thing at once (the balance, the calls
list); each sending its own GET would spend our CPU and the vendor's rate limit on one answer.
A caller that finds an identical read already in flight waits for that one's answer instead.

What it never does:
- store anything: a flight is forgotten the moment it lands, so an answer is never older than one
  in-flight round trip, and a read that starts after another landed sends its own;
- cross a write: `new_generation()` is called when a write starts and when it ends, and a read only
  joins a flight of the current generation, so a read that begins after a write began (or ended)
  never gets an answer that left before it (dispatch a call, then list the calls: it is there);
- spawn a task: the first caller (the leader) does the work in its own task. If the leader is
  cancelled, the flight is abandoned, its waiters wake and one of them leads a fresh attempt, so a
  waiter is neither cancelled with the leader nor left hanging; a cancelled waiter just leaves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, cast

import anyio

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Flight(Generic[T]):
    """One request in the air, and how it landed."""

    __slots__ = ("error", "landed", "succeeded", "value")

    def __init__(self) -> None:
        self.landed = anyio.Event()
        self.succeeded = False
        self.value: T | None = None
        self.error: Exception | None = None


def _copy_of(error: Exception) -> Exception:
    """The same error (type, message, attributes, cause) as a fresh object, for one waiter to raise."""
    # Raising one instance from several tasks would splice their tracebacks into each other.
    cls = type(error)
    try:
        clone = cls.__new__(cls, *error.args)
        clone.__dict__.update(error.__dict__)
        clone.args = error.args
    except (TypeError, AttributeError):
        # An exotic constructor: sharing the instance beats losing the error.
        return error
    clone.__cause__ = error.__cause__
    return clone


class SingleFlight(Generic[K, T]):
    """Runs one piece of work per key and generation at a time; callers arriving meanwhile share its outcome."""

    def __init__(self) -> None:
        self._flights: dict[tuple[int, K], _Flight[T]] = {}
        self._generation = 0

    def __len__(self) -> int:
        """How many flights are in the air now."""
        return len(self._flights)

    def new_generation(self) -> None:
        """Let no later caller join a flight that is already in the air (a write is starting or ended)."""
        self._generation += 1

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> T:
        """The outcome of `work()`: its value, or its error raised, shared with identical concurrent calls."""
        while True:
            slot = (self._generation, key)
            flight = self._flights.get(slot)
            if flight is None:
                return await self._lead(slot, work)
            await flight.landed.wait()
            if flight.succeeded:
                return cast("T", flight.value)
            if flight.error is not None:
                raise _copy_of(flight.error)
            # Abandoned (its leader was cancelled): go round, joining or leading a fresh flight.

    async def _lead(self, slot: tuple[int, K], work: Callable[[], Awaitable[T]]) -> T:
        """Do the work for everyone waiting on this slot, and land the flight however it ends."""
        flight: _Flight[T] = _Flight()
        self._flights[slot] = flight
        try:
            value = await work()
        except Exception as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            flight.succeeded = True
            return value
        finally:
            # Also on cancellation: no outcome means abandoned, and the waiters must wake to re-lead.
            if self._flights.get(slot) is flight:
                del self._flights[slot]
            flight.landed.set()
