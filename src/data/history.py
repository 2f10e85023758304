"""Stored history as the models read it: candles per asset (with BTC's, the context of every other asset)
and the hours the exchange never published, which labels treat as missing for good."""
from __future__ import annotations

import pandas as pd

from src.data.features import CONTEXT_SYMBOL
from src.database.operations import DatabaseOperations


def load_candles(ops: DatabaseOperations, symbols: list[str], timeframe: str, end: pd.Timestamp | None = None,
                 days: int | None = None) -> dict[str, pd.DataFrame]:
    """Stored candles per symbol (open time <= end; when `days` is given, only those within `days` before
    `end`, or before the symbol's newest candle), plus BTC for context."""
    wanted = list(dict.fromkeys([*symbols, CONTEXT_SYMBOL]))
    frames = {s: ops.get_candles(s, timeframe, end=end) for s in wanted}
    if days is not None:
        for symbol, frame in frames.items():
            if len(frame):
                last = end if end is not None else frame["timestamp"].iloc[-1]
                frames[symbol] = frame[frame["timestamp"] > last - pd.Timedelta(days=days)].reset_index(drop=True)
    return {s: f for s, f in frames.items() if len(f)}


def unfillable_hours(ops: DatabaseOperations, symbol: str, timeframe: str) -> pd.DatetimeIndex:
    """Every hour of the gaps recorded as never published by the exchange."""
    gaps = ops.get_exchange_gaps(symbol, timeframe)
    hours = [pd.date_range(a, b, freq="h") for a, b in zip(gaps["gap_start"], gaps["gap_end"])]
    return hours[0].append(hours[1:]) if hours else pd.DatetimeIndex([], tz="UTC")
