"""The record of the product's work, one module per area: the model registry (registry), forecasts and
their outcomes (forecasts), performance metrics (performance), what was sent (notifications), the working
state of the live cycle (state: feature cache, why a group is down), the track record's daily sums (scores),
every forecast for people to browse (browse), and the removal of rows past their age (retention). `rows`
builds the rows the forecast tables take, for the live cycle and the backtest alike.

RecordStore is every area on one connection, so callers hold one object."""
from __future__ import annotations

from src.database.records.browse import BrowseRecords
from src.database.records.forecasts import ForecastRecords
from src.database.records.notifications import NotificationRecords
from src.database.records.performance import PerformanceRecords
from src.database.records.registry import RegistryRecords
from src.database.records.retention import RetentionRecords
from src.database.records.scores import ScoreRecords
from src.database.records.state import StateRecords


class RecordStore(RegistryRecords, ForecastRecords, PerformanceRecords, NotificationRecords, StateRecords,
                  ScoreRecords, BrowseRecords, RetentionRecords):
    """Every area of the record on one database connection."""


__all__ = ["RecordStore"]
