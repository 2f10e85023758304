"""Gap repair: find missing candles, fetch them, and leave alone the hours the exchange never published."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import pandas as pd

from src.data.fetcher import ExchangeDataFetcher, FetchError
from src.database.operations import EXCHANGE_GAP_RETRY, DatabaseOperations, Gap
from src.utils.clock import utc_now
from src.utils.config import TIMEFRAME_MS
from src.utils.errors import UserError

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


def partition_gaps(gaps: list[Gap], known: pd.DataFrame,
                   checked_since: datetime | None = None) -> tuple[list[Gap], list[Gap]]:
    """Split gaps into (to repair, known unfillable): a run inside a recorded exchange gap (checked
    after `checked_since`, when given) is one the exchange never published."""
    if checked_since is not None and len(known):
        known = known[known["last_checked_at"] > checked_since]
    spans = list(zip(known["gap_start"], known["gap_end"])) if len(known) else []
    unfillable = [g for g in gaps if any(s <= g[0] and g[1] <= e for s, e in spans)]
    return [g for g in gaps if g not in unfillable], unfillable


class DataRecoveryManager:
    def __init__(self, db_operations: DatabaseOperations, data_fetcher: ExchangeDataFetcher,
                 timeframe: str = "1h"):
        self.db = db_operations
        self.fetcher = data_fetcher
        self.timeframe = timeframe

    def fillable_gaps(self, symbol: str, hours_back: int) -> list[Gap]:
        gaps = self.db.check_data_gaps(symbol, self.timeframe, hours_back)
        known = self.db.get_exchange_gaps(symbol, self.timeframe)
        # an unfillable run is asked again at most once a day
        return partition_gaps(gaps, known, utc_now() - EXCHANGE_GAP_RETRY)[0]

    def check_and_recover_all_symbols(self, symbols: list[str], hours_back: int = 168) -> dict[str, int]:
        """Find and fill gaps for every symbol; one failing symbol does not stop the others.
        Returns candles recovered per symbol (-1 where recovery failed)."""
        results: dict[str, int] = {}
        for symbol in symbols:
            try:
                gaps = self.fillable_gaps(symbol, hours_back)
                results[symbol] = self.db.backfill_missing_data(symbol, gaps, self.fetcher, self.timeframe) \
                    if gaps else 0
                log.info("%s: %d gaps, %d candles recovered", symbol, len(gaps), results[symbol])
            except FetchError as exc:
                results[symbol] = -1
                if exc.unreachable:  # every other asset would wait through the same retries
                    log.error("candle recovery stopped: %s", exc)
                    results |= {other: -1 for other in symbols if other not in results}
                    break
                log.error("%s: recovery failed: %s", symbol, exc)
            except UserError as exc:
                log.error("%s: recovery failed: %s", symbol, exc)
                results[symbol] = -1
        if any(n > 0 for n in results.values()):
            self.db.refresh_recent_view()
        return results

    def ensure_minimum_data_coverage(self, symbol: str, min_hours: int = 168,
                                     progress: Progress | None = None) -> bool:
        """Make sure the last `min_hours` candles are stored, fetching only what is missing.
        Returns True when the exchange has now given everything it has for that window."""
        step = timedelta(milliseconds=TIMEFRAME_MS[self.timeframe])
        written = 0
        # Fetch history in chunks from the oldest missing hour, so an interrupted backfill resumes.
        chunks = self._missing_chunks(symbol, min_hours)
        if progress:  # hours already stored count as done
            progress(min_hours - sum((b - a) // step + 1 for a, b in chunks))
        for first_missing, last_missing in chunks:
            written += self.db.backfill_missing_data(symbol, [(first_missing, last_missing)], self.fetcher,
                                                     self.timeframe)
            if progress:
                progress((last_missing - first_missing) // step + 1)
        if written:
            self.db.refresh_recent_view()
        log.info("%s: %d candles written for %d hours of coverage", symbol, written, min_hours)
        return not self.fillable_gaps(symbol, min_hours)

    def _missing_chunks(self, symbol: str, hours: int) -> list[Gap]:
        """Gaps to fetch, split into pieces of at most 30 days so progress and resumption are fine-grained."""
        gaps = self.fillable_gaps(symbol, hours)
        step = timedelta(milliseconds=TIMEFRAME_MS[self.timeframe])
        chunk = step * 24 * 30
        pieces: list[Gap] = []
        for a, b in gaps:
            while a <= b:
                pieces.append((a, min(b, a + chunk - step)))
                a += chunk
        return pieces
