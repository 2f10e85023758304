"""The daemon's schedule on the service's clock (src.utils.clock): jobs at a minute of every hour, at a time of
every day (UTC), or every N minutes. It reads only that clock, so the same schedule runs live on the wall clock
and, in `replay`, on a simulated one that jumps from one due time to the next. (The `schedule` package reads
the host's wall clock inside its jobs, so it cannot be driven by a simulated one.)"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from src.utils.clock import utc_now


@dataclass
class Entry:
    name: str
    action: Callable[[], object]
    period: pd.Timedelta
    next_run: pd.Timestamp


class Timetable:
    def __init__(self):
        self.entries: list[Entry] = []

    def _add(self, name: str, action: Callable[[], object], period: pd.Timedelta, first: pd.Timestamp) -> None:
        self.entries.append(Entry(name, action, period, first))

    def hourly_at(self, minute: int, name: str, action: Callable[[], object]) -> None:
        """At `minute` past every hour (UTC), from the next one on."""
        now = utc_now()
        first = now.floor("h") + pd.Timedelta(minutes=minute)
        self._add(name, action, pd.Timedelta(hours=1), first if first > now else first + pd.Timedelta(hours=1))

    def daily_at(self, hh_mm: str, name: str, action: Callable[[], object]) -> None:
        """At HH:MM UTC every day, from the next one on."""
        now = utc_now()
        hours, minutes = (int(part) for part in hh_mm.split(":"))
        first = now.floor("D") + pd.Timedelta(hours=hours, minutes=minutes)
        self._add(name, action, pd.Timedelta(days=1), first if first > now else first + pd.Timedelta(days=1))

    def every_minutes(self, minutes: int, name: str, action: Callable[[], object]) -> None:
        """Every `minutes`, the first `minutes` from now."""
        period = pd.Timedelta(minutes=minutes)
        self._add(name, action, period, utc_now() + period)

    def next_run(self) -> pd.Timestamp | None:
        return min((e.next_run for e in self.entries), default=None)

    def run_pending(self) -> list[str]:
        """Run every entry that is due, in time order, and move it to its next time after now (a run missed
        while the machine slept is run once, not once per missed period). Returns the names run."""
        now = utc_now()
        ran = []
        for entry in sorted((e for e in self.entries if e.next_run <= now), key=lambda e: e.next_run):
            entry.action()
            ran.append(entry.name)
            behind = (now - entry.next_run) // entry.period
            entry.next_run += entry.period * (behind + 1)
        return ran
