"""Progress of long work: a bar on a terminal (tqdm), log lines with counts and rates in the daemon.

Both are callables taking the steps just done; `start(total)` (re)sets the total once the work knows it."""
from __future__ import annotations

import logging
import time
from typing import Protocol

from tqdm import tqdm

log = logging.getLogger(__name__)


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def __call__(self, step: int = 1) -> None: ...


class LogProgress:
    """One log line per tenth of the work, with the count done and the rate."""

    def __init__(self, what: str, total: int = 0, unit: str = "h"):
        self.what, self.unit = what, unit
        self.start(total)

    def start(self, total: int) -> None:
        self.total, self.done, self.next_tenth, self.began = max(total, 1), 0, 1, time.monotonic()

    def __call__(self, step: int = 1) -> None:
        self.done += step
        while self.done * 10 >= self.next_tenth * self.total and self.next_tenth <= 10:
            rate = self.done / max(time.monotonic() - self.began, 1e-9)
            log.info("%s: %d%% (%d of %d %s, %.1f %s/s)", self.what, self.next_tenth * 10, min(self.done, self.total),
                     self.total, self.unit, rate, self.unit)
            self.next_tenth += 1


class TerminalProgress:
    """A tqdm bar (shown only on a terminal), as a context manager."""

    def __init__(self, what: str, unit: str, total: int = 0):
        self.bar = tqdm(total=total or None, desc=what, unit=unit, disable=None)

    def start(self, total: int) -> None:
        self.bar.reset(total=total)

    def __call__(self, step: int = 1) -> None:
        self.bar.update(step)

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
