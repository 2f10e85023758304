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
from src.models.estimators.dataset import build_dataset  # noqa: E402
from src.models.estimators.direction import fit_model, prob_up  # noqa: E402
from src.models.live.outcomes import resolve_outcomes  # noqa: E402
from src.models.live.prediction import Predictor  # noqa: E402
from src.models.live.registry import ModelRegistry  # noqa: E402
from src.models.offline.training import Trainer, TrainSettings  # noqa: E402
from src.utils.executors import LocalExecutor, available_cores  # noqa: E402
from src.utils.memory import release_free_memory  # noqa: E402
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
    models = {key: fit_model("xgboost", d.X, d.y) for key, d in datasets.items()}
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


def many_markets(n: int, start: str, end: str) -> dict[str, pd.DataFrame]:
    """BTC, ETH, SOL and n - 3 more markets made of their real candles from earlier months (prices scaled),
    all moved onto the same hours, so each market has its own history."""
    out = {}
    for i in range(n):
        source = ("BTC_USDT", "ETH_USDT", "SOL_USDT")[i % 3]
        shift = pd.Timedelta(days=30 * (i // 3))
        frame = load_candles(source, str((pd.Timestamp(start) - shift).date()),
                             str((pd.Timestamp(end) - shift).date()))
        frame["timestamp"] += shift.value // 1_000_000
        if i >= 3:
            frame[["open", "high", "low", "close"]] *= 1 + i / 10
        out[f"{source.split('_')[0]}/USDT" if i < 3 else f"C{i:02d}/USDT"] = frame
    return out


def bench_cycle_many(tmp: Path, n_assets: int = 30) -> None:
    """The live cycle for n_assets x 3 targets (warm), and memory over simulated days of fresh fits."""
    db = DatabaseConnection("embedded", tmp)
    db.create_tables()
    ops, records = DatabaseOperations(db), RecordStore(db)
    markets = many_markets(n_assets, "2023-05-01", "2023-12-31")
    for symbol, frame in markets.items():
        ops.save_ohlcv_data(symbol, "1h", frame)
    registry = ModelRegistry(records, tmp / "models", cache_size=2 * n_assets * len(TARGETS) * 6)
    started = time.perf_counter()
    with LocalExecutor(available_cores()) as executor:
        Trainer(ops, records, registry, TrainSettings(n_folds=1), executor).train(
            list(markets), TARGETS, cut=pd.Timestamp("2023-11-01", tz="UTC"))
    print(f"train {n_assets} x 3 groups (1 fold, both tasks):  {time.perf_counter() - started:8.1f} s")
    predictor = Predictor(ops, records, registry, TARGETS)
    process = psutil.Process()
    hours = pd.date_range("2023-11-20 00:10", periods=13, freq="h", tz="UTC")
    predictor.predict(list(markets), hours[0])
    times = []
    for at in hours[1:]:
        start = time.perf_counter()
        result = predictor.predict(list(markets), at)
        times.append(time.perf_counter() - start)
    print(f"one live cycle, {n_assets} assets ({result.written} + {result.time_written} how-soon): "
          f"{pd.Series(times).median() * 1000:8.1f} ms median of {len(times)}, "
          f"RSS {process.memory_info().rss / 2**20:.0f} MB")
    rss = []
    for day in range(1, 31):  # a fresh version of every model a day, as daily retraining deploys them
        at = hours[-1] + pd.Timedelta(days=day)
        refit_every_model(registry, list(markets), at)
        predictor.predict(list(markets), at)
        release_free_memory()  # as the daemon does after its daily job
        rss.append(process.memory_info().rss / 2**20)
    print(f"RSS over 30 days of fresh fits (cache {registry.cache_size} models): "
          f"{' '.join(f'{r:.0f}' for r in rss)} MB")
    db.dispose()


def refit_every_model(registry: ModelRegistry, symbols: list[str], at: pd.Timestamp) -> None:
    """Every current model saved again as a new version (its champion promoted), as a daily refit does."""
    for (symbol, target, task), models in registry.current_all("1h").items():
        if symbol not in symbols:
            continue
        for name, row in models.items():
            if name == "champion":
                continue
            version = registry.save(registry.load(row).estimator, symbol=symbol, timeframe="1h", target=target,
                                    model_name=name, task=task, train_start=row["train_start"], train_end=at,
                                    n_samples=int(row["n_samples"]), metrics={})
            if name == models["champion"]["model_name"]:
                registry.records.promote(version)
        registry.prune(symbol, "1h", target, task=task)


def main() -> None:
    bench_offline(candles())
    with tempfile.TemporaryDirectory() as tmp:
        bench_cycle(Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        bench_cycle_many(Path(tmp))


if __name__ == "__main__":
    main()
