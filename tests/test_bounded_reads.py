"""Reads that cost the same on day 700 as on day 1: on a long live record, every statement behind /health,
/metrics and an hourly cycle's reads looks its rows up through an index (no full scan of a history table), the
snapshot is computed once per few seconds however often it is asked, storing outcomes is driven from the staged
rows whatever the planner's statistics say, and the hourly outcome check reads only the open windows (a full
check at start and daily)."""
from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from sqlalchemy import event

from src.database.connection import DatabaseConnection
from src.database.operations import DatabaseOperations
from src.database.records import RecordStore
from src.database.records.forecasts import OUTCOME_STAGE, OUTCOMES_INSERT, TIMING_OUTCOMES_UPDATE
from src.monitoring.app import create_app
from src.monitoring.health import JobBoard, health_snapshot, live_skills
from tests.conftest import build_template, copy_database, drop_database
from tests.long_record import fill_long_record

SYMBOL, TARGETS = "BTC/USDT", [0.01, 0.05]
START, END = pd.Timestamp("2022-01-01", tz="UTC"), pd.Timestamp("2023-01-31 23:00", tz="UTC")
NOW = END + pd.Timedelta(hours=1, minutes=2)
HISTORY_TABLES = {"predictions", "prediction_outcomes", "resolution_forecasts", "model_performance", "ohlcv_data"}


@pytest.fixture(scope="module")
def long_record_template(pg_admin_url, btc_year_template) -> str:
    """13 months of BTC candles and of hourly live forecasts for two targets (about 57,000 rows a table)."""
    return build_template(pg_admin_url, btc_year_template, "template_long_record",
                          lambda conn: fill_long_record(conn.engine, [SYMBOL], TARGETS, START, END))


@pytest.fixture
def long_record(pg_admin_url, long_record_template):
    conn = DatabaseConnection(copy_database(pg_admin_url, long_record_template))
    yield DatabaseOperations(conn), RecordStore(conn)
    conn.dispose()
    drop_database(pg_admin_url, conn.database_url)


def _statements(engine, work) -> list[tuple[str, dict]]:
    """The statements `work` sends, with their parameters."""
    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))
    event.listen(engine, "before_cursor_execute", capture)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen


def _plan_nodes(engine, statement: str, parameters) -> list[dict]:
    with engine.connect() as conn:
        cur = conn.connection.driver_connection.cursor()
        cur.execute("EXPLAIN (FORMAT JSON) " + statement, parameters or None)
        plan = cur.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes, todo = [], [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo += node.get("Plans", [])
    return nodes


def _full_scans(engine, work) -> list[str]:
    """'table: statement' for every full scan of a history table in the plans of what `work` sends."""
    found = []
    for statement, parameters in _statements(engine, work):
        if not statement.lstrip().upper().startswith("SELECT"):
            continue
        for node in _plan_nodes(engine, statement, parameters):
            if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in HISTORY_TABLES:
                found.append(f"{node['Relation Name']}: {' '.join(statement.split())[:300]}")
    return found


@pytest.mark.host_tz
def test_health_metrics_and_the_hourly_reads_use_indexes_on_a_long_record(long_record):
    ops, records = long_record
    assert records.count("predictions") > 55_000
    open_windows = NOW.floor("h") - pd.Timedelta(hours=168 + 24)
    reads = {
        "/health": lambda: health_snapshot(ops, records, [SYMBOL], TARGETS, "1h", 2, "test", JobBoard(), now=NOW),
        "/metrics": lambda: live_skills(records, NOW),
        "pending entries of the open windows": lambda: records.pending_entries("live", open_windows),
        "newest whole hour": records.newest_whole_hour,
        "the hour's champion forecasts": lambda: (records.recent_champions(2), records.recent_timings(1)),
        "an alert's record": lambda: records.newest_performance("live", "xgboost", 30, NOW.date(), SYMBOL, 0.01),
        "newest candles": lambda: ops.get_last_complete_timestamps([SYMBOL, "ETH/USDT"]),
    }
    for name, work in reads.items():
        assert _full_scans(ops.db.engine, work) == [], name

    report, _ = health_snapshot(ops, records, [SYMBOL], TARGETS, "1h", 2, "test", JobBoard(), now=NOW)
    assert report["data"][SYMBOL]["candles_last_7_days"] == 168
    assert report["data"][SYMBOL]["newest_candle"] == END.isoformat()
    assert {g: f["newest_forecast"] for g, f in report["forecasts"].items()} == {
        "BTC/USDT 0.01": END.isoformat(), "BTC/USDT 0.05": END.isoformat()}
    skills = live_skills(records, NOW)
    assert skills[(SYMBOL, "0.01", "direction")] == pytest.approx(0.01)
    assert skills[(SYMBOL, "0.05", "24h")] == pytest.approx(0.2)
    assert live_skills(records, NOW + pd.Timedelta(days=8)) == {}, "a week without the daily job: no current figure"
    pending = records.pending_entries("live", open_windows)
    assert len(pending) == 2 * 169 and pending["timestamp"].min() == END - pd.Timedelta(hours=168)


def test_outcomes_are_stored_from_the_staged_rows_whatever_the_statistics(long_record):
    """The planner's statistics say no forecast is pending (taken before this month's rows arrived), and it may
    only loop (as it chose to with such statistics, scanning the staged table once per forecast row): each
    statement still scans the staged outcomes once and finds each forecast through an index."""
    ops, records = long_record
    month = pd.date_range(END + pd.Timedelta(hours=1), periods=24 * 30, freq="h")
    with ops.db.engine.connect() as conn:  # rolled back at the end
        cur = conn.connection.driver_connection.cursor()
        cur.execute("UPDATE resolution_forecasts SET status = 'up', hours_to_resolution = 1 WHERE status IS NULL")
        cur.execute("ANALYZE resolution_forecasts")
        cur.execute("""INSERT INTO resolution_forecasts (run_type, symbol, timeframe, target_pct, timestamp,
                           model_name, model_version, p_6h, p_24h, p_horizon, q10_hours, q50_hours, q90_hours)
                       SELECT 'backtest', %s, '1h', 0.01, h, m, 'v', 0.2, 0.5, 0.9, 2, 20, 120
                       FROM unnest(%s::timestamptz[]) h, unnest(ARRAY['climatology', 'survival']) m""",
                    (SYMBOL, list(month)))
        cur.execute(OUTCOME_STAGE)
        cur.execute("""INSERT INTO outcome_stage (symbol, timeframe, target_pct, timestamp, status,
                           time_to_target_hours) SELECT %s, '1h', 0.01, h, 'up', 3 FROM unnest(%s::timestamptz[]) h""",
                    (SYMBOL, list(month)))
        cur.execute("ANALYZE outcome_stage")
        cur.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")  # whatever it would pick
        for statement in (OUTCOMES_INSERT, TIMING_OUTCOMES_UPDATE):
            cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, {"run_type": "backtest"})
            plan = cur.fetchone()[0]
            nodes, todo = [], [plan[0]["Plan"]]
            while todo:
                nodes.append(todo.pop())
                todo += nodes[-1].get("Plans", [])
            stage_scans = [n for n in nodes if n.get("Relation Name") == "outcome_stage"]
            assert [n["Actual Loops"] for n in stage_scans] == [1], (statement, stage_scans)
            assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in HISTORY_TABLES]
        cur.execute("SELECT count(*) FROM resolution_forecasts WHERE run_type = 'backtest' AND status = 'up'")
        assert cur.fetchone()[0] == 2 * len(month)  # EXPLAIN ANALYZE ran the update: every staged hour found


