"""Alembic environment. The product calls it with a live connection in config.attributes["connection"];
the alembic CLI (alembic.ini at the project root) resolves the database from the product's Config."""
from alembic import context

from src.database.schema import metadata

config = context.config


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from src.database.connection import DatabaseConnection
    from src.utils.config import Config

    cfg = Config()
    db = DatabaseConnection(cfg.database_url, cfg.data_dir, cfg.get("database.timescaledb"))
    with db.engine.begin() as conn:
        config.attributes["timescaledb"] = db.timescaledb
        _run(conn)
