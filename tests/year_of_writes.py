"""What a day of the daemon writes to the tables and folders that grow, made fast for the retention test and its
benchmark (bench/retention.py)."""
from __future__ import annotations

import pandas as pd
from sklearn.dummy import DummyClassifier
from sqlalchemy import text

from src.database.migrations.timescale import is_hypertable
from src.models.live.registry import ModelRegistry

START = pd.Timestamp("2023-01-01 00:15", tz="UTC")
ASSETS, GROUPS = ("BTC/USDT", "ETH/USDT", "SOL/USDT"), (("BTC/USDT", 0.02), ("ETH/USDT", 0.05))
HEALTH_PER_DAY, REPORTS_PER_DAY = 288, 30


def write_a_day(conn, day: pd.Timestamp) -> None:
    """What a day of the daemon writes to the growing tables: 24 hours of cached features per asset, a health row
    every 5 minutes, 30 reports and answers with one attempt each."""
    hours = {"start": day.floor("D"), "end": day.floor("D") + pd.Timedelta(hours=23)}
    for asset in ASSETS:
        conn.execute(text("""INSERT INTO feature_cache (symbol, timeframe, timestamp, feature_version, feature_set)
                             SELECT :asset, '1h', t, 'v1', '{"ret_1": 0.001}'::jsonb
                             FROM generate_series(CAST(:start AS timestamptz), CAST(:end AS timestamptz),
                                                  interval '1 hour') t"""), {"asset": asset, **hours})
    conn.execute(text("""INSERT INTO system_health (timestamp, cpu_percent) SELECT t, 1.0 FROM generate_series(
                         CAST(:start AS timestamptz), CAST(:start AS timestamptz) + interval '1435 minutes',
                         interval '5 minutes') t"""), hours)
    ids = conn.execute(text("""INSERT INTO telegram_reports (report_type, content, sent_at, success)
                               SELECT 'hourly', repeat('x', 500), CAST(:start AS timestamptz) + k * interval '40 min',
                                      true FROM generate_series(0, :n - 1) k RETURNING id"""),
                       {**hours, "n": REPORTS_PER_DAY}).scalars().all()
    conn.execute(text("""INSERT INTO telegram_attempts (report_id, attempt, method, status)
                         SELECT unnest(CAST(:ids AS bigint[])), 1, 'sendMessage', 'ok'"""), {"ids": list(ids)})


def retrain(registry: ModelRegistry, day: pd.Timestamp) -> None:
    """A daily retrain that deploys a fresh champion in each group (the old one is retired)."""
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    for symbol, target in GROUPS:
        version = registry.save(model, symbol=symbol, timeframe="1h", target=target, model_name="logistic",
                                train_start=day - pd.Timedelta(days=365), train_end=day, n_samples=100, metrics={})
        registry.records.promote(version)


def table_sizes(records) -> dict[str, int]:
    """Bytes on disk per growing table, indexes included (a hypertable's chunks too)."""
    tables = ("feature_cache", "system_health", "telegram_reports", "telegram_attempts", "model_registry")
    with records.db.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT hypertable_size('{t}')" if is_hypertable(conn, t)  # noqa: S608
                                     else f"SELECT pg_total_relation_size('{t}')")).scalar_one() for t in tables}


