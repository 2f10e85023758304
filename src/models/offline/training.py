"""Training per asset x target and task (direction: P(UP); resolution: how soon, src.models.estimators.tasks):
purged walk-forward validation of the task's models, a final fit on every label known at the cut,
registry entries, validation metrics in model_performance, and a champion per task.

The champion is chosen on evidence (src.models.evaluation.selection): the simplest model unless a more complex one
has a significantly lower out-of-sample Brier score over the walk-forward folds, so users never get a
forecast that is not shown to beat the free one. The scores reported as validation are not the ones used
to choose: the last fold is held out, and its `champion` row is the model chosen on the earlier folds.
The deployed champion is the chosen kind's fresh fit on everything known at the cut. Daily retraining
runs this same procedure. A group that cannot be trained (too little history, one class only, no
candles) is skipped with its reason; the others still train.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from src.data.features import FEATURE_VERSION, FEATURE_WINDOW_HOURS
from src.data.history import load_candles, unfillable_hours
from src.database.operations import DatabaseOperations
from src.database.records import RecordStore
from src.models.estimators.any_size import POOLED_TARGET, SIZE_GRID
from src.models.estimators.any_size import TASK as ANY_SIZE
from src.models.estimators.dataset import Dataset, asset_features, build_dataset
from src.models.estimators.direction import min_calibration_samples
from src.models.estimators.serving import ServingRule, compose, serving_rule
from src.models.estimators.tasks import DIRECTION, RESOLUTION, TASKS, Task
from src.models.estimators.units import any_size_unit, fit_unit, forecast_unit
from src.models.evaluation.selection import MIN_EVIDENCE, ChampionChoice, Evidence, choose_champion
from src.models.live.registry import ModelRegistry
from src.utils.errors import UserError, check_stop, failure_reason
from src.utils.executors import Executor, LocalExecutor, UnitFailure, batches, map_groups
from src.utils.progress import Progress

log = logging.getLogger(__name__)
FOLD_DAYS = 60
N_FOLDS = 4


@dataclass
class TrainSettings:
    timeframe: str = "1h"
    horizon: int = 168
    embargo_hours: int = 24
    min_samples: int = 500
    n_folds: int = N_FOLDS
    fold_days: int = FOLD_DAYS
    training_days: int | None = None  # days before its cut that every fit learns from (None: all stored)
    significance: float = 0.05  # one-sided level at which a more complex model replaces a simpler one

    @property
    def history_days(self) -> int | None:
        """Days of candles a training run reads: every fit's window (the earliest fold's starts n_folds x
        fold_days before the cut) and the features' warm-up before it."""
        if self.training_days is None:
            return None
        return self.training_days + self.n_folds * self.fold_days + -(-FEATURE_WINDOW_HOURS // 24)

    @property
    def needed_samples(self) -> int:
        """The fewest labelled samples a model is trained on: the configured minimum, and never fewer than
        calibration with the horizon's gap needs."""
        return max(self.min_samples, min_calibration_samples(self.horizon))


@dataclass
class TaskResult:
    task: str
    versions: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)  # on the held-out last fold (reported validation)
    folds: list[tuple[pd.Timestamp, Evidence]] = field(default_factory=list)  # (fold end, forecasts)
    selection: ChampionChoice | None = None  # the deployed champion's choice, on every fold
    champion: str = "climatology"
    rule: ServingRule | None = None  # how soon: how the champion is served (src.models.estimators.serving)


@dataclass
class GroupResult:
    symbol: str
    target: float
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    skipped: str | None = None  # why the group was not trained

    # the direction task's figures, which most callers want
    @property
    def champion(self) -> str:
        return self.tasks[DIRECTION.name].champion

    @property
    def versions(self) -> dict[str, str]:
        return self.tasks[DIRECTION.name].versions

    @property
    def metrics(self) -> dict[str, dict]:
        return self.tasks[DIRECTION.name].metrics

    @property
    def selection(self) -> ChampionChoice | None:
        return self.tasks[DIRECTION.name].selection


@dataclass
class Fold:
    train_cut: pd.Timestamp  # the fold's start: its models see the labels known by it minus the embargo
    end: pd.Timestamp
    test: Dataset  # its samples whose labels are known by the cut


