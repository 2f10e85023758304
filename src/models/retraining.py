"""Champion / challenger retraining.

For each asset x target: challengers of all three kinds are fitted on the labels known before the
comparison window (the most recent `window_days` of resolved samples) and scored there out of sample,
beside the current champion. The best challenger is promoted only when its Brier score is lower than the
champion's on at least `min_samples` samples; then every kind is refitted on everything known now and
registered, and the champion history is kept in model_registry. A failing group keeps its champion.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
from sklearn.metrics import brier_score_loss

from src.database.operations import DatabaseOperations
from src.database.records import RecordStore
from src.models.dataset import asset_features, build_dataset
from src.models.estimators import MODEL_NAMES, fit_model, prob_up
from src.models.registry import ModelRegistry
from src.models.training import TrainSettings, load_candles, unfillable_hours
from src.utils.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class RetrainDecision:
    symbol: str
    target: float
    champion: str
    champion_brier: float | None
    best: str
    best_brier: float | None
    n: int
    promoted: bool
    reason: str


class Retrainer:
    def __init__(self, ops: DatabaseOperations, records: RecordStore, registry: ModelRegistry,
                 settings: TrainSettings, window_days: int = 30, min_samples: int = 200):
        self.ops, self.records, self.registry, self.settings = ops, records, registry, settings
        self.window_days, self.min_samples = window_days, min_samples

    def retrain(self, symbols: list[str], targets: list[float], now: pd.Timestamp) -> list[RetrainDecision]:
        s = self.settings
        candles = load_candles(self.ops, symbols, s.timeframe, now, s.training_days)
        decisions = []
        for symbol in symbols:
            if symbol not in candles:
                log.error("retrain %s: no candles stored; champion kept", symbol)
                continue
            try:
                features = asset_features(candles, symbol)
            except UserError as exc:
                log.error("retrain %s: %s; champion kept", symbol, exc)
                continue
            unfillable = unfillable_hours(self.ops, symbol, s.timeframe)
            for target in targets:
                try:
                    data = build_dataset(candles[symbol], features, target, s.horizon, unfillable)
                    decisions.append(self._group(symbol, target, data, now))
                except Exception as exc:  # one group failing keeps its champion and lets the others go on
                    log.error("retrain %s %g failed, champion kept: %s: %s", symbol, target, type(exc).__name__, exc)
        return decisions

    def _group(self, symbol: str, target: float, data, now: pd.Timestamp) -> RetrainDecision:
        s = self.settings
        start = now - pd.Timedelta(days=self.window_days)
        window = data.purged(now).between(start, now)
        train = data.purged(start, s.embargo_hours)
        current = self.registry.current(symbol, s.timeframe, target)
        champion_row = current.get("champion")
        scores = {name: brier_score_loss(window.y, prob_up(fit_model(name, train.X, train.y, s.horizon), window.X))
                  for name in MODEL_NAMES} if len(window.y) else {}
        champion_brier = None
        if champion_row is not None and len(window.y):
            champion_brier = brier_score_loss(window.y, prob_up(self.registry.load(champion_row).estimator, window.X))
        best = min(scores, key=scores.get) if scores else "climatology"
        decision = RetrainDecision(symbol, target, champion_row["model_name"] if champion_row is not None else "none",
                                   champion_brier, best, scores.get(best), len(window.y), False, "")
        if len(window.y) < self.min_samples:
            decision.reason = f"only {len(window.y)} resolved samples in the last {self.window_days} days"
        elif champion_brier is not None and scores[best] >= champion_brier:
            decision.reason = f"challenger {best} Brier {scores[best]:.4f} >= champion {champion_brier:.4f}"
        else:
            decision.promoted = True
            shown = "none" if champion_brier is None else f"{champion_brier:.4f}"
            decision.reason = f"challenger {best} Brier {scores[best]:.4f} < champion {shown}"
        self._refit_all(symbol, target, data, now, promote=best if decision.promoted else None)
        log.info("retrain %s %g: %s; %s", symbol, target, "PROMOTED" if decision.promoted else "champion kept",
                 decision.reason)
        return decision

    def _refit_all(self, symbol: str, target: float, data, now: pd.Timestamp, promote: str | None) -> None:
        known = data.purged(now)
        for name in MODEL_NAMES:
            version = self.registry.save(fit_model(name, known.X, known.y, self.settings.horizon), symbol=symbol,
                                         timeframe=self.settings.timeframe, target=target, model_name=name,
                                         train_start=known.X.index[0], train_end=now, n_samples=len(known.y),
                                         metrics={})
            if name == promote:
                self.records.promote(version)
        self.registry.prune(symbol, self.settings.timeframe, target)
