"""Daily performance of the live record: per asset x target x model, for the day and rolling 7 and 30 days,
stored in model_performance (run_type 'live'): direction forecasts (task 'direction') and how-soon
forecasts (task 'resolution': Brier skill per horizon, interval coverage, pinball skill), scored by the one
scoring the backtest uses (src.models.evaluation.scoring): per model, and as 'champion' the forecasts users got.

A day's predictions resolve over the following week (a window can stay open for the full horizon), so a
day's figures are recomputed as its predictions resolve, until none is pending; each row says how many were
resolved and how many were pending when it was computed. `hit_rate` counts only complete windows (whose
last candle has closed): counting early resolutions alone would make it 100 % by construction.
"""
from __future__ import annotations

import logging
from datetime import date

import pandas as pd

from src.database.records import RecordStore
from src.models.evaluation.scoring import DIRECTION_ROWS, TIMING_ROWS, RowKind, score_rows
from src.utils.clock import service_run, utc_now

log = logging.getLogger(__name__)
WINDOWS = (1, 7, 30)


def window_rows(kind: RowKind, task: str, rows: pd.DataFrame, as_of: pd.Timestamp, horizon: int) -> list[dict]:
    """model_performance rows of one task over one window's forecasts (src.models.evaluation.scoring)."""
    table = score_rows(kind, rows, horizon, as_of)
    return [{**{k: None if pd.isna(v) else v for k, v in row.items() if k not in ("n", "n_complete")}, "task": task,
             "total_predictions": int(row["n"])}  # an undefined figure is stored as NULL, not NaN
            for row in table.to_dict("records")]


def daily_performance(records: RecordStore, day: date, as_of: pd.Timestamp | None = None, horizon: int = 168,
                      run_type: str | None = None) -> int:
    """Compute and store the day's, 7-day and 30-day metrics ending with `day`, from the outcomes known
    at `as_of` (default now); returns rows stored."""
    run_type = run_type or service_run()
    as_of = as_of if as_of is not None else utc_now()
    return _store_days(records, [day], as_of, horizon, run_type)


def refresh_performance(records: RecordStore, now: pd.Timestamp, horizon: int = 168,
                        run_type: str | None = None) -> list[date]:
    """Yesterday's metrics, and again those of every recent day that still had pending predictions.
    Returns the days computed."""
    run_type = run_type or service_run()
    yesterday = (now - pd.Timedelta(days=1)).date()
    since = (now - pd.Timedelta(days=max(WINDOWS))).date()
    days = sorted(set(records.days_with_pending(run_type, since)) | {yesterday})
    _store_days(records, days, now, horizon, run_type)
    return days


def _store_days(records: RecordStore, days: list[date], as_of: pd.Timestamp, horizon: int, run_type: str) -> int:
    """The metrics of each day (its windows ending with it), from one read of the forecasts they cover."""
    ends = [pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1) for day in days]
    first, last = min(ends) - pd.Timedelta(days=max(WINDOWS)), max(ends)
    made_all = records.resolved(run_type, first, last, include_pending=True)
    timing_all = records.resolved_time(run_type, first, last, include_pending=True)
    stored = 0
    for day, end in zip(days, ends):
        made, timing = (_between(frame, end - pd.Timedelta(days=max(WINDOWS)), end) for frame in (made_all, timing_all))
        rows = []
        for days_back in WINDOWS:
            since = end - pd.Timedelta(days=days_back)
            for kind, task, frame in ((DIRECTION_ROWS, "direction", made), (TIMING_ROWS, "resolution", timing)):
                rows += [{**row, "run_type": run_type, "evaluation_date": day, "window_days": days_back}
                         for row in window_rows(kind, task, frame[frame["timestamp"] >= since], as_of, horizon)]
        day_stored = records.save_performance(rows)
        stored += day_stored
        log.info("performance %s: %d predictions, %d pending, %d metric rows", day, len(made),
                 int(made["status"].isna().sum()), day_stored)
    return stored


def _between(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The rows with start <= timestamp < end (the read of ForecastRecords.resolved over those times)."""
    return frame[(frame["timestamp"] >= start) & (frame["timestamp"] < end)]