@pytest.mark.host_tz
def test_the_hourly_outcome_check_reads_the_open_windows_and_all_at_start_and_daily(long_record, write_config,
                                                                                   caplog):
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config
    ops, records = long_record
    old = END - pd.Timedelta(days=30)  # an entry kept open by a missing candle, long past its window
    with ops.db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM prediction_outcomes WHERE prediction_id IN (SELECT id FROM predictions "
                             "WHERE timestamp = %s AND target_pct = 0.01)", (old,))
    assert old in set(records.pending_entries("live")["timestamp"])
    assert old not in set(records.pending_entries("live", NOW - pd.Timedelta(days=8))["timestamp"])

    daemon = Daemon(Context(Config(write_config({"database": {"url": ops.db.database_url},
                                                 "trading": {"assets": [SYMBOL]}}))))
    caplog.set_level(logging.INFO, logger="src.models.live.outcomes")
    first_open = NOW.floor("h") + pd.Timedelta(hours=1) - pd.Timedelta(hours=168 + 24)
    open_windows = f"entries from {first_open:%Y-%m-%d %H:%M}"
    for hours_later, expected in ((0, "all entries"), (1, open_windows), (23, "entries from"), (24, "all entries"),
                                  (25, "entries from")):
        caplog.clear()
        daemon._resolve_outcomes(NOW + pd.Timedelta(hours=hours_later))
        assert expected in caplog.text, (hours_later, caplog.text)
    assert old not in set(records.pending_entries("live")["timestamp"]), "the full check resolved the old entry"


def test_health_and_metrics_share_one_snapshot_for_a_few_seconds():
    calls = {"snapshot": 0, "skills": 0}

    def snapshot():
        calls["snapshot"] += 1
        return {"status": "ok", "problems": [], "database": {"reachable": True}}, True

    def skills():
        calls["skills"] += 1
        return {}
    client = create_app(snapshot, skills).test_client()
    for path in ("/health", "/metrics", "/health", "/metrics"):
        assert client.get(path).status_code == 200
    assert calls == {"snapshot": 1, "skills": 1}
    uncached = create_app(snapshot, skills, cache_seconds=0).test_client()
    for path in ("/health", "/metrics"):
        uncached.get(path)
    assert calls == {"snapshot": 3, "skills": 2}
