"""Telegram command benchmark: the time to build each command's answer from the database (what the bot does between
receiving a command and sending its reply) with a year of hourly live forecasts stored for 3 assets x 3 targets
(three direction and three how-soon models an hour: about 240,000 champion and climatology forecasts, and their
outcomes), p50 and p95 over --repeat runs.

    python bench/commands.py
    python bench/commands.py --repeat 40

A throwaway embedded database is used; the shared candles (../shared/data) of the year are imported into it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.database.connection import DatabaseConnection  # noqa: E402
from src.database.operations import DatabaseOperations  # noqa: E402
from src.database.records import RecordStore  # noqa: E402
from src.monitoring.health import JobBoard, health_snapshot  # noqa: E402
from src.notifications.answers import Answers  # noqa: E402
from tests.long_record import fill_long_record  # noqa: E402

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
TARGETS = [0.01, 0.02, 0.05]
COMMANDS = ["/now", "/now btc", "/soon BTC", "/soon eth 2", "/record", "/record SOL", "/record 365", "/models",
            "/health", "/chart", "/chart ETH", "/help"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    now = pd.Timestamp.now(tz="UTC")
    end = now.floor("h") - pd.Timedelta(hours=1)
    with tempfile.TemporaryDirectory() as tmp:
        db = DatabaseConnection("embedded", Path(tmp))
        try:
            db.create_tables()
            began = time.perf_counter()
            fill_long_record(db.engine, SYMBOLS, TARGETS, end - pd.Timedelta(days=365), end)
            records, ops = RecordStore(db), DatabaseOperations(db)
            print(f"stored in {time.perf_counter() - began:.0f} s: {records.count('predictions'):,} predictions, "
                  f"{records.count('resolution_forecasts'):,} how-soon forecasts, "
                  f"{records.count('prediction_outcomes'):,} outcomes")
            answers = Answers(records, SYMBOLS, TARGETS, health=lambda: health_snapshot(
                ops, records, SYMBOLS, TARGETS, "1h", 2, "bench", JobBoard()))
            print(f"\n{'command':<14} {'p50 ms':>8} {'p95 ms':>8}  messages")
            for text in COMMANDS:
                words = text.split()
                times, answer = [], None
                for _ in range(args.repeat + 1):
                    started = time.perf_counter()
                    answer = answers.answer(words[0][1:], words[1:], pd.Timestamp.now(tz="UTC"))
                    times.append((time.perf_counter() - started) * 1000)
                times = times[1:]  # the first run warms connections and imports
                print(f"{text:<14} {np.percentile(times, 50):8.1f} {np.percentile(times, 95):8.1f}  "
                      f"{len(answer.messages)}{' + chart' if answer.photo else ''}")
        finally:
            db.dispose()


if __name__ == "__main__":
    main()
