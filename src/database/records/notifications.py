"""What was sent: alert claims, Telegram reports and each attempt to send them."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, select, text, update
from sqlalchemy.dialects.postgresql import insert

from src.database.records.base import Records
from src.database.schema import alerts, telegram_attempts, telegram_reports
from src.utils.clock import utc_now


def _mark(conn: Connection, key: dict, state: str, error: str | None) -> None:
    c = alerts.c
    condition = [c.symbol == key["symbol"], c.timeframe == key["timeframe"], c.target_pct == key["target_pct"],
                 c.timestamp == key["timestamp"]]
    conn.execute(update(alerts).where(*condition).values(
        state=state, error_message=error, updated_at=utc_now(),
        attempts=c.attempts + (1 if state in ("sent", "failed") else 0)))


@dataclass
class TakenAlert:
    """An alert locked for one sender: `mark` writes its new state in the lock's transaction."""
    row: dict
    conn: Connection

    def mark(self, state: str, error: str | None = None) -> None:
        _mark(self.conn, self.row, state, error)


class NotificationRecords(Records):
    def claim_alert(self, row: dict) -> bool:
        """Record an alert (state pending) for (symbol, timeframe, target, hour) with its message; False when
        one was already claimed, so a crossing is recorded once however often the cycle runs."""
        with self.db.engine.begin() as conn:
            return conn.execute(insert(alerts).values(**row, state="pending").on_conflict_do_nothing()).rowcount == 1

    def unsent_alerts(self) -> pd.DataFrame:
        """Claimed alerts not yet taken by Telegram (pending or failed), oldest first: what a dry run shows.
        Reading them takes none; a sender takes each with take_alert."""
        c = alerts.c
        query = select(alerts).where(c.state.in_(["pending", "failed"])).order_by(c.timestamp, c.symbol, c.target_pct)
        with self.db.engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all(), columns=[col.name for col in c])

    @contextmanager
    def take_alert(self) -> Iterator[TakenAlert | None]:
        """The oldest alert waiting to be sent (pending or failed), locked for this sender until the block ends,
        or None. One sender wins each alert (FOR UPDATE SKIP LOCKED): the daemon and a manual `report` never send
        one twice. Its new state is written in the same transaction; a sender that dies mid-send releases it
        with its connection, so it is sent at the next run."""
        with self.db.engine.begin() as conn:
            row = conn.execute(text("""SELECT * FROM alerts WHERE state IN ('pending', 'failed')
                                       ORDER BY timestamp, symbol, target_pct LIMIT 1 FOR UPDATE SKIP LOCKED""")
                               ).mappings().first()
            yield None if row is None else TakenAlert(dict(row), conn)

    def mark_alert(self, key: dict, state: str, error: str | None = None) -> None:
        """An alert's new state after a try to send it (sent, failed with the error, expired with the reason)."""
        with self.db.engine.begin() as conn:
            _mark(conn, key, state, error)

    def alerts(self) -> pd.DataFrame:
        with self.db.engine.connect() as conn:
            return pd.DataFrame(conn.execute(select(alerts).order_by(alerts.c.timestamp)).mappings().all(),
                                columns=[col.name for col in alerts.c])

    def log_report(self, report_type: str, content: str, success: bool, error: str | None) -> int:
        """Record a report (its final state may be set later by finish_report); returns its id."""
        with self.db.engine.begin() as conn:
            return conn.execute(insert(telegram_reports).values(
                report_type=report_type, content=content, success=success, error_message=error, sent_at=utc_now())
                .returning(telegram_reports.c.id)).scalar_one()

    def log_attempt(self, report_id: int, attempt: int, method: str, error: str | None) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(insert(telegram_attempts).values(report_id=report_id, attempt=attempt, method=method,
                                                          status="failed" if error else "ok", error_message=error,
                                                          attempted_at=utc_now()))

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
