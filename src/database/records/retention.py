"""Rows that only the newest days need, removed past their age: the feature cache, the health rows, the texts of
reports and bot answers, and retired champions beyond the newest few of each group, each as of the caller's clock.
On TimescaleDB the feature cache (a hypertable in one-day chunks) loses whole chunks past their age, by the same
clock: no TimescaleDB retention policy, whose background job goes by the wall clock and would empty a replay's or
a backtest's cache of past hours at a moment of its own."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, text

from src.database.migrations.timescale import is_hypertable
from src.database.records.base import Records
from src.database.schema import feature_cache, model_registry, system_health, telegram_reports


class RetentionRecords(Records):
    def remove_feature_cache(self, before: datetime) -> int:
        """Cached feature rows of hours before `before`; returns how many went. On a hypertable the chunks wholly
        older are dropped, and a retention policy an earlier version set is removed."""
        c = feature_cache.c
        with self.db.engine.begin() as conn:
            if not is_hypertable(conn, "feature_cache"):
                return conn.execute(delete(feature_cache).where(c.timestamp < before)).rowcount
            conn.execute(text("SELECT remove_retention_policy('feature_cache', if_exists => true)"))
            count = select(func.count()).select_from(feature_cache)
            held = conn.execute(count).scalar_one()
            conn.execute(text("SELECT drop_chunks('feature_cache', older_than => CAST(:before AS timestamptz))"),
                         {"before": before})
            return held - conn.execute(count).scalar_one()

    def remove_health_rows(self, before: datetime) -> int:
        with self.db.engine.begin() as conn:
            return conn.execute(delete(system_health).where(system_health.c.timestamp < before)).rowcount

    def remove_report_texts(self, before: datetime) -> int:
        """Reports and bot answers sent before `before`, with their attempts (ON DELETE CASCADE)."""
        with self.db.engine.begin() as conn:
            return conn.execute(delete(telegram_reports).where(telegram_reports.c.sent_at < before)).rowcount

    def vacuum(self, tables: list[str]) -> None:
        """Make the space of deleted rows reusable now (plain VACUUM: no lock that blocks reads or writes), so a
        table's files stop growing at its retention's size rather than when autovacuum next comes by."""
        known = {feature_cache.name, system_health.name, telegram_reports.name, "telegram_attempts",
                 model_registry.name}
        with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                if table in known:  # fixed names only: never text from elsewhere
                    conn.execute(text(f"VACUUM {table}"))

    def retired_beyond(self, keep: int) -> list[str]:
        """Versions of retired champions older than the newest `keep` of their asset x target x task."""
        c = model_registry.c
        ranked = select(c.version, func.row_number().over(
            partition_by=[c.symbol, c.timeframe, c.target_pct, c.task],
            order_by=[c.promoted_at.desc(), c.id.desc()]).label("rank")
        ).where(c.promoted_at.is_not(None), ~c.is_champion).subquery()
        with self.db.engine.connect() as conn:
            return list(conn.execute(select(ranked.c.version).where(ranked.c.rank > keep)).scalars())

