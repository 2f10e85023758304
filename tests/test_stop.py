"""The stop stops: training, retraining and the backtest end at the next unit or group once the stop is set,
with every group already written whole; Telegram's backoff ends on the stop; a clean stop is no job failure;
SIGTERM to `train`, `retrain` or `backtest` ends the process within 15 s with nothing half-written, and so does
a stop during the daemon's daily retrain; a stop during an xgboost fit waits for its end."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from src.data.history import load_candles
from src.database.records import RecordStore
from src.models.live.registry import ModelRegistry
from src.models.offline.backtest import run_backtest
from src.models.offline.training import Trainer, TrainSettings
from src.utils.errors import StopRequested, deferred_while_held, stop_signals_held
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
    assert set(models["target_pct"]) == {0.01} and len(models) == 3 + 4  # the first group whole, no other
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


def test_a_stop_during_a_held_write_waits_for_its_end_even_when_another_thread_takes_the_signal():
    """The kernel may hand the process's SIGTERM to any thread (xgboost's OpenMP workers); Python runs the handler
    in the main thread all the same. A held write must still finish first (a thread mask alone let it through)."""
    handled: list[int] = []
    go, sent = threading.Event(), threading.Event()

    def worker() -> None:  # started before the write, like OpenMP's threads: it does not share the write's mask
        go.wait(30)
        signal.raise_signal(signal.SIGUSR1)  # taken by this thread
        sent.set()

    previous = signal.signal(signal.SIGUSR1, deferred_while_held(lambda signum, _frame: handled.append(signum)))
    thread = threading.Thread(target=worker)
    thread.start()
    try:
        with stop_signals_held():
            go.set()
            assert sent.wait(30)
            time.sleep(0.2)  # the handler runs in the main thread here, at the latest
            assert handled == []
        assert handled == [signal.SIGUSR1]  # delivered once, right after the write
        signal.raise_signal(signal.SIGUSR1)
        assert handled == [signal.SIGUSR1] * 2  # outside a held write, at once
    finally:
        signal.signal(signal.SIGUSR1, previous)


XGBOOST_STOP_SCRIPT = """
import signal, sys
import numpy as np, pandas as pd
import xgboost.data
from src.models.estimators.direction import fit_model
from src.utils.errors import deferred_while_held

class Stopped(BaseException):
    pass

def stop(signum, frame):
    raise Stopped()

signal.signal(signal.SIGUSR1, deferred_while_held(stop))
swallowed, reads = [], []
sys.unraisablehook = lambda unraisable: swallowed.append(repr(unraisable.exc_value))
original = xgboost.data.SingleBatchInternalIter.next

def next_with_a_stop(self, input_data):  # xgboost calls this from C, through ctypes
    reads.append(1)
    signal.raise_signal(signal.SIGUSR1)  # a stop arrives while xgboost reads its training data
    return original(self, input_data)

xgboost.data.SingleBatchInternalIter.next = next_with_a_stop
rng = np.random.default_rng(0)
hours = pd.date_range("2022-01-01", periods=2000, freq="h", tz="UTC")
X = pd.DataFrame(rng.normal(size=(2000, 5)), columns=list("abcde"), index=hours)
y = pd.Series((X["a"] + rng.normal(size=2000) > 0).astype(int), index=hours)
try:
    fit_model("xgboost", X, y, horizon=24)
    print("not stopped", len(reads), swallowed)
except Stopped:
    print("stopped after the fit", len(reads), swallowed)
"""


@pytest.mark.host_tz
def test_a_stop_during_an_xgboost_fit_waits_for_its_end():
    """xgboost reads its data through a ctypes callback into Python: a stop raised in there was swallowed by
    ctypes and left xgboost corrupt (a SIGSEGV in CI, `malloc(): invalid size` by hand). The fit holds stops."""
    result = subprocess.run([sys.executable, "-c", XGBOOST_STOP_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert result.stdout.startswith("stopped after the fit"), result.stdout + result.stderr
    assert int(words[4]) >= 1, "the stop was never sent from inside xgboost's callback"
    assert words[5:] == ["[]"], f"a stop was swallowed inside a callback: {result.stdout}"


STUCK_SCRIPT = """
import signal, threading
from src.cli.main import install_stop_handlers
install_stop_handlers()