def fold_plan(data: Dataset, cut: pd.Timestamp, settings: TrainSettings) -> list[Fold]:
    """The walk-forward folds before `cut`: the last n_folds blocks of fold_days, each with a training set
    large enough and test labels known by `cut`."""
    known = data.purged(cut)
    folds = []
    for k in range(settings.n_folds, 0, -1):
        start = cut - pd.Timedelta(days=settings.fold_days * k)
        test = known.between(start, start + pd.Timedelta(days=settings.fold_days))
        train = data.purged(start, settings.embargo_hours, settings.training_days)
        if len(test.y) == 0 or len(train.y) < settings.needed_samples or train.y.nunique() < 2:
            continue
        folds.append(Fold(start, start + pd.Timedelta(days=settings.fold_days), test))
    return folds


def fold_units(samples, task: Task, folds: list[Fold], target: float, settings: TrainSettings) -> list[tuple]:
    """One forecast unit per fold (`samples`: the group's samples per task, or a shared reference to them)."""
    return [(forecast_unit, samples, task.name, fold.train_cut, fold.test.X, target, settings.horizon,
             settings.embargo_hours, settings.training_days) for fold in folds]


def fold_evidence(folds: list[Fold], forecasts: list[dict]) -> list[tuple[pd.Timestamp, Evidence]]:
    """Each fold's out-of-sample forecasts with their outcomes, and the fold's end."""
    return [(fold.end, Evidence(fold.test.X.index, fold.test.y.to_numpy(dtype=float), unwrap(p)))
            for fold, p in zip(folds, forecasts)]


def unwrap(result):
    """A unit's result, or the error it raised (with the worker's traceback when it ran elsewhere)."""
    if isinstance(result, UnitFailure):
        if result.error.__traceback__ is None:
            result.error.add_note(result.traceback)
        raise result.error
    return result


def walk_forward(data: Dataset, cut: pd.Timestamp, settings: TrainSettings, task: Task = DIRECTION,
                 target: float = 0.0, executor: Executor | None = None) -> list[tuple[pd.Timestamp, Evidence]]:
    """Out-of-sample forecasts of every model of `task` over the last n_folds blocks before `cut`, one
    Evidence per fold (with its end): each fold's models see only labels known by the fold's start minus
    the embargo; its test labels are those known by `cut`."""
    folds = fold_plan(data, cut, settings)
    units = fold_units({task.name: data}, task, folds, target, settings)
    return fold_evidence(folds, list((executor or LocalExecutor()).map(units)))


def choose(task: Task, evidence: Evidence, settings: TrainSettings) -> ChampionChoice:
    """The task's champion on this evidence, by the significance rule in the task's champion order; with too little
    evidence, the simplest model (in any order)."""
    order = task.champion_order if task.champion_order and len(evidence) >= MIN_EVIDENCE else task.models
    return choose_champion(evidence, settings.significance, settings.horizon, order,
                           loss=lambda p, y: task.loss(p, y, settings.horizon))


def champion_rule(task: Task, evidence: Evidence, champion: str, settings: TrainSettings) -> ServingRule | None:
    """How soon: the serving rule of `champion` on this evidence (None for direction)."""
    if task is not RESOLUTION:
        return None
    return serving_rule(evidence, champion, settings.horizon)


def served(forecasts: dict[str, np.ndarray], champion: str, rule: ServingRule | None, horizon: int) -> np.ndarray:
    """The champion's forecasts as users get them: composed by the rule (how soon), or as they are."""
    if rule is None:
        return forecasts[champion]
    return compose(forecasts[champion], forecasts.get("climatology"), rule, horizon)


def evidence_metrics(task: Task, evidence: Evidence, horizon: int, champion: str | None = None,
                     rule: ServingRule | None = None) -> dict[str, dict]:
    """Every model's metrics on the evidence (skill against climatology), and the champion's as served under
    'champion'."""
    metrics = {name: task.metrics(p, evidence.p["climatology"], evidence.y, horizon) for name, p in evidence.p.items()}
    if champion is not None:
        metrics["champion"] = task.metrics(served(evidence.p, champion, rule, horizon), evidence.p["climatology"],
                                           evidence.y, horizon)
    return metrics


