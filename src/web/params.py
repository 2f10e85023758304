"""Query parameters read as a person types them (asset=btc, target=2%, start=2023-11-01), checked in one place
before any query. A bad one raises BadInput naming the parameter and the valid values: HTTP 400."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from src.database.records.browse import CHAMPION, STATUSES, ForecastFilter
from src.database.records.scores import RUN_TYPES
from src.models.estimators.any_size import parse_move
from src.utils.choices import BadInput, parse_asset, parse_target
from src.utils.clock import service_run

RUNS = RUN_TYPES
PAGE_SIZE = 100
MAX_LIMIT = 1000
# how deep a page may start: each request skips at most this many rows (a deep OFFSET costs in proportion);
# older forecasts are reached with start/end, and the CSV has them all
MAX_SKIP = 5000
MAX_PAGE = MAX_SKIP // PAGE_SIZE
MAX_DAYS = 3650
MAX_CSV_ROWS = 50_000  # one download holds a page thread and a connection while it streams: a month of 60 groups
KNOWN = {"asset", "target", "run", "days", "model", "status", "start", "end", "page", "limit", "offset"}


@dataclass(frozen=True)
class Site:
    """What the pages serve: the configured assets and targets, and the forecast window in hours."""
    assets: list[str]
    targets: list[float]
    horizon: int = 168


def _one(args: Mapping[str, str], name: str) -> str | None:
    value = args.get(name)
    return None if value is None or not value.strip() else value.strip()


def _whole(args: Mapping[str, str], name: str, low: int, high: int, default: int | None, hint: str = ""
           ) -> int | None:
    text = _one(args, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise BadInput(f"{name}={text[:40]}: a whole number from {low} to {high:,}{hint}")
    return value


def _time(args: Mapping[str, str], name: str) -> pd.Timestamp | None:
    text = _one(args, name)
    if text is None:
        return None
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        stamp = None
    if stamp is None or pd.isna(stamp) or text[:1].isalpha():
        raise BadInput(f"{name}={text[:40]}: a date as 2023-11-01 or an ISO time as 2023-11-01T12:00Z")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def asset(args: Mapping[str, str], site: Site) -> str | None:
    text = _one(args, "asset")
    try:
        return None if text is None else parse_asset(text, site.assets)
    except BadInput as exc:
        raise BadInput(f"asset: {exc}") from None


def target(args: Mapping[str, str], site: Site) -> float | None:
    text = _one(args, "target")
    try:
        return None if text is None else parse_target(text, site.targets)
    except BadInput as exc:
        raise BadInput(f"{exc}".replace("target ", "target=", 1)) from None


def move(args: Mapping[str, str]) -> float:
    """`move`, required: a size in % from 0.5 to 10."""
    text = _one(args, "move")
    if text is None:
        raise BadInput("move: required, a size in % from 0.5 to 10, e.g. move=3.5")
    return parse_move(text)


def run(args: Mapping[str, str]) -> str:
    text = _one(args, "run") or service_run()
    if text.lower() not in RUNS:
        raise BadInput(f"run={text[:40]}: {', '.join(RUNS)}")
    return text.lower()


def days(args: Mapping[str, str]) -> int | None:
    """The last N days of the record (none: all of it)."""
    return _whole(args, "days", 1, MAX_DAYS, None)


OLDER = " (to reach older forecasts, narrow with start and end, or download the CSV)"


def page(args: Mapping[str, str]) -> int:
    return _whole(args, "page", 1, MAX_PAGE, 1, OLDER)


def limit_offset(args: Mapping[str, str]) -> tuple[int, int]:
    return _whole(args, "limit", 1, MAX_LIMIT, PAGE_SIZE), _whole(args, "offset", 0, MAX_SKIP, 0, OLDER)


def forecast_filter(args: Mapping[str, str], site: Site, models: list[str]) -> ForecastFilter:
    """The filters of /forecasts, its CSV and its API; `models`: the model names the registry knows."""
    model = _one(args, "model") or CHAMPION
    if model != CHAMPION and model not in models:
        raise BadInput(f"model={model[:40]}: {', '.join([CHAMPION, *models])}")
    status = _one(args, "status")
    if status is not None and status.lower() not in STATUSES:
        raise BadInput(f"status={status[:40]}: {', '.join(STATUSES)}")
    start, end = _time(args, "start"), _time(args, "end")
    if end is not None and len(_one(args, "end")) == len("2023-11-30"):
        end = end + pd.Timedelta(days=1)  # a date as the end includes that day
    if start is not None and end is not None and start >= end:
        raise BadInput("start must be before end")
    return ForecastFilter(run_type=run(args), symbol=asset(args, site), target=target(args, site), model=model,
                          status=None if status is None else status.lower(), start=start, end=end)
