"""Backtest benchmark: the same walk-forward backtest (3 assets x 3 targets, weekly retraining, both tasks)
on each executor, its wall time, whether every stored forecast is identical to the first executor's, and
the scaling on paper from the measured cost per unit.

    python bench/backtest.py                                  # 2022-07-01 .. 2024-01-01, serial, local, dask
    python bench/backtest.py --start 2023-10-01 --executors local,dask
    python bench/backtest.py --start 2022-01-01 --end 2023-12-24 --retrain-every 30 --executors local  # 2 years

Each run prints the share of its time spent in the database (the record store's calls: writes of forecasts and
outcomes, the reads that score them): a backtest's time should be the fits'.

`dask` starts a LocalCluster of `--workers` worker processes (one thread each) for the run. A throwaway
embedded database is used; the shared candles (../shared/data) are imported into it first.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.history import load_candles  # noqa: E402
from src.database.connection import DatabaseConnection  # noqa: E402
from src.database.operations import DatabaseOperations  # noqa: E402
from src.database.records import RecordStore  # noqa: E402
from src.models.offline.backtest import run_backtest  # noqa: E402
from src.models.offline.training import TrainSettings  # noqa: E402
from src.utils.executors import LocalExecutor, make_executor  # noqa: E402
from src.utils.progress import TerminalProgress  # noqa: E402
from tests.shared_data import load_candles as shared_candles  # noqa: E402

SYMBOLS = {"BTC/USDT": "BTC_USDT", "ETH/USDT": "ETH_USDT", "SOL/USDT": "SOL_USDT"}
TARGETS = [0.01, 0.02, 0.05]


def stored(db: DatabaseConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    key = ["symbol", "target_pct", "timestamp", "model_name"]
    predictions = pd.read_sql("SELECT symbol, target_pct, timestamp, model_name, model_version, probability "
                              "FROM predictions", db.engine).sort_values(key, ignore_index=True)
    timing = pd.read_sql("SELECT symbol, target_pct, timestamp, model_name, model_version, p_6h, p_24h, p_horizon, "
                         "q10_hours, q50_hours, q90_hours FROM resolution_forecasts",
                         db.engine).sort_values(key, ignore_index=True)
    return predictions, timing


class TimedRecords:
    """The record store, with the wall time spent in its calls added up (database work and its frames)."""

    def __init__(self, records: RecordStore):
        self.records, self.by_call = records, {}

    @property
    def seconds(self) -> float:
        return sum(self.by_call.values())

    def breakdown(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in
                         sorted(self.by_call.items(), key=lambda item: -item[1]))

    def __getattr__(self, name: str):
        attr = getattr(self.records, name)
        if not callable(attr):
            return attr

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.by_call[name] = self.by_call.get(name, 0.0) + time.perf_counter() - began
        return timed


def run(name: str, ops: DatabaseOperations, start: pd.Timestamp, end: pd.Timestamp, workers: int,
        retrain_every: int) -> tuple:
    cluster = None
    if name == "serial":
        executor = LocalExecutor(1)
    elif name == "local":
        executor = LocalExecutor(workers)
    else:
        from distributed import LocalCluster
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=":0")
        executor = make_executor("dask://" + cluster.scheduler_address.removeprefix("tcp://"))
        print(f"dask dashboard: {executor.dashboard}")
    candles = load_candles(ops, list(SYMBOLS), "1h")
    records = TimedRecords(RecordStore(ops.db))
    began = time.perf_counter()
    try:
        with TerminalProgress(f"backtest ({executor.name})", "fit") as bar:
            run_backtest(candles, list(SYMBOLS), TARGETS, start, end, records, TrainSettings(),
                         retrain_every_days=retrain_every, progress=bar, executor=executor)
            units = bar.bar.total
    finally:
        executor.close()
        if cluster is not None:
            cluster.close()
    print(f"database calls: {records.breakdown()}")
    return time.perf_counter() - began, units, records.seconds, stored(ops.db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2022-07-01")
    parser.add_argument("--end", default="2024-01-01")
    parser.add_argument("--executors", default="serial,local,dask")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--retrain-every", type=int, default=7, help="days between retrain points")
    args = parser.parse_args()
    start, end = pd.Timestamp(args.start, tz="UTC"), pd.Timestamp(args.end, tz="UTC")
    with tempfile.TemporaryDirectory() as tmp:
        db = DatabaseConnection("embedded", Path(tmp))
        db.create_tables()
        ops = DatabaseOperations(db)
        for symbol, name in SYMBOLS.items():
            ops.save_ohlcv_data(symbol, "1h", shared_candles(name))
        first, results = None, []
        for name in args.executors.split(","):
            seconds, units, database, forecasts = run(name, ops, start, end, args.workers, args.retrain_every)
            same = "reference" if first is None else (
                "identical" if all(a.equals(b) for a, b in zip(forecasts, first)) else "DIFFERENT")
            first = first or forecasts
            results.append((name, seconds, units))
            print(f"{name:<7} {seconds:8.1f} s  {units} units  {len(forecasts[0]):,} predictions, "
                  f"{len(forecasts[1]):,} how-soon forecasts: {same}; database {database:.1f} s "
                  f"({database / seconds:.0%} of the run)")
        db.dispose()
    name, seconds, units = results[0]
    per_unit = seconds * (1 if name == "serial" else args.workers) / units
    weeks = 79
    paper = 100 * 3 * (weeks * 2 + 8) * per_unit
    print(f"\ncost per unit (one task's models fitted at one point, one core): {per_unit:.2f} s")
    print(f"on paper, 100 assets x 3 targets x {weeks} retrain points x 2 tasks (+ 8 warm-up folds): "
          f"{paper / 3600:.1f} core-hours; on 10 machines x 2 cores: {paper / 20 / 60:.0f} min")


if __name__ == "__main__":
    main()