@dataclass
class GroupPlan:
    """One asset x target's training work: its samples per task, folds per task, and the units to run
    (per task: its folds, then the final fit)."""
    symbol: str
    target: float
    as_of: pd.Timestamp
    samples: dict[str, Dataset]
    shared: object  # the executor's reference to the samples
    folds: dict[str, list[Fold]]
    units: list[tuple]


def plan_group(candles: dict[str, pd.DataFrame], symbol: str, target: float, cut: pd.Timestamp | None,
               settings: TrainSettings, executor: Executor, unfillable: pd.DatetimeIndex) -> GroupPlan:
    """One group's training at `cut` (default: the hour after the newest candle) from the candles as training
    reads them: per task, its walk-forward folds and the final fit. The backtest plans each retrain point by this
    same function, so it fits what the daemon fits."""
    s = settings
    if symbol not in candles:
        raise UserError(f"no candles stored for {symbol}; run: python -m src.main backfill (or import-csv)")
    features = asset_features(candles, symbol)
    as_of = cut or candles[symbol]["timestamp"].iloc[-1] + pd.Timedelta(hours=1)
    data = build_dataset(candles[symbol], features, target, s.horizon, unfillable)
    check_samples(data, as_of, s)
    samples = {task.name: task.samples(data, features, target, s.horizon) for task in TASKS}
    shared = executor.share(samples)
    folds = {task.name: fold_plan(samples[task.name], as_of, s) for task in TASKS}
    units = [unit for task in TASKS
             for unit in [*fold_units(shared, task, folds[task.name], target, s),
                          (fit_unit, shared, task.name, as_of, target, s.horizon, s.training_days)]]
    return GroupPlan(symbol, target, as_of, samples, shared, folds, units)


def check_samples(data: Dataset, as_of: pd.Timestamp, settings: TrainSettings) -> None:
    """Enough labelled samples known at `as_of`, of both outcomes, or a UserError saying what to do."""
    known = data.purged(as_of, 0, settings.training_days)
    if len(known.y) < settings.needed_samples:
        raise UserError(f"{len(known.y)} labelled samples, need {settings.needed_samples} "
                        f"(ml.min_samples_for_training, and calibration with a {settings.horizon} h gap); "
                        "backfill more history (ml.training_days)")
    if known.y.nunique() < 2:
        raise UserError(f"all {len(known.y)} labelled samples are {'UP' if known.y.iloc[0] else 'DOWN'}; "
                        "a model needs both outcomes (more history)")


def chosen_models(plan: GroupPlan, outputs: list, settings: TrainSettings) -> list[tuple[TaskResult, dict]]:
    """Per task (TASKS' order), from the plan's unit results: the folds' evidence, the champion with its serving
    rule and the reported validation (TaskResult), and the final fits by model name."""
    chosen = []
    for task in TASKS:
        folds = plan.folds[task.name]
        evidence, fitted = fold_evidence(folds, outputs[:len(folds)]), unwrap(outputs[len(folds)])
        outputs = outputs[len(folds) + 1:]
        result = TaskResult(task.name, folds=evidence)
        select_champion(task, result, settings)
        chosen.append((result, fitted))
    return chosen


def select_champion(task: Task, result: TaskResult, settings: TrainSettings) -> None:
    """Deployed champion: chosen on every fold. Reported validation: the last fold, held out, with the
    champion the earlier folds alone would have chosen."""
    s = settings
    if not result.folds:
        result.selection = choose(task, Evidence.empty(task.models), s)
        result.rule = champion_rule(task, Evidence.empty(task.models), result.champion, s)
        return
    every = sum((ev for _, ev in result.folds[1:]), result.folds[0][1])
    result.selection = choose(task, every, s)
    result.champion = result.selection.champion
    result.rule = champion_rule(task, every, result.champion, s)
    earlier = [ev for _, ev in result.folds[:-1]]
    if earlier:
        before = sum(earlier[1:], earlier[0])
        policy = choose(task, before, s).champion
        policy_rule = champion_rule(task, before, policy, s)
    else:
        policy = task.models[0]
        policy_rule = champion_rule(task, Evidence.empty(task.models), policy, s)
    result.metrics = evidence_metrics(task, result.folds[-1][1], s.horizon, policy, policy_rule)


