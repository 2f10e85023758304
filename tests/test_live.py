"""Live cycle on real candles in the embedded database: predict, outcomes, performance, retrain."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.data.features import compute_features, with_barrier
from src.data.labels import barrier_outcomes
from src.database.records import RecordStore
from src.models.estimators import ClimatologyModel, prob_up
from src.models.outcomes import resolve_outcomes
from src.models.performance import daily_performance
from src.models.prediction import Predictor
from src.models.registry import ModelRegistry
from src.models.retraining import Retrainer
from src.models.training import Trainer, TrainSettings
from tests.shared_data import load_candles as shared_candles

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [0.01, 0.05]
SETTINGS = TrainSettings(n_folds=1, fold_days=60)
AT = pd.Timestamp("2023-01-20 06:15", tz="UTC")  # predicts from the 05:00 candle


@pytest.fixture
def trained(ops, tmp_path):
    for name in ("BTC_USDT", "ETH_USDT"):
        ops.save_ohlcv_data(name.replace("_", "/"), "1h", shared_candles(name, "2022-03-01", "2023-02-28 23:00"))
    records = RecordStore(ops.db)
    registry = ModelRegistry(records, tmp_path / "models")
    Trainer(ops, records, registry, SETTINGS).train(["BTC/USDT", "ETH/USDT"], TARGETS,
                                                    cut=pd.Timestamp("2023-01-15", tz="UTC"))
    return ops, records, registry


def _history(ops, symbol):
    return ops.get_candles(symbol, "1h", end=pd.Timestamp("2023-01-20 05:00", tz="UTC"))


def test_predictions_equal_the_registry_models_on_that_hours_features(trained):
    ops, records, registry = trained
    result = Predictor(ops, records, registry, TARGETS).predict(["BTC/USDT", "ETH/USDT"], AT)
    assert result.written == 2 * 2 * 3 and not result.stale
    stored = pd.read_sql("SELECT * FROM predictions", ops.db.engine)
    assert set(stored["timestamp"]) == {pd.Timestamp("2023-01-20 05:00", tz="UTC")}
    full = compute_features(_history(ops, "ETH/USDT"), _history(ops, "BTC/USDT"))  # all history, not a window
    row = full.iloc[[-1]]
    for target in TARGETS:
        current = registry.current("ETH/USDT", "1h", target)
        for name in ("xgboost", "logistic", "climatology"):
            expected = prob_up(registry.load(current[name]).estimator, with_barrier(row, target))[0]
            got = stored[(stored.symbol == "ETH/USDT") & (stored.target_pct.astype(float) == target)
                         & (stored.model_name == name)].iloc[0]
            assert float(got.probability) == pytest.approx(expected, abs=1e-6)
            assert got.prediction_class == int(float(got.probability) >= 0.5)
            assert float(got.confidence) == pytest.approx(max(expected, 1 - expected), abs=1e-6)
            assert got.is_champion == (name == current["champion"]["model_name"])
    assert records.cached_features("ETH/USDT", "1h", current["xgboost"]["feature_version"],
                                   pd.Timestamp("2023-01-20 05:00", tz="UTC")) is not None


def test_repeated_and_concurrent_runs_write_nothing_twice(trained, write_config):
    ops, records, registry = trained
    cfg = write_config({"database": {"url": ops.db.database_url}, "trading": {
        "assets": ["BTC/USDT", "ETH/USDT"], "target_percentages": TARGETS},
        "paths": {"data_dir": str(registry.models_dir.parent)}})
    command = [sys.executable, "-m", "src.main", "predict", "--at", AT.isoformat(), "--config", str(cfg)]
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    assert all(run.wait(timeout=120) == 0 for run in runs), [run.stderr.read() for run in runs]
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "0 predictions written" in again.stdout
    assert records.count("predictions") == 12


def test_stale_asset_gets_no_prediction(trained):
    ops, records, registry = trained
    late = pd.Timestamp("2023-03-05 10:00", tz="UTC")  # data ends 2023-02-28 23:00
    result = Predictor(ops, records, registry, TARGETS).predict(["BTC/USDT"], late)
    assert result.stale.keys() == {"BTC/USDT"} and result.written == 0
    assert records.count("predictions") == 0


def test_outcomes_agree_with_the_label_function_and_are_idempotent(trained):
    ops, records, registry = trained
    predictor = Predictor(ops, records, registry, TARGETS)
    hours = pd.date_range("2023-01-20 06:00", periods=6, freq="h", tz="UTC")
    for at in hours:
        predictor.predict(["BTC/USDT"], at)
    early = resolve_outcomes(ops, records, pd.Timestamp("2023-01-20 12:00", tz="UTC"))
    later = resolve_outcomes(ops, records, pd.Timestamp("2023-02-10 00:00", tz="UTC"))
    assert resolve_outcomes(ops, records, pd.Timestamp("2023-02-10 00:00", tz="UTC")) == 0
    assert early + later == records.count("prediction_outcomes") == 6 * 2 * 3
    resolved = records.resolved("live")
    candles = ops.get_candles("BTC/USDT", "1h")
    for target in TARGETS:
        truth = barrier_outcomes(candles, target, 168)
        mine = resolved[(resolved.target_pct == target) & (resolved.model_name == "xgboost")].set_index("timestamp")
        assert (mine["status"] == truth.loc[mine.index, "status"]).all()
        labels = truth.loc[mine.index, "label"]
        assert np.allclose(mine["actual_outcome"].astype(float), labels, equal_nan=True)
    assert daily_performance(records, pd.Timestamp("2023-01-20").date()) > 0
    performance = records.performance("live")
    assert set(performance["window_days"]) == {1, 7, 30}


def test_promotion_only_when_the_challenger_is_better(trained):
    ops, records, registry = trained
    now = pd.Timestamp("2023-02-20", tz="UTC")
    # a champion that always says UP: any honest challenger beats it
    bad = ClimatologyModel().fit(np.zeros(2), np.ones(2))
    version = registry.save(bad, symbol="BTC/USDT", timeframe="1h", target=0.01, model_name="climatology",
                            train_start=now, train_end=now, n_samples=2, metrics={})
    records.promote(version)
    strict = Retrainer(ops, records, registry, SETTINGS, window_days=20, min_samples=100_000)
    kept = strict.retrain(["BTC/USDT"], [0.01], now)[0]
    assert not kept.promoted and "only" in kept.reason
    assert registry.current("BTC/USDT", "1h", 0.01)["champion"]["version"] == version
    decision = Retrainer(ops, records, registry, SETTINGS, window_days=20, min_samples=100).retrain(
        ["BTC/USDT"], [0.01], now)[0]
    assert decision.promoted and decision.best_brier < decision.champion_brier
    history = records.models("BTC/USDT", "1h", 0.01)
    assert history["is_champion"].sum() == 1
    assert history.loc[history.version == version, "retired_at"].notna().all()
    # now the champion is the best there is on this window: a second round keeps it
    again = Retrainer(ops, records, registry, SETTINGS, window_days=20, min_samples=100).retrain(
        ["BTC/USDT"], [0.01], now)[0]
    assert not again.promoted
    for _ in range(2):  # daily refits do not pile up: never-champion models beyond 3 per kind are pruned
        Retrainer(ops, records, registry, SETTINGS, window_days=20, min_samples=100).retrain(["BTC/USDT"], [0.01], now)
    history = records.models("BTC/USDT", "1h", 0.01)
    never = history[~history["is_champion"] & history["promoted_at"].isna()]
    assert never.groupby("model_name").size().max() <= 3
    assert history["promoted_at"].notna().sum() >= 2  # every champion, past and present, is kept
    assert all(Path(p).exists() for p in history["path"])
