"""How soon for a move of any size, asked for (`predict --move`, `/soon ASSET 3.5`, `/api/soon`): from the newest
stored candle. A configured target answers with the champion's newest stored forecast (what the hourly cycle
served); any other size from 0.5 % to 10 % with the asset's pooled model (src.models.estimators.any_size), on
the features of the newest stored candle. Nothing is written."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.database.operations import DatabaseOperations
from src.database.records import RecordStore
from src.models.estimators.any_size import MODEL_NAME, POOLED_TARGET, TASK, forecast_move
from src.models.live.prediction import STALE_AFTER_HOURS, Predictor
from src.models.live.registry import ModelRegistry
from src.utils.errors import UserError


@dataclass
class MoveForecast:
    symbol: str
    move: float
    candle_time: pd.Timestamp
    forecast: np.ndarray  # p_6h, p_24h, p_horizon, q10, q50, q90 hours
    model: str  # the model that made it: the configured target's champion, or any_size
    stale: str | None = None  # why the newest candle is older than it should be
    horizon: int = 168  # the window: a quantile at it means "after the window, if at all" (shown 168+)

    def as_dict(self) -> dict:
        p6, p24, ph, q10, q50, q90 = (round(float(v), 4) for v in self.forecast)
        return {"asset": self.symbol, "move_pct": round(self.move * 100, 4),
                "candle_time": self.candle_time.isoformat(), "model": self.model, "p_6h": p6, "p_24h": p24,
                "p_horizon": ph, "q10_hours": q10, "q50_hours": q50, "q90_hours": q90,
                "horizon_hours": self.horizon, "stale": self.stale}


class MoveForecaster:
    def __init__(self, ops: DatabaseOperations, records: RecordStore, registry: ModelRegistry, targets: list[float],
                 timeframe: str = "1h", horizon: int = 168):
        self.ops, self.records, self.registry = ops, records, registry
        self.targets, self.timeframe, self.horizon = targets, timeframe, horizon
        self.predictor = Predictor(ops, records, registry, targets, timeframe, horizon)  # reads the features

    def forecast(self, symbol: str, move: float, now: pd.Timestamp) -> MoveForecast:
        """The how-soon forecast of a `move` (a fraction, 0.005 to 0.10) for `symbol` as of its newest candle: for a
        configured target, what the hourly cycle stored for that candle, or made now as it makes it when it has
        not stored it yet; for any other size, the asset's any-size model."""
        newest = self.ops.get_last_complete_timestamps([symbol], self.timeframe).get(symbol)
        if newest is None:
            raise UserError(f"no candles stored for {symbol} yet")
        candle_time = pd.Timestamp(newest)
        configured = [t for t in self.targets if np.isclose(t, move)]
        if configured:
            return self._configured(symbol, configured[0], candle_time, now)
        models = self.registry.current(symbol, self.timeframe, POOLED_TARGET, task=TASK)
        if "champion" not in models:
            raise UserError(f"no any-size model for {symbol} yet; train first: python -m src.main train")
        model = self.registry.load(models["champion"])
        history = self._history(symbol, candle_time)
        forecast = forecast_move(model.estimator, history.iloc[[-1]], move, self.horizon)[0]
        return MoveForecast(symbol, move, candle_time, forecast, MODEL_NAME, self._staleness(candle_time, now),
                            self.horizon)

    def _history(self, symbol: str, candle_time: pd.Timestamp) -> pd.DataFrame:
        found = self.predictor.features_at(symbol, candle_time)
        if found is None:
            raise UserError(f"candle {candle_time:%Y-%m-%d %H:%M} UTC of {symbol} is not stored")
        return found[0]

    def _configured(self, symbol: str, target: float, candle_time: pd.Timestamp, now: pd.Timestamp) -> MoveForecast:
        """The stored forecast of the newest candle; else the one the hourly cycle would store for it (the group's
        time champion, served by its rule); else the newest stored one, said stale."""
        _, timing = self.records.newest_forecasts([(symbol, target)])
        if len(timing) and pd.Timestamp(timing.iloc[0]["timestamp"]) == candle_time:
            return self._stored(symbol, target, timing.iloc[0], now)
        served = self.predictor.served_timing(symbol, target, self._history(symbol, candle_time))
        if served is not None:
            model, forecast = served
            return MoveForecast(symbol, target, candle_time, forecast, model, self._staleness(candle_time, now),
                                self.horizon)
        if len(timing):
            return self._stored(symbol, target, timing.iloc[0], now)
        raise UserError(f"no how-soon model of {symbol} {target:.0%} yet; train first: python -m src.main train")

    def _stored(self, symbol: str, target: float, row: pd.Series, now: pd.Timestamp) -> MoveForecast:
        candle_time = pd.Timestamp(row["timestamp"])
        forecast = row[["p_6h", "p_24h", "p_horizon", "q10_hours", "q50_hours", "q90_hours"]].to_numpy(dtype=float)
        return MoveForecast(symbol, target, candle_time, forecast, str(row["model_name"]),
                            self._staleness(candle_time, now), self.horizon)

    @staticmethod
    def _staleness(candle_time: pd.Timestamp, now: pd.Timestamp) -> str | None:
        age = (now - candle_time) / pd.Timedelta(hours=1) - 1  # a candle is whole an hour after it opens
        return f"the newest candle closed {age:.0f} h ago" if age > STALE_AFTER_HOURS else None
