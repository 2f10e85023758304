"""The exchange pipeline: real CCXT against the loopback Binance, real candles, the embedded PostgreSQL."""
import gzip
import re
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from src.data.fetcher import ExchangeDataFetcher, FetchError
from src.data.importer import import_csv
from src.data.recovery import DataRecoveryManager
from src.utils.config import Config
from src.utils.errors import UserError
from tests.loopback_exchange import HOUR_MS, Fault
from tests.shared_data import SHARED_DATA, load_candles


@pytest.fixture
def config(exchange, write_config, empty_db_url):
    path = write_config({"database": {"url": empty_db_url},
                         "exchange": {"api_urls": {"public": exchange.api_url}, "timeout_ms": 1000,
                                      "max_retries": 3, "retry_max_seconds": 20}})
    return Config(path)


@pytest.fixture
def fetcher(config, exchange, loaded_exchange):
    loaded_exchange(exchange, days=60)
    return ExchangeDataFetcher(config=config)


def _closed(exchange, market="BTCUSDT") -> np.ndarray:
    rows = exchange.state.candles[market]
    return rows[rows[:, 0] + HOUR_MS <= exchange.state.now_ms()]


def _stored(ops, symbol="BTC/USDT") -> np.ndarray:
    frame = ops.get_candles(symbol)
    frame["timestamp"] = frame["timestamp"].map(lambda t: int(t.timestamp() * 1000))
    return frame.to_numpy(dtype=float)


@pytest.mark.host_tz
def test_faults_are_survived_and_stored_candles_equal_served(fetcher, exchange, ops):
    exchange.state.faults.extend([Fault("429", seconds=1), Fault("500"), Fault("slow", seconds=2.5),
                                  Fault("short", rows=7), Fault("dup"), Fault("shuffle")])
    frame = fetcher.fetch_historical_data("BTC/USDT", days=60)
    assert not exchange.state.faults, "every injected fault was met"
    candles = [[int(t.timestamp() * 1000), *rest] for t, *rest in frame.itertuples(index=False)]
    assert ops.save_ohlcv_data("BTC/USDT", "1h", candles) == len(candles)
    served = _closed(exchange)
    served = served[served[:, 0] >= _stored(ops)[0, 0]]
    np.testing.assert_array_equal(_stored(ops), served)  # no missing, no extra, every value equal
    assert exchange.state.now_ms() - _stored(ops)[-1, 0] >= HOUR_MS  # the open candle was not kept


@pytest.mark.host_tz
def test_unknown_symbol_fails_at_once(fetcher, exchange):
    with pytest.raises(FetchError, match="no market 'DOGE/USDT'"):
        fetcher.fetch_ohlcv_batch("DOGE/USDT")
    assert "/api/v3/klines" not in exchange.state.requests


@pytest.mark.host_tz
def test_persistent_failure_is_bounded_and_clear(fetcher, exchange):
    exchange.state.faults.extend([Fault("500")] * 10)
    with pytest.raises(FetchError, match="keeps failing: fetch_ohlcv BTC/USDT 1h failed 4 times"):
        fetcher.fetch_ohlcv_batch("BTC/USDT", "1h", exchange.state.now_ms() - 10 * HOUR_MS)


@pytest.mark.host_tz
def test_invalid_rows_are_dropped_and_counted(fetcher, exchange):
    rows = exchange.state.candles["BTCUSDT"]
    rows[-5, 2] = rows[-5, 3] - 1  # high below low
    got = fetcher.fetch_range("BTC/USDT", "1h", int(rows[-10, 0]), int(rows[-1, 0]))
    assert fetcher.invalid_rows == 1
    assert int(rows[-5, 0]) not in [r[0] for r in got]


@pytest.mark.host_tz
def test_get_latest_candle_is_the_last_closed(fetcher, exchange):
    candle = fetcher.get_latest_candle("BTC/USDT")
    assert candle[0] == _closed(exchange)[-1, 0]


