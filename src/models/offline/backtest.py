"""Walk-forward backtest: at each retrain point train on what was known then (purged, embargoed), predict
every hour until the next point, store the predictions (run_type 'backtest') and their outcomes, and
report metrics per asset x target x model. The same label function resolves live predictions.

Both tasks are backtested alike (src.models.estimators.tasks): direction forecasts go to `predictions`, how-soon
forecasts to `resolution_forecasts`, and both are resolved by the same outcomes.

The product's own forecast is flagged, as live forecasts are: at each retrain point the champion
is chosen by the product's rule (src.models.evaluation.selection) from the out-of-sample forecasts whose labels were
known then, over the span training validates on (n_folds x fold_days): before the first point these are
training's walk-forward folds, afterwards the backtest's own earlier forecasts. Its rows carry is_champion,
and the tables score them as the series 'champion' (src.models.evaluation.scoring).

Every fit learns from the window `train` and the daily retrain would have used at that point: the
ml.training_days before it (TrainSettings.training_days), not all stored history."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from src.data.features import FEATURE_VERSION, with_barrier
from src.database.records import RecordStore
from src.database.records.forecasts import FORECAST_COLUMNS
from src.database.records.rows import outcome_rows, prediction_rows, resolution_rows, with_outcomes
from src.database.records.scores import settled_through
from src.models.estimators.dataset import Dataset, asset_features, build_dataset
from src.models.estimators.serving import ServingRule
from src.models.estimators.tasks import DIRECTION, RESOLUTION, TASKS, Task
from src.models.estimators.units import forecast_unit
from src.models.evaluation.scoring import DIRECTION_ROWS, TIMING_ROWS, score_rows
from src.models.evaluation.selection import Evidence
from src.models.offline.training import (
    Fold,
    TrainSettings,
    champion_rule,
    choose,
    fold_evidence,
    fold_plan,
    fold_units,
    served,
    unwrap,
)
from src.utils.errors import UserError, check_stop, failure_reason
from src.utils.executors import Executor, LocalExecutor, batches, map_groups
from src.utils.progress import Progress

log = logging.getLogger(__name__)
RUN = "backtest"


@dataclass
class BacktestPlan:
    """One asset x target's backtest: its samples, the warm-up folds per task, the retrain points (with the
    hours each forecasts and their entry prices) and the units to run, in the order `_finish` reads them."""
    symbol: str
    target: float
    samples: dict[str, Dataset]
    shared: object  # the executor's reference to the samples
    warm_up: dict[str, list[Fold]]
    points: list[tuple[pd.Timestamp, pd.DatetimeIndex, np.ndarray]] = field(default_factory=list)
    units: list[tuple] = field(default_factory=list)


def run_backtest(candles: dict[str, pd.DataFrame], symbols: list[str], targets: list[float],
                 start: pd.Timestamp, end: pd.Timestamp, records: RecordStore, settings: TrainSettings,
                 retrain_every_days: int = 7, progress: Progress | None = None,
                 unfillable: dict[str, pd.DatetimeIndex] | None = None, executor: Executor | None = None,
                 failures: dict | None = None,
                 stop: threading.Event | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the backtest over [start, end) and return its direction and how-soon tables (backtest_tables).
    `unfillable`: per symbol, the hours recorded as never published by the exchange (training's and live
    outcomes' rule: only those are missing for good; any other missing hour leaves its windows undecided).
    The fits run on `executor` (default: this process); each group is written as soon as its units are done.
    A group that fails is left out with its reason in `failures` (when given; else
    a UserError names them after the others are stored). `stop` (a threading.Event): set, the backtest ends
    at the next unit or group (StopRequested), every group already written whole."""
    executor = executor or LocalExecutor()
    points = pd.date_range(start, end, freq=f"{retrain_every_days}D", inclusive="left")
    records.forget_day_scores(RUN)  # first: a kill between the two leaves no stale sums, only slower pages
    records.delete_predictions(RUN, start, end, symbols)
    failed: dict[tuple[str, float], str] = {}
    keys = [(symbol, target) for symbol in symbols for target in targets]
    expected = (settings.n_folds + len(points)) * len(TASKS)  # units of a group, at most
    if progress is not None:
        progress.start(len(keys) * expected)
    for batch in batches(executor, keys):  # a few groups' data in memory at a time
        plans = {}
        for key in batch:
            check_stop(stop, "the backtest")
            try:
                plans[key] = _plan(candles, *key, points, start, end, settings, retrain_every_days, executor,
                                   unfillable)
            except Exception as exc:  # one group failing must not stop the others
                failed[key] = _failure(*key, exc)
            if progress is not None:  # the units a group will not run count as done
                progress(expected - (len(plans[key].units) if key in plans else 0))
        for key, outputs in map_groups(executor, {key: plan.units for key, plan in plans.items()}, progress, stop):
            try:
                _finish(plans[key], outputs, start, end, records, settings)
            except Exception as exc:
                failed[key] = _failure(*key, exc)
            executor.release(plans.pop(key).shared)
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


