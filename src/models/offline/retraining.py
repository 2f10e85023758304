"""Daily retraining, on equal footing: every model kind is refitted by the same rule as `train` (purged,
embargoed walk-forward), scored out of sample on the same folds, the champion chosen by the significance
rule of src.models.evaluation.selection, and the chosen kind's fresh fit on everything known now is deployed, so a
champion never goes stale and the sitting one gets no advantage. A failing group keeps its champion and
says why; the others go on. The champion history stays in model_registry.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import pandas as pd

from src.database.operations import DatabaseOperations
from src.database.records import RecordStore
from src.models.live.registry import ModelRegistry
from src.models.offline.training import Trainer, TrainSettings
from src.utils.executors import Executor
from src.utils.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class RetrainDecision:
    symbol: str
    target: float
    previous: str  # the kind that served before ('none' if no champion)
    champion: str  # the kind deployed now (the previous one kept when the group failed)
    version: str | None  # the deployed fresh fit; None when the group failed
    reason: str

    @property
    def changed(self) -> bool:
        return self.version is not None and self.champion != self.previous


class Retrainer:
    def __init__(self, ops: DatabaseOperations, records: RecordStore, registry: ModelRegistry,
                 settings: TrainSettings, executor: Executor | None = None, stop: threading.Event | None = None):
        self.registry, self.settings = registry, settings
        self.trainer = Trainer(ops, records, registry, settings, executor, stop)

    def retrain(self, symbols: list[str], targets: list[float], now: pd.Timestamp,
                progress: Progress | None = None) -> list[RetrainDecision]:
        timeframe = self.settings.timeframe
        before = {}
        for symbol in symbols:
            for target in targets:
                row = self.registry.current(symbol, timeframe, target).get("champion")
                before[(symbol, target)] = "none" if row is None else row["model_name"]
        decisions = []
        for result in self.trainer.train(symbols, targets, cut=now, progress=progress):
            previous = before[(result.symbol, result.target)]
            if result.skipped:
                decision = RetrainDecision(result.symbol, result.target, previous, previous, None,
                                           f"failed, champion kept: {result.skipped}")
            else:
                decision = RetrainDecision(result.symbol, result.target, previous, result.champion,
                                           result.versions[result.champion], result.selection.reason)
            log.info("retrain %s %g: %s -> %s (%s)", result.symbol, result.target, previous, decision.champion,
                     decision.reason)
            decisions.append(decision)
        return decisions
