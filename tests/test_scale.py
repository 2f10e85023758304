"""Scale: the same backtest on every executor (this process, local processes, a Dask cluster), a worker
killed mid-run (its units run again, nothing is written twice), and many assets end to end."""
from __future__ import annotations

import os
import signal

import pandas as pd
import psutil
import pytest

from src.database.records import RecordStore
from src.models.backtest import run_backtest
from src.models.training import TrainSettings, load_candles
from src.utils.executors import LocalExecutor, UnitFailure, make_executor
from tests.shared_data import load_candles as shared_candles

START, END = pd.Timestamp("2022-12-01", tz="UTC"), pd.Timestamp("2022-12-15", tz="UTC")
KEY = ["timestamp", "target_pct", "model_name"]


@pytest.fixture
def btc_year(ops):
    ops.save_ohlcv_data("BTC/USDT", "1h", shared_candles("BTC_USDT", "2022-01-01", "2023-01-31 23:00"))
    return ops


def _backtest(ops, executor, progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the short backtest and return what it stored: predictions and how-soon forecasts."""
    records = RecordStore(ops.db)
    run_backtest(load_candles(ops, ["BTC/USDT"], "1h"), ["BTC/USDT"], [0.02], START, END, records,
                 TrainSettings(), retrain_every_days=7, executor=executor, progress=progress)
    predictions = pd.read_sql("SELECT timestamp, target_pct, model_name, model_version, probability, is_champion "
                              "FROM predictions", ops.db.engine).sort_values(KEY, ignore_index=True)
    timing = pd.read_sql("SELECT timestamp, target_pct, model_name, model_version, p_6h, p_24h, p_horizon, "
                         "q10_hours, q50_hours, q90_hours, is_champion FROM resolution_forecasts",
                         ops.db.engine).sort_values(KEY, ignore_index=True)
    return predictions, timing


class KillOnce:
    """A progress callback that kills one worker process when the first unit is done."""

    def __init__(self, pids):
        self.pids, self.killed = pids, None

    def start(self, total: int) -> None:
        self.total = total

    def __call__(self, step: int = 1) -> None:
        if self.killed is None:
            self.killed = self.pids()[0]
            os.kill(self.killed, signal.SIGKILL)


def _loky_workers() -> list[int]:
    return [p.pid for p in psutil.Process().children(recursive=True) if "popen_loky" in " ".join(p.cmdline())]


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  host="127.0.0.1") as cluster:
        yield cluster


def test_backtest_is_the_same_on_every_executor_and_a_killed_worker_changes_nothing(btc_year, dask_cluster):
    serial = _backtest(btc_year, LocalExecutor(1))
    assert len(serial[0]) == 14 * 24 * 4 and len(serial[1]) == 14 * 24 * 4

    local = LocalExecutor(2)
    try:
        assert all(a.equals(b) for a, b in zip(_backtest(btc_year, local), serial))
        killer = KillOnce(_loky_workers)  # a local worker dies mid-run: its units run again
        assert all(a.equals(b) for a, b in zip(_backtest(btc_year, local, killer), serial))
        assert killer.killed is not None and not psutil.pid_exists(killer.killed)
    finally:
        local.close()

    dask = make_executor("dask://" + dask_cluster.scheduler_address.removeprefix("tcp://"))
    try:
        assert dask.n_workers == 2 and dask.dashboard
        assert all(a.equals(b) for a, b in zip(_backtest(btc_year, dask), serial))
        pids = dask.client.run(os.getpid)

        def holder() -> list[int]:  # the worker holding the shared samples
            return [pids[w] for key, where in dask.client.who_has().items() if key.startswith("dict-") for w in where]
        killer = KillOnce(holder)  # a cluster worker dies: the scheduler reruns its units
        assert all(a.equals(b) for a, b in zip(_backtest(btc_year, dask, killer), serial))
        assert killer.killed is not None
    finally:
        dask.close()


def _fails_on_odd(n: int) -> int:
    if n % 2:
        raise ValueError(f"odd {n}")
    return n * 10


def test_a_failing_unit_comes_back_as_its_error_and_the_others_finish():
    for executor in (LocalExecutor(1), LocalExecutor(2)):
        try:
            results = list(executor.map([(_fails_on_odd, n) for n in range(6)]))
        finally:
            executor.close()
        assert [r for r in results if not isinstance(r, UnitFailure)] == [0, 20, 40]
        assert [str(r.error) for r in results if isinstance(r, UnitFailure)] == ["odd 1", "odd 3", "odd 5"]


def test_an_unreachable_dask_scheduler_is_a_clear_error():
    from src.utils.errors import UserError
    with pytest.raises(UserError, match="no Dask scheduler answers at tcp://127.0.0.1:9.*ml.executor: local"):
        make_executor("dask://127.0.0.1:9")
    with pytest.raises(UserError, match="neither 'local' nor"):
        make_executor("spark://x")
