"""A stored record for the web tests: 60 days of hourly forecasts for 3 assets x 3 targets, live and backtest, with a
stale asset and a group that was never trained (its fixtures, site_template and site_db, are in conftest.py)."""
from __future__ import annotations

import pandas as pd

from src.database.connection import DatabaseConnection
from src.database.records import RecordStore
from src.database.records.scores import settled_through
from src.utils.candles import last_closed_before
from src.web.params import Site
from tests.long_record import fill_long_record

ASSETS, TARGETS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"], [0.01, 0.02, 0.05]
SITE = Site(ASSETS, TARGETS)
DAYS = 60


def fill_site(conn: DatabaseConnection) -> None:
    """60 days to the last closed hour, live and backtest; ETH's newest 3 hours missing (stale); SOL 5 % never
    forecast (its training failed, with the reason recorded); live daily sums stored up to 20 days ago (the
    page sums the rest from the forecasts), backtest's all settled days."""
    end = last_closed_before(pd.Timestamp.now(tz="UTC"))
    fill_long_record(conn.engine, ASSETS, TARGETS, end - pd.Timedelta(days=DAYS), end, runs=("live", "backtest"))
    with conn.engine.begin() as c:
        for table in ("predictions", "resolution_forecasts"):
            c.exec_driver_sql(f"DELETE FROM {table} WHERE symbol = 'ETH/USDT' AND timestamp > %s",
                              (end - pd.Timedelta(hours=3),))
            c.exec_driver_sql(f"DELETE FROM {table} WHERE symbol = 'SOL/USDT' AND target_pct = 0.05")
        c.exec_driver_sql("DELETE FROM model_registry WHERE symbol = 'SOL/USDT' AND target_pct = 0.05")
    records = RecordStore(conn)
    records.record_group_problems("train", "1h", {("SOL/USDT", 0.05): "only 200 samples, 500 needed"}, [])
    records.refresh_day_scores("live", (end - pd.Timedelta(days=20)).date(), 168)
    records.refresh_day_scores("backtest", settled_through(end, 168), 168)
