"""Ingest benchmark: python bench/ingest.py  (a throwaway embedded database; prints figures).

save_ohlcv_data for 5 years of one symbol (43,800 hourly rows of real candles) cold and as a re-upsert,
import-csv of the shared files, check_data_gaps over 5 years, and a raw COPY of the same rows (the limit).
"""
from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.importer import import_csv  # noqa: E402
from src.database.connection import DatabaseConnection  # noqa: E402
from src.database.operations import DatabaseOperations  # noqa: E402
from tests.shared_data import SHARED_DATA, load_candles  # noqa: E402

HOUR_MS = 3_600_000
ROWS = 43_800


def five_years() -> list[list]:
    """43,800 consecutive hours of real BTC candles (the file tiled, values unchanged)."""
    real = load_candles("BTC_USDT").to_numpy(dtype=float)
    rows = np.concatenate([real, real])[:ROWS]
    rows[:, 0] = 1_500_000_000_000 // HOUR_MS * HOUR_MS + np.arange(ROWS) * HOUR_MS
    return rows.tolist()


def timed(func, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - start, result


def raw_copy(db: DatabaseConnection, rows: list[list]) -> float:
    """The same rows COPYed straight into ohlcv_data (fresh symbol, no validation, no conflict handling),
    buffer formatting included: the practical limit of any insert path into that table."""
    start = time.perf_counter()
    buffer = io.StringIO("".join(
        f"RAW/USDT\t1h\t{np.datetime64(int(r[0]), 'ms')}Z\t{r[1]!r}\t{r[2]!r}\t{r[3]!r}\t{r[4]!r}\t{r[5]!r}\n"
        for r in rows))
    with db.engine.begin() as conn:
        cur = conn.connection.driver_connection.cursor()
        cur.copy_expert("COPY ohlcv_data (symbol, timeframe, timestamp, open, high, low, close, volume) "
                        "FROM STDIN", buffer)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = DatabaseConnection("embedded", Path(tmp))
        db.create_tables()
        ops = DatabaseOperations(db)
        rows = five_years()
        cold, written = timed(ops.save_ohlcv_data, "BTC/USDT", "1h", rows)
        again, rewritten = timed(ops.save_ohlcv_data, "BTC/USDT", "1h", rows)
        copy_s = raw_copy(db, rows)
        end = ops.get_last_complete_timestamp("BTC/USDT")
        ops.check_data_gaps("BTC/USDT", "1h", ROWS, end=end)  # warm the cache once
        gap_times = [timed(ops.check_data_gaps, "BTC/USDT", "1h", ROWS, end)[0] for _ in range(5)]
        kind = "TimescaleDB" if db.has_timescaledb() else "plain PostgreSQL"
        print(f"database: embedded PostgreSQL 16, {kind}")
        print(f"save_ohlcv_data cold:      {ROWS / cold:>10,.0f} candles/s ({written} rows in {cold:.3f} s)")
        print(f"save_ohlcv_data re-upsert: {ROWS / again:>10,.0f} candles/s ({rewritten} rows changed, {again:.3f} s)")
        print(f"raw COPY (limit):          {ROWS / copy_s:>10,.0f} candles/s ({copy_s:.3f} s); "
              f"cold save is {cold / copy_s:.2f}x of it")
        for name in ("BTC_USDT", "ETH_USDT", "SOL_USDT"):
            seconds, (n, _) = timed(import_csv, ops, SHARED_DATA / f"{name}-1h.csv.gz", name.replace("_", "/"))
            print(f"import-csv {name}:      {n / seconds:>10,.0f} candles/s ({n} rows, {seconds:.3f} s)")
        print(f"check_data_gaps 5 years:   {np.median(gap_times) * 1000:>10.1f} ms (median of 5)")
        db.dispose()


if __name__ == "__main__":
    main()