def _plan(candles: dict[str, pd.DataFrame], symbol: str, target: float, points: pd.DatetimeIndex,
          start: pd.Timestamp, end: pd.Timestamp, settings: TrainSettings, retrain_every_days: int,
          executor: Executor, unfillable: dict[str, pd.DatetimeIndex] | None) -> BacktestPlan:
    """The group's units: training's walk-forward folds before `start` (the first point's evidence), then
    one forecast unit per retrain point and task."""
    features = asset_features(candles, symbol)
    close = candles[symbol].set_index("timestamp")["close"]
    gaps = (unfillable or {}).get(symbol, pd.DatetimeIndex([], tz="UTC"))
    data = build_dataset(candles[symbol], features, target, settings.horizon, gaps)
    samples = {task.name: task.samples(data, features, target, settings.horizon) for task in TASKS}
    shared = executor.share(samples)
    plan = BacktestPlan(symbol, target, samples, shared,
                        {t.name: fold_plan(samples[t.name], start, settings) for t in TASKS})
    plan.units = [unit for t in TASKS for unit in fold_units(shared, t, plan.warm_up[t.name], target, settings)]
    for point in points:
        stop = min(point + pd.Timedelta(days=retrain_every_days), end)
        hours = features.index[(features.index >= point) & (features.index < stop)]
        train = data.purged(point, settings.embargo_hours, settings.training_days)
        if len(hours) == 0 or len(train.y) < settings.needed_samples:
            continue
        matrix = with_barrier(features.loc[hours], target)
        plan.points.append((point, hours, close.loc[hours].to_numpy()))
        plan.units.extend((forecast_unit, shared, t.name, point, matrix, target, settings.horizon,
                           settings.embargo_hours, settings.training_days) for t in TASKS)
    return plan


def _finish(plan: BacktestPlan, outputs: list, start: pd.Timestamp, end: pd.Timestamp, records: RecordStore,
            settings: TrainSettings) -> None:
    """Choose each point's champion in time order from the evidence known then, and store the group."""
    outputs = iter(outputs)
    evidence = {}
    for task in TASKS:
        folds = plan.warm_up[task.name]
        empty = Evidence.empty(task.models, None if task is DIRECTION else len(FORECAST_COLUMNS))
        evidence[task.name] = sum((ev for _, ev in fold_evidence(folds, [next(outputs) for _ in folds])), empty)
    frames: dict[str, list] = {task.name: [] for task in TASKS}
    for point, hours, entry in plan.points:
        for task in TASKS:
            own, forecasts = plan.samples[task.name], unwrap(next(outputs))
            champion, rule = _champion_at(task, evidence[task.name], own, point, settings)
            users_got = forecasts | {champion: served(forecasts, champion, rule, settings.horizon)}
            frames[task.name].extend(_rows(task, plan.symbol, plan.target, point, hours, users_got, champion, entry,
                                           settings.timeframe))
            evidence[task.name] = evidence[task.name] + _labelled_forecasts(own, hours, forecasts)
    outcomes = plan.samples[DIRECTION.name].outcomes  # the label function's, with the exchange's gaps
    decided = outcome_rows(plan.symbol, settings.timeframe, plan.target,
                           outcomes[(outcomes.index >= start) & (outcomes.index < end)])
    if frames[DIRECTION.name]:  # how-soon rows written with their outcomes: no second pass over them
        records.save_forecasts(pd.concat(frames[DIRECTION.name], ignore_index=True),
                               with_outcomes(pd.concat(frames[RESOLUTION.name], ignore_index=True), decided))
    records.save_outcomes(decided, RUN)
    log.info("backtest %s %g: %d retrain points stored", plan.symbol, plan.target, len(plan.points))


