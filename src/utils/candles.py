"""Candle rows: the one definition of a valid OHLCV row, shared by the fetcher, the importer and the store."""
from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

CANDLE_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
EARLIEST_MS = 1_230_768_000_000  # 2009-01-01 UTC: no crypto candle is older (an earlier time is seconds, or junk)
LARGEST_VALUE = 1e18  # NUMERIC(28, 10) holds 18 digits before the point


def to_frame(candles: list[list] | pd.DataFrame) -> pd.DataFrame:
    """CCXT-style rows [ms, o, h, l, c, v] (or a frame with those columns) as a frame; timestamp in ms."""
    if isinstance(candles, pd.DataFrame):
        frame = candles[CANDLE_COLUMNS].copy()
        if pd.api.types.is_datetime64_any_dtype(frame["timestamp"]):
            frame["timestamp"] = frame["timestamp"].map(lambda t: int(t.timestamp() * 1000))
    else:
        frame = pd.DataFrame(candles, columns=CANDLE_COLUMNS)
    return frame


def candle_problems(frame: pd.DataFrame, timeframe_ms: int) -> pd.Series:
    """A reason string per row ('' when the row is valid): finite, positive prices, consistent high/low,
    volume >= 0, and an open time aligned to the timeframe."""
    values = frame[CANDLE_COLUMNS[1:]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    ts = pd.to_numeric(frame["timestamp"], errors="coerce").to_numpy(dtype=float)
    o, h, low, c, v = values.T
    reasons = np.full(len(frame), "", dtype=object)
    checks = [
        (~np.isfinite(values).all(axis=1), "a value is missing or not a finite number"),
        (np.abs(values).max(axis=1, initial=0) >= LARGEST_VALUE, "a value is too large (18 digits at most)"),
        (~np.isfinite(ts) | (ts % timeframe_ms != 0), "timestamp is not an open time in ms on the timeframe"),
        (ts < EARLIEST_MS, "timestamp is before 2009 (is it in seconds? it must be in ms)"),
        ((o <= 0) | (h <= 0) | (low <= 0) | (c <= 0), "a price is not positive"),
        (h < np.maximum(o, c), "high is below open or close"),
        (low > np.minimum(o, c), "low is above open or close"),
        (v < 0, "volume is negative"),
    ]
    for mask, reason in reversed(checks):  # first failing check wins
        reasons[np.nan_to_num(mask, nan=True).astype(bool)] = reason
    return pd.Series(reasons, index=frame.index)


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def last_closed_before(at: pd.Timestamp) -> pd.Timestamp:
    """Open time of the last hourly candle closed at `at`."""
    return at.floor("h") - pd.Timedelta(hours=1)
