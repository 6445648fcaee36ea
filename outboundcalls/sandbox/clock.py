"""Clocks the sandbox reads time from: a manual one for tests and the real one for live runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, Protocol, runtime_checkable

__all__ = ["DEFAULT_START", "AccountClock", "Clock", "ManualClock", "RealClock", "format_timestamp"]

# A fixed Monday morning, so that seeded history and every test timeline are reproducible.
DEFAULT_START: Final = datetime(2025, 6, 2, 9, 0, 0, tzinfo=UTC)


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the current UTC time."""

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...


class RealClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        """The current wall-clock time in UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to, so tests never sleep."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """The current manual time."""
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += timedelta(seconds=seconds)
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({format_timestamp(self._now)})"


class AccountClock:
    """A base clock moved on by a shared offset, never earlier than the latest time it told: time a file can carry."""

    def __init__(self, base: Clock, *, offset: float = 0.0, floor: datetime | None = None) -> None:
        self.base = base
        self.offset = offset
        self.floor = floor

    def now(self) -> datetime:
        """The base time plus the offset, held at the floor if the base went back (another process, a clock step)."""
        moment = self.base.now().astimezone(UTC) + timedelta(seconds=self.offset)
        if self.floor is not None and moment < self.floor:
            moment = self.floor
        self.floor = moment
        return moment

    def __repr__(self) -> str:
        return f"AccountClock({self.base!r}, offset={self.offset:g})"


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, the way JavaScript back ends print dates."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
