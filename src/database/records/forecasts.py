"""Forecasts and their outcomes: direction predictions, how-soon forecasts, and the outcome of each entry
hour, which resolves both.

Bulk writes go through COPY into a temporary table and one INSERT ... ON CONFLICT, so a repeated or
concurrent run writes nothing twice and a batch lands whole or not at all."""
from __future__ import annotations

import io
from datetime import datetime

import pandas as pd
from sqlalchemy import and_, delete, func, select, text

from src.database.records.base import Records
from src.database.schema import prediction_outcomes, predictions, resolution_forecasts

PREDICTION_COLUMNS = ["run_type", "symbol", "timeframe", "target_pct", "timestamp", "model_name", "model_version",
                      "feature_version", "is_champion", "prediction_class", "probability", "confidence",
                      "entry_price"]
# a how-soon forecast: P(resolved within 6 h / 24 h / H), then the 10/50/90 % hours
FORECAST_COLUMNS = ("p_6h", "p_24h", "p_horizon", "q10_hours", "q50_hours", "q90_hours")
RESOLUTION_COLUMNS = ["run_type", "symbol", "timeframe", "target_pct", "timestamp", "model_name", "model_version",
                      "is_champion", *FORECAST_COLUMNS]
OUTCOME_COLUMNS = ["symbol", "timeframe", "target_pct", "timestamp", "status", "actual_outcome",
                   "target_hit_timestamp", "time_to_target_hours", "max_favorable_move", "max_adverse_move"]


def _copy_text(frame: pd.DataFrame) -> io.StringIO:
    return io.StringIO(frame.to_csv(sep="\t", header=False, index=False, na_rep="\\N",
                                    date_format="%Y-%m-%d %H:%M:%S%z"))


def _insert_new(cur, frame: pd.DataFrame | None, table: str, columns: list[str], key: str) -> int:
    """COPY into a staging table, then one INSERT ... ON CONFLICT DO NOTHING: never twice."""
    if frame is None or frame.empty:
        return 0
    cols = ", ".join(columns)
    cur.execute(f"CREATE TEMP TABLE {table}_stage ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA")
    cur.copy_expert(f"COPY {table}_stage ({cols}) FROM STDIN", _copy_text(frame[columns]))
    cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {table}_stage "
                f"ON CONFLICT ON CONSTRAINT {key} DO NOTHING")
    return cur.rowcount


class ForecastRecords(Records):
    def save_predictions(self, frame: pd.DataFrame) -> int:
        """Insert predictions; an existing (run, symbol, timeframe, time, target, model) is left alone."""
        return self.save_forecasts(frame, None)[0]

    def save_resolution_forecasts(self, frame: pd.DataFrame) -> int:
        """Insert how-soon forecasts; an existing (run, symbol, timeframe, time, target, model) is left alone."""
        return self.save_forecasts(None, frame)[1]

    def save_forecasts(self, direction: pd.DataFrame | None, timing: pd.DataFrame | None) -> tuple[int, int]:
        """Insert an hour's direction and how-soon forecasts in one transaction: both land or neither (a kill
        between them cannot leave an hour half-forecast). Existing rows are left alone. Returns rows written."""
        with self.db.engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            return (_insert_new(cur, direction, predictions.name, PREDICTION_COLUMNS,
                                "uq_predictions_run_symbol_tf_time_target_model"),
                    _insert_new(cur, timing, resolution_forecasts.name, RESOLUTION_COLUMNS,
                                "uq_resolution_forecasts_key"))

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
        """Per target, the stored backtest's Brier skill of the champions' forecasts (is_champion) against
        climatology's for the same hours (all assets)."""
        query = text("""
            SELECT p.target_pct, s.series AS model_name, sum((p.probability - o.actual_outcome) ^ 2) AS loss
            FROM predictions p JOIN prediction_outcomes o ON o.prediction_id = p.id
            CROSS JOIN LATERAL (VALUES ('champion', p.is_champion), ('climatology', p.model_name = 'climatology'))
                AS s (series, member)
            WHERE p.run_type = 'backtest' AND s.member AND o.status IN ('up', 'down')
            GROUP BY p.target_pct, s.series""")
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

    def newest_whole_hour(self, run_type: str = "live") -> pd.Timestamp | None:
        """The newest hour forecast whole: with champion direction forecasts and, where any how-soon forecast was
        ever made, how-soon ones too (an hour missing from either table is not whole)."""
        p, r = predictions.c, resolution_forecasts.c
        with self.db.engine.connect() as conn:
            direction, timing = (conn.execute(select(func.max(t.timestamp)).where(t.run_type == run_type,
                                                                                  t.is_champion)).scalar()
                                 for t in (p, r))
        known = [pd.Timestamp(t) for t in (direction, timing) if t is not None]
        return min(known) if direction is not None else None

    def newest_champion_times(self, run_type: str = "live") -> pd.DataFrame:
        """Per (symbol, target): the hour of the newest champion prediction."""
        p = predictions.c
        query = (select(p.symbol, p.target_pct, func.max(p.timestamp).label("timestamp"))
                 .where(p.run_type == run_type, p.is_champion).group_by(p.symbol, p.target_pct))
        with self.db.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=["symbol", "target_pct", "timestamp"])
        frame["target_pct"] = frame["target_pct"].astype(float)
        return frame
