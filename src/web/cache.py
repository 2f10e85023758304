"""What the pages compute kept while it cannot change: the track record until the record does (a new hour, new
forecasts or new daily sums), and an any-size forecast for its asset, size and hour. Thread-safe: the page
threads share them."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from cachetools import LRUCache

from src.models.live.moves import MoveForecast
from src.utils.candles import last_closed_before
from src.utils.clock import utc_now

SOON_RECHECK_SECONDS = 60.0  # an answer from a candle older than the last closed one is asked again this often


class _Counted:
    def __init__(self, maxsize: int) -> None:
        self._cache: LRUCache = LRUCache(maxsize)
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _read(self, key: Hashable) -> Any:
        with self._lock:
            value = self._cache.get(key)
            self.hits += value is not None
            self.misses += value is None
            return value

    def _write(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._cache[key] = value


class RecordCache(_Counted):
    """The computed record per request's parameters, until `version()` (records.record_version) or the hour
    changes: the hour moves which fates are known."""

    def __init__(self, version: Callable[[], tuple], maxsize: int = 32) -> None:
        super().__init__(maxsize)
        self.version = version

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        full = (key, utc_now().floor("h"), self.version())
        value = self._read(full)
        if value is None:
            value = compute()
            self._write(full, value)
        return value


class SoonCache(_Counted):
    """An any-size forecast per asset, size and hour; one made from a candle older than the last closed one (the
    hour's candle not fetched yet) is asked again after SOON_RECHECK_SECONDS."""

    def __init__(self, maxsize: int = 512) -> None:
        super().__init__(maxsize)

    def get(self, symbol: str, move: float, compute: Callable[[], MoveForecast]) -> MoveForecast:
        now = utc_now()
        key = (symbol, round(move, 6), now.floor("h"))
        kept = self._read(key)
        if kept is not None:
            answer, made = kept
            if answer.candle_time >= last_closed_before(now) or time.monotonic() - made < SOON_RECHECK_SECONDS:
                return answer
        answer = compute()
        self._write(key, (answer, time.monotonic()))
        return answer
