"""The track record's daily sums (table day_scores): per run, asset x target, UTC day, event and forecast bin,
the champion's forecasts scored against climatology's for the same hours, and how many of them climatology made.
A page over two years reads a few thousand summed rows; the days not yet stored (the newest, whose windows are
still open) are summed from the forecasts by the same SQL, so the page is always current.

Events: 'up', P(up) of windows decided up or down (expired ones have no direction outcome); 'within_24h',
P(resolved within 24 h) of every resolved window, with the share of its outcome inside the interval and the share
the interval claimed (time_metrics: 0.8 closed, 0.9 open).
The definitions are scoring.py's (a test holds them equal)."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
from sqlalchemy import func, select, text

from src.database.records.base import Records
from src.database.schema import day_scores, day_scores_through, predictions
from src.utils.clock import utc_now

RUN_TYPES = ("live", "backtest", "replay")  # replay: the daemon itself on a simulated clock
FORECAST_BINS = 20  # bins of 0.05, merged into ~20-forecast reliability points; two make a sharpness bar
TOTAL = -1  # the bin of a day's totals (all forecasts of the day)
SUM_COLUMNS = ["symbol", "timeframe", "target_pct", "day", "event", "bin", "n", "forecast_sum", "outcome_sum",
               "loss", "reference_loss", "covered", "covered_n", "climatology_n", "claimed"]
DAY_COLUMNS = ["symbol", "target_pct", "event", "day", "n", "forecast_sum", "outcome_sum", "loss", "reference_loss",
               "covered", "covered_n", "climatology_n", "claimed"]
BIN_COLUMNS = ["symbol", "target_pct", "event", "bin", "n", "forecast_sum", "outcome_sum"]
STORED = """run_type = :run_type AND day >= :first_day AND day <= :stored_last
            AND (CAST(:symbol AS text) IS NULL OR symbol = :symbol)"""
DAY_TOTALS = f"""SELECT symbol, target_pct::float8, event, day, n, forecast_sum, outcome_sum, loss, reference_loss,
                        covered, covered_n, climatology_n, claimed
                 FROM day_scores WHERE bin = :total AND {STORED}"""
BIN_TOTALS = f"""SELECT symbol, target_pct::float8, event, bin, sum(n)::int, sum(forecast_sum), sum(outcome_sum)
                 FROM day_scores WHERE bin <> :total AND {STORED} GROUP BY 1, 2, 3, 4"""
RESCORED_DAYS = 30  # settled days summed again at each refresh: outcomes that came late (candles recovered after
# an exchange outage of up to a month); a refresh of 30 days takes about 0.5 s (bench/web.py)

DAY_SUMS = f"""
    WITH direction AS (
        SELECT c.symbol, c.timeframe, c.target_pct, c.timestamp, 'up' AS event, c.probability::float8 AS p,
               o.actual_outcome::float8 AS y, k.probability::float8 AS ref, NULL::float8 AS cov,
               NULL::float8 AS claim, (c.model_name = 'climatology')::int AS clim
        FROM predictions c
        JOIN prediction_outcomes o ON o.prediction_id = c.id AND o.status IN ('up', 'down')
        JOIN predictions k ON k.run_type = c.run_type AND k.symbol = c.symbol AND k.timeframe = c.timeframe
             AND k.timestamp = c.timestamp AND k.target_pct = c.target_pct AND k.model_name = 'climatology'
        WHERE c.run_type = :run_type AND c.is_champion AND c.timestamp >= :start AND c.timestamp < :end
          AND (CAST(:symbol AS text) IS NULL OR c.symbol = :symbol)),
    timing AS (  -- the fates known at :as_of (scoring.known_fates): 24 closed hours; coverage of complete windows
        SELECT c.symbol, c.timeframe, c.target_pct, c.timestamp, 'within_24h', c.p_24h::float8, w.y,
               k.p_24h::float8, w.cov, w.claim, (c.model_name = 'climatology')::int
        FROM resolution_forecasts c
        CROSS JOIN LATERAL (SELECT
            (coalesce(c.status <> 'expired' AND c.hours_to_resolution <= 24, false))::int::float8 AS y,
            (c.status IS NULL OR c.timestamp > CAST(:as_of AS timestamptz) - make_interval(hours => :horizon + 1))
                AS open,  -- the window is open: its interval's outcome is not known yet
            c.q90_hours >= :horizon - 0.005 AS past_h) a  -- time_metrics.at_cap: an open interval, "after q10 h"
        CROSS JOIN LATERAL (SELECT a.y,
            CASE WHEN a.open THEN NULL
                 WHEN c.status = 'expired' THEN a.past_h::int::float8  -- inside an open interval, outside a closed
                 ELSE greatest(0, least(1, least(c.q90_hours, c.hours_to_resolution)
                                        - greatest(c.q10_hours, c.hours_to_resolution - 1)))::float8 END AS cov,
            CASE WHEN a.open THEN NULL WHEN a.past_h THEN 0.9 ELSE 0.8 END::float8 AS claim) w
        JOIN resolution_forecasts k ON k.run_type = c.run_type AND k.symbol = c.symbol
             AND k.timeframe = c.timeframe AND k.timestamp = c.timestamp AND k.target_pct = c.target_pct
             AND k.model_name = 'climatology'
        WHERE c.run_type = :run_type AND c.is_champion
          AND c.timestamp <= CAST(:as_of AS timestamptz) - interval '25 hours'
          AND c.timestamp >= :start AND c.timestamp < :end
          AND (CAST(:symbol AS text) IS NULL OR c.symbol = :symbol))
    SELECT symbol, timeframe, target_pct, day, event, coalesce(bin, {TOTAL}) AS bin, count(*) AS n,
           sum(p) AS forecast_sum, sum(y) AS outcome_sum, sum((p - y) ^ 2) AS loss,
           sum((ref - y) ^ 2) AS reference_loss, sum(cov) AS covered, count(cov) AS covered_n,
           sum(clim) AS climatology_n, sum(claim) AS claimed
    FROM (SELECT *, (timestamp AT TIME ZONE 'UTC')::date AS day,
                 least(floor(p * {FORECAST_BINS})::int, {FORECAST_BINS - 1}) AS bin
          FROM (SELECT * FROM direction UNION ALL SELECT * FROM timing) u) f
    GROUP BY GROUPING SETS ((symbol, timeframe, target_pct, day, event, bin),
                            (symbol, timeframe, target_pct, day, event))"""


def settled_through(now: datetime, horizon: int) -> date:
    """The last UTC day whose every window has closed by `now` (its last hour's window too)."""
    return ((pd.Timestamp(now) - pd.Timedelta(hours=horizon + 1)).floor("D") - pd.Timedelta(days=1)).date()


def _bound(query: str, params: dict):
    """The query with the parameters it names bound."""
    return text(query).bindparams(**{k: v for k, v in params.items() if f":{k}" in query})


def _midnight(day: date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


class ScoreRecords(Records):
    def stored_through(self, run_type: str) -> date | None:
        """The last day day_scores holds for `run_type` (every earlier day too), or None."""
        with self.db.engine.connect() as conn:
            return conn.execute(select(day_scores_through.c.day)
                                .where(day_scores_through.c.run_type == run_type)).scalar()

    def newest_forecast_day(self, run_type: str) -> date | None:
        """The UTC day of the run's newest champion prediction (one index lookup)."""
        p = predictions.c
        with self.db.engine.connect() as conn:
            newest = conn.execute(select(func.max(p.timestamp)).where(p.run_type == run_type)).scalar()
        return None if newest is None else pd.Timestamp(newest).tz_convert("UTC").date()

    def refresh_day_scores(self, run_type: str, settled_through: date, horizon: int, full: bool = False) -> int:
        """Store the daily sums of every day up to `settled_through` (days whose windows have all closed): the
        days after the stored ones, and the last RESCORED_DAYS of those again; with `full` (or nothing stored),
        every day. One transaction: a page reads the old sums or the new ones, never half. Returns the rows."""
        stored = None if full else self.stored_through(run_type)
        start = date(1970, 1, 1) if stored is None else stored - timedelta(days=RESCORED_DAYS)
        if stored is not None and settled_through <= stored - timedelta(days=RESCORED_DAYS):
            return 0
        with self.db.engine.begin() as conn:
            conn.execute(day_scores.delete().where(day_scores.c.run_type == run_type, day_scores.c.day >= start))
            inserted = conn.execute(
                text(f"INSERT INTO day_scores (run_type, {', '.join(SUM_COLUMNS)}) "  # noqa: S608 (fixed names)
                     f"SELECT :run_type, * FROM ({DAY_SUMS}) sums"),
                {"run_type": run_type, "start": _midnight(start), "symbol": None, "horizon": horizon,
                 "as_of": _midnight(settled_through + timedelta(days=1)) + pd.Timedelta(hours=horizon + 1),
                 "end": _midnight(settled_through + timedelta(days=1))}).rowcount
            conn.execute(text("""INSERT INTO day_scores_through (run_type, day) VALUES (:run_type, :day)
                                 ON CONFLICT (run_type) DO UPDATE SET day = excluded.day"""),
                         {"run_type": run_type, "day": settled_through})
            conn.execute(text("ANALYZE day_scores"))  # the pages' plans: statistics of the rows just written
        return inserted

    def record_version(self) -> tuple:
        """What changes whenever the track record can: the newest forecast rows written (identity keys, so a
        backtest rewriting its period counts too) and the days each run's sums are stored through. Two primary-key
        lookups and a table of one row per run: cheap enough to ask on every page request."""
        with self.db.engine.connect() as conn:
            newest = conn.execute(text("SELECT (SELECT max(id) FROM predictions), "
                                       "(SELECT max(id) FROM resolution_forecasts)")).one()
            stored = conn.execute(select(day_scores_through.c.run_type, day_scores_through.c.day)
                                  .order_by(day_scores_through.c.run_type)).all()
        return (*newest, *(tuple(r) for r in stored))

    def runs_without_sums(self) -> list[str]:
        """The runs with forecasts but no stored daily sums (a backtest stopped half-way, a kept replay): each page
        would sum them from the forecasts until the daily job stores them again."""
        with self.db.engine.connect() as conn:
            return [run for run in RUN_TYPES if conn.execute(text(
                "SELECT EXISTS (SELECT 1 FROM predictions WHERE run_type = :run) "
                "AND NOT EXISTS (SELECT 1 FROM day_scores_through WHERE run_type = :run)"), {"run": run}).scalar()]

    def newest_forecast_time(self, run_type: str) -> datetime | None:
        p = predictions.c
        with self.db.engine.connect() as conn:
            return conn.execute(select(func.max(p.timestamp)).where(p.run_type == run_type)).scalar()

    def forget_day_scores(self, run_type: str) -> None:
        """Drop the run's stored sums before its forecasts are rewritten (a backtest): until they are stored again,
        the pages sum that run from the forecasts, so a run stopped or killed half-way never shows old sums."""
        with self.db.engine.begin() as conn:
            conn.execute(day_scores.delete().where(day_scores.c.run_type == run_type))
            conn.execute(day_scores_through.delete().where(day_scores_through.c.run_type == run_type))

    def record_sums(self, run_type: str, first_day: date, last_day: date, horizon: int, symbol: str | None = None,
                    bins: bool = True, as_of: datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """The sums of [first_day, last_day] per (symbol, target_pct, event), from the stored days and, for the
        days not stored yet, from the forecasts: by `day` (n, outcome_sum, loss, reference_loss, covered, claimed)
        and, with `bins`, by forecast `bin` (n, forecast_sum, outcome_sum), aggregated in the database."""
        through = self.stored_through(run_type)
        stored_last = min(last_day, through) if through is not None else first_day - timedelta(days=1)
        fresh_from = max(first_day, stored_last + timedelta(days=1))
        params = {"run_type": run_type, "first_day": first_day, "stored_last": stored_last, "symbol": symbol,
                  "horizon": horizon, "as_of": as_of if as_of is not None else utc_now(),
                  "start": _midnight(fresh_from), "end": _midnight(max(fresh_from, last_day + timedelta(days=1))),
                  "total": TOTAL}
        fresh = [] if fresh_from > last_day else self._fresh_sums(params)
        stored = self.read_frame(_bound(DAY_TOTALS, params), DAY_COLUMNS)
        by_day = pd.concat([stored, pd.DataFrame([r[:4] + r[5:] for r in fresh if r[4] == TOTAL],
                                                 columns=DAY_COLUMNS)], ignore_index=True)
        by_day = by_day.assign(day=pd.to_datetime(by_day["day"]), **{c: by_day[c].astype(float)
                                                                      for c in DAY_COLUMNS[1:2] + DAY_COLUMNS[4:]})
        if not bins:
            return by_day, None
        fresh_bins = pd.DataFrame([(r[0], r[1], r[2], r[4], r[5], r[6], r[7]) for r in fresh if r[4] != TOTAL],
                                  columns=BIN_COLUMNS)
        by_bin = pd.concat([self.read_frame(_bound(BIN_TOTALS, params), BIN_COLUMNS), fresh_bins], ignore_index=True)
        by_bin = by_bin.groupby(BIN_COLUMNS[:4], as_index=False).sum()  # stored and fresh days of a bin together
        return by_day, by_bin.assign(**{c: by_bin[c].astype(float) for c in ("target_pct", "forecast_sum",
                                                                              "outcome_sum")})

    def _fresh_sums(self, params: dict) -> list[tuple]:
        """(symbol, target_pct, event, day, bin, n, forecast_sum, outcome_sum, loss, reference_loss, covered,
        covered_n, climatology_n, claimed) of the days not stored, summed from the forecasts."""
        with self.db.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                f"SELECT symbol, target_pct::float8, event, day, bin, n, forecast_sum, outcome_sum, loss, "
                f"reference_loss, covered, covered_n, climatology_n, claimed FROM ({DAY_SUMS}) fresh"),
                params).all()]
