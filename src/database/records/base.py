"""What every area of the record shares: the database connection."""
from __future__ import annotations

from sqlalchemy import text

from src.database.connection import DatabaseConnection


class Records:
    def __init__(self, db: DatabaseConnection):
        self.db = db

    def count(self, table: str) -> int:
        with self.db.engine.connect() as conn:
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608 (fixed names)
