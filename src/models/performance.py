"""Daily performance of the live record: per asset x target x model, for the day and rolling 7 and 30 days,
from resolved outcomes, stored in model_performance (run_type 'live')."""
from __future__ import annotations

import logging
from datetime import date

import numpy as np
import pandas as pd

from src.data.labels import DOWN, UP
from src.database.records import RecordStore
from src.models.metrics import forecast_metrics

log = logging.getLogger(__name__)
WINDOWS = (1, 7, 30)


def window_metrics(resolved: pd.DataFrame) -> list[dict]:
    """Metrics per (symbol, timeframe, target, model) of resolved predictions; Brier skill against the
    climatology model's forecasts for the same hours."""
    rows = []
    for (symbol, timeframe, target), group in resolved.groupby(["symbol", "timeframe", "target_pct"]):
        clim = group[group["model_name"] == "climatology"].set_index("timestamp")["probability"]
        for name, own in group.groupby("model_name"):
            own = own.set_index("timestamp")
            labelled = own[own["status"].isin([UP, DOWN])]
            reference = clim.reindex(labelled.index).fillna(labelled["actual_outcome"].mean())
            m = forecast_metrics(labelled["actual_outcome"].to_numpy(float), labelled["probability"].to_numpy(),
                                 reference.to_numpy())
            hits = own["status"] != "expired"
            rows.append({"symbol": symbol, "timeframe": timeframe, "target_pct": float(target), "model_name": name,
                         "total_predictions": int(m.get("n", 0)),
                         "hit_rate": float(hits.mean()) if len(own) else None,
                         "avg_time_to_target_hours": float(np.nanmean(own["time_to_target_hours"]))
                         if own["time_to_target_hours"].notna().any() else None,
                         **{k: v for k, v in m.items() if k != "n"}})
    return rows


def daily_performance(records: RecordStore, day: date, run_type: str = "live") -> int:
    """Compute and store the day's, 7-day and 30-day metrics ending with `day`; returns rows stored."""
    end = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)
    resolved = records.resolved(run_type, end - pd.Timedelta(days=max(WINDOWS)), end)
    rows = []
    for days in WINDOWS:
        window = resolved[resolved["timestamp"] >= end - pd.Timedelta(days=days)]
        for row in window_metrics(window):
            rows.append({**row, "run_type": run_type, "evaluation_date": day, "window_days": days})
    stored = records.save_performance([r for r in rows if r["total_predictions"] > 0])
    log.info("performance %s: %d resolved predictions, %d metric rows", day, len(resolved), stored)
    return stored
