"""The barrier label (DESIGN.md, "Prediction semantics"): one vectorised function for training, backtest
and live outcome tracking.

For an entry candle at open time t with close c and target X: scan the candles of open time t+1h .. t+H.
The first with high >= c(1+X) is UP, the first with low <= c(1-X) is DOWN; both in one candle is
`ambiguous`; neither within H candles is `expired`. A window that needs candles not there yet is
`pending`. An hour the exchange never published is skipped (it is missing, not a candle); an hour that
is merely not stored yet makes the window pending until it is filled or known to be unfillable.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

UP, DOWN, AMBIGUOUS, EXPIRED, PENDING = "up", "down", "ambiguous", "expired", "pending"
HOUR = pd.Timedelta(hours=1)
PRICE_DECIMALS = 10  # prices are stored as NUMERIC(28, 10)


def barriers(close: np.ndarray, target: float) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower barriers, close * (1 +- X), rounded to the prices' stored precision: exact decimal
    barriers, so a high of exactly 1.111 reaches 1.1 * 1.01 (1.1110000000000002 in floating point)."""
    return np.round(close * (1 + target), PRICE_DECIMALS), np.round(close * (1 - target), PRICE_DECIMALS)


def hourly_grid(candles: pd.DataFrame, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Candles reindexed on every hour from the first candle to `end` (default: the last candle);
    missing hours are rows of NaN, never a shift of the next candle into their slot."""
    frame = candles.set_index("timestamp").sort_index()
    last = frame.index[-1] if end is None else max(pd.Timestamp(end), frame.index[-1])
    return frame.reindex(pd.date_range(frame.index[0], last, freq="h", name="timestamp"))


def barrier_outcomes(candles: pd.DataFrame, target: float, horizon: int = 168,
                     entries: pd.DatetimeIndex | None = None, as_of: pd.Timestamp | None = None,
                     unfillable: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """Outcome of every entry hour (default: every candle) for one target.

    candles: timestamp (UTC), high, low, close. as_of: the newest hour whose candle could be known
    (default: the last candle). unfillable: missing hours the exchange never published; None means every
    missing hour inside the data is such an hour (history downloaded whole, as in shared/data).
    Returns, indexed by entry time: status, label (1/0/NaN), hit_time, hours_to_hit, max_favorable_move,
    max_adverse_move (fractions of the entry close; adverse as a positive drop).
    """
    grid = hourly_grid(candles, as_of)
    close, high, low = (grid[c].to_numpy(float) for c in ("close", "high", "low"))
    missing = np.isnan(close)
    final_missing = missing.copy() if unfillable is None else grid.index.isin(unfillable) & missing
    n = len(grid)
    pad = np.full(horizon, np.nan)
    # future[i, k] is the candle k+1 hours after grid row i (NaN past the data).
    fut_high = sliding_window_view(np.concatenate([high[1:], pad, [np.nan]]), horizon)[:n]
    fut_low = sliding_window_view(np.concatenate([low[1:], pad, [np.nan]]), horizon)[:n]
    beyond = sliding_window_view(np.concatenate([np.zeros(n - 1, bool), np.ones(horizon + 1, bool)]), horizon)[:n]
    unknown = sliding_window_view(np.concatenate([(missing & ~final_missing)[1:], np.zeros(horizon + 1, bool)]),
                                  horizon)[:n] | beyond

    upper, lower = barriers(close, target)
    with np.errstate(invalid="ignore"):
        up_hit = fut_high >= upper[:, None]
        down_hit = fut_low <= lower[:, None]
    any_hit = up_hit | down_hit
    first_hit = np.where(any_hit.any(axis=1), any_hit.argmax(axis=1), horizon)
    first_unknown = np.where(unknown.any(axis=1), unknown.argmax(axis=1), horizon)
    rows = np.arange(n)
    hit_col = np.minimum(first_hit, horizon - 1)
    up_first, down_first = up_hit[rows, hit_col], down_hit[rows, hit_col]
    resolved_by_hit = (first_hit < horizon) & (first_hit < first_unknown)

    status = np.full(n, PENDING, dtype=object)
    status[(first_hit == horizon) & (first_unknown == horizon)] = EXPIRED
    status[resolved_by_hit & up_first & down_first] = AMBIGUOUS
    status[resolved_by_hit & up_first & ~down_first] = UP
    status[resolved_by_hit & down_first & ~up_first] = DOWN
    status[missing] = None  # no entry candle, no prediction

    # Running extremes over the candles scanned until resolution (all H when expired).
    scanned = np.where(status == EXPIRED, horizon - 1, hit_col)
    run_high = np.fmax.accumulate(fut_high, axis=1)[rows, scanned]
    run_low = np.fmin.accumulate(fut_low, axis=1)[rows, scanned]
    decided = np.isin(status, [UP, DOWN, AMBIGUOUS, EXPIRED])
    hit = np.isin(status, [UP, DOWN, AMBIGUOUS])
    with np.errstate(invalid="ignore", divide="ignore"):
        favorable, adverse = run_high / close - 1, 1 - run_low / close
    out = pd.DataFrame({
        "status": status,
        "label": np.select([status == UP, status == DOWN], [1.0, 0.0], np.nan),
        "hit_time": (grid.index + pd.to_timedelta(first_hit + 1, unit="h")).where(hit),
        "hours_to_hit": np.where(hit, first_hit + 1.0, np.nan),
        "max_favorable_move": np.where(decided, favorable, np.nan),
        "max_adverse_move": np.where(decided, adverse, np.nan),
    }, index=grid.index)
    out = out[~missing]
    return out if entries is None else out.reindex(entries)


def label_known_time(outcomes: pd.DataFrame, horizon: int = 168) -> pd.Series:
    """When each label became known: the close of the hit candle, or of the last candle when expired.
    Used to purge training samples whose labels were not known at a cut."""
    end_of_window = pd.Series(outcomes.index + (horizon + 1) * HOUR, index=outcomes.index)
    return (outcomes["hit_time"] + HOUR).where(outcomes["status"] != EXPIRED, end_of_window)
