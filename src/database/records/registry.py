"""Model registry rows: one per fitted model, with its champion history (promoted, retired)."""
from __future__ import annotations

import pandas as pd
from sqlalchemy import String, cast, delete, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by, distinct_on, insert

from src.database.records.base import Records
from src.database.schema import model_registry
from src.utils.clock import utc_now


def _registry_frame(rows) -> pd.DataFrame:
    """model_registry rows as a frame: targets as floats, times as UTC timestamps."""
    frame = pd.DataFrame(rows, columns=[col.name for col in model_registry.c])
    frame["target_pct"] = frame["target_pct"].astype(float)
    for column in ("train_start", "train_end", "promoted_at", "retired_at", "created_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


class RegistryRecords(Records):
    def add_model(self, row: dict) -> None:
        """One fitted model's row, created now on the service's clock (a replay's models are of its time)."""
        with self.db.engine.begin() as conn:
            conn.execute(insert(model_registry).values(**({"created_at": utc_now()} | row)))

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

    def train_ends(self) -> dict[str, pd.Timestamp]:
        """Every registered version's training end (its cut)."""
        c = model_registry.c
        with self.db.engine.connect() as conn:
            return {v: pd.Timestamp(t).tz_convert("UTC") for v, t in conn.execute(select(c.version, c.train_end))}

    def champion_rows(self, timeframe: str = "1h") -> list[dict]:
        """The champion of every asset x target x task (symbol, target_pct as float, task, model_name, version,
        train_end): plain rows, for the health check that runs on every scrape."""
        c = model_registry.c
        query = (select(c.symbol, c.target_pct, c.task, c.model_name, c.version, c.train_end)
                 .where(c.timeframe == timeframe, c.is_champion).order_by(c.symbol, c.target_pct, c.task))
        with self.db.engine.connect() as conn:
            return [{**row, "target_pct": float(row["target_pct"])} for row in conn.execute(query).mappings()]

    def newest_model_time(self, timeframe: str = "1h") -> pd.Timestamp | None:
        """When the newest model was registered (the last training or retrain)."""
        with self.db.engine.connect() as conn:
            newest = conn.execute(select(func.max(model_registry.c.created_at))
                                  .where(model_registry.c.timeframe == timeframe)).scalar()
        return None if newest is None else pd.Timestamp(newest)

    def current_models(self, timeframe: str = "1h", symbol: str | None = None, target: float | None = None,
                       task: str | None = None) -> pd.DataFrame:
        """Of every asset x target x task (or the one given): the newest row of each model name, and the champion
        row. Read through idx_model_registry_current, so it costs the same however long the history has grown."""
        c = model_registry.c
        where = [c.timeframe == timeframe, *([c.symbol == symbol] if symbol else []),
                 *([c.target_pct == target] if target is not None else []), *([c.task == task] if task else [])]
        newest = (select(model_registry).where(*where)
                  .ext(distinct_on(c.symbol, c.target_pct, c.task, c.model_name))
                  .order_by(c.symbol, c.target_pct, c.task, c.model_name, c.created_at.desc(), c.id.desc()))
        champions = select(model_registry).where(*where, c.is_champion)
        with self.db.engine.connect() as conn:
            rows = [*conn.execute(newest).mappings().all(), *conn.execute(champions).mappings().all()]
        return _registry_frame(rows)

    def registry_state(self, timeframe: str = "1h") -> tuple:
        """A value that changes whenever a row of the timeframe is added, removed, promoted or retired: the rows'
        count, id sum and newest id (ids only grow, so no add-and-remove leaves all three), and the champions'
        ids. One read of the small registry table."""
        c = model_registry.c
        query = select(func.count(), func.sum(c.id), func.max(c.id),
                       func.string_agg(cast(c.id, String), aggregate_order_by(literal_column("','"), c.id))
                       .filter(c.is_champion)).where(c.timeframe == timeframe)
        with self.db.engine.connect() as conn:
            return tuple(conn.execute(query).one())

    def model_row(self, version: str) -> dict | None:
        """One registry row by its version (a unique index), or None."""
        with self.db.engine.connect() as conn:
            row = conn.execute(select(model_registry).where(model_registry.c.version == version)).mappings().first()
        return None if row is None else dict(row)

    def model_history(self, task: str, per_group: int, timeframe: str = "1h") -> pd.DataFrame:
        """The newest `per_group` rows of each asset x target of one task and its champion, newest first (the
        /models page)."""
        c = model_registry.c
        ranked = select(model_registry, func.row_number().over(
            partition_by=[c.symbol, c.target_pct], order_by=[c.created_at.desc(), c.id.desc()]).label("rank")
        ).where(c.timeframe == timeframe, c.task == task).subquery()
        query = select(*[ranked.c[col.name] for col in c]).where((ranked.c.rank <= per_group) | ranked.c.is_champion)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(ranked.c.created_at.desc(), ranked.c.id.desc())).mappings().all()
        return _registry_frame(rows)

    def model_versions(self) -> set[str]:
        """Every version the registry names (any asset, task or timeframe)."""
        with self.db.engine.connect() as conn:
            return set(conn.execute(select(model_registry.c.version)).scalars())

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
                c.task == row.task, c.is_champion).values(is_champion=False, retired_at=utc_now()))
            conn.execute(update(model_registry).where(c.version == version).values(
                is_champion=True, promoted_at=utc_now(), retired_at=None))
