"""Walk-forward backtest on the daemon's schedule: the daemon's procedure replayed in bulk over history, so a backtest
stores what the live service would have (`replay` runs the daemon itself; `compare-runs` shows the two agree).

- Retrain points: at the start (the daemon's first training), then at scheduler.daily_time UTC every
  `retrain_every_days` (1: the daemon's daily retrain).
- Each point trains as the daemon's training does (src.models.offline.training.plan_group on the candles closed
  by then, the ml.training_days before it): every model of both tasks validated on purged, embargoed walk-forward
  folds, the champion chosen by the product's rule (src.models.evaluation.selection), served by its rule, and
  every model fitted on all labels known at the point.
- Its models forecast the candle hours the hourly cycle forecasts with them (candle h at h + 1 h +
  scheduler.hourly_minute), each from its own window of candles, as the hourly cycle computes it.
- The rows are stored as run_type 'backtest' with the champion flagged (is_champion), resolved by the same label
  function as live outcomes, and scored per model and as the series 'champion' (src.models.evaluation.scoring).

Direction forecasts go to `predictions`, how-soon forecasts to `resolution_forecasts`. A group that fails is
left out with its reason; the others go on."""
from __future__ import annotations

import logging
import threading

import numpy as np
import pandas as pd

from src.data.features import CONTEXT_SYMBOL, FEATURE_VERSION, with_barrier
from src.data.labels import barrier_outcomes
from src.database.records import RecordStore
from src.database.records.rows import outcome_rows, prediction_rows, resolution_rows, with_outcomes
from src.database.records.scores import settled_through
from src.models.estimators.direction import prob_up
from src.models.estimators.serving import ServingRule, compose
from src.models.estimators.tasks import DIRECTION, RESOLUTION, TASKS, Task
from src.models.estimators.time_models import forecast_array
from src.models.evaluation.scoring import DIRECTION_ROWS, TIMING_ROWS, score_rows
from src.models.live.prediction import window_features, window_start
from src.models.offline.training import GroupPlan, TaskResult, TrainSettings, chosen_models, plan_group
from src.utils.errors import StopRequested, UserError, check_stop, failure_reason
from src.utils.executors import Executor, LocalExecutor, batches, map_groups
from src.utils.progress import Progress

log = logging.getLogger(__name__)
RUN = "backtest"


def retrain_points(start: pd.Timestamp, end: pd.Timestamp, every_days: int, daily_time: str = "00:15") -> list:
    """When the daemon started at `start` would train: at start (its first training, on the candles closed by the
    hour), then at `daily_time` UTC every `every_days` days."""
    hours, minutes = (int(part) for part in daily_time.split(":"))
    first = start.floor("D") + pd.Timedelta(hours=hours, minutes=minutes)
    first = first if first > start else first + pd.Timedelta(days=1)
    return [start.floor("h"), *pd.date_range(first, end, freq=f"{every_days}D", inclusive="left")]


def served_hours(points: list, start: pd.Timestamp, end: pd.Timestamp, hourly_minute: int,
                 available: pd.DatetimeIndex) -> list[pd.DatetimeIndex]:
    """Per point, the candle hours in [start, end) its models forecast: the hourly cycle forecasts candle h at
    h + 1 h + hourly_minute, with the models of the newest training before that."""
    lag = pd.Timedelta(hours=1, minutes=hourly_minute)
    hours = available[(available >= start) & (available < end)]
    bounds = [*points[1:], pd.Timestamp.max.tz_localize("UTC")]
    return [hours[(hours + lag >= point) & (hours + lag < bound)] for point, bound in zip(points, bounds)]


