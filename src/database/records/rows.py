"""Rows for the forecast tables, built the same way by the live cycle and the backtest: the one definition of
what a stored prediction, how-soon forecast and outcome hold."""
from __future__ import annotations

import numpy as np
import pandas as pd

from src.database.records.forecasts import FORECAST_COLUMNS

Column = str | float | bool | np.ndarray  # one value for every row, or one per row
DECIDED = ("up", "down", "ambiguous", "expired")  # an outcome's final statuses (pending ones are not stored)


def prediction_rows(symbol: Column, timeframe: str, target: Column, model_name: Column, version: Column,
                    times: pd.DatetimeIndex, p: np.ndarray, entry: np.ndarray, champion: Column,
                    run_type: str, feature_version: str) -> pd.DataFrame:
    """Prediction rows as DESIGN.md defines them: class = p >= 0.5, confidence = max(p, 1 - p)."""
    p = np.round(p, 6)
    return pd.DataFrame({
        "run_type": run_type, "symbol": symbol, "timeframe": timeframe, "target_pct": target, "timestamp": times,
        "model_name": model_name, "model_version": version, "feature_version": feature_version,
        "is_champion": champion, "prediction_class": (p >= 0.5).astype(int), "probability": p,
        "confidence": np.maximum(p, 1 - p), "entry_price": entry})


def resolution_rows(symbol: Column, timeframe: str, target: Column, model_name: Column, version: Column,
                    times: pd.DatetimeIndex, forecasts: np.ndarray, champion: Column, run_type: str) -> pd.DataFrame:
    """resolution_forecasts rows: probabilities to 6 decimals, hours to 2."""
    columns = {name: np.round(forecasts[:, j], 6 if name.startswith("p_") else 2)
               for j, name in enumerate(FORECAST_COLUMNS)}
    return pd.DataFrame({"run_type": run_type, "symbol": symbol, "timeframe": timeframe, "target_pct": target,
                         "timestamp": times, "model_name": model_name, "model_version": version,
                         "is_champion": champion, **columns})


def outcome_rows(symbol: str, timeframe: str, target: float, outcomes: pd.DataFrame) -> pd.DataFrame:
    """Decided outcomes (the label function's frame) in the shape ForecastRecords.save_outcomes takes; pending
    ones left out."""
    decided = outcomes[outcomes["status"].isin(DECIDED)]
    return pd.DataFrame({
        "symbol": symbol, "timeframe": timeframe, "target_pct": target, "timestamp": decided.index,
        "status": decided["status"].to_numpy(), "actual_outcome": decided["label"].astype("Int64").array,
        "target_hit_timestamp": decided["hit_time"].to_numpy(),
        "time_to_target_hours": decided["hours_to_hit"].to_numpy(),
        "max_favorable_move": decided["max_favorable_move"].to_numpy(),
        "max_adverse_move": decided["max_adverse_move"].to_numpy()})


def with_outcomes(timing: pd.DataFrame, decided: pd.DataFrame) -> pd.DataFrame:
    """How-soon rows of one group with their outcomes (status, hours_to_resolution) where `decided` (outcome_rows)
    has them: a backtest knows them when it writes."""
    by_hour = decided.set_index("timestamp")
    return timing.assign(status=timing["timestamp"].map(by_hour["status"]),
                         hours_to_resolution=timing["timestamp"].map(by_hour["time_to_target_hours"]).round(2))