class Trainer:
    def __init__(self, ops: DatabaseOperations, records: RecordStore, registry: ModelRegistry,
                 settings: TrainSettings, executor: Executor | None = None, stop: threading.Event | None = None):
        self.ops, self.records, self.registry, self.settings = ops, records, registry, settings
        self.executor = executor or LocalExecutor()
        self.stop = stop  # a threading.Event: set, training ends at the next unit or group (StopRequested)

    def train(self, symbols: list[str], targets: list[float], cut: pd.Timestamp | None = None,
              progress: Progress | None = None) -> list[GroupResult]:
        """Validate, fit, register and crown models for every symbol x target, with labels known by `cut`.
        The fits run on the executor; the results are written here, a group as soon as its units are done.
        A group that cannot be trained comes back with `skipped` saying why; the others go on."""
        s = self.settings
        candles = load_candles(self.ops, symbols, s.timeframe, cut, s.history_days)
        results: dict[tuple[str, float], GroupResult] = {}
        keys = [(symbol, target) for symbol in symbols for target in targets]
        if progress is not None:
            progress.start(len(keys))
        groups = list(batches(self.executor, keys))  # a few groups' data in memory at a time
        any_size: dict[str, tuple | UnitFailure] = {}  # each asset's any-size fit
        for number, batch in enumerate(groups):
            plans: dict[tuple[str, float], GroupPlan] = {}
            for key in batch:
                check_stop(self.stop, "training")
                try:
                    plans[key] = self._plan(candles, *key, cut)
                except Exception as exc:  # one group failing must not stop the others
                    results[key] = self._skipped(*key, exc, progress)
            units = {key: plan.units for key, plan in plans.items()}
            shared = None
            if number == len(groups) - 1:  # the any-size fits, the longest units, first: beside the last groups'
                shared, size_units = self._any_size_units(candles, symbols, cut)
                units = size_units | units
            for key, outputs in map_groups(self.executor, units, stop=self.stop):
                if key[0] == ANY_SIZE:
                    any_size[key[1]] = outputs[0]
                    continue
                try:
                    results[key] = self._finish(plans[key], outputs)
                except Exception as exc:
                    results[key] = self._skipped(*key, exc, None)
                self.executor.release(plans.pop(key).shared)
                if progress is not None:
                    progress(1)
            if shared is not None:
                self.executor.release(shared)
        ordered = [results[symbol, target] for symbol in symbols for target in targets]
        for symbol, fitted in any_size.items():  # of each asset that trained (its failure costs nothing else)
            if any(not r.skipped for r in ordered if r.symbol == symbol):
                self._register_any_size(symbol, fitted, candles, cut)
        self.records.record_group_problems("train", s.timeframe,
                                           {(r.symbol, r.target): r.skipped for r in ordered if r.skipped},
                                           [(r.symbol, r.target) for r in ordered if not r.skipped])
        return ordered

    def _any_size_units(self, candles: dict[str, pd.DataFrame], symbols: list[str],
                        cut: pd.Timestamp | None) -> tuple[object, dict[tuple[str, str], list[tuple]]]:
        """The shared candles and one any-size unit per asset with candles (src.models.estimators.any_size)."""
        s = self.settings
        shared = self.executor.share(candles)
        units = {}
        for symbol in symbols:
            if symbol not in candles:
                continue
            as_of = cut or candles[symbol]["timestamp"].iloc[-1] + pd.Timedelta(hours=1)
            units[(ANY_SIZE, symbol)] = [(any_size_unit, shared, symbol, as_of, s.horizon,
                                          unfillable_hours(self.ops, symbol, s.timeframe), s.training_days,
                                          s.needed_samples)]
        return shared, units

    def _register_any_size(self, symbol: str, fitted, candles: dict[str, pd.DataFrame],
                           cut: pd.Timestamp | None) -> str | None:
        """Register and crown the asset's how-soon model for any move size, fitted by any_size_unit."""
        s = self.settings
        try:
            check_stop(self.stop, "training")
            model, train_start, n_samples = unwrap(fitted)
            as_of = cut or candles[symbol]["timestamp"].iloc[-1] + pd.Timedelta(hours=1)
            version = self.registry.save(
                model, symbol=symbol, timeframe=s.timeframe, target=POOLED_TARGET, model_name=ANY_SIZE, task=ANY_SIZE,
                train_start=train_start, train_end=as_of, n_samples=n_samples,
                metrics={"feature_version": FEATURE_VERSION, "horizon_hours": s.horizon, "sizes": list(SIZE_GRID)})
        except Exception as exc:  # the configured targets are served without it (a stop is no Exception)
            log.error("train %s any-size how-soon model skipped: %s", symbol, failure_reason(exc),
                      exc_info=not isinstance(exc, UserError))
            return None
        self.records.promote(version)
        self.registry.prune(symbol, s.timeframe, POOLED_TARGET, task=ANY_SIZE)
        log.info("%s any-size how-soon model: trained on %d samples over %d sizes", symbol, n_samples, len(SIZE_GRID))
        return version

    @staticmethod
    def _skipped(symbol: str, target: float, exc: Exception, progress: Progress | None) -> GroupResult:
        reason = failure_reason(exc)
        log.error("train %s %g skipped: %s", symbol, target, reason, exc_info=not isinstance(exc, UserError))
        if progress is not None:
            progress(1)
        return GroupResult(symbol, target, skipped=reason)

    def _plan(self, candles: dict[str, pd.DataFrame], symbol: str, target: float,
              cut: pd.Timestamp | None) -> GroupPlan:
        return plan_group(candles, symbol, target, cut, self.settings, self.executor,
                          unfillable_hours(self.ops, symbol, self.settings.timeframe))

    def _finish(self, plan: GroupPlan, outputs: list) -> GroupResult:
        """Choose, register and crown each task's models from its units' results."""
        result = GroupResult(plan.symbol, plan.target)
        for task, (task_result, fitted) in zip(TASKS, chosen_models(plan, outputs, self.settings)):
            result.tasks[task.name] = self._register(task, plan, task_result, fitted)
        return result

    def _register(self, task: Task, plan: GroupPlan, result: TaskResult, fitted: dict[str, object]) -> TaskResult:
        s = self.settings
        symbol, target, as_of = plan.symbol, plan.target, plan.as_of
        known = plan.samples[task.name].purged(as_of, 0, s.training_days)
        for name in task.models:
            selection = {"selection_loss": result.selection.loss.get(name),
                         "selection_p_value": result.selection.p_values.get(name)}
            if name == result.champion and result.rule is not None:
                selection |= result.rule.metrics()
            result.versions[name] = self.registry.save(
                fitted[name], symbol=symbol, timeframe=s.timeframe, target=target, model_name=name, task=task.name,
                train_start=known.X.index[0], train_end=as_of, n_samples=len(known.y),
                metrics=result.metrics.get(name, {}) | selection | {"feature_version": FEATURE_VERSION,
                                                                    "horizon_hours": s.horizon})
        self.records.promote(result.versions[result.champion])
        self.registry.prune(symbol, s.timeframe, target, task=task.name)
        self._store_validation(symbol, target, result, as_of)
        served_as = "" if result.rule is None else f"; its own P at {list(result.rule.kept_hours)} h"
        log.info("%s %g %s: trained on %d samples; champion %s: %s%s", symbol, target, task.name, len(known.y),
                 result.champion, result.selection.reason, served_as)
        return result

    def _store_validation(self, symbol: str, target: float, result: TaskResult, as_of: pd.Timestamp) -> None:
        """The held-out last fold's metrics per model and for the champion policy, dated at the cut."""
        s = self.settings
        rows = [{"run_type": "validation", "symbol": symbol, "timeframe": s.timeframe, "task": result.task,
                 "target_pct": target, "model_name": name, "evaluation_date": as_of.date(),
                 "window_days": s.fold_days, "total_predictions": m["n"],
                 **{k: v for k, v in m.items() if k not in ("n", "n_complete")}}
                for name, m in result.metrics.items() if m.get("n")]
        self.records.save_performance(rows)
