"""Candle storage and the questions the pipeline asks of it. The only module of the pipeline that speaks SQL.

Writes are bulk (COPY into a temporary table, then one INSERT ... ON CONFLICT), idempotent and
transactional: a batch lands whole or not at all, and writing it again changes nothing.
"""
from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pandas as pd
import psycopg2
from sqlalchemy import Float, String, cast, func, literal, select, text, union_all

from src.database.connection import DatabaseConnection
from src.database.schema import exchange_gaps, ohlcv_data
from src.utils.candles import CANDLE_COLUMNS, candle_problems, ms_to_datetime, to_frame
from src.utils.clock import utc_now
from src.utils.config import TIMEFRAME_MS

# Prices are stored exactly (NUMERIC); the server converts them to double precision, which is the same
# correctly rounded float Python would make of each decimal, without a Decimal object per value.
_CANDLE_SELECT = [ohlcv_data.c.timestamp, *(cast(ohlcv_data.c[c], Float(precision=53)).label(c)
                                            for c in CANDLE_COLUMNS[1:])]

log = logging.getLogger(__name__)
Gap = tuple[datetime, datetime]  # (first missing open time, last missing open time)
EXCHANGE_GAP_RETRY = timedelta(days=1)

_STAGE_SQL = """CREATE TEMP TABLE ohlcv_stage (ts bigint, open numeric, high numeric, low numeric,
    close numeric, volume numeric) ON COMMIT DROP"""
_UPSERT_SQL = """
INSERT INTO ohlcv_data AS o (symbol, timeframe, timestamp, open, high, low, close, volume)
SELECT %(symbol)s, %(timeframe)s, to_timestamp(ts / 1000.0), open, high, low, close, volume FROM ohlcv_stage
ON CONFLICT (symbol, timeframe, timestamp) DO UPDATE
SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume
WHERE (o.open, o.high, o.low, o.close, o.volume)
      IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
"""
_INSERT_SQL = _UPSERT_SQL.split("ON CONFLICT")[0]
_DIFFERING_SQL = """SELECT count(*) FROM ohlcv_stage s JOIN ohlcv_data o ON o.symbol = %(symbol)s
    AND o.timeframe = %(timeframe)s AND o.timestamp = to_timestamp(s.ts / 1000.0)
    WHERE (o.open, o.high, o.low, o.close, o.volume) IS DISTINCT FROM (s.open, s.high, s.low, s.close, s.volume)"""
_OVERLAP_SQL = """SELECT EXISTS (SELECT 1 FROM ohlcv_data WHERE symbol = %(symbol)s AND timeframe = %(timeframe)s
    AND timestamp BETWEEN to_timestamp(%(first)s / 1000.0) AND to_timestamp(%(last)s / 1000.0))"""
# Present candles plus a sentinel on each side of the window; a jump of more than one step is a gap.
_GAPS_SQL = text("""
WITH ts AS (
    SELECT timestamp AS t FROM ohlcv_data
    WHERE symbol = :symbol AND timeframe = :timeframe AND timestamp BETWEEN :start AND :end
    UNION ALL SELECT CAST(:start AS timestamptz) - CAST(:step AS interval)
    UNION ALL SELECT CAST(:end AS timestamptz) + CAST(:step AS interval)
), ordered AS (
    SELECT t, LAG(t) OVER (ORDER BY t) AS prev FROM ts
)
SELECT prev + CAST(:step AS interval) AS first_missing, t - CAST(:step AS interval) AS last_missing
FROM ordered WHERE t - prev > CAST(:step AS interval) ORDER BY first_missing
""")


class _Refused(Exception):
    def __init__(self, differing: int):
        self.differing = differing


