"""Web page benchmark: the time to answer each page and API request with two years of hourly forecasts stored for
3 assets x 3 targets, live and backtest (three direction and three how-soon models an hour: about 470,000 direction
and 470,000 how-soon forecasts per run, with outcomes), p50 and p95 over --repeat requests through the real HTTP
server (waitress) on 127.0.0.1.

    python bench/web.py
    python bench/web.py --repeat 40 --keep /tmp/webdb   # keep the database to look at the pages

The daily sums of the track record are refreshed once first (as the daemon's daily job and the backtest do);
`--cold` leaves them out, to measure /record summed from the forecasts alone.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask  # noqa: E402

from src.database.operations import DatabaseOperations  # noqa: E402
from src.database.records import RecordStore  # noqa: E402
from src.database.records.scores import RESCORED_DAYS, settled_through  # noqa: E402
from src.monitoring.app import HealthServer  # noqa: E402
from src.monitoring.health import JobBoard, health_snapshot  # noqa: E402
from src.web.pages import create_pages  # noqa: E402
from src.web.params import Site  # noqa: E402
from tests.long_record import open_long_record  # noqa: E402

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
TARGETS = [0.01, 0.02, 0.05]
PATHS = ["/", "/record", "/record?run=backtest", "/record?asset=btc&target=2", "/record?days=30",
         "/record?days=365&run=backtest", "/forecasts", "/forecasts?page=50", "/forecasts?status=up&page=50",
         "/forecasts?asset=eth&target=5&status=down&page=50", "/forecasts?status=expired",
         "/forecasts?model=logistic&start=2025-06-01&end=2025-06-30&page=7", "/forecasts?status=pending&page=10",
         "/api/forecasts?limit=1000", "/api/forecasts?asset=SOL&status=up&offset=5000&limit=1000", "/models"]


def _get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:
        size = len(answer.read())
    return (time.perf_counter() - started) * 1000, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--cold", action="store_true", help="no stored daily sums")
    parser.add_argument("--keep", type=Path, help="use (and keep) this folder for the database")
    args = parser.parse_args()
    end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    folder = args.keep or Path(tempfile.mkdtemp())
    db = open_long_record(folder, SYMBOLS, TARGETS, args.days, end)
    try:
        records, ops = RecordStore(db), DatabaseOperations(db)
        print(f"{records.count('predictions'):,} predictions, {records.count('resolution_forecasts'):,} how-soon "
              f"forecasts, {records.count('prediction_outcomes'):,} outcomes")
        if not args.cold:
            for run in ("live", "backtest"):
                began = time.perf_counter()
                rows = records.refresh_day_scores(run, settled_through(end, 168), 168, full=True)
                print(f"day_scores {run}: {rows:,} rows in {time.perf_counter() - began:.1f} s (full refresh)")
                began = time.perf_counter()
                rows = records.refresh_day_scores(run, settled_through(end, 168), 168)
                print(f"day_scores {run}: {rows:,} rows in {time.perf_counter() - began:.2f} s (the daily job's "
                      f"refresh: the last {RESCORED_DAYS} stored days again)")
        app = Flask("bench")
        app.register_blueprint(create_pages(records, Site(SYMBOLS, TARGETS), lambda: health_snapshot(
            ops, records, SYMBOLS, TARGETS, "1h", 2, "bench", JobBoard())))
        server = HealthServer(app, "127.0.0.1", 0)
        server.start()
        base = f"http://127.0.0.1:{server.port}"
        print(f"\n{'request':<62} {'p50 ms':>8} {'p95 ms':>8} {'KB':>7}")
        for path in PATHS:
            times, size = [], 0
            for _ in range(args.repeat + 1):
                took, size = _get(base + path)
                times.append(took)
            times = times[1:]  # the first warms connections and imports
            print(f"{path:<62} {np.percentile(times, 50):8.1f} {np.percentile(times, 95):8.1f} {size / 1024:7.0f}")
        took, size = _get(base + "/forecasts.csv?asset=btc&target=1")
        print(f"{'/forecasts.csv?asset=btc&target=1 (all rows, once)':<62} {took:8.0f} {'':>8} {size / 1024:7.0f}")
        server.stop()
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
