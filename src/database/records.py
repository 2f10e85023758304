"""The record of the product's work: model registry rows, predictions, their outcomes, and performance.

Bulk writes go through COPY into a temporary table and one INSERT ... ON CONFLICT, so a repeated or
concurrent run writes nothing twice and a batch lands whole or not at all.
"""
from __future__ import annotations

import io
from datetime import date, datetime

import pandas as pd
from sqlalchemy import and_, delete, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import distinct_on, insert

from src.database.connection import DatabaseConnection
from src.database.schema import (
    alerts,
    feature_cache,
    group_status,
    model_performance,
    model_registry,
    prediction_outcomes,
    predictions,
    resolution_forecasts,
    telegram_attempts,
    telegram_reports,
)

PREDICTION_COLUMNS = ["run_type", "symbol", "timeframe", "target_pct", "timestamp", "model_name", "model_version",
                      "feature_version", "is_champion", "prediction_class", "probability", "confidence",
                      "entry_price"]
RESOLUTION_COLUMNS = ["run_type", "symbol", "timeframe", "target_pct", "timestamp", "model_name", "model_version",
                      "is_champion", "p_6h", "p_24h", "p_horizon", "q10_hours", "q50_hours", "q90_hours"]
OUTCOME_COLUMNS = ["symbol", "timeframe", "target_pct", "timestamp", "status", "actual_outcome",
                   "target_hit_timestamp", "time_to_target_hours", "max_favorable_move", "max_adverse_move"]


def _copy_text(frame: pd.DataFrame) -> io.StringIO:
    return io.StringIO(frame.to_csv(sep="\t", header=False, index=False, na_rep="\\N",
                                    date_format="%Y-%m-%d %H:%M:%S%z"))