@pytest.mark.host_tz
def test_recover_restores_a_punched_hole_exactly(fetcher, exchange, ops, config):
    served = _closed(exchange)
    ops.save_ohlcv_data("BTC/USDT", "1h", served[-150:].tolist())  # 150 h clear of real exchange gaps
    before = _stored(ops)
    with ops.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM ohlcv_data WHERE timestamp BETWEEN to_timestamp(:a) AND to_timestamp(:b)"),
                     {"a": float(served[-120, 0]) / 1000, "b": float(served[-100, 0]) / 1000})
    gaps = ops.check_data_gaps("BTC/USDT", "1h", 150)
    assert len(gaps) == 1 and (gaps[0][1] - gaps[0][0]) == timedelta(hours=20)
    recovery = DataRecoveryManager(ops, fetcher)
    assert recovery.check_and_recover_all_symbols(["BTC/USDT"], 150) == {"BTC/USDT": 21}
    np.testing.assert_array_equal(_stored(ops), before)
    assert ops.check_data_gaps("BTC/USDT", "1h", 150) == []


@pytest.mark.host_tz
def test_gaps_at_both_edges_of_the_window(ops, exchange, loaded_exchange):
    loaded_exchange(exchange, days=20)
    served = _closed(exchange)
    ops.save_ohlcv_data("BTC/USDT", "1h", served[-50:-3].tolist())
    gaps = ops.check_data_gaps("BTC/USDT", "1h", 60)
    assert len(gaps) == 2
    assert gaps[0][1] == gaps[1][0] - timedelta(hours=48)  # first run ends where the stored block starts
    assert int(gaps[1][1].timestamp() * 1000) == served[-1, 0]  # the last run reaches the newest hour


@pytest.mark.host_tz
def test_unfillable_gap_is_recorded_and_not_asked_again_today(fetcher, exchange, ops):
    recovery = DataRecoveryManager(ops, fetcher)
    assert recovery.ensure_minimum_data_coverage("BTC/USDT", 60 * 24) is True
    known = ops.get_exchange_gaps("BTC/USDT")
    assert len(known) == 1  # Binance never published 2023-03-24 13:00 (shifted here)
    first, last = known.iloc[0]["gap_start"], known.iloc[0]["gap_end"]
    assert first == last
    served_times = set(_closed(exchange)[:, 0].astype(int))
    assert int(first.timestamp() * 1000) not in served_times
    klines_before = exchange.state.requests.count("/api/v3/klines")
    assert recovery.check_and_recover_all_symbols(["BTC/USDT"], 60 * 24) == {"BTC/USDT": 0}
    assert exchange.state.requests.count("/api/v3/klines") == klines_before


@pytest.mark.host_tz
def test_interrupted_backfill_resumes_without_refetching(fetcher, exchange, ops):
    recovery = DataRecoveryManager(ops, fetcher)
    exchange.state.faults.extend([Fault("short", rows=1000)] + [Fault("500")] * 10)  # dies on the 2nd page
    with pytest.raises(FetchError):
        recovery.ensure_minimum_data_coverage("BTC/USDT", 60 * 24)
    exchange.state.faults.clear()
    stored_after_crash = ops.get_candle_count("BTC/USDT")
    exchange.state.requests.clear()
    assert recovery.ensure_minimum_data_coverage("BTC/USDT", 60 * 24) is True
    # the window of the last 1440 closed hours (counted in the window: run across an hour boundary, the first
    # attempt may have stored an hour that has since left it): all but the hour the exchange never published
    newest = ops.get_last_complete_timestamp("BTC/USDT")
    assert len(ops.get_candles("BTC/USDT", "1h", start=newest - timedelta(hours=60 * 24 - 1))) == 60 * 24 - 1
    assert stored_after_crash in (0, 721)  # a 720 h chunk (+1 look-past candle) lands whole or not at all
    assert exchange.state.requests.count("/api/v3/klines") <= 2


@pytest.mark.host_tz
def test_backfill_cli_with_progress_and_status(run_cli, write_config, empty_db_url, exchange, loaded_exchange):
    loaded_exchange(exchange, days=30)
    path = write_config({"database": {"url": empty_db_url},
                         "exchange": {"api_urls": {"public": exchange.api_url}}})
    result = run_cli("backfill", "--days", "30", "--config", str(path))
    assert result.returncode == 0, result.stderr
    # 720 hours, less the one Binance never published (2023-03-24 13:00, shifted)
    assert "BTC/USDT: 719 candles stored\n" in result.stdout, result.stdout
    status = run_cli("status", "--config", str(path))
    assert re.search(r"BTC/USDT +719 from .* 1 gaps the exchange cannot fill", status.stdout), status.stdout
    gaps = run_cli("gaps", "--hours", "720", "--config", str(path))
    assert "BTC/USDT: 0 gaps to repair, 1 the exchange never published" in gaps.stdout
    # the 720 h before the first stored candle are history not fetched yet, not gaps to repair
    wide = run_cli("gaps", "--hours", "1440", "--config", str(path))
    assert "BTC/USDT: 0 gaps to repair" in wide.stdout and "history starts" in wide.stdout, wide.stdout


