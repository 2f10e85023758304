"""Stored metrics: validation, backtest and live performance per asset x target x model and window."""
from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on, insert

from src.database.records.base import Records
from src.database.schema import model_performance


class PerformanceRecords(Records):
    def save_performance(self, rows: list[dict]) -> int:
        """Upsert metrics rows keyed by (run, symbol, timeframe, target, model, date, window)."""
        if not rows:
            return 0
        columns = list(dict.fromkeys(c for row in rows for c in row))  # a row without metrics leaves them NULL
        rows = [{c: row.get(c) for c in columns} for row in rows]
        stmt = insert(model_performance)
        key = ["run_type", "symbol", "timeframe", "target_pct", "model_name", "evaluation_date", "window_days"]
        stmt = stmt.on_conflict_do_update(constraint="uq_model_performance_key", set_={
            col: stmt.excluded[col] for col in columns if col not in key} | {"created_at": func.now()})
        # the rows as parameters of one statement (compiled once and cached, sent in batches): a VALUES list of
        # every row would be compiled anew each time, half a second for a day's 243 rows
        with self.db.engine.begin() as conn:
            conn.execute(stmt, rows)
        return len(rows)

    def days_with_pending(self, run_type: str, since: date) -> list[date]:
        """Evaluation dates (from `since`) whose stored metrics still counted pending predictions."""
        c = model_performance.c
        query = (select(c.evaluation_date).distinct()
                 .where(c.run_type == run_type, c.evaluation_date >= since, c.pending_predictions > 0)
                 .order_by(c.evaluation_date))
        with self.db.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def newest_performance(self, run_type: str, model_name: str, window_days: int, since: date,
                           symbol: str | None = None, target: float | None = None) -> pd.DataFrame:
        """Per task, symbol and target: the newest stored metrics row of `model_name` over `window_days`, evaluated
        from `since` (a bounded read: the days since then, through the run-date index)."""
        c = model_performance.c
        query = (select(model_performance)
                 .where(c.run_type == run_type, c.evaluation_date >= since, c.model_name == model_name,
                        c.window_days == window_days)
                 .ext(distinct_on(c.task, c.symbol, c.target_pct))
                 .order_by(c.task, c.symbol, c.target_pct, c.evaluation_date.desc()))
        if symbol is not None:
            query = query.where(c.symbol == symbol)
        if target is not None:
            query = query.where(c.target_pct == target)
        with self.db.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in model_performance.c])

    def performance(self, run_type: str, evaluation_date: date | None = None, task: str = "direction") -> pd.DataFrame:
        """Stored metrics of one run type and task ('direction' or 'resolution')."""
        query = select(model_performance).where(model_performance.c.run_type == run_type,
                                                model_performance.c.task == task)
        if evaluation_date:
            query = query.where(model_performance.c.evaluation_date == evaluation_date)
        with self.db.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in model_performance.c])
