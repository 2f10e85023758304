"""Retention: a year of what the daily jobs write, with the retention applied each day as the daily job applies
it, leaves every growing table and folder bounded by its setting; `maintain` says what it removed, by its own
clock; on TimescaleDB no background retention policy (it goes by the wall clock) is left on the feature cache."""
from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from src.database.records import RecordStore
from src.models.live.registry import ModelRegistry
from src.monitoring.retention import RetentionSettings, apply_retention
from tests.conftest import TIMESCALEDB_REQUIRED
from tests.year_of_writes import ASSETS, GROUPS, HEALTH_PER_DAY, REPORTS_PER_DAY, START, retrain, write_a_day


def test_a_year_of_daily_jobs_keeps_every_table_and_folder_bounded(db, tmp_path):
    records = RecordStore(db)
    registry = ModelRegistry(records, tmp_path / "models", keep_retired=7)
    settings, reports = RetentionSettings(), tmp_path / "reports"
    reports.mkdir()
    (reports / "notes.txt").write_text("not a chart: never touched")
    removed_total: dict[str, int] = {}
    for k in range(365):
        day = START + pd.Timedelta(days=k)
        with db.engine.begin() as conn:
            write_a_day(conn, day)
        retrain(registry, day)
        (reports / f"daily-{day - pd.Timedelta(days=1):%Y%m%d}.png").write_bytes(b"\x89PNG")
        for kind, count in apply_retention(records, registry, reports, settings, day).items():
            removed_total[kind] = removed_total.get(kind, 0) + count
    last = START + pd.Timedelta(days=364)
    features = records.count("feature_cache")
    assert 7 * 24 * len(ASSETS) <= features <= 9 * 24 * len(ASSETS)  # 7 days (one-day chunks: at most 2 more)
    with db.engine.connect() as conn:
        oldest = conn.execute(text("SELECT min(timestamp) FROM feature_cache")).scalar_one()
    assert pd.Timestamp(oldest) >= last.floor("D") - pd.Timedelta(days=9)
    # 90 days back from the last 00:15 to the minute, and that last day's rows (written whole here)
    assert records.count("system_health") == 90 * HEALTH_PER_DAY - 3 + HEALTH_PER_DAY
    assert 90 * REPORTS_PER_DAY <= records.count("telegram_reports") <= 91 * REPORTS_PER_DAY
    assert records.count("telegram_attempts") == records.count("telegram_reports")  # attempts go with their report
    charts = sorted(p.name for p in reports.glob("daily-*.png"))
    assert len(charts) == 30 and charts[-1] == f"daily-{last - pd.Timedelta(days=1):%Y%m%d}.png"
    assert (reports / "notes.txt").exists()
    rows = records.models(task="direction")
    assert len(rows) == len(GROUPS) * (1 + 7) and rows["is_champion"].sum() == len(GROUPS)
    assert {p.name for p in registry.models_dir.iterdir()} == set(rows["version"])  # files go with their rows
    assert removed_total["retired model rows"] == len(GROUPS) * (365 - 8)
    assert removed_total["daily charts"] == 365 - 30


@pytest.mark.host_tz
def test_maintain_says_what_it_removed_by_its_clock_and_leaves_no_wall_clock_policy(db, tmp_path, write_config,
                                                                                    run_cli):
    """The feature cache of January 2023 read in December 2026: a TimescaleDB retention policy (which earlier
    versions set) would empty it at a moment of its own; `maintain --at` removes only what is past its age then."""
    with db.engine.begin() as conn:
        for k in range(20):
            write_a_day(conn, START + pd.Timedelta(days=k))
        hypertable = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
        if hypertable:  # what an earlier version left: a policy with the setting's age (its first run not yet due:
            # run, it would have emptied the cache already, the very fault)
            conn.execute(text("SELECT add_retention_policy('feature_cache', drop_after => INTERVAL '5 days', "
                              "initial_start => now() + INTERVAL '1 day')"))
    config = write_config({"database": {"url": db.database_url}, "retention": {"feature_cache_days": 5},
                           "paths": {"data_dir": str(tmp_path / "data")}})
    result = run_cli("--config", str(config), "maintain", "--at", "2023-01-21T00:15")
    assert result.returncode == 0, result.stderr
    assert "feature cache 5 d" in result.stdout
    [line] = [x for x in result.stdout.splitlines() if x.endswith("feature_cache rows")]
    removed = int(line.split()[1].replace(",", ""))
    with db.engine.connect() as conn:
        left = conn.execute(text("SELECT count(*), min(timestamp) FROM feature_cache")).one()
        policy = conn.execute(text("""SELECT config->>'drop_after' FROM timescaledb_information.jobs
                                      WHERE proc_name = 'policy_retention' AND hypertable_name = 'feature_cache'"""
                                   )).scalar() if hypertable else None
    assert removed + left[0] == 20 * 24 * len(ASSETS) and pd.Timestamp(left[1]) >= pd.Timestamp("2023-01-15", tz="UTC")
    [line] = [x for x in result.stdout.splitlines() if x.endswith("system_health rows")]
    assert int(line.split()[1].replace(",", "")) == 0  # 20 days: within the 90
    assert hypertable or not TIMESCALEDB_REQUIRED
    assert policy is None  # removed: nothing goes by the wall clock
    bad = write_config({"retention": {"retired_champions": 2}}, "bad.yaml")
    refused = run_cli("--config", str(bad), "maintain")
    assert refused.returncode == 2 and "retention.retired_champions: 2 must be 7..3650" in refused.stderr
