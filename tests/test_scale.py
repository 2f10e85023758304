"""Scale: the same backtest on every executor (this process, local processes, a Dask cluster), a worker
killed mid-run (its units run again, nothing is written twice), and many assets end to end."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from src.data.history import load_candles
from src.database.records import RecordStore
from src.models.offline.backtest import run_backtest
from src.models.offline.training import TrainSettings
from src.utils.errors import StopRequested
from src.utils.executors import DaskExecutor, LocalExecutor, UnitFailure, make_executor
from tests.shared_data import load_candles as shared_candles

START, END = pd.Timestamp("2022-12-01", tz="UTC"), pd.Timestamp("2022-12-15", tz="UTC")
KEY = ["timestamp", "target_pct", "model_name"]


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
    assert len(serial[0]) == 14 * 24 * 3 and len(serial[1]) == 14 * 24 * 4  # one row per model and hour

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


def test_a_stop_while_units_run_in_workers_ends_the_wait_and_the_units(dask_cluster):
    """A stop set while long units run (local processes or the cluster) ends the map within seconds, not when
    the units end, and the units do not run on: the local workers are killed, the cluster forgets its tasks."""
    units = [(time.sleep, 120)] * 4  # 240 s of work on two workers
    local, dask = LocalExecutor(2), DaskExecutor(dask_cluster.scheduler_address)
    try:
        for executor in (local, dask):
            stop = threading.Event()
            threading.Timer(2.0, stop.set).start()
            started = time.monotonic()
            with pytest.raises(StopRequested):
                list(executor.map(units, stop=stop))
            assert time.monotonic() - started < 60, executor.name
        deadline = time.monotonic() + 60
        while (_loky_workers() or any(dask.client.processing().values())) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _loky_workers() and not any(dask.client.processing().values())
    finally:
        local.close()
        dask.close()


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info
    return max(lib["num_threads"] for lib in threadpool_info())


def test_a_full_size_unit_gives_the_same_numbers_in_this_process_and_in_a_worker():
    """Three years of BTC, every model of both tasks: a unit run here (the serial path, the daemon's default
    on one core) uses one BLAS/OpenMP thread as a worker does, so its forecasts are equal to the last bit
    (with two BLAS threads the logistic fits differ in the 14th digit, and run 2-4x slower)."""
    from src.data.features import compute_features, with_barrier
    from src.models.estimators.dataset import build_dataset, build_time_dataset
    from src.models.estimators.units import forecast_unit
    frame = shared_candles("BTC_USDT", "2021-01-01", "2023-12-31 23:00")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    features = compute_features(frame)
    direction = build_dataset(frame, features, 0.02)
    samples = {"direction": direction, "resolution": build_time_dataset(direction, features, 0.02)}
    cut = pd.Timestamp("2023-10-01", tz="UTC")
    rows = features.loc[cut:cut + pd.Timedelta(hours=199)]
    results = {}
    for workers in (1, 2):
        with LocalExecutor(workers) as executor:
            shared = executor.share(samples)
            units = [(forecast_unit, shared, task, cut, with_barrier(rows, 0.02), 0.02, 168, 24)
                     for task in ("direction", "resolution")]
            results[workers] = list(executor.map([*units, (_blas_threads,)]))
    assert results[1][-1] == results[2][-1] == 1
    for here, there in zip(results[1][:-1], results[2][:-1]):
        assert here.keys() == there.keys()
        for name in here:
            assert np.array_equal(here[name], there[name]), name


def test_an_unreachable_dask_scheduler_is_a_clear_error():
    from src.utils.errors import UserError
    with pytest.raises(UserError, match="no Dask scheduler answers at tcp://127.0.0.1:9.*ml.executor: local"):
        make_executor("dask://127.0.0.1:9")
    with pytest.raises(UserError, match="neither 'local' nor"):
        make_executor("spark://x")


def _thirty_markets(server) -> list[str]:
    """30 markets on the loopback exchange: BTC, ETH and SOL, and 27 more made of their real candles from
    other months, prices scaled (so each market has its own history)."""
    import time as _time

    from tests.loopback_exchange import HOUR_MS, shifted_candles
    newest = int(_time.time() * 1000) // HOUR_MS * HOUR_MS
    symbols = []
    for i in range(30):
        source = ("BTC_USDT", "ETH_USDT", "SOL_USDT")[i % 3]
        end = pd.Timestamp("2023-12-31 23:00") - pd.Timedelta(days=30 * (i // 3))
        rows = shifted_candles(source, (end - pd.Timedelta(days=80)).isoformat(), end.isoformat(), newest)
        base = source.split("_")[0] if i < 3 else f"C{i:02d}"
        rows[:, 1:5] *= 1.0 if i < 3 else 1 + i / 10
        server.state.candles[f"{base}USDT"] = rows
        symbols.append(f"{base}/USDT")
    return symbols


@pytest.mark.host_tz
def test_thirty_assets_end_to_end(tmp_path, exchange):
    """The daemon on 30 markets: history, a model set per group, 30 x 3 forecasts in one hourly cycle, and a
    report that reaches the chat whole, in messages within Telegram's limit."""
    import yaml

    from tests.loopback_telegram import LoopbackBotApi
    from tests.test_daemon import ROOT, _first_hourly_cycle, _free_port
    token = "123456789:AAHthirtyAssetsTokenForTests-abcdefg"
    symbols = _thirty_markets(exchange)
    with LoopbackBotApi(token) as bot:
        port = _free_port()
        config = {"trading": {"assets": symbols, "lookback_days": 75},
                  "exchange": {"api_urls": {"public": exchange.api_url}, "timeout_ms": 5000},
                  "ml": {"min_samples_for_training": 300, "training_days": 75},
                  "telegram": {"bot_token": token, "chat_id": "777", "base_url": bot.base_url},
                  "health": {"port": port},
                  "paths": {"data_dir": str(tmp_path / "data"), "logs_dir": str(tmp_path / "logs")}}
        path = tmp_path / "thirty.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM", "DATABASE_URL", "CRYPTO_ML"))}
        output = (tmp_path / "daemon.out").open("w")  # a file, not a pipe: 30 assets log more than a pipe holds
        process = subprocess.Popen([sys.executable, "-m", "src.main", "--config", str(path)], cwd=ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
        try:
            _, report = _first_hourly_cycle(f"http://127.0.0.1:{port}", 1200)
            startup, hourly = report["jobs"]["startup"]["last_counts"], report["jobs"]["hourly"]["last_counts"]
            # a 5 % target in a calm stretch can lack both outcomes in a calibration piece: skipped, with its reason
            assert startup["groups_trained"] >= 80 and startup["groups_trained"] + startup["groups_skipped"] == 90
            assert hourly["predictions"] == 3 * startup["groups_trained"], report["jobs"]
            messages = "\n".join(m["fields"]["text"] for m in bot.sent("sendMessage"))
            assert len(bot.sent("sendMessage")) > 1 and all(len(m["fields"]["text"]) <= 4096
                                                             for m in bot.sent("sendMessage"))
            assert all(f"<b>{s}</b>" in messages for s in symbols), "every asset reaches the chat"
            assert messages.count("are all UP; a calibrated") + messages.count("are all DOWN; a calibrated") \
                == startup["groups_skipped"], "each group without a forecast is named with its reason"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            output.close()
    log_text = (tmp_path / "logs" / "crypto_ml.log").read_text()
    assert "job hourly ok" in log_text and "ValueError" not in log_text


def test_the_loaded_model_cache_is_bounded_while_fresh_fits_arrive_every_day(ops, tmp_path):
    """A fresh champion a day: the cache keeps the newest `cache_size` models, never more, and a model
    dropped from it loads again from its file."""
    from src.models.estimators.direction import ClimatologyModel
    from src.models.live.registry import ModelRegistry
    registry = ModelRegistry(RecordStore(ops.db), tmp_path / "models", cache_size=4)
    rows = []
    for day in range(10):
        end = pd.Timestamp("2023-01-01", tz="UTC") + pd.Timedelta(days=day)
        model = ClimatologyModel().fit(None, [day % 2, 1])
        version = registry.save(model, symbol="BTC/USDT", timeframe="1h", target=0.02, model_name="climatology",
                                train_start=end - pd.Timedelta(days=30), train_end=end, n_samples=2, metrics={})
        rows.append(registry.records.models("BTC/USDT", "1h", 0.02).set_index("version").loc[version].copy())
        rows[-1]["version"] = version
        registry.load(rows[-1])
        assert len(registry._cache) == min(day + 1, 4)
    assert list(registry._cache) == [r["version"] for r in rows[-4:]]
    assert registry.load(rows[0]).estimator.up_share_ == 0.5  # evicted, loaded again from its file
    assert len(registry._cache) == 4


def test_freed_memory_is_given_back_after_a_big_job():
    from src.utils.memory import release_free_memory
    process = psutil.Process()
    before = process.memory_info().rss
    junk = [bytearray(4096) for _ in range(50_000)]  # ~200 MB of small blocks, freed below
    survivors = [bytearray(16) for _ in range(1000)]  # above them on the heap, as a daemon's live objects are
    del junk
    assert release_free_memory() is True  # glibc here: malloc_trim is there
    assert process.memory_info().rss < before + 50 * 2**20  # without the trim: +198 MB (tried)
    assert len(survivors) == 1000


@pytest.mark.host_tz
def test_a_cluster_started_from_the_command_line_runs_the_units(tmp_path):
    """`dask scheduler` and `dask worker` as the README starts them (PYTHONPATH = the checkout), as separate
    processes: ml.executor reaches them and units run on the worker (scheduler and worker unpickle this
    project's code: without PYTHONPATH the scheduler refuses the graph, "No module named 'src'", tried)."""
    from tests.test_daemon import ROOT, _free_port
    port, dashboard = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    dask = str(Path(sys.executable).parent / "dask")
    logs = [(tmp_path / f"{name}.log").open("w") for name in ("scheduler", "worker")]
    started = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                 "--dashboard-address", f"127.0.0.1:{dashboard}"], env=env, cwd=tmp_path,
                                stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        started.append(subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "1",
                                         "--nthreads", "1", "--host", "127.0.0.1"], env=env, cwd=tmp_path,
                                        stdout=logs[1], stderr=subprocess.STDOUT))
        executor = make_executor(f"dask://127.0.0.1:{port}")
        try:
            executor.client.wait_for_workers(1, timeout=120)
            results = list(executor.map([(_fails_on_odd, 2), (_fails_on_odd, 3)]))
            assert results[0] == 20 and isinstance(results[1], UnitFailure)
            assert executor.dashboard.endswith(f":{dashboard}/status")
        finally:
            executor.close()
    finally:
        for process in started:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


def test_a_cluster_over_tls_is_reached_with_dasks_own_certificate_settings():
    """ml.executor: dask+tls://HOST:PORT speaks TLS, with the certificates Dask's configuration names
    (distributed.comm.tls.*); plain dask:// to that scheduler does not get in."""
    import dask
    distributed = pytest.importorskip("distributed")
    security = distributed.Security.temporary()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
                                  host="127.0.0.1", protocol="tls://", security=security) as cluster:
        address = cluster.scheduler_address.removeprefix("tls://")
        settings = {"distributed.comm.tls.ca-file": security.tls_ca_file,
                    "distributed.comm.tls.client.cert": security.tls_client_cert,
                    "distributed.comm.tls.client.key": security.tls_client_key,
                    "distributed.comm.timeouts.connect": "3s"}
        with dask.config.set(settings):
            executor = make_executor(f"dask+tls://{address}")
            try:
                assert list(executor.map([(_fails_on_odd, 2)])) == [20]
            finally:
                executor.close()
        from src.utils.errors import UserError
        with pytest.raises(UserError, match="no Dask scheduler answers"):
            make_executor(f"dask://{address}")