def _rows(task: Task, symbol: str, target: float, point: pd.Timestamp, hours: pd.DatetimeIndex,
          forecasts: dict[str, np.ndarray], champion: str, entry: np.ndarray, timeframe: str) -> list[pd.DataFrame]:
    """One frame per model; the champion's rows flagged is_champion, as the live cycle flags what users got."""
    version = f"{RUN}-{point:%Y%m%d}"
    if task is DIRECTION:
        return [prediction_rows(symbol, timeframe, target, name, version, hours, p, entry, name == champion, RUN,
                                FEATURE_VERSION) for name, p in forecasts.items()]
    return [resolution_rows(symbol, timeframe, target, name, version, hours, p, name == champion, RUN)
            for name, p in forecasts.items()]


def _champion_at(task: Task, evidence: Evidence, data: Dataset, point: pd.Timestamp,
                 settings: TrainSettings) -> tuple[str, ServingRule | None]:
    """The champion the product would deploy at `point`, and how it is served: its rules, on the forecasts of
    the validation span before it whose labels were known then."""
    span = pd.Timedelta(days=settings.n_folds * settings.fold_days)
    known = evidence.between(point - span, point).known_by(data.purged(point).X.index)
    champion = choose(task, known, settings).champion
    return champion, champion_rule(task, known, champion, settings)


def _labelled_forecasts(data: Dataset, hours: pd.DatetimeIndex, forecasts: dict[str, np.ndarray]) -> Evidence:
    """The forecasts of the hours that have a label in `data` (used only once the label is known)."""
    labelled = hours.intersection(data.X.index)
    rows = hours.get_indexer(labelled)
    return Evidence(labelled, data.y.loc[labelled].to_numpy(dtype=float), {n: p[rows] for n, p in forecasts.items()})


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


def format_table(table: pd.DataFrame) -> str:
    lines = [f"{'asset':<10} {'target':>6} {'model':<12} {'n':>6} {'up%':>6} {'AUC':>6} {'Brier':>7} "
             f"{'BSS [95% CI]':>26} {'ECE':>6}"]
    for r in table.itertuples():
        auc = f"{r.auc:.3f}" if r.auc is not None and not pd.isna(r.auc) else "  -  "
        skill = ("n/a" if r.brier_skill is None or pd.isna(r.brier_skill)
                 else f"{r.brier_skill:+.4f} [{r.skill_low:+.4f}, {r.skill_high:+.4f}]")
        lines.append(f"{r.symbol:<10} {r.target_pct:>6.0%} {r.model_name:<12} {r.n:>6} {r.up_share:>6.1%} {auc:>6} "
                     f"{r.brier:>7.4f} {skill:>26} {r.ece:>6.3f}")
    return "\n".join(lines)


def format_resolution_table(table: pd.DataFrame) -> str:
    def show(v) -> str:
        return "   n/a " if v is None or pd.isna(v) else f"{v:+.3f}"
    lines = [f"{'asset':<10} {'target':>6} {'time model':<12} {'n':>6} {'<=24h':>6} {'BSS 6h':>7} "
             f"{'BSS 24h [95% CI]':>24} {'BSS H':>7} {'cover':>6} {'pinball':>7}"]
    for r in table.itertuples():
        ci = f"{show(r.brier_skill_24h)} [{show(r.skill_low)}, {show(r.skill_high)}]"
        lines.append(f"{r.symbol:<10} {r.target_pct:>6.0%} {r.model_name:<12} {r.n:>6} {r.within_24h:>6.1%} "
                     f"{show(r.brier_skill_6h):>7} {ci:>24} {show(r.brier_skill_horizon):>7} "
                     f"{r.interval_coverage:>6.3f} "
                     f"{show(r.pinball_skill):>7}")
    return "\n".join(lines)
