"""Retention benchmark: a year of what the daemon writes each day to the tables and folders that grow (cached
features for 3 assets, a health row every 5 minutes, 30 report texts with their attempts, a fresh champion in 2
groups, a daily chart), with the retention applied each day as the daily job applies it, beside the same year
without it. Prints the rows and on-disk sizes at the end of each.

    python bench/retention.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.database.connection import DatabaseConnection  # noqa: E402
from src.database.records import RecordStore  # noqa: E402
from src.models.live.registry import ModelRegistry  # noqa: E402
from src.monitoring.retention import RetentionSettings, apply_retention  # noqa: E402
from tests.year_of_writes import START, retrain, table_sizes, write_a_day  # noqa: E402

TABLES = ("feature_cache", "system_health", "telegram_reports", "telegram_attempts", "model_registry")


def _year(folder: Path, retention: bool) -> tuple[dict[str, int], dict[str, int], int, int, float]:
    db = DatabaseConnection("embedded", folder)
    try:
        db.create_tables()
        records = RecordStore(db)
        registry = ModelRegistry(records, folder / "models")
        charts = folder / "reports"
        charts.mkdir(exist_ok=True)
        began = time.perf_counter()
        for k in range(365):
            day = START + pd.Timedelta(days=k)
            with db.engine.begin() as conn:
                write_a_day(conn, day)
            retrain(registry, day)
            (charts / f"daily-{day:%Y%m%d}.png").write_bytes(b"\\x89PNG" + b"0" * 60_000)  # a chart's size
            if retention:
                apply_retention(records, registry, charts, RetentionSettings(), day)
        took = time.perf_counter() - began
        rows = {t: records.count(t) for t in TABLES}
        files = len(list(charts.glob("daily-*.png"))), len(list((folder / "models").iterdir()))
        return rows, table_sizes(records), *files, took
    finally:
        db.dispose()


def main() -> None:
    print(f"{'':<22}{'without retention':>30}{'with retention':>30}")
    results = {}
    for retention in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            results[retention] = _year(Path(folder), retention)
    for table in TABLES:
        cells = [f"{results[r][0][table]:>12,} rows {results[r][1][table] / 2**20:8.1f} MB" for r in (False, True)]
        print(f"{table:<22}{cells[0]:>30}{cells[1]:>30}")
    for label, index in (("daily charts", 2), ("model folders", 3)):
        print(f"{label:<22}{results[False][index]:>30,}{results[True][index]:>30,}")
    print(f"{'a year of days took':<22}{results[False][4]:>28.0f} s{results[True][4]:>28.0f} s")


if __name__ == "__main__":
    main()