def test_import_csv_of_shared_file_is_exact_and_idempotent(ops):
    path = SHARED_DATA / "SOL_USDT-1h.csv.gz"
    rows, written = import_csv(ops, path, "SOL/USDT")
    assert rows == written == 29686
    assert import_csv(ops, path, "SOL/USDT") == (29686, 0)
    with ops.db.engine.connect() as conn:  # NUMERIC holds the published decimals exactly
        value = conn.execute(text("SELECT close::text FROM ohlcv_data WHERE symbol = 'SOL/USDT' "
                                  "ORDER BY timestamp LIMIT 1")).scalar()
    first_line = gzip.open(path, "rt").readlines()[1].strip().split(",")
    assert float(value) == float(first_line[4])


def test_candles_read_back_as_the_floats_of_the_published_decimals_one_query_for_many(ops):
    """Prices come back converted by the server (float8), equal to Python's float of every decimal in the
    file; the cycle's one-query reads equal the per-symbol reads, and a symbol without candles is empty."""
    path = SHARED_DATA / "SOL_USDT-1h.csv.gz"
    import_csv(ops, path, "SOL/USDT")
    published = pd.read_csv(path, dtype=str)
    stored = ops.get_candles("SOL/USDT")
    for column in ("open", "high", "low", "close", "volume"):
        assert stored[column].tolist() == [float(v) for v in published[column]]
    start, end = pd.Timestamp("2023-06-01", tz="UTC"), pd.Timestamp("2023-06-17 12:00", tz="UTC")
    windows = ops.get_candle_windows(["NONE/USDT", "SOL/USDT"], "1h", start, end)
    pd.testing.assert_frame_equal(windows["SOL/USDT"], ops.get_candles("SOL/USDT", "1h", start, end))
    assert len(windows["SOL/USDT"]) == 16 * 24 + 13 and windows["NONE/USDT"].empty
    assert list(windows["NONE/USDT"].columns) == list(stored.columns)
    assert ops.get_last_complete_timestamps(["SOL/USDT", "NONE/USDT"]) == {"SOL/USDT": stored["timestamp"].iloc[-1]}


def test_import_csv_refuses_bad_file_whole(ops, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,open,high,low,close,volume\n"
                    "1672531200000,100,101,99,100.5,3\n"
                    "1672534800000,100,99,98,100.5,3\n")
    with pytest.raises(UserError, match=r"bad.csv line 3: high is below open or close"):
        import_csv(ops, path, "BTC/USDT")
    assert ops.get_candle_count("BTC/USDT") == 0


@pytest.mark.host_tz
def test_import_csv_cli_bad_row_one_line(run_cli, write_config, empty_db_url, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,open,high,low,close,volume\n1672531200000,100,abc,99,100.5,3\n")
    cfg = write_config({"database": {"url": empty_db_url}})
    result = run_cli("import-csv", str(path), "--symbol", "BTC/USDT", "--config", str(cfg))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "line 2: a value is missing or not a finite number" in result.stderr


def test_fresh_range_insert_falls_back_to_upsert_on_a_concurrent_writer(ops):
    """The plain-INSERT fast path must not fail or duplicate when another writer stored rows in between."""
    from src.database import operations
    rows = load_candles("BTC_USDT", "2023-01-01", "2023-01-02 23:00").to_numpy().tolist()
    original = operations._OVERLAP_SQL
    operations._OVERLAP_SQL = "SELECT false"  # as if the overlap check ran before the other writer committed
    try:
        assert ops.save_ohlcv_data("BTC/USDT", "1h", rows[:10]) == 10
        changed = [r[:5] + [r[5] + 1.0] for r in rows]  # every volume corrected
        assert ops.save_ohlcv_data("BTC/USDT", "1h", changed) == len(rows)  # 10 updated + the rest new
    finally:
        operations._OVERLAP_SQL = original
    assert ops.get_candle_count("BTC/USDT") == len(rows)