def stuck_in_cleanup():
    threading.Event().wait()  # a cleanup that never returns (a pool's shutdown waiting for a lost worker)

try:
    print("ready", flush=True)  # inside: the stop may come at once
    signal.pause()
finally:
    stuck_in_cleanup()
"""


@pytest.mark.host_tz
def test_a_stop_that_hangs_is_ended_by_the_watchdog_with_every_threads_stack():
    """A command whose stop hangs (here: a cleanup that never returns) is ended STOP_GRACE_S after the signal, with
    the exit code of the stop and each thread's stack on stderr, where it hung."""
    from src.cli.main import STOP_GRACE_S
    process = subprocess.Popen([sys.executable, "-c", STUCK_SCRIPT], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)
        started = time.perf_counter()
        _, err = process.communicate(timeout=STOP_GRACE_S + 30)
        took = time.perf_counter() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert STOP_GRACE_S <= took < STOP_GRACE_S + 10, took
    assert f"the stop (SIGTERM) did not end the command within {STOP_GRACE_S:.0f} s" in err
    assert "stuck_in_cleanup" in err  # the stack says where


def _sigterm_mid_run(config: Path, args: list[str], wrote) -> subprocess.CompletedProcess:
    """Start the command, SIGTERM it once `wrote()` (something is written: mid-run), and require its end within 15 s
    with the exit code of a stop."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRYPTO_ML_CONFIG")}
    process = subprocess.Popen([sys.executable, "-m", "src.main", *args, "--config", str(config)], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not wrote() and process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert process.poll() is None and wrote(), f"{args[0]} wrote nothing while running"
        process.send_signal(signal.SIGTERM)
        started = time.perf_counter()
        out, err = process.communicate(timeout=15)
        assert time.perf_counter() - started < 15
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    if "did not end the command" in err:  # bounded by the watchdog: the promise holds, but say where it hung
        warnings.warn(f"{args[0]}: the stop hung and the watchdog ended it; the stacks:\n{err[-4000:]}", stacklevel=1)
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def _models_whole(records: RecordStore, models_dir: Path) -> pd.DataFrame:
    """Every row's files exist, match their checksum and load, and no folder is without its row: a stop waits
    for the model being saved (its files and its row), so nothing is left for the next start to clean."""
    registry = ModelRegistry(records, models_dir)
    rows = pd.concat([records.models(task=task) for task in ("direction", "resolution", "any_size")])
    for _, row in rows.iterrows():
        assert registry.load(row)
    assert {p.name for p in models_dir.iterdir()} == set(rows["version"])
    return rows


@pytest.mark.host_tz
def test_sigterm_to_train_ends_it_within_15_s_with_nothing_half_written(btc_year, write_config, tmp_path):
    config = write_config({"database": {"url": btc_year.db.database_url}, "trading": {"assets": ["BTC/USDT"]},
                           "ml": {"min_samples_for_training": 500}})
    records = RecordStore(btc_year.db)
    _sigterm_mid_run(config, ["train"], lambda: records.count("model_registry") > 0)
    _models_whole(records, tmp_path / "data" / "models")


@pytest.mark.host_tz
def test_sigterm_to_retrain_ends_it_within_15_s_with_the_champions_whole(trained, write_config, tmp_path):
    ops, records, _ = trained
    config = write_config({"database": {"url": ops.db.database_url}, "trading": {"assets": ["BTC/USDT", "ETH/USDT"],
                           "target_percentages": [0.01, 0.05]}, "paths": {"data_dir": str(tmp_path)},
                           "ml": {"min_samples_for_training": 500, "n_workers": 1}})
    before = records.count("model_registry")
    _sigterm_mid_run(config, ["retrain", "--at", "2023-02-20T00:30"], lambda: records.count("model_registry") > before)
    rows = _models_whole(records, tmp_path / "models")
    served = rows[rows["is_champion"] & (rows["task"] != "any_size")]  # any_size: one per asset, not per group
    champions = served.groupby(["symbol", "target_pct", "task"]).size()
    assert len(champions) == 2 * 2 * 2 and (champions == 1).all()  # every group still served, once


@pytest.mark.host_tz
def test_sigterm_to_backtest_ends_it_within_15_s_with_whole_groups_only(btc_year, write_config):
    config = write_config({"database": {"url": btc_year.db.database_url}, "trading": {"assets": ["BTC/USDT"],
                           "target_percentages": [0.01, 0.02, 0.05]}, "ml": {"min_samples_for_training": 500}})
    records = RecordStore(btc_year.db)
    records.refresh_day_scores("backtest", pd.Timestamp("2023-01-01").date(), 168)  # an earlier backtest's sums
    assert records.stored_through("backtest") is not None
    result = _sigterm_mid_run(config, ["backtest", "--start", "2022-11-01", "--end", "2023-01-01",
                                       "--retrain-every", "30"], lambda: records.count("predictions") > 0)
    assert "Traceback" not in result.stderr
    with btc_year.db.engine.connect() as conn:
        direction = pd.read_sql("SELECT target_pct, model_name, count(*) AS n FROM predictions GROUP BY 1, 2", conn)
        timing = pd.read_sql("SELECT target_pct, model_name, count(*) AS n FROM resolution_forecasts GROUP BY 1, 2",
                             conn)
    groups = set(direction["target_pct"].astype(float))
    assert groups and groups < {0.01, 0.02, 0.05}, "stopped after some groups, before all"
    assert set(timing["target_pct"].astype(float)) == groups  # a group's how-soon forecasts came with it
    hours = direction["n"].max()
    assert hours > 55 * 24 and (direction["n"] == hours).all() and (timing["n"] == hours).all(), (direction, timing)
    assert records.stored_through("backtest") is None  # the web sums the stopped run from what it wrote


@pytest.mark.host_tz
def test_a_stop_during_the_daemons_daily_retrain_ends_it_within_15_s(trained, write_config, tmp_path, caplog):
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config
    ops, records, _ = trained
    config = Config(write_config({"database": {"url": ops.db.database_url}, "paths": {"data_dir": str(tmp_path)},
                                  "trading": {"assets": ["BTC/USDT", "ETH/USDT"], "target_percentages": [0.01, 0.05]},
                                  "ml": {"n_workers": 1, "min_samples_for_training": 500}}))
    daemon = Daemon(Context(config))
    before = records.count("model_registry")
    at = pd.Timestamp("2023-02-20 00:30", tz="UTC")  # within the stored candles (they end 2023-02-28)
    job = threading.Thread(target=daemon.run_job, args=("daily", lambda: daemon.daily(at)))
    with caplog.at_level("INFO"):
        job.start()
        deadline = time.time() + 300
        while records.count("model_registry") == before and job.is_alive() and time.time() < deadline:
            time.sleep(0.2)
        assert job.is_alive(), "the daily job ended before retraining wrote a model"
        daemon.stop_event.set()
        started = time.perf_counter()
        job.join(timeout=15)
        assert not job.is_alive() and time.perf_counter() - started < 15
    assert "job daily stopped at a safe point" in caplog.text and "FAILED" not in caplog.text
    assert "daily" not in daemon.board.snapshot()
    rows = _models_whole(records, tmp_path / "models")
    served = rows[rows["is_champion"] & (rows["task"] != "any_size")]  # any_size: one per asset, not per group
    champions = served.groupby(["symbol", "target_pct", "task"]).size()
    assert len(champions) == 2 * 2 * 2 and (champions == 1).all()
