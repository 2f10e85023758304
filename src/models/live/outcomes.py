"""Outcome tracking: resolve every pending live prediction that the candles up to T decide, with the same
label function as training. Undecided ones stay pending; a window with a missing hour is resolved only
when that hour is recorded as one the exchange never published."""
from __future__ import annotations

import logging
import time

import pandas as pd

from src.data.history import unfillable_hours
from src.data.labels import barrier_outcomes
from src.database.operations import DatabaseOperations
from src.database.records import RecordStore
from src.database.records.rows import outcome_rows
from src.utils.candles import last_closed_before
from src.utils.clock import service_run

log = logging.getLogger(__name__)


def resolve_outcomes(ops: DatabaseOperations, records: RecordStore, at: pd.Timestamp, horizon: int = 168,
                     run_type: str | None = None, since: pd.Timestamp | None = None) -> int:
    """Write outcomes for the pending predictions decided by candles closed by `at`; returns rows written.
    `since`: only entries from that hour (the open windows; the hourly cycle's bounded read), else all."""
    run_type = run_type or service_run()
    started = time.perf_counter()
    pending = records.pending_entries(run_type, since)
    newest = last_closed_before(at)
    decided = []
    for (symbol, timeframe), group in pending.groupby(["symbol", "timeframe"]):
        candles = ops.get_candles(symbol, timeframe, group["timestamp"].min(), newest)
        if candles.empty:
            continue
        unfillable = unfillable_hours(ops, symbol, timeframe)
        for target, entries in group.groupby("target_pct"):
            outcomes = barrier_outcomes(candles, float(target), horizon, as_of=newest, unfillable=unfillable,
                                        entries=pd.DatetimeIndex(entries["timestamp"]))
            decided.append(outcome_rows(symbol, timeframe, float(target), outcomes))  # the pending ones left out
    # one statement for every group (one transaction, one round trip)
    written = records.save_outcomes(pd.concat(decided, ignore_index=True), run_type) if decided else 0
    log.info("outcomes as of %s (%s): %d pending entries, %d outcome rows written, %.0f ms", newest,
             "all entries" if since is None else f"entries from {since:%Y-%m-%d %H:%M}", len(pending),
             written, (time.perf_counter() - started) * 1000)
    return written
