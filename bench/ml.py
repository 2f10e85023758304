"""ML and live-cycle benchmark: python bench/ml.py  (a throwaway embedded database; prints figures).

Features for 3 assets x 3 years; fitting the 9 xgboost models on 3 years; one prediction hour for the 9
groups (models in memory); one live cycle (3 assets x 3 targets x 3 direction + 3 time models, features
included, no network, warm as in the daemon) with the process's peak RSS; resolving a day of outcomes.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.features import compute_features, with_barrier  # noqa: E402
from src.database.connection import DatabaseConnection  # noqa: E402
from src.database.operations import DatabaseOperations  # noqa: E402
from src.database.records import RecordStore  # noqa: E402
from src.models.dataset import build_dataset  # noqa: E402
from src.models.estimators import make_model, prob_up  # noqa: E402
from src.models.outcomes import resolve_outcomes  # noqa: E402
from src.models.prediction import Predictor  # noqa: E402
from src.models.registry import ModelRegistry  # noqa: E402
from src.models.training import Trainer, TrainSettings  # noqa: E402
from tests.shared_data import load_candles  # noqa: E402

SYMBOLS = {"BTC/USDT": "BTC_USDT", "ETH/USDT": "ETH_USDT", "SOL/USDT": "SOL_USDT"}
TARGETS = [0.01, 0.02, 0.05]


def candles() -> dict[str, pd.DataFrame]:
    out = {}
    for symbol, name in SYMBOLS.items():
        frame = load_candles(name, "2021-01-01")
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
        out[symbol] = frame
    return out


def bench_offline(data: dict[str, pd.DataFrame]) -> None:
    start = time.perf_counter()
    features = {s: compute_features(data[s], None if s == "BTC/USDT" else data["BTC/USDT"]) for s in data}
    print(f"features, 3 assets x 3 years:        {time.perf_counter() - start:8.2f} s")
    datasets = {(s, t): build_dataset(data[s], features[s], t) for s in data for t in TARGETS}
    start = time.perf_counter()
    models = {key: make_model("xgboost").fit(d.X, d.y) for key, d in datasets.items()}
    print(f"fit 9 xgboost models on 3 years:     {time.perf_counter() - start:8.2f} s "
          f"({sum(len(d.y) for d in datasets.values()):,} samples)")
    start = time.perf_counter()
    for (s, t), model in models.items():
        prob_up(model, with_barrier(features[s].iloc[[-1]], t))
    print(f"one prediction hour, 9 groups:       {(time.perf_counter() - start) * 1000:8.1f} ms")


def bench_cycle(tmp: Path) -> None:
    db = DatabaseConnection("embedded", tmp)
    db.create_tables()
    ops, records = DatabaseOperations(db), RecordStore(db)
    for symbol, name in SYMBOLS.items():
        ops.save_ohlcv_data(symbol, "1h", load_candles(name, "2022-06-01"))
    registry = ModelRegistry(records, tmp / "models")
    Trainer(ops, records, registry, TrainSettings(n_folds=1)).train(list(SYMBOLS), TARGETS,
                                                                   cut=pd.Timestamp("2023-11-01", tz="UTC"))
    predictor = Predictor(ops, records, registry, TARGETS)
    process = psutil.Process()
    hours = pd.date_range("2023-11-20 00:10", periods=25, freq="h", tz="UTC")
    predictor.predict(list(SYMBOLS), hours[0])  # loads the models once, as the daemon does
    times, peak = [], process.memory_info().rss
    for at in hours[1:]:
        start = time.perf_counter()
        predictor.predict(list(SYMBOLS), at)
        times.append(time.perf_counter() - start)
        peak = max(peak, process.memory_info().rss)
    print(f"one live cycle (27 + 27 how-soon):   {pd.Series(times).median() * 1000:8.1f} ms median of {len(times)}, "
          f"peak RSS {peak / 2**20:.0f} MB")
    start = time.perf_counter()
    written = resolve_outcomes(ops, records, pd.Timestamp("2023-12-31", tz="UTC"))
    print(f"resolve a day of outcomes:           {(time.perf_counter() - start) * 1000:8.1f} ms ({written} rows)")
    db.dispose()


def main() -> None:
    bench_offline(candles())
    with tempfile.TemporaryDirectory() as tmp:
        bench_cycle(Path(tmp))


if __name__ == "__main__":
    main()