def run_backtest(candles: dict[str, pd.DataFrame], symbols: list[str], targets: list[float],
                 start: pd.Timestamp, end: pd.Timestamp, records: RecordStore, settings: TrainSettings,
                 retrain_every_days: int = 7, progress: Progress | None = None,
                 unfillable: dict[str, pd.DatetimeIndex] | None = None, executor: Executor | None = None,
                 failures: dict | None = None, stop: threading.Event | None = None, daily_time: str = "00:15",
                 hourly_minute: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the backtest over [start, end) and return its direction and how-soon tables (backtest_tables).
    `unfillable`: per symbol, the hours recorded as never published by the exchange (training's and live
    outcomes' rule: only those are missing for good; any other missing hour leaves its windows undecided).
    The fits run on `executor` (default: this process); each group is written as soon as its units are done.
    A group that fails is left out with its reason in `failures` (when given; else a UserError names them after
    the others are stored). `stop` (a threading.Event): set, the backtest ends at the next unit or group
    (StopRequested), every group already written whole."""
    executor = executor or LocalExecutor()
    unfillable = unfillable or {}
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    points = retrain_points(start, end, retrain_every_days, daily_time)
    records.forget_day_scores(RUN)  # first: a kill between the two leaves no stale sums, only slower pages
    records.delete_predictions(RUN, start, end, symbols)
    failed: dict[tuple[str, float], str] = {}
    keys = [(symbol, target) for symbol in symbols for target in targets]
    if progress is not None:
        progress.start(len(keys) * len(points))
    windows: dict[str, _Windows] = {}  # the asset's hourly windows, shared by its targets, then let go
    for key in keys:
        check_stop(stop, "the backtest")
        if key[0] not in windows:
            windows = {key[0]: _Windows(candles, key[0])} if key[0] in candles else {}
        try:
            _backtest_group(candles, windows, *key, points, start, end, records, settings, executor,
                            unfillable.get(key[0], pd.DatetimeIndex([], tz="UTC")), hourly_minute, progress, stop)
        except StopRequested:
            raise
        except Exception as exc:  # one group failing must not stop the others
            failed[key] = _failure(*key, exc)
    if failures is not None:
        failures.update(failed)
    elif failed:
        raise UserError("backtest failed for " + "; ".join(f"{s} {t:g}: {why}" for (s, t), why in failed.items()))
    newest = max(frame["timestamp"].iloc[-1] for frame in candles.values()) + pd.Timedelta(hours=1)
    records.refresh_day_scores(RUN, settled_through(min(newest, end + pd.Timedelta(hours=settings.horizon + 1)),
                                                    settings.horizon), settings.horizon, full=True)  # the web's
    return backtest_tables(records, start, end, settings.horizon,
                           min(newest, end + pd.Timedelta(hours=settings.horizon + 1)))


def _failure(symbol: str, target: float, exc: Exception) -> str:
    reason = failure_reason(exc)
    log.error("backtest %s %g failed: %s", symbol, target, reason, exc_info=not isinstance(exc, UserError))
    return reason


def candles_at(candles: dict[str, pd.DataFrame], cut: pd.Timestamp, days: int | None) -> dict[str, pd.DataFrame]:
    """The candles the daemon's database held at `cut` (those closed by then), as training reads them
    (src.data.history.load_candles: the `days` before the cut)."""
    out = {}
    for symbol, frame in candles.items():
        keep = frame["timestamp"] + pd.Timedelta(hours=1) <= cut
        if days is not None:
            keep &= frame["timestamp"] > cut - pd.Timedelta(days=days)
        if keep.any():
            out[symbol] = frame[keep].reset_index(drop=True)
    return out


def _backtest_group(candles: dict[str, pd.DataFrame], windows: dict[str, _Windows], symbol: str, target: float,
                    points: list, start: pd.Timestamp, end: pd.Timestamp, records: RecordStore,
                    settings: TrainSettings, executor: Executor, unfillable: pd.DatetimeIndex, hourly_minute: int,
                    progress: Progress | None, stop: threading.Event | None) -> None:
    """Train the group at every point as the daemon would, forecast each point's hours as the hourly cycle would,
    and store the group's forecasts with their outcomes. A point that cannot train keeps the previous models
    serving, as the daemon keeps its champion; one whose models would forecast none of the hours (the first
    training, when the start is midnight) is not trained."""
    serve = served_hours(points, start, end, hourly_minute, pd.DatetimeIndex(candles[symbol]["timestamp"]))
    frames: dict[str, list[pd.DataFrame]] = {task.name: [] for task in TASKS}
    serving = None  # (the cut, each task's choice and fits) of the newest point that trained
    for batch in batches(executor, list(range(len(points)))):  # a few points' samples in memory at a time
        plans: dict[int, GroupPlan] = {}
        for i in batch:
            check_stop(stop, "the backtest")
            if not len(serve[i]):  # its models would forecast none of the hours
                continue
            try:
                plans[i] = plan_group(candles_at(candles, points[i], settings.history_days), symbol, target,
                                      points[i], settings, executor, unfillable)
            except UserError as exc:
                log.info("backtest %s %g: no training at %s (%s)", symbol, target, points[i], exc)
        done = dict(map_groups(executor, {i: plan.units for i, plan in plans.items()}, stop=stop))
        for i in batch:
            if i in plans:
                serving = (plans[i].as_of, chosen_models(plans[i], done[i], settings))
                executor.release(plans[i].shared)
            if serving is not None and len(serve[i]):
                for task, (result, fitted) in zip(TASKS, serving[1]):
                    frames[task.name].extend(_point_rows(task, serving[0], serve[i], result, fitted, windows[symbol],
                                                         symbol, target, settings))
            if progress is not None:
                progress(1)
    outcomes = barrier_outcomes(candles[symbol], target, settings.horizon, unfillable=unfillable)  # with the gaps
    decided = outcome_rows(symbol, settings.timeframe, target, outcomes[(outcomes.index >= start)
                                                                         & (outcomes.index < end)])
    if frames[DIRECTION.name]:  # how-soon rows written with their outcomes: no second pass over them
        records.save_forecasts(pd.concat(frames[DIRECTION.name], ignore_index=True),
                               with_outcomes(pd.concat(frames[RESOLUTION.name], ignore_index=True), decided))
    records.save_outcomes(decided, RUN)
    log.info("backtest %s %g: %d retrain points", symbol, target, len(points))


class _Windows:
    """An asset's candles (and BTC's) as the hourly cycle reads them: each hour's window (from window_start) and
    that hour's close, the entry price. The hours of a day share their window's start, so a day's features are
    computed once, and an hour's are the rows up to it: the same values as the hourly cycle's, every feature being
    causal. Kept for the asset's targets in turn (about 120 kB a day)."""

    def __init__(self, candles: dict[str, pd.DataFrame], symbol: str):
        self.own = candles[symbol]
        self.context = None if symbol == CONTEXT_SYMBOL else candles.get(CONTEXT_SYMBOL)
        self.days: dict[pd.Timestamp, tuple[pd.DataFrame, pd.Series]] = {}

    def day(self, day: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
        """The features of the day's window (to its last hour) and the closes of the day's hours."""
        if day not in self.days:
            first, last = window_start(day), day + pd.Timedelta(hours=23)
            own = _between(self.own, first, last)
            context = None if self.context is None else _between(self.context, first, last)
            features = window_features(own, context, last) if len(own) else pd.DataFrame()
            close = own.set_index("timestamp")["close"]
            self.days[day] = (features, close[close.index >= day])
        return self.days[day]


def _between(frame: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """Rows with first <= timestamp <= last (the database's window query)."""
    times = frame["timestamp"]
    lo, hi = times.searchsorted(first, "left"), times.searchsorted(last, "right")
    return frame.iloc[lo:hi].reset_index(drop=True)


def _point_rows(task: Task, as_of: pd.Timestamp, hours: pd.DatetimeIndex, result: TaskResult, fitted: dict,
                windows: _Windows, symbol: str, target: float, settings: TrainSettings) -> list[pd.DataFrame]:
    """The forecasts of one task for `hours` by the models trained at `as_of`, as the hourly cycle makes them (each
    hour from its window's features; a model that filters through time over the rows before it), a day at a time;
    the champion's served by its rule as stored. A frame per model."""
    version = f"{RUN}-{as_of:%Y%m%d%H%M}"
    parts: dict[str, list[np.ndarray]] = {name: [] for name in fitted}
    found, entry = [], []
    for day, wanted in pd.Series(hours, index=hours).groupby(hours.floor("D")):
        features, close = windows.day(day)
        day_hours = pd.DatetimeIndex(wanted).intersection(close.index)  # an hour without a candle: no forecast
        if not len(day_hours):
            continue
        found.append(day_hours)
        entry.append(close.loc[day_hours].to_numpy(float))
        rows = with_barrier(features.loc[day_hours], target)
        for name, model in fitted.items():
            if task is DIRECTION:
                parts[name].append(prob_up(model, rows))
            elif getattr(model, "needs_history", False):  # the rows before each hour too, as hour_forecast
                window = with_barrier(features.loc[:day_hours[-1]], target)
                parts[name].append(forecast_array(model, window, settings.horizon)[window.index.get_indexer(day_hours)])
            else:
                parts[name].append(forecast_array(model, rows, settings.horizon))
    if not found:
        return []
    hours, entry = found[0].append(found[1:]), np.concatenate(entry)
    forecasts = {name: np.concatenate(p) for name, p in parts.items()}
    champion = result.champion
    if task is DIRECTION:
        return [prediction_rows(symbol, settings.timeframe, target, name, version, hours, p, entry, name == champion,
                                RUN, FEATURE_VERSION) for name, p in forecasts.items()]
    rule = ServingRule.from_metrics(result.rule.metrics(), champion, settings.horizon)  # as stored and read back
    forecasts[champion] = compose(forecasts[champion], forecasts.get("climatology"), rule, settings.horizon)
    return [resolution_rows(symbol, settings.timeframe, target, name, version, hours, p, name == champion, RUN)
            for name, p in forecasts.items()]


def backtest_tables(records: RecordStore, start: pd.Timestamp, end: pd.Timestamp, horizon: int,
                    as_of: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The direction and how-soon tables of the stored backtest over [start, end), by the one scoring of
    src.models.evaluation.scoring (per model and the champion series, skill with its 95 % interval: block
    bootstrap over days, blocks of the horizon). `as_of`: when the candles end (complete windows for the
    hit rate)."""
    direction = score_rows(DIRECTION_ROWS, records.resolved(RUN, start, end, include_pending=True), horizon,
                           as_of, interval=True)
    timing = score_rows(TIMING_ROWS, records.resolved_time(RUN, start, end, include_pending=True), horizon,
                        as_of, interval=True)
    return direction, timing


def _missing(value) -> bool:
    return value is None or pd.isna(value)


def _shown(value, form: str, width: int) -> str:
    """A figure in its format, or n/a (too small a sample, or none scored) right-aligned to `width`."""
    return f"{'n/a':>{width}}" if _missing(value) else f"{value:{form}}".rjust(width)


DIRECTION_SHOWN = ["symbol", "target_pct", "model_name", "n", "up_share", "auc", "brier", "brier_skill", "skill_low",
                   "skill_high", "ece"]
TIMING_SHOWN = ["symbol", "target_pct", "model_name", "n", "within_24h", "brier_skill_6h", "brier_skill_24h",
                "skill_low", "skill_high", "brier_skill_horizon", "interval_coverage", "interval_claimed",
                "pinball_skill"]


def format_table(table: pd.DataFrame) -> str:
    table = table.reindex(columns=DIRECTION_SHOWN)  # a figure no group has yet (nothing scored) reads n/a
    lines = [f"{'asset':<10} {'target':>6} {'model':<12} {'n':>6} {'up%':>6} {'AUC':>6} {'Brier':>7} "
             f"{'BSS [95% CI]':>26} {'ECE':>6}"]
    for r in table.itertuples():
        skill = ("n/a" if _missing(r.brier_skill)
                 else f"{r.brier_skill:+.4f} [{r.skill_low:+.4f}, {r.skill_high:+.4f}]")
        lines.append(f"{r.symbol:<10} {r.target_pct:>6.0%} {r.model_name:<12} {r.n:>6} {_shown(r.up_share, '.1%', 6)} "
                     f"{_shown(r.auc, '.3f', 6)} {_shown(r.brier, '.4f', 7)} {skill:>26} {_shown(r.ece, '.3f', 6)}")
    return "\n".join(lines)


def format_resolution_table(table: pd.DataFrame) -> str:
    table = table.reindex(columns=TIMING_SHOWN)  # e.g. a backtest of the newest day: no 24 h fate known yet
    lines = [f"{'asset':<10} {'target':>6} {'time model':<12} {'n':>6} {'<=24h':>6} {'BSS 6h':>7} "
             f"{'BSS 24h [95% CI]':>24} {'BSS H':>7} {'cover':>6} {'claim':>6} {'pinball':>7}"]
    for r in table.itertuples():
        ci = ("n/a" if _missing(r.brier_skill_24h)
              else f"{r.brier_skill_24h:+.3f} [{r.skill_low:+.3f}, {r.skill_high:+.3f}]")
        lines.append(f"{r.symbol:<10} {r.target_pct:>6.0%} {r.model_name:<12} {r.n:>6} "
                     f"{_shown(r.within_24h, '.1%', 6)} {_shown(r.brier_skill_6h, '+.3f', 7)} {ci:>24} "
                     f"{_shown(r.brier_skill_horizon, '+.3f', 7)} {_shown(r.interval_coverage, '.3f', 6)} "
                     f"{_shown(r.interval_claimed, '.3f', 6)} "
                     f"{_shown(r.pinball_skill, '+.3f', 7)}")
    return "\n".join(lines)
