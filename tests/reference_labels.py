"""An independent, deliberately plain implementation of DESIGN.md's barrier rule, for expected values in
tests: a Python loop over the hours after the entry with exact decimal arithmetic, sharing no code with
src.data.labels."""
from __future__ import annotations

from decimal import Decimal

import pandas as pd


def _exact(value: float) -> Decimal:
    return Decimal(repr(float(value)))  # the decimal the exchange published (repr round-trips)


def reference_outcome(candles: pd.DataFrame, entry: pd.Timestamp, target: float, horizon: int = 168) -> tuple:
    """(status, label, hours to the hit) of one entry; candles: timestamp-indexed high/low/close. A missing
    hour inside the data is skipped; a window reaching past the data is 'pending'."""
    close, x = _exact(candles.loc[entry, "close"]), Decimal(repr(target))
    upper, lower = close * (1 + x), close * (1 - x)
    last = candles.index.max()
    for k in range(1, horizon + 1):
        hour = entry + pd.Timedelta(hours=k)
        if hour > last:
            return "pending", None, None
        if hour not in candles.index:
            continue
        up = _exact(candles.loc[hour, "high"]) >= upper
        down = _exact(candles.loc[hour, "low"]) <= lower
        if up and down:
            return "ambiguous", None, float(k)
        if up:
            return "up", 1.0, float(k)
        if down:
            return "down", 0.0, float(k)
    return "expired", None, None
