"""One prediction cycle: for each asset, the last closed candle before T, its features (from a short
window, stored in feature_cache), and one prediction per target x model, the champion flagged; and one
how-soon forecast per target x time model (resolution_forecasts), its champion flagged.

Repeating a cycle, or running two at once, writes nothing twice (the predictions' unique key). A group
(asset x target) that cannot be predicted (no model, a model that will not load) is skipped with its
reason; every other group is still predicted.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from src.data.features import CONTEXT_SYMBOL, FEATURE_VERSION, FEATURE_WINDOW_HOURS, compute_features, with_barrier
from src.database.operations import DatabaseOperations
from src.database.records import RecordStore
from src.database.records.rows import prediction_rows, resolution_rows
from src.models.estimators.direction import MODEL_NAMES, prob_up
from src.models.estimators.serving import ServingRule, compose
from src.models.estimators.time_models import TIME_MODEL_NAMES, forecast_array
from src.models.live.registry import LoadedModel, ModelRegistry
from src.utils.candles import last_closed_before
from src.utils.clock import service_run
from src.utils.errors import UserError, failure_reason

log = logging.getLogger(__name__)
STALE_AFTER_HOURS = 2


@dataclass
class CycleResult:
    at: pd.Timestamp
    written: int = 0
    predicted: list[str] = field(default_factory=list)
    stale: dict[str, str] = field(default_factory=dict)  # symbol -> why
    skipped: dict[tuple[str, float], str] = field(default_factory=dict)  # (symbol, target) -> why
    champions: dict[tuple[str, float], tuple[str, float]] = field(default_factory=dict)  # -> (model, p)
    timings: dict[tuple[str, float], tuple[str, float, float]] = field(default_factory=dict)  # -> (model, p24, q50)
    fallbacks: dict[tuple[str, float], str] = field(default_factory=dict)  # -> why an earlier champion serves
    time_written: int = 0
    seconds: float = 0.0


class Predictor:
    def __init__(self, ops: DatabaseOperations, records: RecordStore, registry: ModelRegistry,
                 targets: list[float], timeframe: str = "1h", horizon: int = 168):
        self.ops, self.records, self.registry = ops, records, registry
        self.targets, self.timeframe, self.horizon = targets, timeframe, horizon
        self._current: dict | None = None  # the registry's current models, read once per cycle

    def features_at(self, symbol: str, candle_time: pd.Timestamp,
                    windows: dict[str, pd.DataFrame] | None = None) -> tuple[pd.DataFrame, float] | None:
        """The features of every hour of the window up to `candle_time` (its last row is that hour's; a model
        that filters through time, `garch`, reads the rows before it), and that candle's close (the entry
        price); None when that candle is not stored. `windows` holds the candle windows already read in
        this cycle (every asset's and BTC's, the context, in one query)."""
        windows = {} if windows is None else windows
        missing = sorted({symbol, CONTEXT_SYMBOL} - set(windows))
        if missing:
            windows.update(self._windows(missing, candle_time))
        candles = windows[symbol]
        if candles.empty or candles["timestamp"].iloc[-1] != candle_time:
            return None
        context = None if symbol == CONTEXT_SYMBOL else windows[CONTEXT_SYMBOL]
        return window_features(candles, context, candle_time), float(candles["close"].iloc[-1])

    def _windows(self, symbols: list[str], candle_time: pd.Timestamp) -> dict[str, pd.DataFrame]:
        return self.ops.get_candle_windows(symbols, self.timeframe, window_start(candle_time), candle_time)

    def predict(self, symbols: list[str], at: pd.Timestamp, registry_as_of_at: bool = False) -> CycleResult:
        """Predict every asset x target from the last candle closed at `at`. With `registry_as_of_at`, only
        the models that existed at `at` are used (a missed hour caught up later), never later ones."""
        started = time.perf_counter()
        result = CycleResult(at=at)
        candle_time = last_closed_before(at)
        rows, time_rows, feature_rows = [], [], {}  # rows: one tuple per model's forecast
        # the registry, the newest candles and the candle windows, read once per cycle (not per asset); a
        # caught-up hour asks for the registry of its time
        self._current = None if registry_as_of_at else self.registry.current_all(self.timeframe)
        newest_by_symbol = self.ops.get_last_complete_timestamps(symbols, self.timeframe)
        windows = self._windows(sorted(set(symbols) | {CONTEXT_SYMBOL}), candle_time)
        for symbol in symbols:
            newest = newest_by_symbol.get(symbol)
            if newest is None:
                result.stale[symbol] = "no candles stored yet (they come once the exchange answers, or with import-csv)"
            elif pd.Timestamp(newest) < at - pd.Timedelta(hours=STALE_AFTER_HOURS):
                result.stale[symbol] = (f"newest candle {pd.Timestamp(newest):%Y-%m-%d %H:%M} UTC is more than "
                                        f"{STALE_AFTER_HOURS} h before {at:%Y-%m-%d %H:%M} UTC")
            if symbol in result.stale:
                log.warning("%s: no prediction, %s", symbol, result.stale[symbol])
                continue
            try:
                found = self.features_at(symbol, candle_time, windows)
            except UserError as exc:
                found, result.stale[symbol] = None, str(exc)
            if found is None:
                result.stale.setdefault(symbol, f"candle {candle_time} is not stored")
                log.warning("%s: no prediction, %s", symbol, result.stale[symbol])
                continue
            history, close = found
            row = history.iloc[[-1]]
            feature_rows[symbol] = row
            entry = np.array([close])
            for target in self.targets:
                as_of = at if registry_as_of_at else None
                try:
                    rows.extend(self._predict_group(symbol, target, row, entry, result, as_of))
                except Exception as exc:  # one group failing must not stop the others
                    reason = failure_reason(exc)
                    result.skipped[(symbol, target)] = reason
                    log.warning("%s %g: no prediction, %s", symbol, target, reason,
                                exc_info=not isinstance(exc, UserError))
                try:  # how soon is extra: its failure never costs the direction forecast
                    time_rows.extend(self._forecast_timing(symbol, target, history, result, as_of))
                except Exception as exc:
                    log.warning("%s %g: no how-soon forecast, %s: %s", symbol, target, type(exc).__name__, exc)
            result.predicted.append(symbol)
        self.records.save_features(self.timeframe, FEATURE_VERSION, feature_rows)
        # one frame per table for the whole cycle (hundreds of one-row frames cost more than the models), both
        # written in one transaction: an hour is stored whole or not at all
        result.written, result.time_written = self.records.save_forecasts(self._direction_frame(rows),
                                                                          self._timing_frame(time_rows))
        if not registry_as_of_at:  # the current forecast: its problems are the groups' state now
            self._record_problems(symbols, result)
        result.seconds = time.perf_counter() - started
        log.info("predict %s: %d assets, %d predictions and %d how-soon forecasts written, %d stale assets, "
                 "%d groups skipped, %.0f ms", candle_time, len(result.predicted), result.written, result.time_written,
                 len(result.stale), len(result.skipped), result.seconds * 1000)
        return result

    def _direction_frame(self, rows: list[tuple]) -> pd.DataFrame | None:
        if not rows:
            return None
        assets, targets, names, versions, hours, p, entries, champions = (np.array(v) for v in zip(*rows))
        return prediction_rows(assets, self.timeframe, targets, names, versions, pd.DatetimeIndex(hours), p, entries,
                               champions, service_run(), FEATURE_VERSION)

    def _timing_frame(self, rows: list[tuple]) -> pd.DataFrame | None:
        if not rows:
            return None
        assets, targets, names, versions, hours, forecasts, champions = (np.array(v) for v in zip(*rows))
        return resolution_rows(assets, self.timeframe, targets, names, versions, pd.DatetimeIndex(hours), forecasts,
                               champions, service_run())

    def _record_problems(self, symbols: list[str], result: CycleResult) -> None:
        problems = {(s, t): why for s, why in result.stale.items() for t in self.targets}
        problems |= result.skipped
        fine = [(s, t) for s in symbols for t in self.targets if (s, t) not in problems]
        self.records.record_group_problems("predict", self.timeframe, problems, fine)
        loaded = [(s, t) for s, t in fine if (s, t) not in result.fallbacks]
        self.records.record_group_problems("model", self.timeframe, result.fallbacks, loaded)

    def _load_champion(self, symbol: str, target: float, models: dict, task: str, result: CycleResult,
                       as_of: pd.Timestamp | None) -> LoadedModel:
        """The group's champion; when its file cannot be loaded (missing, altered, refused), the newest earlier
        champion of the group that loads, with the reason kept in `result.fallbacks` (the daemon retrains the
        group, /health and group_status say why)."""
        current = models["champion"]
        try:
            return self.registry.load(current)
        except UserError as exc:
            reason = str(exc)
        for row in self._earlier_champions(symbol, target, task, current["version"], as_of):
            try:
                loaded = self.registry.load(row)
            except UserError:
                continue
            why = (f"{task} champion {current['version']} cannot be loaded ({reason}); serving the earlier champion "
                   f"{loaded.version} until the group is retrained")
            result.fallbacks.setdefault((symbol, target), why)
            log.warning("%s %g: %s", symbol, target, why)
            return loaded
        raise UserError(f"{task} champion {current['version']} cannot be loaded ({reason}) and no earlier champion "
                        "loads; retrain with: python -m src.main train")

    def _earlier_champions(self, symbol: str, target: float, task: str, failing: str,
                           as_of: pd.Timestamp | None) -> list[pd.Series]:
        """The group's earlier champions (those of `as_of`'s time and before), newest first."""
        rows = self.records.models(symbol, self.timeframe, target, task=task)
        rows = rows[rows["promoted_at"].notna() & (rows["version"] != failing)]
        if as_of is not None:
            rows = rows[rows["promoted_at"] <= as_of]
        return [row for _, row in rows.sort_values("promoted_at", ascending=False).iterrows()]

    def _each_model(self, symbol: str, target: float, models: dict, task: str, result: CycleResult,
                    as_of: pd.Timestamp | None) -> Iterator[tuple[str, LoadedModel, bool]]:
        """(name, loaded model, is it the one serving) of every model of the task that loads this hour: the champion,
        or its fallback, and those tracked beside it."""
        serving = self._load_champion(symbol, target, models, task, result, as_of)
        for name in MODEL_NAMES if task == "direction" else TIME_MODEL_NAMES:
            loaded = serving if name == serving.model_name else self._load_other(models, name, symbol, target)
            if loaded is not None:
                yield name, loaded, name == serving.model_name

    def _load_other(self, models: dict, name: str, symbol: str, target: float) -> LoadedModel | None:
        """A model tracked beside the champion; one that cannot be loaded is left out of this hour (logged)."""
        if name not in models:
            return None
        try:
            return self.registry.load(models[name])
        except UserError as exc:
            log.warning("%s %g: %s not forecast this hour: %s", symbol, target, name, exc)
            return None

    def _models(self, symbol: str, target: float, as_of: pd.Timestamp | None, task: str) -> dict[str, pd.Series]:
        if as_of is None and self._current is not None:
            return self._current.get((symbol, round(target, 6), task), {})
        return self.registry.current(symbol, self.timeframe, target, as_of, task=task)

    def _predict_group(self, symbol: str, target: float, row: pd.DataFrame, entry, result: CycleResult,
                       as_of: pd.Timestamp | None) -> list:
        models = self._models(symbol, target, as_of, "direction")
        if "champion" not in models:
            if as_of is not None:
                raise UserError(f"no champion model existed at {as_of:%Y-%m-%d %H:%M} UTC")
            raise UserError(f"no model for {symbol} {target:g} yet; train first: python -m src.main train")
        matrix = with_barrier(row, target)
        rows = []
        for name, loaded, is_champion in self._each_model(symbol, target, models, "direction", result, as_of):
            p = prob_up(loaded.estimator, matrix)
            rows.append((symbol, target, name, loaded.version, row.index[0], p[0], entry[0], is_champion))
            if is_champion:
                result.champions[(symbol, target)] = (name, float(p[0]))
        return rows

    def served_timing(self, symbol: str, target: float, history: pd.DataFrame) -> tuple[str, np.ndarray] | None:
        """(model name, its (6,) forecast) of the how-soon forecast users get for the last hour of `history`, made
        as the hourly cycle makes it (the champion, served by its rule); None without a time champion. Nothing
        is written."""
        rows = self._forecast_timing(symbol, target, history, CycleResult(at=history.index[-1]), None)
        return next(((name, np.asarray(forecast, dtype=float)) for _, _, name, _, _, forecast, serving in rows
                     if serving), None)

    def _forecast_timing(self, symbol: str, target: float, history: pd.DataFrame, result: CycleResult,
                         as_of: pd.Timestamp | None) -> list:
        """How-soon forecasts of every time model of the group for the last hour of `history`, the champion's
        served by its rule (src.models.estimators.serving); none (and a log line) when the group has no time
        champion yet: the direction forecast stands on its own."""
        models = self._models(symbol, target, as_of, "resolution")
        if "champion" not in models:
            log.info("%s %g: no how-soon model yet (train creates it)", symbol, target)
            return []
        matrix = with_barrier(history, target)
        hour = matrix.index[-1]
        forecasts, versions, serving = {}, {}, None
        for name, loaded, is_champion in self._each_model(symbol, target, models, "resolution", result, as_of):
            forecasts[name] = hour_forecast(loaded.estimator, matrix, self.horizon)
            versions[name] = loaded.version
            if is_champion:
                serving = loaded
        rule = ServingRule.from_metrics(serving.meta.get("metrics"), serving.model_name, self.horizon)
        forecasts[serving.model_name] = compose(forecasts[serving.model_name], forecasts.get("climatology"), rule,
                                                self.horizon)
        rows = [(symbol, target, name, versions[name], hour, forecast[0], name == serving.model_name)
                for name, forecast in forecasts.items()]
        champion = forecasts[serving.model_name]
        result.timings[(symbol, target)] = (serving.model_name, float(champion[0, 1]), float(champion[0, 4]))
        return rows


def window_start(candle_time: pd.Timestamp) -> pd.Timestamp:
    """The first candle of the window an hour's features are computed from: FEATURE_WINDOW_HOURS before the start of
    its UTC day, so every hour of a day shares one window start and the day's features can be computed in one pass
    with the same values (the backtest does; every feature is causal, so later rows change no earlier one)."""
    return pd.Timestamp(candle_time).floor("D") - pd.Timedelta(hours=FEATURE_WINDOW_HOURS)


def window_features(candles: pd.DataFrame, context: pd.DataFrame | None, candle_time: pd.Timestamp) -> pd.DataFrame:
    """The features of every hour of a window of candles up to `candle_time` (its last row is that hour's), as
    the hourly cycle computes them; the backtest forecasts from the same windows. `context`: BTC's window (None
    for BTC itself)."""
    if context is not None and context.empty:  # never let the asset's own values stand in for BTC's
        raise UserError(f"no {CONTEXT_SYMBOL} candles before {candle_time:%Y-%m-%d %H:%M} UTC for the btc_* "
                        f"context features; backfill {CONTEXT_SYMBOL}")
    return compute_features(candles, context).loc[:candle_time]


def hour_forecast(estimator, matrix: pd.DataFrame, horizon: int) -> np.ndarray:
    """(1, 6): the forecast of the last row of `matrix`; a model that filters through time reads every row."""
    if getattr(estimator, "needs_history", False):
        return estimator.last_forecast(matrix, horizon)
    return forecast_array(estimator, matrix.iloc[[-1]], horizon)
