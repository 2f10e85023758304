"""Daily performance of the live record: per asset x target x model, for the day and rolling 7 and 30 days,
stored in model_performance (run_type 'live'): direction forecasts (task 'direction') and how-soon
forecasts (task 'resolution': Brier skill per horizon, interval coverage, pinball skill).

A day's predictions resolve over the following week (a window can stay open for the full horizon), so a
day's figures are recomputed as its predictions resolve, until none is pending; each row says how many were
resolved and how many were pending when it was computed. `hit_rate` counts only complete windows (whose
last candle has closed): counting early resolutions alone would make it 100 % by construction.
"""
from __future__ import annotations

import logging
from datetime import date

import numpy as np
import pandas as pd

from src.data.labels import DOWN, UP
from src.database.records import RecordStore
from src.database.records.forecasts import FORECAST_COLUMNS
from src.models.estimators.tasks import RESOLUTION
from src.models.evaluation.direction_metrics import forecast_metrics

log = logging.getLogger(__name__)
WINDOWS = (1, 7, 30)


def window_metrics(predictions: pd.DataFrame, as_of: pd.Timestamp, horizon: int = 168) -> list[dict]:
    """Metrics per (symbol, timeframe, target, model) of predictions (status NaN while pending); Brier
    skill against the climatology model's forecasts for the same hours."""
    rows = []
    complete_by = as_of - pd.Timedelta(hours=horizon + 1)  # the window's last candle has closed
    for (symbol, timeframe, target), group in predictions.groupby(["symbol", "timeframe", "target_pct"]):
        clim = group[group["model_name"] == "climatology"].set_index("timestamp")["probability"]
        for name, own in group.groupby("model_name"):
            own = own.set_index("timestamp")
            labelled = own[own["status"].isin([UP, DOWN])]
            reference = clim.reindex(labelled.index).fillna(labelled["actual_outcome"].mean())
            m = forecast_metrics(labelled["actual_outcome"].to_numpy(float), labelled["probability"].to_numpy(),
                                 reference.to_numpy())
            complete = own[(own.index <= complete_by) & own["status"].notna()]
            resolved = own["status"].notna()
            rows.append({"symbol": symbol, "timeframe": timeframe, "target_pct": float(target), "model_name": name,
                         "total_predictions": int(m.get("n", 0)),
                         "resolved_predictions": int(resolved.sum()), "pending_predictions": int((~resolved).sum()),
                         "hit_rate": float(complete["status"].ne("expired").mean()) if len(complete) else None,
                         "avg_time_to_target_hours": float(np.nanmean(own["time_to_target_hours"]))
                         if own["time_to_target_hours"].notna().any() else None,
                         **{k: v for k, v in m.items() if k != "n"}})
    return rows


def time_window_metrics(forecasts: pd.DataFrame, horizon: int = 168) -> list[dict]:
    """How-soon metrics per (symbol, timeframe, target, time model) over the decided windows, against the
    climatology time model's forecasts for the same hours."""
    rows = []
    for (symbol, timeframe, target), group in forecasts.groupby(["symbol", "timeframe", "target_pct"]):
        decided = group[group["status"].notna()]
        clim = decided[decided["model_name"] == "climatology"].set_index("timestamp")
        for name, own in group.groupby("model_name"):
            done = own[own["status"].notna()].set_index("timestamp")
            common = done.index.intersection(clim.index)
            hours = done.loc[common, "hours_to_resolution"].where(done.loc[common, "status"] != "expired", np.inf)
            m = RESOLUTION.metrics(done.loc[common, list(FORECAST_COLUMNS)].to_numpy(float),
                                   clim.loc[common, list(FORECAST_COLUMNS)].to_numpy(float),
                                   hours.to_numpy(float), horizon)
            pending = int(own["status"].isna().sum())
            rows.append({"symbol": symbol, "timeframe": timeframe, "target_pct": float(target), "model_name": name,
                         "task": RESOLUTION.name, "total_predictions": int(m.get("n", 0)),
                         "resolved_predictions": len(done), "pending_predictions": pending,
                         **{k: v for k, v in m.items() if k != "n"}})
    return rows


def daily_performance(records: RecordStore, day: date, as_of: pd.Timestamp | None = None, horizon: int = 168,
                      run_type: str = "live") -> int:
    """Compute and store the day's, 7-day and 30-day metrics ending with `day`, from the outcomes known
    at `as_of` (default now); returns rows stored."""
    as_of = as_of if as_of is not None else pd.Timestamp.now(tz="UTC")
    end = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)
    made = records.resolved(run_type, end - pd.Timedelta(days=max(WINDOWS)), end, include_pending=True)
    timing = records.resolved_time(run_type, end - pd.Timedelta(days=max(WINDOWS)), end, include_pending=True)
    rows = []
    for days in WINDOWS:
        since = end - pd.Timedelta(days=days)
        for row in window_metrics(made[made["timestamp"] >= since], as_of, horizon):
            rows.append({**row, "task": "direction", "run_type": run_type, "evaluation_date": day,
                         "window_days": days})
        for row in time_window_metrics(timing[timing["timestamp"] >= since], horizon):
            rows.append({**row, "run_type": run_type, "evaluation_date": day, "window_days": days})
    stored = records.save_performance(rows)
    log.info("performance %s: %d predictions, %d pending, %d metric rows", day, len(made),
             int(made["status"].isna().sum()), stored)
    return stored


def refresh_performance(records: RecordStore, now: pd.Timestamp, horizon: int = 168,
                        run_type: str = "live") -> list[date]:
    """Yesterday's metrics, and again those of every recent day that still had pending predictions.
    Returns the days computed."""
    yesterday = (now - pd.Timedelta(days=1)).date()
    since = (now - pd.Timedelta(days=max(WINDOWS))).date()
    days = sorted(set(records.days_with_pending(run_type, since)) | {yesterday})
    for day in days:
        daily_performance(records, day, now, horizon, run_type)
    return days
