"""Health and hourly-cycle read benchmark: the cost of /health, /metrics and an hourly cycle's reads with two
years of hourly live forecasts stored for 3 assets x 3 targets (three direction and three how-soon models an
hour, about 470,000 rows in each table, every window past its horizon resolved, two years of daily performance
rows, a registry with monthly retrains).

    python bench/health.py              # the figures, median of --repeat runs each
    python bench/health.py --repeat 30

A throwaway embedded database is used; the shared candles (../shared/data) are imported into it first. The
figures are the work itself (the snapshot cache is bypassed) and then through HTTP as a scraper sees them.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data.history import unfillable_hours  # noqa: E402
from src.database.connection import DatabaseConnection  # noqa: E402
from src.database.operations import DatabaseOperations  # noqa: E402
from src.database.records import RecordStore  # noqa: E402
from src.models.live.outcomes import resolve_outcomes  # noqa: E402
from src.monitoring.app import SNAPSHOT_CACHE_SECONDS, HealthServer, create_app  # noqa: E402
from src.monitoring.health import JobBoard, health_snapshot, live_skills  # noqa: E402
from src.scheduler.daemon import OPEN_WINDOW_SLACK_HOURS  # noqa: E402
from tests.long_record import fill_long_record  # noqa: E402
from tests.shared_data import load_candles as shared_candles  # noqa: E402

SYMBOLS = {"BTC/USDT": "BTC_USDT", "ETH/USDT": "ETH_USDT", "SOL/USDT": "SOL_USDT"}
TARGETS = [0.01, 0.02, 0.05]
START, END = pd.Timestamp("2022-01-01", tz="UTC"), pd.Timestamp("2023-12-31 23:00", tz="UTC")
NOW = END + pd.Timedelta(hours=1, minutes=2)  # the hourly cycle after the last candle closed
HORIZON = 168
OPEN_WINDOWS = NOW.floor("h") - pd.Timedelta(hours=HORIZON + OPEN_WINDOW_SLACK_HOURS)


def fill(ops: DatabaseOperations) -> dict[str, int]:
    for symbol, name in SYMBOLS.items():
        ops.save_ohlcv_data(symbol, "1h", shared_candles(name, str(START.date()), str(END)))
    fill_long_record(ops.db.engine, list(SYMBOLS), TARGETS, START, END, HORIZON)
    with ops.db.engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() for table in
                ("ohlcv_data", "predictions", "prediction_outcomes", "resolution_forecasts", "model_performance",
                 "model_registry")}


def median_ms(work: Callable[[], object], repeat: int) -> float:
    work()  # warm: connections, plans
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def get(url: str) -> None:
    try:
        urllib.request.urlopen(url, timeout=30).read()
    except urllib.error.HTTPError as exc:  # 503 while unhealthy is an answer too
        exc.read()


def cycle_reads(ops: DatabaseOperations, records: RecordStore) -> dict[str, Callable[[], object]]:
    """The reads of an hourly cycle whose cost could grow with the stored history."""
    return {
        "pending entries of the open windows": lambda: records.pending_entries("live", OPEN_WINDOWS),
        "their candles, the exchange's gaps": lambda: [(ops.get_candles(s, "1h", OPEN_WINDOWS, END),
                                                        unfillable_hours(ops, s, "1h")) for s in SYMBOLS],
        "newest whole hour (catch-up)": records.newest_whole_hour,
        "champion forecasts of the hour (report, alerts)": lambda: (records.recent_champions(1),
                                                                   records.recent_champions(2),
                                                                   records.recent_timings(1)),
        "why groups have no forecast": records.group_problems,
        "unsent alerts": records.unsent_alerts,
        "an alert's 30-day record": lambda: records.newest_performance("live", "xgboost", 30,
                                                                       (NOW - pd.Timedelta(days=7)).date(),
                                                                       "BTC/USDT", 0.01),
        "current models": records.current_models,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = DatabaseConnection("embedded", Path(tmp))
        try:
            db.create_tables()
            measure(DatabaseOperations(db), RecordStore(db), args.repeat)
        finally:
            db.dispose()


def measure(ops: DatabaseOperations, records: RecordStore, repeat: int) -> None:
    began = time.perf_counter()
    counts = fill(ops)
    print(f"stored in {time.perf_counter() - began:.0f} s: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()))
    resolve_outcomes(ops, records, NOW, HORIZON)  # the first cycle resolves what the candles decide

    def snapshot():
        return health_snapshot(ops, records, list(SYMBOLS), TARGETS, "1h", 2, "bench", JobBoard(), now=NOW)

    print(f"\n{'work (no cache)':<52} {'median ms':>9}")
    print(f"{'/health snapshot':<52} {median_ms(snapshot, repeat):9.1f}")
    print(f"{'/metrics live skills':<52} {median_ms(lambda: live_skills(records, NOW), repeat):9.1f}")
    total = 0.0
    for name, work in cycle_reads(ops, records).items():
        ms = median_ms(work, repeat)
        total += ms
        print(f"{name:<52} {ms:9.1f}")
    print(f"{'hourly cycle reads, in all':<52} {total:9.1f}")
    resolve = median_ms(lambda: resolve_outcomes(ops, records, NOW, HORIZON, since=OPEN_WINDOWS), repeat)
    print(f"{'(outcome check in all: its reads + the label function)':<52} {resolve:9.1f}")

    for cache_seconds in (0.0, SNAPSHOT_CACHE_SECONDS):
        http(snapshot, lambda: live_skills(records, NOW), cache_seconds, repeat)


def http(snapshot: Callable, skills: Callable, cache_seconds: float, repeat: int) -> None:
    server = HealthServer(create_app(snapshot, skills, JobBoard(), cache_seconds), "127.0.0.1", 0)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        print(f"\n{f'over HTTP, snapshot kept {cache_seconds:g} s':<52} {'median ms':>9}")
        for path in ("/health", "/metrics"):
            print(f"{path:<52} {median_ms(lambda url=base + path: get(url), repeat):9.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
