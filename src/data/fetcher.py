"""Exchange candles through CCXT: paging, validation, closed candles only, and one retry policy.

Errors are sorted once (as freqtrade does): temporary ones (network, timeouts, rate limits, 5xx) are
retried with backoff, bounded in count and time; operational ones (unknown symbol, bad timeframe,
authentication) fail at once as FetchError with one clear line.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import ccxt
import pandas as pd

from src.utils.candles import CANDLE_COLUMNS, candle_problems
from src.utils.config import TIMEFRAME_MS, Config
from src.utils.errors import StopRequested, UserError
from src.utils.secrets import redact

log = logging.getLogger(__name__)
T = TypeVar("T")
# CCXT says OperationFailed means "try again later": NetworkError (timeouts, 5xx, rate limits) and the
# exchange's own internal errors (Binance -1000 with HTTP 500). ExchangeError and its kin are final.
TEMPORARY_ERRORS = (ccxt.OperationFailed,)
PAGE_LIMIT = 1000


class FetchError(UserError):
    """The exchange refused or kept failing; the message says which and what to do. `unreachable`: the
    failure was the network or the exchange being down (every asset would fail alike)."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


def _cause(exc: Exception) -> str:
    """The error's type and the first line of its text, short: what an operator needs to act."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


class ExchangeDataFetcher:
    def __init__(self, exchange_name: str | None = None, config: Config | None = None,
                 stop_event: threading.Event | None = None):
        """The CCXT client of `exchange_name` (default: exchange.id), set up from the config's exchange
        section: options passed through, api_urls merged over urls['api'], rate limiting as exchange.rate_limit says."""
        settings = (config or Config()).config["exchange"]
        name = exchange_name or settings["id"]
        own = name == settings["id"]  # the config's options and URLs belong to its own exchange only
        try:
            exchange_class = getattr(ccxt, name)
        except AttributeError:
            raise UserError(f"exchange.id {name!r} is not a CCXT exchange; e.g. binance") from None
        self.exchange = exchange_class({"timeout": settings["timeout_ms"], "enableRateLimit": settings["rate_limit"],
                                        "options": dict(settings["options"]) if own else {}})
        if own and settings["api_urls"]:
            self.exchange.urls["api"] = {**self.exchange.urls["api"], **settings["api_urls"]}
        self.max_retries = settings["max_retries"]
        self.retry_max_seconds = settings["retry_max_seconds"]
        self.invalid_rows = 0
        self.stop_event = stop_event or threading.Event()  # set by the daemon's stop: ends a retry wait

    # ---- one retry policy for every call --------------------------------------------------------
    def _call(self, what: str, func: Callable[..., T], *args: Any) -> T:
        deadline = time.monotonic() + self.retry_max_seconds
        for attempt in range(self.max_retries + 1):
            try:
                return func(*args)
            except TEMPORARY_ERRORS as exc:
                wait = self._retry_after() or min(2.0 ** attempt, 30.0)
                if attempt == self.max_retries or time.monotonic() + wait > deadline:
                    state = "is unreachable" if isinstance(exc, ccxt.NetworkError) else "keeps failing"
                    raise FetchError(f"{self.exchange.id} {state}: {what} failed {attempt + 1} times "
                                     f"({redact(_cause(exc))})", unreachable=True) from None
                # the first retry says why; the rest are routine until the last one fails
                log.log(logging.WARNING if attempt == 0 else logging.INFO, "%s: %s failed (%s), retry %d/%d in %.1fs",
                        self.exchange.id, what, redact(_cause(exc)), attempt + 1, self.max_retries, wait)
                if self.stop_event.wait(wait):  # a stop, not a failure: nothing else should be tried either
                    raise StopRequested(f"{self.exchange.id}: {what} not retried: the service is stopping") from None
            except ccxt.BadSymbol:
                raise FetchError(f"{self.exchange.id} has no market {args[0]!r}; "
                                 "check trading.assets (e.g. BTC/USDT)") from None
            except ccxt.AuthenticationError:
                raise FetchError(f"{self.exchange.id} refused the credentials; check exchange.options") from None
            except ccxt.BaseError as exc:
                raise FetchError(f"{self.exchange.id}: {what} failed: {type(exc).__name__}: "
                                 f"{str(exc)[:200]}") from None
        raise AssertionError("unreachable")

    def _retry_after(self) -> float | None:
        headers = self.exchange.last_response_headers or {}
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        try:
            return min(float(value), self.retry_max_seconds) if value is not None else None
        except ValueError:
            return None

    # ---- the seed's interface -------------------------------------------------------------------
    def fetch_ohlcv_batch(self, symbol: str, timeframe: str = "1h", since: int | None = None,
                          limit: int = PAGE_LIMIT) -> list[list]:
        """One page of raw candles (as the exchange sent them), with retries."""
        if timeframe not in TIMEFRAME_MS:
            raise FetchError(f"timeframe {timeframe!r} is not supported; use one of {', '.join(TIMEFRAME_MS)}")
        return self._call(f"fetch_ohlcv {symbol} {timeframe}", self.exchange.fetch_ohlcv,
                          symbol, timeframe, since, limit)

    def exchange_time_ms(self) -> int:
        """The exchange's clock (its own answer when it has one, else ours)."""
        if self.exchange.has.get("fetchTime"):
            return int(self._call("fetch_time", self.exchange.fetch_time))
        return self.exchange.milliseconds()

    def fetch_range(self, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> list[list]:
        """Closed, valid candles with start_ms <= open time <= end_ms, sorted, one per open time.
        Pages forward by `since`; a short page does not end the paging, only passing end_ms or now."""
        step = TIMEFRAME_MS[timeframe]
        now_ms = self.exchange_time_ms()
        end_ms = min(end_ms, now_ms - step)  # the candle still open is never returned
        rows: dict[int, list] = {}
        since = start_ms
        while since <= end_ms:
            page = self.fetch_ohlcv_batch(symbol, timeframe, since, PAGE_LIMIT)
            newest = max((int(r[0]) for r in page), default=None)
            for row in page:
                if since <= int(row[0]) <= end_ms:
                    rows[int(row[0])] = [int(row[0]), *row[1:6]]
            if newest is None or newest < since:
                break  # nothing at or after `since`: the exchange has no more
            since = newest + step
        return self._valid(symbol, [rows[t] for t in sorted(rows)], step)

    def _valid(self, symbol: str, rows: list[list], step: int) -> list[list]:
        if not rows:
            return rows
        frame = pd.DataFrame(rows, columns=CANDLE_COLUMNS)
        problems = candle_problems(frame, step)
        bad = problems != ""
        if bad.any():
            self.invalid_rows += int(bad.sum())
            for index in problems[bad].index[:5]:
                log.warning("%s: dropped candle %s: %s", symbol, rows[index][0], problems[index])
            log.warning("%s: dropped %d invalid candles of %d", symbol, int(bad.sum()), len(rows))
        return [row for row, is_bad in zip(rows, bad) if not is_bad]

    def fetch_historical_data(self, symbol: str, days: int = 30, timeframe: str = "1h") -> pd.DataFrame:
        """The closed candles of the last `days` days as a frame (timestamp as UTC datetime)."""
        now_ms = self.exchange_time_ms()
        rows = self.fetch_range(symbol, timeframe, now_ms - days * 86_400_000, now_ms)
        frame = pd.DataFrame(rows, columns=CANDLE_COLUMNS)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
        log.info("fetched %d closed candles for %s over %d days", len(frame), symbol, days)
        return frame

    def get_latest_candle(self, symbol: str, timeframe: str = "1h") -> list | None:
        """The most recent CLOSED candle, or None when the exchange has none."""
        step = TIMEFRAME_MS[timeframe]
        now_ms = self.exchange_time_ms()
        rows = self.fetch_range(symbol, timeframe, now_ms - 3 * step, now_ms)
        return rows[-1] if rows else None
