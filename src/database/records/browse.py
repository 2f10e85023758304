"""Every forecast with its outcome, for people to browse (the web's /forecasts, its CSV and JSON): the direction
forecast of a model (or the one users got), its outcome, and the how-soon forecast users got for the same hour.
Filtered by bound parameters, newest first; a page is one index range, however long the record."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import and_, func, select

from src.database.records.base import Records
from src.database.schema import model_registry, prediction_outcomes, predictions, resolution_forecasts

CHAMPION = "champion"  # the model filter meaning "the forecast users got, whichever model made it"
STATUSES = ("up", "down", "expired", "pending")
BROWSE_COLUMNS = ["timestamp", "symbol", "target_pct", "model_name", "probability", "status", "time_to_target_hours",
                  "p_24h", "q10_hours", "q50_hours", "q90_hours", "time_model"]


@dataclass(frozen=True)
class ForecastFilter:
    run_type: str = "live"
    symbol: str | None = None
    target: float | None = None
    model: str = CHAMPION
    status: str | None = None  # one of STATUSES
    start: datetime | None = None  # entry hour >= start
    end: datetime | None = None  # entry hour < end


def _chosen(f: ForecastFilter):
    """The forecasts matching `f` (id, timestamp, symbol, target_pct), from indexes alone."""
    p, o = predictions.c, prediction_outcomes.c
    chosen = select(p.id, p.timestamp, p.symbol, p.target_pct).where(p.run_type == f.run_type)
    chosen = chosen.where(p.is_champion) if f.model == CHAMPION else chosen.where(p.model_name == f.model)
    if f.symbol is not None:
        chosen = chosen.where(p.symbol == f.symbol)
    if f.target is not None:
        chosen = chosen.where(p.target_pct == f.target)
    if f.status == "pending":  # probed newest first (OFFSET 0: not joined with every outcome ever stored)
        chosen = chosen.where(~select(o.prediction_id).where(o.prediction_id == p.id).offset(0).exists())
    elif f.status is not None:
        chosen = chosen.where(select(o.prediction_id).where(o.prediction_id == p.id, o.status == f.status).exists())
    if f.start is not None:
        chosen = chosen.where(p.timestamp >= f.start)
    if f.end is not None:
        chosen = chosen.where(p.timestamp < f.end)
    return chosen


def _browse_query(f: ForecastFilter, limit: int | None = None, offset: int = 0):
    """A page is chosen (filtered, ordered, cut) from indexes alone: the forecasts users got by time or by group,
    each one's outcome status; only the page's rows are then read, with their outcome and how-soon forecast."""
    p, o, r = predictions.c, prediction_outcomes.c, resolution_forecasts.c
    page = (_chosen(f).order_by(p.timestamp.desc(), p.symbol, p.target_pct).limit(limit).offset(offset or None)
            .subquery())
    row = predictions.alias("row")
    timing = and_(r.run_type == row.c.run_type, r.symbol == row.c.symbol, r.timeframe == row.c.timeframe,
                  r.timestamp == row.c.timestamp, r.target_pct == row.c.target_pct, r.is_champion)
    return (select(row.c.timestamp, row.c.symbol, row.c.target_pct, row.c.model_name, row.c.probability,
                   o.status, o.time_to_target_hours, r.p_24h, r.q10_hours, r.q50_hours, r.q90_hours,
                   r.model_name.label("time_model"))
            .select_from(page.join(row, row.c.id == page.c.id)
                         .outerjoin(prediction_outcomes, o.prediction_id == row.c.id)
                         .outerjoin(resolution_forecasts, timing))
            .order_by(page.c.timestamp.desc(), page.c.symbol, page.c.target_pct))


def _frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=BROWSE_COLUMNS)
    for column in ("target_pct", "probability", "time_to_target_hours", "p_24h", "q10_hours", "q50_hours",
                   "q90_hours"):
        frame[column] = frame[column].astype(float)
    return frame


class BrowseRecords(Records):
    def model_names(self, task: str = "direction") -> list[str]:
        """The models the registry has known for `task` (what the model filter may name besides CHAMPION)."""
        with self.db.engine.connect() as conn:
            return sorted(conn.execute(select(model_registry.c.model_name).distinct()
                                       .where(model_registry.c.task == task)).scalars())

    def browse(self, f: ForecastFilter, limit: int, offset: int = 0) -> pd.DataFrame:
        """At most `limit` forecasts matching `f` from the `offset`-th, newest first (BROWSE_COLUMNS)."""
        with self.db.engine.connect() as conn:
            return _frame(conn.execute(_browse_query(f, limit, offset)).all())

    def count_matching(self, f: ForecastFilter, at_most: int) -> int:
        """How many forecasts match `f`, counted up to `at_most` (a bounded cost, whatever the filter)."""
        with self.db.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(_chosen(f).limit(at_most).subquery())).scalar_one()

    def browse_all(self, f: ForecastFilter, batch: int = 5000) -> Iterator[pd.DataFrame]:
        """Every forecast matching `f`, newest first, in frames of `batch` rows, streamed from a server-side
        cursor (memory stays flat however many match)."""
        with self.db.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(_browse_query(f))
            for rows in result.partitions():
                yield _frame(rows)