class CandleSource(Protocol):
    """What backfilling needs from an exchange client (src.data.fetcher.ExchangeDataFetcher)."""

    def fetch_range(self, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> list[list]: ...


def last_closed_open_time(timeframe: str = "1h", now: datetime | None = None) -> datetime:
    """Open time of the newest candle that has closed by `now`."""
    step = TIMEFRAME_MS[timeframe]
    now_ms = int((now or utc_now()).timestamp() * 1000)
    return datetime.fromtimestamp((now_ms // step * step - step) / 1000, tz=UTC)


def _decimal_text(column: pd.Series) -> list[str]:
    """Values as decimal text: strings (an imported file's own decimals) as they are; for floats repr(),
    the shortest string that round-trips, i.e. the exchange's own decimal."""
    if not pd.api.types.is_numeric_dtype(column):
        return column.astype(str).tolist()
    return [repr(v) for v in column.astype(float).tolist()]


def _stage_text(frame: pd.DataFrame) -> io.StringIO:
    rows = zip(frame["timestamp"].astype("int64").tolist(), *(_decimal_text(frame[c]) for c in CANDLE_COLUMNS[1:]),
               strict=False)
    return io.StringIO("".join(f"{t}\t{o}\t{h}\t{lo}\t{c}\t{v}\n" for t, o, h, lo, c, v in rows))


def _insert_staged(cursor, params: dict) -> int:
    """Move the staged candles into ohlcv_data; returns rows inserted or changed. A batch whose time range
    holds no stored candle (backfill, import) takes a plain INSERT, twice as fast as the upsert; if a
    concurrent writer got there first, the savepoint falls back to the upsert."""
    cursor.execute(_OVERLAP_SQL, params)
    if not cursor.fetchone()[0]:
        cursor.execute("SAVEPOINT fresh_candles")
        try:
            cursor.execute(_INSERT_SQL, params)
            inserted = cursor.rowcount
            cursor.execute("RELEASE SAVEPOINT fresh_candles")
            return inserted
        except psycopg2.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT fresh_candles")
    cursor.execute(_UPSERT_SQL, params)
    return cursor.rowcount


class DatabaseOperations:
    def __init__(self, database_url: str | DatabaseConnection, data_dir: Path | None = None,
                 fetcher: CandleSource | None = None):
        self.db = database_url if isinstance(database_url, DatabaseConnection) \
            else DatabaseConnection(database_url, data_dir)
        self.fetcher = fetcher

    # ---- writes -------------------------------------------------------------------------------
    def save_ohlcv_data(self, symbol: str, timeframe: str, candles: list[list] | pd.DataFrame) -> int:
        """Upsert candles in one transaction; returns rows inserted or changed. Invalid rows refuse the batch."""
        frame = to_frame(candles)
        if frame.empty:
            return 0
        problems = candle_problems(frame, TIMEFRAME_MS[timeframe])
        if (problems != "").any():
            first = problems[problems != ""].index[0]
            raise ValueError(f"{symbol} {timeframe}: row {first} invalid ({problems[first]}); nothing saved")
        frame = frame.drop_duplicates("timestamp", keep="last")
        with self.db.engine.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()
            cursor.execute(_STAGE_SQL)
            cursor.copy_expert("COPY ohlcv_stage FROM STDIN", _stage_text(frame))
            written = _insert_staged(cursor, {"symbol": symbol, "timeframe": timeframe,
                                              "first": int(frame["timestamp"].min()),
                                              "last": int(frame["timestamp"].max())})
        log.debug("saved %d of %d candles for %s %s", written, len(frame), symbol, timeframe)
        return written

    def import_candles(self, symbol: str, timeframe: str, frame: pd.DataFrame,
                       replace: bool = False) -> tuple[int, int]:
        """Store validated candles in one transaction unless some differ from candles already stored and
        `replace` is not set (then nothing is stored). Returns (rows inserted or changed, rows differing)."""
        params = {"symbol": symbol, "timeframe": timeframe, "first": int(frame["timestamp"].min()),
                  "last": int(frame["timestamp"].max())}
        try:
            with self.db.engine.begin() as conn:
                cursor = conn.connection.driver_connection.cursor()
                cursor.execute(_STAGE_SQL)
                cursor.copy_expert("COPY ohlcv_stage FROM STDIN", _stage_text(frame))
                cursor.execute(_DIFFERING_SQL, params)
                differing = cursor.fetchone()[0]
                if differing and not replace:
                    raise _Refused(differing)  # leaves the block: the transaction rolls back
                return _insert_staged(cursor, params), differing
        except _Refused as refused:
            return 0, refused.differing

    def refresh_recent_view(self) -> None:
        """Refresh recent_ohlcv (the last 7 days) without blocking readers."""
        with self.db.engine.begin() as conn:
            conn.execute(text("REFRESH MATERIALIZED VIEW CONCURRENTLY recent_ohlcv"))

    def record_exchange_gaps(self, symbol: str, timeframe: str, gaps: list[Gap]) -> None:
        """Remember runs the exchange answered with nothing, with when they were asked."""
        if not gaps:
            return
        from sqlalchemy.dialects.postgresql import insert
        rows = [{"symbol": symbol, "timeframe": timeframe, "gap_start": a, "gap_end": b} for a, b in gaps]
        stmt = insert(exchange_gaps).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["symbol", "timeframe", "gap_start"],
            set_={"gap_end": stmt.excluded.gap_end, "last_checked_at": func.now(),
                  "attempts": exchange_gaps.c.attempts + 1})
        with self.db.engine.begin() as conn:
            conn.execute(stmt)

    # ---- questions ----------------------------------------------------------------------------
    def check_data_gaps(self, symbol: str, timeframe: str = "1h", hours_back: int = 168,
                        end: datetime | None = None) -> list[Gap]:
        """Every run of missing candles in the `hours_back` candles ending at `end` (default: the last
        closed candle), as (first missing, last missing) open times, including runs at either edge."""
        step = timedelta(milliseconds=TIMEFRAME_MS[timeframe])
        end = end or last_closed_open_time(timeframe)
        start = end - step * (hours_back - 1)
        with self.db.engine.connect() as conn:
            rows = conn.execute(_GAPS_SQL, {"symbol": symbol, "timeframe": timeframe, "start": start,
                                            "end": end, "step": step}).all()
        return [(row.first_missing, row.last_missing) for row in rows]

    def get_exchange_gaps(self, symbol: str | None = None, timeframe: str = "1h") -> pd.DataFrame:
        """Recorded runs the exchange could not fill."""
        query = select(exchange_gaps).where(exchange_gaps.c.timeframe == timeframe)
        if symbol:
            query = query.where(exchange_gaps.c.symbol == symbol)
        with self.db.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query.order_by(exchange_gaps.c.symbol, exchange_gaps.c.gap_start))
                                .mappings().all(), columns=[c.name for c in exchange_gaps.c])

    def get_last_complete_timestamp(self, symbol: str, timeframe: str = "1h") -> datetime | None:
        """The open time of the newest stored candle (only closed candles are ever stored)."""
        return self.get_last_complete_timestamps([symbol], timeframe).get(symbol)

    def get_last_complete_timestamps(self, symbols: list[str], timeframe: str = "1h") -> dict[str, datetime]:
        """The newest stored candle's open time per symbol, in one query (symbols without candles absent). One
        index lookup per symbol: a GROUP BY would read every candle stored."""
        if not symbols:
            return {}
        c = ohlcv_data.c
        query = union_all(*(select(literal(symbol, String).label("symbol"),
                                   select(func.max(c.timestamp)).where(c.symbol == symbol, c.timeframe == timeframe)
                                   .scalar_subquery().label("newest")) for symbol in symbols))
        with self.db.engine.connect() as conn:
            return {symbol: newest for symbol, newest in conn.execute(query).all() if newest is not None}

    def recent_candles(self, symbols: list[str], timeframe: str, since: datetime) -> dict[str, tuple[int, datetime]]:
        """Per symbol with candles from `since`: how many, and the newest open time (one bounded range of the
        primary key; on TimescaleDB only the recent chunks are planned and read)."""
        c = ohlcv_data.c
        query = (select(c.symbol, func.count(), func.max(c.timestamp))
                 .where(c.symbol.in_(symbols), c.timeframe == timeframe, c.timestamp >= since).group_by(c.symbol))
        with self.db.engine.connect() as conn:
            return {symbol: (count, newest) for symbol, count, newest in conn.execute(query).all()}

    def get_latest_candles(self, symbol: str, timeframe: str = "1h", limit: int = 100) -> pd.DataFrame:
        """The newest `limit` candles, oldest first, prices as floats."""
        query = (select(*_CANDLE_SELECT).where(ohlcv_data.c.symbol == symbol, ohlcv_data.c.timeframe == timeframe)
                 .order_by(ohlcv_data.c.timestamp.desc()).limit(limit))
        return self._frame(query).iloc[::-1].reset_index(drop=True)

    def get_candles(self, symbol: str, timeframe: str = "1h", start: datetime | None = None,
                    end: datetime | None = None) -> pd.DataFrame:
        """Candles with start <= open time <= end, oldest first, prices as floats."""
        return self.get_candle_windows([symbol], timeframe, start, end)[symbol]

    def get_candle_windows(self, symbols: list[str], timeframe: str = "1h", start: datetime | None = None,
                           end: datetime | None = None) -> dict[str, pd.DataFrame]:
        """Each symbol's candles with start <= open time <= end, oldest first, prices as floats: one query
        for all (an hourly cycle reads 30 windows at once, not in 30 round trips)."""
        c = ohlcv_data.c
        query = select(c.symbol, *_CANDLE_SELECT).where(c.symbol.in_(symbols), c.timeframe == timeframe)
        if start is not None:
            query = query.where(c.timestamp >= start)
        if end is not None:
            query = query.where(c.timestamp <= end)
        frame = self._frame(query.order_by(c.symbol, c.timestamp), ["symbol", *CANDLE_COLUMNS])
        groups = {symbol: part.drop(columns="symbol").reset_index(drop=True)
                  for symbol, part in frame.groupby("symbol", sort=False)}
        return {symbol: groups.get(symbol, frame.drop(columns="symbol").iloc[:0]) for symbol in symbols}

    def _frame(self, query, columns: list[str] = CANDLE_COLUMNS) -> pd.DataFrame:
        with self.db.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).all(), columns=columns)
        for column in CANDLE_COLUMNS[1:]:
            frame[column] = frame[column].astype(float)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame

    def get_candle_count(self, symbol: str, timeframe: str | None = None) -> int:
        """Number of stored candles for a symbol (all timeframes unless one is given)."""
        query = select(func.count()).select_from(ohlcv_data).where(ohlcv_data.c.symbol == symbol)
        if timeframe:
            query = query.where(ohlcv_data.c.timeframe == timeframe)
        with self.db.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def candle_summary(self) -> list[dict]:
        """Per symbol and timeframe: count, first and last open time."""
        c = ohlcv_data.c
        query = (select(c.symbol, c.timeframe, func.count().label("candles"),
                        func.min(c.timestamp).label("first"), func.max(c.timestamp).label("last"))
                 .group_by(c.symbol, c.timeframe).order_by(c.symbol, c.timeframe))
        with self.db.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    # ---- repair -------------------------------------------------------------------------------
    def backfill_missing_data(self, symbol: str, gaps: list[Gap], fetcher: CandleSource | None = None,
                              timeframe: str = "1h") -> int:
        """Fetch each gap whole, however long; record the hours the exchange has passed but never
        published. Returns candles written."""
        fetcher = fetcher or self.fetcher
        if fetcher is None:
            raise ValueError("backfill_missing_data needs a fetcher (ExchangeDataFetcher)")
        step_ms = TIMEFRAME_MS[timeframe]
        total = 0
        for first_missing, last_missing in gaps:
            start_ms, end_ms = int(first_missing.timestamp() * 1000), int(last_missing.timestamp() * 1000)
            log.info("backfilling %s %s from %s to %s", symbol, timeframe, first_missing, last_missing)
            # One candle past the gap tells whether the exchange has moved beyond it.
            candles = fetcher.fetch_range(symbol, timeframe, start_ms, end_ms + step_ms)
            total += self.save_ohlcv_data(symbol, timeframe, candles)
            newest = ms_to_datetime(candles[-1][0]) if candles else None
            hours = (last_missing - first_missing) // timedelta(milliseconds=step_ms) + 1
            still = [run for run in self.check_data_gaps(symbol, timeframe, hours, end=last_missing)
                     if newest is not None and run[1] < newest]  # the exchange went past it: never published
            if still:
                log.warning("%s: exchange has no candles for %s", symbol,
                            ", ".join(f"{a:%Y-%m-%d %H:%M}..{b:%H:%M}" for a, b in still))
                self.record_exchange_gaps(symbol, timeframe, still)
        return total
