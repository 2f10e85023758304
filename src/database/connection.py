"""Database connection: resolves the URL (embedded or postgresql://), owns the engine, runs migrations."""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from src.utils.config import PROJECT_ROOT, mask_url
from src.utils.errors import UserError

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
# Every session in UTC, whatever the server's or the host's time zone: timestamptz values then come back
# in UTC, and date_trunc / ::date work on UTC days.
UTC_SESSION = {"options": "-c timezone=UTC"}
MIGRATION_LOCK = 0x63726D6C  # "crml": the advisory lock key migrations hold


def normalize_url(url: str) -> str:
    """postgres:// and postgresql:// as users write them, with the psycopg2 driver the product ships."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def describe_url(url: str) -> str:
    """host:port/db for messages; the socket folder for the embedded server; never a password."""
    parts = urlsplit(url)
    if not parts.hostname:
        return f"embedded server{parts.path} ({parts.query.removeprefix('host=')})"
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


class DatabaseConnection:
    """One engine per URL. `database_url` may be 'embedded' (the default server under data_dir)."""

    def __init__(self, database_url: str, data_dir: Path | None = None, timescaledb: str = "auto",
                 compress_after_days: int = 30):
        self.timescaledb = timescaledb
        self.compress_after_days = compress_after_days
        if database_url == "embedded":
            from src.database.embedded import start_embedded
            database_url = start_embedded(data_dir or DEFAULT_DATA_DIR, timescaledb=timescaledb != "off")
        self.database_url = normalize_url(database_url)
        self.engine: Engine = create_engine(self.database_url, pool_size=5, max_overflow=5,
                                            pool_pre_ping=True, echo=False, connect_args=UTC_SESSION)
        self.SessionLocal = sessionmaker(bind=self.engine)

    @property
    def safe_url(self) -> str:
        return mask_url(self.database_url)

    def sessions_at_my_priority(self) -> None:
        """Give each new session's server process (on this machine only) this process's CPU priority: a process
        that runs at a lower one (the pages beside the daemon) then does not load the machine through its
        queries either. A server elsewhere, or a process not ours to change, is left as it is."""
        mine = os.getpriority(os.PRIO_PROCESS, 0)

        @event.listens_for(self.engine, "connect")
        def _match(dbapi_connection, _record) -> None:
            host = dbapi_connection.info.host or ""
            if not (host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")):
                return  # another machine's process id means nothing here
            with dbapi_connection.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                backend = cur.fetchone()[0]
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, backend, mine)

    def create_tables(self) -> None:
        """Bring the schema to the newest revision (Alembic). Safe to run again."""
        self.migrate("head")

    def migrate(self, revision: str = "head", downgrade: bool = False) -> None:
        """Run migrations in one transaction, holding an advisory lock so that processes starting at once
        (three `init-db`, or `backfill` beside `import-csv`) migrate one after the other."""
        cfg = self.alembic_config()
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            (command.downgrade if downgrade else command.upgrade)(cfg, revision)

    def alembic_config(self) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["timescaledb"] = self.timescaledb
        cfg.attributes["compress_after_days"] = self.compress_after_days
        return cfg

    def schema_is_current(self) -> bool:
        """Whether the schema is at the newest revision this code knows (no write needed to read it)."""
        from alembic.script import ScriptDirectory
        return self.schema_revision() == ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def schema_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def convert_to_hypertables(self) -> str:
        """Make a schema built on plain PostgreSQL use TimescaleDB now that it is available (existing rows
        are moved into chunks, in one transaction). Returns what happened: 'converted', 'already',
        'unavailable' (the extension is not installed), 'not preloaded' (installed, its library not loaded: see
        NOT_PRELOADED) or 'off' (database.timescaledb: off)."""
        from src.database.migrations.timescale import hypertable_statements, is_hypertable, not_preloaded
        if self.timescaledb == "off":
            return "off"
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            if is_hypertable(conn, "ohlcv_data"):
                return "already"
            if not conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar():
                return "unavailable"
            if not_preloaded(conn):
                return "not preloaded"
            for statement in hypertable_statements(self.compress_after_days):
                conn.execute(text(statement))
        return "converted"

    def has_timescaledb(self) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar())

    def test_connection(self) -> bool:
        """Test database connectivity."""
        try:
            self.check()
            return True
        except UserError as exc:
            log.error("%s", exc)
            return False

    def check(self) -> None:
        """Raise UserError with the host, port and what to do when the server cannot be reached."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no answer"
            raise UserError(f"database at {describe_url(self.database_url)} is unreachable ({reason}); "
                            "start it or fix DATABASE_URL / database.url") from None
        except SQLAlchemyError as exc:
            raise UserError(f"database at {describe_url(self.database_url)}: {exc.__class__.__name__}") from None

    def get_session(self) -> Session:
        """Get database session."""
        return self.SessionLocal()

    def dispose(self) -> None:
        self.engine.dispose()
