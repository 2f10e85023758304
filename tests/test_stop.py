"""The stop stops: training, retraining and the backtest end at the next unit or group once the stop is set,
with every group already written whole; Telegram's backoff ends on the stop; a clean stop is no job failure;
SIGTERM to `train` ends the process within 15 s with nothing half-written."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from src.data.history import load_candles
from src.database.records import RecordStore
from src.models.live.registry import ModelRegistry
from src.models.offline.backtest import run_backtest
from src.models.offline.training import Trainer, TrainSettings
from src.utils.errors import StopRequested
from src.utils.executors import LocalExecutor

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = TrainSettings(n_folds=1, fold_days=60)


def test_training_stops_between_groups_and_what_was_written_is_whole(btc_year, tmp_path):
    records = RecordStore(btc_year.db)
    registry = ModelRegistry(records, tmp_path / "models")
    stop = threading.Event()
    trainer = Trainer(btc_year, records, registry, SETTINGS, LocalExecutor(1), stop)
    with pytest.raises(StopRequested):
        trainer.train(["BTC/USDT"], [0.01, 0.02, 0.05], cut=pd.Timestamp("2023-01-15", tz="UTC"),
                      progress=_stop_after(1, stop))
    models = pd.concat([records.models(task=task) for task in ("direction", "resolution")])
    assert set(models["target_pct"]) == {0.01} and len(models) == 6  # the first group whole, no other
    assert all((registry.model_folder(v) / "model.joblib").exists() for v in models["version"])


def test_the_backtest_stops_at_the_next_unit(btc_year):
    records = RecordStore(btc_year.db)
    stop = threading.Event()
    started = time.perf_counter()
    with pytest.raises(StopRequested):
        run_backtest(load_candles(btc_year, ["BTC/USDT"], "1h"), ["BTC/USDT"], [0.01, 0.02],
                     pd.Timestamp("2022-12-01", tz="UTC"), pd.Timestamp("2023-01-01", tz="UTC"), records, SETTINGS,
                     executor=LocalExecutor(1), progress=_stop_after(2, stop), stop=stop)
    assert time.perf_counter() - started < 60
    assert records.count("predictions") == 0 and records.count("resolution_forecasts") == 0  # no group half-done


def _stop_after(calls: int, stop: threading.Event):
    """A progress callback that sets the stop after `calls` calls (start() and progress counts)."""
    class Progress:
        seen = 0

        def start(self, total):
            pass

        def __call__(self, n=1):
            self.seen += 1
            if self.seen >= calls:
                stop.set()
    return Progress()


def test_telegrams_backoff_ends_on_the_stop(ops):
    from src.notifications.telegram import TelegramNotifier
    from tests.loopback_telegram import LoopbackBotApi
    token = "123456789:AAHstopTokenForTests-abcdefghijklmno"
    with LoopbackBotApi(token) as bot:
        bot.state.faults.extend(["500"] * 10)
        stop = threading.Event()
        notifier = TelegramNotifier(token, "1", RecordStore(ops.db), bot.base_url, timeout=2, backoff=20,
                                    stop_event=stop)
        threading.Timer(0.5, stop.set).start()
        started = time.perf_counter()
        result = notifier.send("hourly", "x")
        assert time.perf_counter() - started < 5 and not result.success and "service is stopping" in result.error


@pytest.mark.host_tz
def test_a_stop_is_not_a_job_failure(write_config, caplog):
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config
    daemon = Daemon(Context(Config(write_config({}))))
    daemon.stop_event.set()
    with caplog.at_level("INFO"):
        daemon.run_job("startup", lambda: daemon.checkpoint())
    assert "startup" not in daemon.board.snapshot()  # no run recorded, so no failure counted
    assert "job startup stopped at a safe point" in caplog.text and "FAILED" not in caplog.text


@pytest.mark.host_tz
def test_sigterm_to_train_ends_it_within_15_s_with_nothing_half_written(btc_year, write_config, tmp_path):
    config = write_config({"database": {"url": btc_year.db.database_url}, "trading": {"assets": ["BTC/USDT"]},
                           "ml": {"min_samples_for_training": 500}})
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRYPTO_ML_CONFIG")}
    process = subprocess.Popen([sys.executable, "-m", "src.main", "train", "--config", str(config)], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        records = RecordStore(btc_year.db)
        deadline = time.time() + 240
        while records.count("model_registry") == 0 and time.time() < deadline:  # mid-run: a group is written
            time.sleep(0.2)
        assert records.count("model_registry") > 0, "train wrote nothing in 240 s"
        process.send_signal(signal.SIGTERM)
        started = time.perf_counter()
        process.wait(timeout=15)
        assert time.perf_counter() - started < 15
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, process.stderr.read()
    registry = ModelRegistry(RecordStore(btc_year.db), tmp_path / "data" / "models")
    rows = pd.concat([registry.records.models(task=task) for task in ("direction", "resolution")])
    for _, row in rows.iterrows():  # every row's files exist, match their checksum and load
        assert registry.load(row)
    folders = {p.name for p in registry.models_dir.iterdir() if not p.name.startswith(".writing")}
    assert folders == set(rows["version"])  # no folder without its row
    registry.remove_orphans()  # a folder the stopped process was writing (its PID is gone) is removed
    assert {p.name for p in registry.models_dir.iterdir()} == set(rows["version"])
