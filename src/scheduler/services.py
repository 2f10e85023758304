"""Service wiring: the config, the database, the exchange, models and reports, each opened on first use.
Shared by the CLI commands and the daemon. Imports are made where a part is first used, so a light command
(`status`, `--help`) does not pay for loading xgboost, ccxt or python-telegram-bot."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from src.utils.config import Config

if TYPE_CHECKING:
    import pandas as pd
    from flask import Blueprint

    from src.data.recovery import DataRecoveryManager
    from src.database.operations import DatabaseOperations
    from src.database.records import RecordStore
    from src.models.live.moves import MoveForecaster
    from src.models.live.registry import ModelRegistry
    from src.models.offline.training import TrainSettings
    from src.notifications.bot import CommandBot
    from src.notifications.service import ReportService
    from src.utils.executors import Executor


class Context:
    """What a command needs, opened on first use: the config, the database, the exchange."""

    def __init__(self, config: Config):
        self.config = config
        self.stop_event = threading.Event()  # set when the service stops; long waits end on it
        self._ops = None
        self._migrated = False
        self._records = None
        self._registry = None
        self._recovery = None
        self._notifier = None

    @property
    def ops(self) -> DatabaseOperations:
        if self._ops is None:
            from src.database.connection import DatabaseConnection
            from src.database.operations import DatabaseOperations
            db_cfg = self.config.config["database"]
            conn = DatabaseConnection(self.config.database_url, self.config.data_dir, db_cfg["timescaledb"],
                                      db_cfg["compress_after_days"])
            conn.check()
            self._ops = DatabaseOperations(conn)
        return self._ops

    def migrated_ops(self) -> DatabaseOperations:
        """The database, with the schema brought up to date first (once per process)."""
        if not self._migrated:
            self.ops.db.create_tables()
            self._migrated = True
        return self.ops

    @property
    def records(self) -> RecordStore:
        from src.database.records import RecordStore
        if self._records is None:
            self._records = RecordStore(self.migrated_ops().db)
        return self._records

    def read_records(self) -> RecordStore:
        """The records of a database this process must not write (`web` on a read replica): no migration; the
        schema must already be current."""
        from src.database.records import RecordStore
        from src.utils.errors import UserError
        if not self.ops.db.schema_is_current():
            raise UserError(f"the database schema is at revision {self.ops.db.schema_revision()}, not the newest: "
                            "run `python -m src.main init-db` against the primary (or start the daemon) first")
        return RecordStore(self.ops.db)

    def pages(self, records: RecordStore, health: Callable[[], tuple[dict, bool]] | None = None) -> Blueprint:
        """The web pages (the track record) over `records`."""
        from src.web.pages import create_pages
        from src.web.params import Site
        return create_pages(records, Site(self.config.assets, self.config.target_percentages, self.config.horizon),
                            health, self.moves(records))

    def moves(self, records: RecordStore | None = None) -> MoveForecaster:
        """How soon for a move of any size, on request (nothing written)."""
        from src.models.live.moves import MoveForecaster
        records = records or self.records
        return MoveForecaster(self.ops, records, self.registry(records), self.config.target_percentages,
                              self.config.timeframe, self.config.horizon)

    def registry(self, records: RecordStore | None = None) -> ModelRegistry:
        """One registry per process, so loaded models stay in memory between cycles: every group's models of
        both tasks, twice over (a day's fresh fits beside the ones they replace), and no more."""
        from src.models.estimators.tasks import TASKS
        from src.models.live.registry import ModelRegistry
        if self._registry is None:
            per_cycle = len(self.config.groups) * sum(len(task.models) for task in TASKS)
            self._registry = ModelRegistry(records or self.records, self.config.data_dir / "models",
                                           cache_size=2 * per_cycle, horizon=self.config.horizon,
                                           keep_retired=self.config.get("retention.retired_champions"))
        return self._registry

    def maintain(self, at: pd.Timestamp) -> dict[str, int]:
        """Remove what the retention settings say is past its age, as of `at`; what was removed, per kind."""
        from src.monitoring.retention import RetentionSettings, apply_retention
        return apply_retention(self.records, self.registry(), self.config.data_dir / "reports",
                               RetentionSettings.from_config(self.config), at)

    def train_settings(self) -> TrainSettings:
        from src.models.offline.training import TrainSettings
        ml = self.config.config["ml"]
        return TrainSettings(timeframe=self.config.timeframe, horizon=ml["horizon_hours"],
                             embargo_hours=ml["embargo_hours"], min_samples=ml["min_samples_for_training"],
                             training_days=ml["training_days"], significance=ml["champion_significance"])

    @contextmanager
    def executor(self) -> Iterator[Executor]:
        """Where training and backtest fits run (ml.executor), closed after the work."""
        from src.utils.executors import make_executor
        executor = make_executor(self.config.get("ml.executor"), self.config.get("ml.n_workers"))
        try:
            yield executor
        finally:
            executor.close()

    def recovery(self) -> DataRecoveryManager:
        """One exchange client per process, so CCXT loads the markets once, not every hourly cycle."""
        from src.data.fetcher import ExchangeDataFetcher
        from src.data.recovery import DataRecoveryManager
        if self._recovery is None:
            fetcher = ExchangeDataFetcher(config=self.config, stop_event=self.stop_event)
            self._recovery = DataRecoveryManager(self.migrated_ops(), fetcher, self.config.timeframe)
        return self._recovery

    def command_bot(self, health: Callable[[], tuple[dict, bool]] | None = None) -> CommandBot | None:
        """The Telegram command listener, when a bot token is set and telegram.commands is on."""
        tg = self.config.config["telegram"]
        if not (tg["bot_token"] and tg["commands"] and self.config.allowed_chats):
            return None
        from src.notifications.answers import Answers
        from src.notifications.bot import CommandBot
        answers = Answers(self.records, self.config.assets, self.config.target_percentages, self.config.timeframe,
                          self.config.horizon, health, self.moves())
        return CommandBot(tg["bot_token"], answers, self.records, self.config.allowed_chats,
                          {str(u) for u in tg["allowed_user_ids"]}, tg["base_url"])

    def report_service(self, dry_run: bool = False) -> ReportService:
        from src.notifications.service import ReportService
        from src.notifications.telegram import TelegramNotifier
        from src.utils.clock import service_run
        tg = self.config.config["telegram"]
        records = self.records
        if dry_run:  # printed, and nothing written: not even the report's row
            notifier = TelegramNotifier("", tg["chat_id"], None, tg["base_url"], stop_event=self.stop_event)
        else:
            if self._notifier is None:  # one per process, so its pace holds from one job to the next
                self._notifier = TelegramNotifier(
                    tg["bot_token"], tg["chat_id"], records, tg["base_url"], stop_event=self.stop_event,
                    pace_seconds=float(tg["replay_pace_seconds"]) if service_run() == "replay" else 0.0)
            notifier = self._notifier
        return ReportService(records, self.registry(records), notifier, tg["alert_threshold"],
                             self.config.horizon, preview=dry_run)
