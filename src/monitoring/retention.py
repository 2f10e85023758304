"""Retention: what a service left running for years removes each day so that nothing grows without end (the
`retention:` settings). Applied by the daily job and by `python -m src.main maintain`."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from src.database.records import RecordStore
from src.models.live.registry import ModelRegistry
from src.utils.config import Config

log = logging.getLogger(__name__)
# the tables vacuumed after rows of each kind went (a report's attempts go with it: ON DELETE CASCADE)
VACUUMED = {"system_health rows": "system_health", "telegram_reports rows": "telegram_reports",
            "retired model rows": "model_registry", "feature_cache rows": "feature_cache"}
CHART_PATTERN = "daily-*.png"  # the daily report's charts (daily-YYYYMMDD.png): the newest sort last


@dataclass(frozen=True)
class RetentionSettings:
    feature_cache_days: int = 7
    health_days: int = 90
    report_texts_days: int = 90
    daily_charts: int = 30
    retired_champions: int = 7

    @classmethod
    def from_config(cls, config: Config) -> RetentionSettings:
        return cls(**{name: config.get(f"retention.{name}") for name in cls.__dataclass_fields__})


def apply_retention(records: RecordStore, registry: ModelRegistry, reports_dir: Path, settings: RetentionSettings,
                    at: pd.Timestamp) -> dict[str, int]:
    """Remove, as of `at`, every row and file past its age; returns how many of each went. One kind failing is
    logged and the others still run."""
    day = pd.Timedelta(days=1)
    steps = {
        "feature_cache rows": lambda: records.remove_feature_cache(at - settings.feature_cache_days * day),
        "system_health rows": lambda: records.remove_health_rows(at - settings.health_days * day),
        "telegram_reports rows": lambda: records.remove_report_texts(at - settings.report_texts_days * day),
        "retired model rows": lambda: registry.remove_retired(settings.retired_champions),
        "daily charts": lambda: remove_old_charts(reports_dir, settings.daily_charts),
    }
    removed = {}
    for kind, step in steps.items():
        try:
            removed[kind] = step()
        except Exception as exc:  # one kind failing must not keep the others growing
            log.error("retention: %s not removed (%s: %s)", kind, type(exc).__name__, exc)
    emptied = [table for kind, table in VACUUMED.items() if removed.get(kind)]
    emptied += ["telegram_attempts"] if "telegram_reports" in emptied else []
    try:
        records.vacuum(emptied)
    except Exception as exc:  # autovacuum gets there later
        log.warning("retention: VACUUM of %s not run (%s)", ", ".join(emptied), exc)
    return removed


def remove_old_charts(folder: Path, keep: int) -> int:
    """The daily charts beyond the newest `keep` (by the date in their names); other files are never touched."""
    charts = sorted(p for p in folder.glob(CHART_PATTERN) if p.is_file()) if folder.is_dir() else []
    for chart in charts[:-keep]:
        chart.unlink(missing_ok=True)
    return len(charts[:-keep])