def _registry_frame(rows) -> pd.DataFrame:
    """model_registry rows as a frame: targets as floats, times as UTC timestamps."""
    frame = pd.DataFrame(rows, columns=[col.name for col in model_registry.c])
    frame["target_pct"] = frame["target_pct"].astype(float)
    for column in ("train_start", "train_end", "promoted_at", "retired_at", "created_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


class RecordStore:
    def __init__(self, db: DatabaseConnection):
        self.db = db

    # ---- model registry -----------------------------------------------------------------------
    def add_model(self, row: dict) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(insert(model_registry).values(**row))

    def models(self, symbol: str | None = None, timeframe: str = "1h", target: float | None = None,
               champions_only: bool = False, task: str = "direction") -> pd.DataFrame:
        """Registry rows of one task: 'direction' (P(UP)) or 'resolution' (how soon)."""
        c = model_registry.c
        query = select(model_registry).where(c.timeframe == timeframe, c.task == task)
        if symbol:
            query = query.where(c.symbol == symbol)
        if target is not None:
            query = query.where(c.target_pct == target)
        if champions_only:
            query = query.where(c.is_champion)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(c.created_at, c.id)).mappings().all()
        return _registry_frame(rows)

    def current_models(self, timeframe: str = "1h") -> pd.DataFrame:
        """Of every asset x target x task: the newest row of each model name, and the champion row (one
        query for a whole cycle, however long the champion history has grown)."""
        c = model_registry.c
        newest = (select(model_registry).where(c.timeframe == timeframe)
                  .ext(distinct_on(c.symbol, c.target_pct, c.task, c.model_name))
                  .order_by(c.symbol, c.target_pct, c.task, c.model_name, c.created_at.desc(), c.id.desc()))
        champions = select(model_registry).where(c.timeframe == timeframe, c.is_champion)
        with self.db.engine.connect() as conn:
            rows = [*conn.execute(newest).mappings().all(), *conn.execute(champions).mappings().all()]
        return _registry_frame(rows)

    def delete_models(self, versions: list[str]) -> None:
        if versions:
            with self.db.engine.begin() as conn:
                conn.execute(delete(model_registry).where(model_registry.c.version.in_(versions)))

    def promote(self, version: str) -> None:
        """Make `version` the champion of its asset x target; the previous one is retired, kept in history."""
        c = model_registry.c
        with self.db.engine.begin() as conn:
            row = conn.execute(select(c.symbol, c.timeframe, c.target_pct, c.task).where(c.version == version)).one()
            conn.execute(update(model_registry).where(
                c.symbol == row.symbol, c.timeframe == row.timeframe, c.target_pct == row.target_pct,
                c.task == row.task, c.is_champion).values(is_champion=False, retired_at=func.now()))
            conn.execute(update(model_registry).where(c.version == version).values(
                is_champion=True, promoted_at=func.now(), retired_at=None))

    # ---- predictions and outcomes -------------------------------------------------------------
    def save_predictions(self, frame: pd.DataFrame) -> int:
        """Insert predictions; an existing (run, symbol, timeframe, time, target, model) is left alone."""
        return self._insert_new(frame, predictions.name, PREDICTION_COLUMNS,
                                "uq_predictions_run_symbol_tf_time_target_model")

    def save_resolution_forecasts(self, frame: pd.DataFrame) -> int:
        """Insert how-soon forecasts; an existing (run, symbol, timeframe, time, target, model) is left alone."""
        return self._insert_new(frame, resolution_forecasts.name, RESOLUTION_COLUMNS, "uq_resolution_forecasts_key")

    def _insert_new(self, frame: pd.DataFrame, table: str, columns: list[str], key: str) -> int:
        """COPY into a staging table, then one INSERT ... ON CONFLICT DO NOTHING: all or nothing, never twice."""
        if frame.empty:
            return 0
        with self.db.engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            cols = ", ".join(columns)
            cur.execute(f"CREATE TEMP TABLE {table}_stage ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA")
            cur.copy_expert(f"COPY {table}_stage ({cols}) FROM STDIN", _copy_text(frame[columns]))
            cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {table}_stage "
                        f"ON CONFLICT ON CONSTRAINT {key} DO NOTHING")
            return cur.rowcount

    def delete_predictions(self, run_type: str, start: datetime, end: datetime,
                           symbols: list[str] | None = None) -> int:
        c = predictions.c
        condition = and_(c.run_type == run_type, c.timestamp >= start, c.timestamp < end)
        if symbols:
            condition = and_(condition, c.symbol.in_(symbols))
        r = resolution_forecasts.c
        time_condition = and_(r.run_type == run_type, r.timestamp >= start, r.timestamp < end)
        if symbols:
            time_condition = and_(time_condition, r.symbol.in_(symbols))
        with self.db.engine.begin() as conn:
            conn.execute(delete(resolution_forecasts).where(time_condition))
            return conn.execute(delete(predictions).where(condition)).rowcount

    def pending_entries(self, run_type: str = "live") -> pd.DataFrame:
        """(symbol, timeframe, target, timestamp) of predictions and how-soon forecasts with no outcome yet."""
        p, o, r = predictions.c, prediction_outcomes.c, resolution_forecasts.c
        direction = (select(p.symbol, p.timeframe, p.target_pct, p.timestamp)
                     .select_from(predictions.outerjoin(prediction_outcomes, o.prediction_id == p.id))
                     .where(p.run_type == run_type, o.id.is_(None)))
        timing = (select(r.symbol, r.timeframe, r.target_pct, r.timestamp)
                  .where(r.run_type == run_type, r.status.is_(None)))
        query = direction.union(timing)
        with self.db.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=["symbol", "timeframe", "target_pct", "timestamp"])
        frame["target_pct"] = frame["target_pct"].astype(float)
        return frame

    def save_outcomes(self, frame: pd.DataFrame, run_type: str) -> int:
        """Attach outcomes (one row per symbol x timeframe x target x entry time) to every matching
        prediction of `run_type` that has none yet. Returns outcome rows written."""
        if frame.empty:
            return 0
        with self.db.engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            cur.execute("""CREATE TEMP TABLE outcome_stage (symbol text, timeframe text, target_pct numeric,
                timestamp timestamptz, status text, actual_outcome int, target_hit_timestamp timestamptz,
                time_to_target_hours numeric, max_favorable_move numeric, max_adverse_move numeric)
                ON COMMIT DROP""")
            cur.copy_expert("COPY outcome_stage FROM STDIN", _copy_text(frame[OUTCOME_COLUMNS]))
            cur.execute("""
                INSERT INTO prediction_outcomes (prediction_id, status, actual_outcome, target_hit_timestamp,
                    time_to_target_hours, max_favorable_move, max_adverse_move)
                SELECT p.id, s.status, s.actual_outcome, s.target_hit_timestamp, round(s.time_to_target_hours, 2),
                       round(s.max_favorable_move, 6), round(s.max_adverse_move, 6)
                FROM outcome_stage s JOIN predictions p
                  ON p.symbol = s.symbol AND p.timeframe = s.timeframe AND p.target_pct = s.target_pct
                 AND p.timestamp = s.timestamp AND p.run_type = %(run_type)s
                ON CONFLICT (prediction_id) DO NOTHING""", {"run_type": run_type})
            written = cur.rowcount
            cur.execute("""
                UPDATE resolution_forecasts r SET status = s.status,
                       hours_to_resolution = round(s.time_to_target_hours, 2)
                FROM outcome_stage s
                WHERE r.symbol = s.symbol AND r.timeframe = s.timeframe AND r.target_pct = s.target_pct
                  AND r.timestamp = s.timestamp AND r.run_type = %(run_type)s AND r.status IS NULL""",
                        {"run_type": run_type})
            return written

    def resolved(self, run_type: str, start: datetime | None = None, end: datetime | None = None,
                 include_pending: bool = False) -> pd.DataFrame:
        """Predictions joined with their outcomes (entry time in [start, end)); with `include_pending`, also
        the predictions without an outcome yet (status NaN)."""
        p, o = predictions.c, prediction_outcomes.c
        joined = predictions.join(prediction_outcomes, o.prediction_id == p.id, isouter=include_pending)
        query = (select(p.symbol, p.timeframe, p.target_pct, p.timestamp, p.model_name, p.is_champion,
                        p.probability, o.status, o.actual_outcome, o.time_to_target_hours)
                 .select_from(joined).where(p.run_type == run_type))
        if start is not None:
            query = query.where(p.timestamp >= start)
        if end is not None:
            query = query.where(p.timestamp < end)
        with self.db.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=[
                "symbol", "timeframe", "target_pct", "timestamp", "model_name", "is_champion", "probability",
                "status", "actual_outcome", "time_to_target_hours"])
        for column in ("target_pct", "probability", "time_to_target_hours"):
            frame[column] = frame[column].astype(float)
        return frame

    def resolved_time(self, run_type: str, start: datetime | None = None, end: datetime | None = None,
                      include_pending: bool = False) -> pd.DataFrame:
        """How-soon forecasts with their outcomes (status NaN while pending, unless left out)."""
        r = resolution_forecasts.c
        columns = ["symbol", "timeframe", "target_pct", "timestamp", "model_name", "is_champion", "p_6h", "p_24h",
                   "p_horizon", "q10_hours", "q50_hours", "q90_hours", "status", "hours_to_resolution"]
        query = select(*(r[c] for c in columns)).where(r.run_type == run_type)
        if not include_pending:
            query = query.where(r.status.is_not(None))
        if start is not None:
            query = query.where(r.timestamp >= start)
        if end is not None:
            query = query.where(r.timestamp < end)
        with self.db.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=columns)
        for column in ("target_pct", "p_6h", "p_24h", "p_horizon", "q10_hours", "q50_hours", "q90_hours",
                       "hours_to_resolution"):
            frame[column] = frame[column].astype(float)
        return frame

    def backtest_champion_skill(self) -> dict[float, float]:
        """Per target, the stored backtest's Brier skill of model 'champion' against climatology (all assets)."""
        query = text("""
            SELECT p.target_pct, p.model_name, sum((p.probability - o.actual_outcome) ^ 2) AS loss
            FROM predictions p JOIN prediction_outcomes o ON o.prediction_id = p.id
            WHERE p.run_type = 'backtest' AND p.model_name IN ('champion', 'climatology')
              AND o.status IN ('up', 'down')
            GROUP BY p.target_pct, p.model_name""")
        with self.db.engine.connect() as conn:
            losses = {(float(t), m): float(v) for t, m, v in conn.execute(query).all()}
        return {t: 1 - loss / losses[(t, "climatology")] for (t, m), loss in losses.items()
                if m == "champion" and losses.get((t, "climatology"))}

    def recent_champions(self, hours: int = 2, run_type: str = "live") -> pd.DataFrame:
        """Champion predictions of the newest `hours` prediction hours (per asset), newest first."""
        p = predictions.c
        newest = select(func.max(p.timestamp)).where(p.run_type == run_type).scalar_subquery()
        query = (select(p.symbol, p.timeframe, p.target_pct, p.timestamp, p.model_name, p.model_version,
                        p.probability, p.confidence, p.entry_price)
                 .where(p.run_type == run_type, p.is_champion,
                        p.timestamp > newest - func.make_interval(0, 0, 0, 0, hours))
                 .order_by(p.timestamp.desc(), p.symbol, p.target_pct))
        with self.db.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=[
                "symbol", "timeframe", "target_pct", "timestamp", "model_name", "model_version", "probability",
                "confidence", "entry_price"])
        for column in ("target_pct", "probability", "confidence", "entry_price"):
            frame[column] = frame[column].astype(float)
        return frame

    def recent_timings(self, hours: int = 2, run_type: str = "live") -> pd.DataFrame:
        """Champion how-soon forecasts of the newest `hours` forecast hours."""
        r = resolution_forecasts.c
        newest = select(func.max(r.timestamp)).where(r.run_type == run_type).scalar_subquery()
        columns = ["symbol", "target_pct", "timestamp", "model_name", "p_6h", "p_24h", "p_horizon", "q10_hours",
                   "q50_hours", "q90_hours"]
        query = (select(*(r[c] for c in columns))
                 .where(r.run_type == run_type, r.is_champion,
                        r.timestamp > newest - func.make_interval(0, 0, 0, 0, hours)))
        with self.db.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=columns)
        for column in columns[4:] + ["target_pct"]:
            frame[column] = frame[column].astype(float)
        return frame

    def newest_champion_times(self, run_type: str = "live") -> pd.DataFrame:
        """Per (symbol, target): the hour of the newest champion prediction."""
        p = predictions.c
        query = (select(p.symbol, p.target_pct, func.max(p.timestamp).label("timestamp"))
                 .where(p.run_type == run_type, p.is_champion).group_by(p.symbol, p.target_pct))
        with self.db.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=["symbol", "target_pct", "timestamp"])
        frame["target_pct"] = frame["target_pct"].astype(float)
        return frame

    def record_group_problems(self, stage: str, timeframe: str, problems: dict[tuple[str, float], str],
                              fine: list[tuple[str, float]]) -> None:
        """Record why groups have no model ('train') or no forecast ('predict'); clear the groups in `fine`.
        A problem keeps the time it was first seen."""
        c = group_status.c
        with self.db.engine.begin() as conn:
            if fine:  # one statement, not one per group
                conn.execute(delete(group_status).where(c.timeframe == timeframe, c.stage == stage,
                                                        tuple_(c.symbol, c.target_pct).in_(fine)))
            if problems:
                stmt = insert(group_status).values([
                    {"symbol": s, "timeframe": timeframe, "target_pct": t, "stage": stage, "reason": why[:2000]}
                    for (s, t), why in problems.items()])
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=["symbol", "timeframe", "target_pct", "stage"],
                    set_={"reason": stmt.excluded.reason, "updated_at": func.now()}))

    def group_problems(self, timeframe: str = "1h") -> dict[tuple[str, float], str]:
        """(symbol, target) -> why it has no model or forecast; the training reason first."""
        c = group_status.c
        query = select(c.symbol, c.target_pct, c.stage, c.reason).where(c.timeframe == timeframe)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(c.stage)).all()  # 'train' after 'predict': its reason wins
        out: dict[tuple[str, float], str] = {}
        for symbol, target, stage, reason in rows:
            out[(symbol, float(target))] = f"not trained: {reason}" if stage == "train" else reason
        return out

    def claim_alert(self, row: dict) -> bool:
        """Record an alert for (symbol, timeframe, target, hour); False when one was already claimed, so a
        crossing is alerted once however often the cycle runs."""
        with self.db.engine.begin() as conn:
            return conn.execute(insert(alerts).values(**row).on_conflict_do_nothing()).rowcount == 1

    def log_report(self, report_type: str, content: str, success: bool, error: str | None) -> int:
        """Record a report (its final state may be set later by finish_report); returns its id."""
        with self.db.engine.begin() as conn:
            return conn.execute(insert(telegram_reports).values(
                report_type=report_type, content=content, success=success, error_message=error)
                .returning(telegram_reports.c.id)).scalar_one()

    def log_attempt(self, report_id: int, attempt: int, method: str, error: str | None) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(insert(telegram_attempts).values(report_id=report_id, attempt=attempt, method=method,
                                                          status="failed" if error else "ok", error_message=error))

    def finish_report(self, report_id: int, success: bool, error: str | None) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(update(telegram_reports).where(telegram_reports.c.id == report_id)
                         .values(success=success, error_message=error))

    def attempts(self, report_id: int) -> pd.DataFrame:
        c = telegram_attempts.c
        with self.db.engine.connect() as conn:
            return pd.DataFrame(conn.execute(select(telegram_attempts).where(c.report_id == report_id)
                                             .order_by(c.id)).mappings().all(), columns=[x.name for x in c])

    def reports(self) -> pd.DataFrame:
        with self.db.engine.connect() as conn:
            return pd.DataFrame(conn.execute(select(telegram_reports).order_by(telegram_reports.c.id)).mappings().all(),
                                columns=[c.name for c in telegram_reports.c])

    # ---- feature cache ------------------------------------------------------------------------
    def save_features(self, timeframe: str, feature_version: str, frames: dict[str, pd.DataFrame]) -> int:
        """Store feature rows (per symbol, index: hour) once per version, in one statement; existing hours
        are left alone."""
        rows = [{"symbol": symbol, "timeframe": timeframe, "timestamp": t, "feature_version": feature_version,
                 "feature_set": {k: (None if pd.isna(v) else float(v)) for k, v in values.items()}}
                for symbol, frame in frames.items() for t, values in zip(frame.index, frame.to_dict("records"))]
        if not rows:
            return 0
        with self.db.engine.begin() as conn:
            return conn.execute(insert(feature_cache).values(rows).on_conflict_do_nothing()).rowcount

    def cached_features(self, symbol: str, timeframe: str, feature_version: str, at: datetime) -> dict | None:
        c = feature_cache.c
        query = select(c.feature_set).where(c.symbol == symbol, c.timeframe == timeframe,
                                            c.feature_version == feature_version, c.timestamp == at)
        with self.db.engine.connect() as conn:
            return conn.execute(query).scalar()

    # ---- performance --------------------------------------------------------------------------
    def save_performance(self, rows: list[dict]) -> int:
        """Upsert metrics rows keyed by (run, symbol, timeframe, target, model, date, window)."""
        if not rows:
            return 0
        columns = list(dict.fromkeys(c for row in rows for c in row))  # a row without metrics leaves them NULL
        rows = [{c: row.get(c) for c in columns} for row in rows]
        stmt = insert(model_performance).values(rows)
        key = ["run_type", "symbol", "timeframe", "target_pct", "model_name", "evaluation_date", "window_days"]
        stmt = stmt.on_conflict_do_update(constraint="uq_model_performance_key", set_={
            col: stmt.excluded[col] for col in rows[0] if col not in key} | {"created_at": func.now()})
        with self.db.engine.begin() as conn:
            return conn.execute(stmt).rowcount

    def days_with_pending(self, run_type: str, since: date) -> list[date]:
        """Evaluation dates (from `since`) whose stored metrics still counted pending predictions."""
        c = model_performance.c
        query = (select(c.evaluation_date).distinct()
                 .where(c.run_type == run_type, c.evaluation_date >= since, c.pending_predictions > 0)
                 .order_by(c.evaluation_date))
        with self.db.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def performance(self, run_type: str, evaluation_date: date | None = None, task: str = "direction") -> pd.DataFrame:
        """Stored metrics of one run type and task ('direction' or 'resolution')."""
        query = select(model_performance).where(model_performance.c.run_type == run_type,
                                                model_performance.c.task == task)
        if evaluation_date:
            query = query.where(model_performance.c.evaluation_date == evaluation_date)
        with self.db.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in model_performance.c])

    def count(self, table: str) -> int:
        with self.db.engine.connect() as conn:
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608 (fixed names)
