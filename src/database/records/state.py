"""Working state: the feature cache of the live cycle, and why a group has no model or forecast."""
from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert

from src.database.records.base import Records
from src.database.schema import feature_cache, group_status
from src.utils.clock import utc_now


class StateRecords(Records):
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
                    set_={"reason": stmt.excluded.reason, "updated_at": utc_now()}))

    def group_stages(self, timeframe: str = "1h") -> dict[tuple[str, float], str]:
        """(symbol, target) -> the stage of its problem ('train' before 'predict' before 'model'): what a public
        page may say, where the reason itself may name a file or a host."""
        c = group_status.c
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(c.symbol, c.target_pct, c.stage).where(c.timeframe == timeframe)).all()
        order = {"train": 0, "predict": 1, "model": 2}
        out: dict[tuple[str, float], str] = {}
        for symbol, target, stage in sorted(rows, key=lambda r: -order.get(r[2], 3)):  # the first stage wins
            out[(symbol, float(target))] = stage
        return out

    def group_problems(self, timeframe: str = "1h", stage: str | None = None) -> dict[tuple[str, float], str]:
        """(symbol, target) -> why it has no model or forecast ('train', 'predict'), or serves an earlier model
        ('model'); the training reason first. `stage`: one stage's only."""
        c = group_status.c
        query = select(c.symbol, c.target_pct, c.stage, c.reason).where(c.timeframe == timeframe)
        if stage is not None:
            query = query.where(c.stage == stage)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(c.stage)).all()  # 'train' after 'predict': its reason wins
        out: dict[tuple[str, float], str] = {}
        for symbol, target, stage, reason in rows:
            out[(symbol, float(target))] = f"not trained: {reason}" if stage == "train" else reason
        return out
