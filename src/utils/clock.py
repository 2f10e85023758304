"""The service's clock: what "now" is for every job, page, answer and record, always UTC.

Live, it is the wall clock. `replay` sets a simulated one for the whole process (use_clock), so the daemon
runs unchanged over past candles: its schedule, its jobs and everything they write or show read this clock,
never the host's. Durations (how long a job took, timeouts, retry waits) stay on the real monotonic clock:
they measure the machine, not the market."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd


class SystemClock:
    """The wall clock, in UTC whatever the host's TZ."""

    def now(self) -> pd.Timestamp:
        return pd.Timestamp.now(tz="UTC")


class FrozenClock(SystemClock):
    """The wall clock held at one moment: a run that reads "now" twice (a test checking an age it computed) reads
    the same time both times. Still the live service's clock (service_run: 'live')."""

    def __init__(self, moment: pd.Timestamp):
        self._now = pd.Timestamp(moment).tz_convert("UTC")

    def now(self) -> pd.Timestamp:
        return self._now


class SimulatedClock:
    """A clock that moves only when told to (forward only): the replay's simulated time."""

    def __init__(self, start: pd.Timestamp):
        self._now = pd.Timestamp(start).tz_convert("UTC")
        self._lock = threading.Lock()

    def now(self) -> pd.Timestamp:
        with self._lock:
            return self._now

    def advance_to(self, moment: pd.Timestamp) -> None:
        moment = pd.Timestamp(moment).tz_convert("UTC")
        with self._lock:
            if moment < self._now:
                raise ValueError(f"a simulated clock does not go back ({moment} is before {self._now})")
            self._now = moment


_clock: SystemClock | SimulatedClock = SystemClock()


def utc_now() -> pd.Timestamp:
    """Now, on the service's clock (tz-aware UTC)."""
    return _clock.now()


@contextmanager
def use_clock(clock: SimulatedClock | SystemClock) -> Iterator[SimulatedClock | SystemClock]:
    """Run the block on `clock` (the whole process reads it), then go back to the wall clock."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield clock
    finally:
        _clock = previous


def service_run() -> str:
    """The run the service's own forecasts are stored and read as: 'live' on the wall clock, 'replay' when the
    daemon runs on a simulated one (its forecasts never mix with the live record)."""
    return "replay" if isinstance(_clock, SimulatedClock) else "live"
