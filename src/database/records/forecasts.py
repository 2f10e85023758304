"""Forecasts and their outcomes: direction predictions, how-soon forecasts, and the outcome of each entry
hour, which resolves both.

Bulk writes go through COPY into a temporary table and one INSERT ... ON CONFLICT, so a repeated or
concurrent run writes nothing twice and a batch lands whole or not at all."""
from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Float, Numeric, and_, cast, delete, func, or_, select, text, tuple_, union_all

from src.database.records.base import Records
from src.database.schema import prediction_outcomes, predictions, resolution_forecasts
from src.utils.clock import service_run
from src.utils.faults import kill_point

PREDICTION_COLUMNS = ["run_type", "symbol", "timeframe", "target_pct", "timestamp", "model_name", "model_version",
                      "feature_version", "is_champion", "prediction_class", "probability", "confidence",
                      "entry_price"]
# a how-soon forecast: P(resolved within 6 h / 24 h / H), then the 10/50/90 % hours
FORECAST_COLUMNS = ("p_6h", "p_24h", "p_horizon", "q10_hours", "q50_hours", "q90_hours")
RESOLUTION_COLUMNS = ["run_type", "symbol", "timeframe", "target_pct", "timestamp", "model_name", "model_version",
                      "is_champion", *FORECAST_COLUMNS]
TIMING_OUTCOME_COLUMNS = ["status", "hours_to_resolution"]  # written with the forecast when already known
OUTCOME_COLUMNS = ["symbol", "timeframe", "target_pct", "timestamp", "status", "actual_outcome",
                   "target_hit_timestamp", "time_to_target_hours", "max_favorable_move", "max_adverse_move"]


OUTCOME_STAGE = """CREATE TEMP TABLE outcome_stage (symbol text, timeframe text, target_pct numeric,
    timestamp timestamptz, status text, actual_outcome int, target_hit_timestamp timestamptz,
    time_to_target_hours numeric, max_favorable_move numeric, max_adverse_move numeric) ON COMMIT DROP"""
# Both driven from the staged outcomes, each looking up its forecasts through an index (LATERAL; OFFSET 0
# keeps the planner from flattening it back into a join whose order it would choose from stale statistics).
OUTCOMES_INSERT = """
    INSERT INTO prediction_outcomes (prediction_id, status, actual_outcome, target_hit_timestamp,
        time_to_target_hours, max_favorable_move, max_adverse_move)
    SELECT p.id, s.status, s.actual_outcome, s.target_hit_timestamp, round(s.time_to_target_hours, 2),
           round(s.max_favorable_move, 6), round(s.max_adverse_move, 6)
    FROM outcome_stage s CROSS JOIN LATERAL (
        SELECT id FROM predictions
        WHERE run_type = %(run_type)s AND symbol = s.symbol AND timeframe = s.timeframe
          AND timestamp = s.timestamp AND target_pct = s.target_pct OFFSET 0) p
    ON CONFLICT (prediction_id) DO NOTHING"""
TIMING_OUTCOMES_UPDATE = """
    UPDATE resolution_forecasts r SET status = s.status, hours_to_resolution = round(s.time_to_target_hours, 2)
    FROM outcome_stage s CROSS JOIN LATERAL (
        SELECT id FROM resolution_forecasts
        WHERE run_type = %(run_type)s AND symbol = s.symbol AND timeframe = s.timeframe
          AND timestamp = s.timestamp AND target_pct = s.target_pct AND status IS NULL OFFSET 0) f
    WHERE r.id = f.id"""


def _iso_utc(times: pd.Series) -> pd.Series:
    """Times as ISO 8601 UTC text (NaT as missing), formatted by numpy: pandas' date_format is 20x slower."""
    values = pd.to_datetime(times, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = np.char.add(np.datetime_as_string(values, unit="us"), "Z").astype(object)
    text[pd.isna(values)] = None
    return pd.Series(text, index=times.index)


def _copy_text(frame: pd.DataFrame) -> io.StringIO:
    """The rows as COPY text (tab-separated, \\N for missing)."""
    times = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)
             or pd.api.types.is_datetime64_any_dtype(frame[c])]
    frame = frame.assign(**{c: _iso_utc(frame[c]) for c in times})
    return io.StringIO(frame.to_csv(sep="\t", header=False, index=False, na_rep="\\N"))


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


def _float(column):
    """A NUMERIC column read as float: psycopg2 then makes floats, not Decimals (several times faster)."""
    return cast(column, Float).label(column.name)


