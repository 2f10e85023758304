"""A long live record written in SQL: hourly forecasts of three direction and three how-soon models per asset x
target, outcomes for every window past its horizon (how soon: 1-40 h or expired, by the hour, alike for every
model), daily performance rows and monthly registry rows, as a daemon that ran from `start` to `end` would have
left them; `runs` ("live", "backtest") says under which run types. For the bounded-reads, command and web tests
and their benches."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, text

from src.database.connection import DatabaseConnection
from src.database.records import RecordStore

DIRECTION_MODELS = ("climatology", "logistic", "xgboost")  # the champion last
TIMING_MODELS = ("climatology", "recent_vol", "survival")


def fill_statements(symbols: list[str], targets: list[float], start: pd.Timestamp, end: pd.Timestamp,
                    horizon: int, runs: tuple[str, ...] = ("live",)) -> list[str]:
    groups = (f"unnest(ARRAY[{', '.join(repr(s) for s in symbols)}]) s, "
              f"unnest(ARRAY[{', '.join(str(t) for t in targets)}]::numeric[]) t")
    run_types = f"unnest(ARRAY[{', '.join(repr(r) for r in runs)}]) run"
    hours = f"generate_series('{start.isoformat()}'::timestamptz, '{end.isoformat()}'::timestamptz, '1 hour') h"
    pending_from = f"'{(end - pd.Timedelta(hours=horizon)).isoformat()}'::timestamptz"
    direction = ", ".join(f"'{m}'" for m in DIRECTION_MODELS)
    timing = ", ".join(f"'{m}'" for m in TIMING_MODELS)
    scored = ", ".join(f"'{m}'" for m in dict.fromkeys(DIRECTION_MODELS + TIMING_MODELS + ("champion",)))
    models = ", ".join([f"('direction', '{m}')" for m in DIRECTION_MODELS]
                       + [f"('resolution', '{m}')" for m in TIMING_MODELS])
    return [
        f"""INSERT INTO predictions (run_type, symbol, timeframe, target_pct, timestamp, model_name, model_version,
              feature_version, is_champion, prediction_class, probability, confidence, entry_price)
            SELECT run, s, '1h', t, h, m, m || '-' || to_char(h, 'YYYYMM'), 'f1', m = '{DIRECTION_MODELS[-1]}',
                   (p > 0.5)::int, p, abs(p - 0.5) * 2, 30000
            FROM (SELECT run, s, t, h, m, round(random()::numeric, 6) AS p
                  FROM {run_types}, {groups}, {hours}, unnest(ARRAY[{direction}]) m) r""",
        f"""INSERT INTO prediction_outcomes (prediction_id, status, actual_outcome, time_to_target_hours)
            SELECT id, CASE WHEN y THEN 'up' ELSE 'down' END, y::int, 12.5
            FROM (SELECT id, random() < 0.5 AS y FROM predictions WHERE timestamp < {pending_from}) o""",
        f"""INSERT INTO resolution_forecasts (run_type, symbol, timeframe, target_pct, timestamp, model_name,
              model_version, is_champion, p_6h, p_24h, p_horizon, q10_hours, q50_hours, q90_hours, status,
              hours_to_resolution)
            SELECT run, s, '1h', t, h, m, m || '-' || to_char(h, 'YYYYMM'), m = '{TIMING_MODELS[-1]}', 0.2,
                   round((0.3 + 0.4 * random())::numeric, 6), 0.9, 2, 20,
                   CASE WHEN k % 4 = 0 THEN {horizon} ELSE 120 END,  -- a quarter open ("after 2 h"), claiming 0.9
                   CASE WHEN h >= {pending_from} THEN NULL WHEN k > 40 THEN 'expired' ELSE 'up' END,
                   CASE WHEN h < {pending_from} AND k <= 40 THEN k END
            FROM {run_types}, {groups}, {hours}, unnest(ARRAY[{timing}]) m,
                 LATERAL (SELECT (extract(epoch FROM h)::bigint / 3600) % 47 + 1 AS k) o""",
        f"""INSERT INTO model_performance (run_type, symbol, timeframe, target_pct, model_name, task,
              evaluation_date, window_days, total_predictions, brier, brier_skill, brier_skill_6h, brier_skill_24h,
              brier_skill_horizon, interval_coverage, resolved_predictions, pending_predictions)
            SELECT 'live', s, '1h', t, m, task, d::date, w, 24 * w, 0.24, 0.01, 0.1, 0.2, 0.05, 0.8, 24 * w, 0
            FROM {groups}, generate_series('{start.date()}'::date, '{end.date()}'::date, '1 day') d,
                 unnest(ARRAY[1, 7, 30]) w, unnest(ARRAY['direction', 'resolution']) task,
                 unnest(ARRAY[{scored}]) m""",
        f"""INSERT INTO model_registry (symbol, timeframe, target_pct, model_name, task, version, feature_version,
              path, checksum, train_start, train_end, n_samples, metrics, library_versions, is_champion, promoted_at)
            SELECT s, '1h', t, m, task, task || '-' || m || '-' || replace(s, '/', '') || '-' || t || '-'
                   || to_char(d, 'YYYYMM'), 'f1', 'x', repeat('0', 64), d - interval '4 years', d, 30000, '{{}}',
                   '{{}}', d = date_trunc('month', '{end.isoformat()}'::timestamptz)
                   AND m = CASE task WHEN 'direction' THEN '{DIRECTION_MODELS[-1]}' ELSE '{TIMING_MODELS[-1]}' END, d
            FROM {groups}, generate_series(date_trunc('month', '{start.isoformat()}'::timestamptz),
                 '{end.isoformat()}'::timestamptz, '1 month') d, (VALUES {models}) AS k (task, m)""",
        "ANALYZE",  # as autovacuum would have by then
    ]


def fill_long_record(engine: Engine, symbols: list[str], targets: list[float], start: pd.Timestamp,
                     end: pd.Timestamp, horizon: int = 168, runs: tuple[str, ...] = ("live",)) -> None:
    with engine.begin() as conn:
        for statement in fill_statements(symbols, targets, start, end, horizon, runs)[:-1]:
            conn.execute(text(statement))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def open_long_record(folder: Path, symbols: list[str], targets: list[float], days: int, end: pd.Timestamp
                     ) -> DatabaseConnection:
    """The embedded database in `folder`, migrated, holding `days` of live and backtest record to `end` (written
    once: a kept folder is reused); for the web benches."""
    db = DatabaseConnection("embedded", folder)
    db.create_tables()
    if not RecordStore(db).count("predictions"):
        began = time.perf_counter()
        fill_long_record(db.engine, symbols, targets, end - pd.Timedelta(days=days), end, runs=("live", "backtest"))
        print(f"stored in {time.perf_counter() - began:.0f} s")
    return db