def _newest_champions(conn, columns: list[str], groups: list[tuple[str, float]], run_type: str) -> list:
    """`columns` of each group's newest champion prediction (the live-champions index, newest first, one row)."""
    p = predictions.c
    newest = [select(*(p[c] for c in columns))
              .where(p.run_type == run_type, p.is_champion, p.symbol == symbol, p.target_pct == target)
              .order_by(p.timestamp.desc()).limit(1).subquery() for symbol, target in groups]
    return conn.execute(union_all(*(select(q) for q in newest))).all() if newest else []


def _narrowed(query, c, start: datetime | None, end: datetime | None, symbol: str | None,
              champion_and_reference: bool):
    """The query limited to [start, end), one asset, and the champion's and climatology's forecasts."""
    if start is not None:
        query = query.where(c.timestamp >= start)
    if end is not None:
        query = query.where(c.timestamp < end)
    if symbol is not None:
        query = query.where(c.symbol == symbol)
    if champion_and_reference:
        query = query.where(or_(c.is_champion, c.model_name == "climatology"))
    return query


class ForecastRecords(Records):
    def save_predictions(self, frame: pd.DataFrame) -> int:
        """Insert predictions; an existing (run, symbol, timeframe, time, target, model) is left alone."""
        return self.save_forecasts(frame, None)[0]

    def save_resolution_forecasts(self, frame: pd.DataFrame) -> int:
        """Insert how-soon forecasts; an existing (run, symbol, timeframe, time, target, model) is left alone."""
        return self.save_forecasts(None, frame)[1]

    def save_forecasts(self, direction: pd.DataFrame | None, timing: pd.DataFrame | None) -> tuple[int, int]:
        """Insert an hour's direction and how-soon forecasts in one transaction: both land or neither (a kill
        between them cannot leave an hour half-forecast). How-soon rows may carry their outcome when it is known
        (TIMING_OUTCOME_COLUMNS: a backtest's). Existing rows are left alone. Returns rows written."""
        timing_columns = RESOLUTION_COLUMNS + [c for c in TIMING_OUTCOME_COLUMNS if timing is not None and c in timing]
        with self.db.engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            written = _insert_new(cur, direction, predictions.name, PREDICTION_COLUMNS,
                                  "uq_predictions_run_symbol_tf_time_target_model")
            kill_point("forecasts-half-written")
            return written, _insert_new(cur, timing, resolution_forecasts.name, timing_columns,
                                        "uq_resolution_forecasts_key")

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

    def pending_entries(self, run_type: str | None = None, since: datetime | None = None) -> pd.DataFrame:
        """(symbol, timeframe, target, timestamp) of predictions and how-soon forecasts with no outcome yet;
        with `since`, only those of hours from then (the open windows: a bounded read however long the record)."""
        run_type = run_type or service_run()
        p, o, r = predictions.c, prediction_outcomes.c, resolution_forecasts.c
        # probed per prediction (OFFSET keeps the planner from turning it into a join that reads every outcome)
        no_outcome = ~select(o.id).where(o.prediction_id == p.id).offset(0).exists()
        direction = select(p.symbol, p.timeframe, p.target_pct, p.timestamp).where(p.run_type == run_type, no_outcome)
        timing = (select(r.symbol, r.timeframe, r.target_pct, r.timestamp)
                  .where(r.run_type == run_type, r.status.is_(None)))
        if since is not None:
            direction, timing = direction.where(p.timestamp >= since), timing.where(r.timestamp >= since)
        query = direction.union(timing)
        with self.db.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=["symbol", "timeframe", "target_pct", "timestamp"])
        frame["target_pct"] = frame["target_pct"].astype(float)
        return frame

    def save_outcomes(self, frame: pd.DataFrame, run_type: str) -> int:
        """Attach outcomes (one row per symbol x timeframe x target x entry time) to every matching
        prediction of `run_type` that has none yet. Returns outcome rows written.

        Both statements are driven from the staged rows, each looking up its forecasts through an index
        (LATERAL): the cost follows the staged rows whatever the planner's statistics say. (With
        statistics taken before a backtest group's rows arrived, a plain join scanned the staged table once
        per forecast row: minutes per group.)"""
        if frame.empty:
            return 0
        with self.db.engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            cur.execute(OUTCOME_STAGE)
            cur.copy_expert("COPY outcome_stage FROM STDIN", _copy_text(frame[OUTCOME_COLUMNS]))
            cur.execute("ANALYZE outcome_stage")
            cur.execute(OUTCOMES_INSERT, {"run_type": run_type})
            written = cur.rowcount
            kill_point("outcomes-half-written")
            cur.execute(TIMING_OUTCOMES_UPDATE, {"run_type": run_type})
            return written

    def resolved(self, run_type: str, start: datetime | None = None, end: datetime | None = None,
                 include_pending: bool = False, symbol: str | None = None,
                 champion_and_reference: bool = False) -> pd.DataFrame:
        """Predictions joined with their outcomes (entry time in [start, end)); with `include_pending`, also
        the predictions without an outcome yet (status NaN); `symbol`: one asset's; `champion_and_reference`:
        only the forecasts users got and climatology's (all that scoring the champion series needs)."""
        p, o = predictions.c, prediction_outcomes.c
        joined = predictions.join(prediction_outcomes, o.prediction_id == p.id, isouter=include_pending)
        query = (select(p.symbol, p.timeframe, _float(p.target_pct), p.timestamp, p.model_name, p.is_champion,
                        _float(p.probability), o.status, o.actual_outcome, _float(o.time_to_target_hours))
                 .select_from(joined).where(p.run_type == run_type))
        query = _narrowed(query, p, start, end, symbol, champion_and_reference)
        frame = self.read_frame(query, ["symbol", "timeframe", "target_pct", "timestamp", "model_name", "is_champion",
                                        "probability", "status", "actual_outcome", "time_to_target_hours"],
                                times=("timestamp",), flags=("is_champion",))
        for column in ("target_pct", "probability", "time_to_target_hours"):
            frame[column] = frame[column].astype(float)
        return frame

    def resolved_time(self, run_type: str, start: datetime | None = None, end: datetime | None = None,
                      include_pending: bool = False, symbol: str | None = None,
                      champion_and_reference: bool = False) -> pd.DataFrame:
        """How-soon forecasts with their outcomes (status NaN while pending, unless left out); the filters as
        in `resolved`."""
        r = resolution_forecasts.c
        columns = ["symbol", "timeframe", "target_pct", "timestamp", "model_name", "is_champion", "p_6h", "p_24h",
                   "p_horizon", "q10_hours", "q50_hours", "q90_hours", "status", "hours_to_resolution"]
        query = select(*(_float(r[c]) if isinstance(r[c].type, Numeric) else r[c] for c in columns)).where(
            r.run_type == run_type)
        if not include_pending:
            query = query.where(r.status.is_not(None))
        query = _narrowed(query, r, start, end, symbol, champion_and_reference)
        frame = self.read_frame(query, columns, times=("timestamp",), flags=("is_champion",))
        for column in ("target_pct", "p_6h", "p_24h", "p_horizon", "q10_hours", "q50_hours", "q90_hours",
                       "hours_to_resolution"):
            frame[column] = frame[column].astype(float)
        return frame

    def run_forecasts(self, run_type: str, start: datetime | None = None,
                      end: datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Every stored forecast of a run in [start, end), with the version that made it and its outcome (NaN while
        pending): direction rows and how-soon rows, for comparing two runs (compare-runs)."""
        p, o, r = predictions.c, prediction_outcomes.c, resolution_forecasts.c
        key = ["symbol", "timeframe", "target_pct", "timestamp", "model_name", "model_version", "is_champion"]
        joined = predictions.join(prediction_outcomes, o.prediction_id == p.id, isouter=True)
        direction = self.read_frame(
            _narrowed(select(*(p[c] for c in key[:2]), _float(p.target_pct), *(p[c] for c in key[3:]),
                             _float(p.probability), o.status, o.actual_outcome).select_from(joined)
                      .where(p.run_type == run_type), p, start, end, None, False),
            [*key, "probability", "status", "actual_outcome"], times=("timestamp",), flags=("is_champion",))
        values = ["p_6h", "p_24h", "p_horizon", "q10_hours", "q50_hours", "q90_hours", "status", "hours_to_resolution"]
        timing = self.read_frame(
            _narrowed(select(*(_float(r[c]) if isinstance(r[c].type, Numeric) else r[c] for c in [*key, *values]))
                      .where(r.run_type == run_type), r, start, end, None, False),
            [*key, *values], times=("timestamp",), flags=("is_champion",))
        return direction, timing

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

    def recent_champions(self, hours: int = 2, run_type: str | None = None) -> pd.DataFrame:
        """Champion predictions of the newest `hours` prediction hours (per asset), newest first."""
        run_type = run_type or service_run()
        p = predictions.c
        columns = ["symbol", "timeframe", "target_pct", "timestamp", "model_name", "model_version", "probability",
                   "confidence", "entry_price"]
        with self.db.engine.connect() as conn:
            newest = conn.execute(select(func.max(p.timestamp)).where(p.run_type == run_type)).scalar()
            # the newest hour first, as a value: the planner then reads only these hours' rows
            rows = [] if newest is None else conn.execute(
                select(*(p[c] for c in columns))
                .where(p.run_type == run_type, p.is_champion, p.timestamp > newest - pd.Timedelta(hours=hours))
                .order_by(p.timestamp.desc(), p.symbol, p.target_pct)).all()
        frame = pd.DataFrame(rows, columns=columns)
        for column in ("target_pct", "probability", "confidence", "entry_price"):
            frame[column] = frame[column].astype(float)
        return frame

    def recent_timings(self, hours: int = 2, run_type: str | None = None) -> pd.DataFrame:
        """Champion how-soon forecasts of the newest `hours` forecast hours."""
        run_type = run_type or service_run()
        r = resolution_forecasts.c
        columns = ["symbol", "target_pct", "timestamp", "model_name", "p_6h", "p_24h", "p_horizon", "q10_hours",
                   "q50_hours", "q90_hours"]
        with self.db.engine.connect() as conn:
            newest = conn.execute(select(func.max(r.timestamp)).where(r.run_type == run_type)).scalar()
            rows = [] if newest is None else conn.execute(
                select(*(r[c] for c in columns))
                .where(r.run_type == run_type, r.is_champion, r.timestamp > newest - pd.Timedelta(hours=hours))).all()
        frame = pd.DataFrame(rows, columns=columns)
        for column in columns[4:] + ["target_pct"]:
            frame[column] = frame[column].astype(float)
        return frame

    def newest_whole_hour(self, run_type: str | None = None) -> pd.Timestamp | None:
        """The newest hour forecast whole: with champion direction forecasts and, where any how-soon forecast was
        ever made, how-soon ones too (an hour missing from either table is not whole)."""
        run_type = run_type or service_run()
        p, r = predictions.c, resolution_forecasts.c
        with self.db.engine.connect() as conn:
            direction, timing = (conn.execute(select(func.max(t.timestamp)).where(t.run_type == run_type,
                                                                                  t.is_champion)).scalar()
                                 for t in (p, r))
        known = [pd.Timestamp(t) for t in (direction, timing) if t is not None]
        return min(known) if direction is not None else None

    def newest_champion_times(self, groups: list[tuple[str, float]], run_type: str | None = None
                              ) -> dict[tuple[str, float], pd.Timestamp]:
        """(symbol, target) -> the hour of its newest champion prediction, for the groups of `groups` that have
        one (one index lookup each, however many hours are stored)."""
        run_type = run_type or service_run()
        with self.db.engine.connect() as conn:
            rows = _newest_champions(conn, ["symbol", "target_pct", "timestamp"], groups, run_type)
        return {(symbol, float(target)): pd.Timestamp(hour) for symbol, target, hour in rows}

    def newest_forecasts(self, groups: list[tuple[str, float]], run_type: str | None = None
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Each group's newest champion forecast: the direction row (symbol, target_pct, timestamp, model_name,
        probability, confidence, entry_price) and the how-soon row of the same hour, if any (one index lookup
        per group)."""
        run_type = run_type or service_run()
        r = resolution_forecasts.c
        direction = ["symbol", "target_pct", "timestamp", "model_name", "probability", "confidence", "entry_price"]
        timing = ["symbol", "target_pct", "timestamp", "model_name", *FORECAST_COLUMNS]
        with self.db.engine.connect() as conn:
            rows = _newest_champions(conn, direction, groups, run_type)
            keys = [(row.symbol, row.target_pct, row.timestamp) for row in rows]
            timed = conn.execute(select(*(r[c] for c in timing)).where(
                r.run_type == run_type, r.is_champion, tuple_(r.symbol, r.target_pct, r.timestamp).in_(keys))
            ).all() if keys else []
        frames = pd.DataFrame(rows, columns=direction), pd.DataFrame(timed, columns=timing)
        for frame in frames:
            for column in frame.columns.drop(["symbol", "timestamp", "model_name"]):
                frame[column] = frame[column].astype(float)
        return frames

    def champion_record(self, start: datetime, end: datetime, complete_before: datetime, symbol: str | None = None,
                        run_type: str | None = None) -> pd.DataFrame:
        """Per (symbol, target_pct), the record of the forecasts users got with entry in [start, end), aggregated in
        the database (a year of hours in milliseconds): `resolved`; `hit_rate`, the share of complete windows
        (entry before `complete_before`) that hit either move; direction `n`, `loss` and `reference_loss` (summed
        Brier loss of P(up) and of climatology's forecast for the same hours, decided up/down only); and for
        P(within 24 h) `n_24h`, `loss_24h`, `reference_loss_24h` over the forecasts whose 24 hours had closed by
        `end` (scoring.known_fates). The definitions are scoring.py's (a test holds
        them equal)."""
        run_type = run_type or service_run()
        query = text("""
            WITH direction AS (
                SELECT c.symbol, c.target_pct, count(*) AS resolved,
                       avg((o.status <> 'expired')::int) FILTER (WHERE c.timestamp <= :complete) AS hit_rate,
                       count(k.probability) FILTER (WHERE o.status IN ('up', 'down')) AS n,
                       sum((c.probability - o.actual_outcome) ^ 2)
                           FILTER (WHERE o.status IN ('up', 'down') AND k.probability IS NOT NULL) AS loss,
                       sum((k.probability - o.actual_outcome) ^ 2) FILTER (WHERE o.status IN ('up', 'down')) AS
                           reference_loss
                FROM predictions c JOIN prediction_outcomes o ON o.prediction_id = c.id
                LEFT JOIN predictions k ON k.run_type = c.run_type AND k.symbol = c.symbol
                     AND k.timeframe = c.timeframe AND k.timestamp = c.timestamp AND k.target_pct = c.target_pct
                     AND k.model_name = 'climatology' AND k.timestamp >= :start AND k.timestamp < :end
                WHERE c.run_type = :run_type AND c.is_champion AND c.timestamp >= :start AND c.timestamp < :end
                  AND (CAST(:symbol AS text) IS NULL OR c.symbol = :symbol)
                GROUP BY 1, 2),
            timing AS (
                SELECT c.symbol, c.target_pct, count(k.p_24h) AS n_24h,
                       sum((c.p_24h - w.y) ^ 2) FILTER (WHERE k.p_24h IS NOT NULL) AS loss_24h,
                       sum((k.p_24h - w.y) ^ 2) AS reference_loss_24h
                FROM resolution_forecasts c
                CROSS JOIN LATERAL (SELECT coalesce(c.status <> 'expired' AND c.hours_to_resolution <= 24,
                                                    false)::int AS y) w
                LEFT JOIN resolution_forecasts k ON k.run_type = c.run_type AND k.symbol = c.symbol
                     AND k.timeframe = c.timeframe AND k.timestamp = c.timestamp AND k.target_pct = c.target_pct
                     AND k.model_name = 'climatology' AND k.timestamp >= :start AND k.timestamp < :end
                WHERE c.run_type = :run_type AND c.is_champion  -- the 24-hour fates known at :end (known_fates)
                  AND c.timestamp >= :start AND c.timestamp <= CAST(:end AS timestamptz) - interval '25 hours'
                  AND (CAST(:symbol AS text) IS NULL OR c.symbol = :symbol)
                GROUP BY 1, 2)
            SELECT * FROM direction FULL JOIN timing USING (symbol, target_pct) ORDER BY 1, 2""")
        with self.db.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query, {"run_type": run_type, "start": start, "end": end,
                                                      "complete": complete_before, "symbol": symbol}).mappings().all())
        columns = ["symbol", "target_pct", "resolved", "hit_rate", "n", "loss", "reference_loss", "n_24h", "loss_24h",
                   "reference_loss_24h"]
        frame = frame.reindex(columns=columns)
        frame[columns[1:]] = frame[columns[1:]].astype(float)
        return frame

    def last_resolved(self, groups: list[tuple[str, float]], start: datetime, end: datetime, per_group: int = 5,
                      run_type: str | None = None) -> pd.DataFrame:
        """The newest `per_group` resolved forecasts users got per (symbol, target) of `groups`, entry in
        [start, end) (each group's newest rows through an index, however long the record)."""
        run_type = run_type or service_run()
        p, o = predictions.c, prediction_outcomes.c
        newest = [select(p.symbol, _float(p.target_pct), p.timestamp, _float(p.probability), o.status,
                         _float(o.time_to_target_hours))
                  .select_from(predictions.join(prediction_outcomes, o.prediction_id == p.id))
                  .where(p.run_type == run_type, p.is_champion, p.symbol == symbol, p.target_pct == target,
                         p.timestamp >= start, p.timestamp < end)
                  .order_by(p.timestamp.desc()).limit(per_group).subquery() for symbol, target in groups]
        columns = ["symbol", "target_pct", "timestamp", "probability", "status", "time_to_target_hours"]
        with self.db.engine.connect() as conn:
            rows = conn.execute(union_all(*(select(q) for q in newest))).all() if newest else []
        return pd.DataFrame(rows, columns=columns)
