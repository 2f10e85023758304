"""The pages, as a Flask blueprint: each view parses its parameters (params.py, 400 on bad input), asks the
records for plain data, and renders a template; charts are SVG drawn here. No view writes anything."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import timedelta

import numpy as np
import pandas as pd
from flask import Blueprint, Response, current_app, render_template, request, stream_with_context, url_for

from src.database.records import RecordStore
from src.database.records.browse import BROWSE_COLUMNS, CHAMPION, STATUSES
from src.models.evaluation.record import BASE_RATE_SHARE, EventRecord, running_skill, track_record
from src.models.evaluation.time_metrics import hours_text, interval_text
from src.models.live.moves import MoveForecaster
from src.utils.candles import last_closed_before
from src.utils.choices import BadInput, asset_names, short_name
from src.utils.clock import utc_now
from src.utils.errors import UserError
from src.web import charts, params
from src.web.cache import RecordCache, SoonCache
from src.web.params import PAGE_SIZE, RUNS, Site

Health = Callable[[], tuple[dict, bool]]
SECURITY_HEADERS = {
    # the charts are inline SVG styled by our stylesheet: nothing inline needs allowing
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PUBLIC_REASONS = {"train": "not trained yet", "predict": "no forecast this hour",
                  "model": "model could not be loaded; an earlier one serves"}  # the detail: log, /health, status
MODEL_HISTORY = 60  # fits shown per group on /models, newest first (the registry keeps more)
EVENTS = {"within_24h": ("How soon", "P(resolved within 24 h)"), "up": ("Direction", "P(up first)")}


def create_pages(records: RecordStore, site: Site, health: Health | None = None,
                 moves: MoveForecaster | None = None) -> Blueprint:
    """The blueprint of every page; `health`: the service's health snapshot for `/` (None: no verdict shown);
    `moves`: answers /api/soon (None: the configured targets' stored forecasts only)."""
    pages = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/assets")
    pages.record_cache = record_cache = RecordCache(records.record_version)  # type: ignore[attr-defined]
    pages.soon_cache = soon_cache = SoonCache()  # type: ignore[attr-defined]

    def shown_record():
        """The record of this request's parameters, computed once until the record changes."""
        chosen = (params.asset(request.args, site), params.target(request.args, site), params.run(request.args),
                  params.days(request.args))
        return record_cache.get(chosen, lambda: _record(records, site, *chosen))

    _register_formatting(pages, site.horizon)

    @pages.after_app_request
    def secure(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    @pages.app_errorhandler(BadInput)
    def bad_input(exc: BadInput):
        if request.path.startswith("/api/"):
            return Response(json.dumps({"error": str(exc)}), 400, mimetype="application/json")
        return render_template("error.html", message=str(exc), site=site), 400

    @pages.get("/")
    def now_page():
        return render_template("now.html", site=site, **_now(records, site, health))

    @pages.get("/record")
    def record_page():
        return render_template("record.html", site=site, **shown_record())

    @pages.get("/api/record")
    def record_api():
        """The /record figures as JSON: per run and group (and 'all'), per event, the skill with its 95 % interval
        (null with too_few when the sample is too small), n, the base rate, and the interval's coverage beside the
        share the intervals claimed (0.8 closed, 0.9 open)."""
        return current_app.response_class(json.dumps(_record_json(shown_record())), mimetype="application/json")

    @pages.get("/forecasts")
    def forecasts_page():
        models = records.model_names()
        chosen = params.forecast_filter(request.args, site, models)
        page = params.page(request.args)
        rows = records.browse(chosen, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
        query = {k: v for k, v in request.args.items() if k in params.KNOWN and k != "page" and v.strip()}
        return render_template("forecasts.html", site=site, rows=rows.head(PAGE_SIZE), page=page,
                               more=len(rows) > PAGE_SIZE, last_page=params.MAX_PAGE, query=query, chosen=chosen,
                               models=[CHAMPION, *models], statuses=STATUSES, runs=RUNS,
                               max_csv_rows=params.MAX_CSV_ROWS)

    @pages.get("/forecasts.csv")
    def forecasts_csv():
        chosen = params.forecast_filter(request.args, site, records.model_names())
        if records.count_matching(chosen, params.MAX_CSV_ROWS + 1) > params.MAX_CSV_ROWS:
            raise BadInput(f"the CSV holds at most {params.MAX_CSV_ROWS:,} forecasts and these filters match more: "
                           "narrow them with start and end (e.g. a month: start=2023-11-01&end=2023-11-30), asset, "
                           "target or model")
        headers = {"Content-Disposition": "attachment; filename=forecasts.csv"}
        return Response(stream_with_context(_csv(records, chosen)), mimetype="text/csv", headers=headers)

    @pages.get("/api/forecasts")
    def forecasts_api():
        chosen = params.forecast_filter(request.args, site, records.model_names())
        limit, offset = params.limit_offset(request.args)
        rows = records.browse(chosen, limit, offset)
        return current_app.response_class(json.dumps({"limit": limit, "offset": offset, "count": len(rows),
                                                      "forecasts": _json_rows(rows)}), mimetype="application/json")

    @pages.get("/api/soon")
    def soon_api():
        """How soon a move of any size comes for one asset, from its newest candle."""
        symbol = params.asset(request.args, site)
        if symbol is None:
            raise BadInput(f"asset: required, one of {asset_names(site.assets)}")
        size = params.move(request.args)
        try:
            if moves is None:
                raise UserError("this server answers from the records only, without the models")
            answer = soon_cache.get(symbol, size, lambda: moves.forecast(symbol, size, utc_now()))
        except UserError as exc:
            return Response(json.dumps({"error": str(exc)}), 404, mimetype="application/json")
        return current_app.response_class(json.dumps(answer.as_dict()), mimetype="application/json")

    @pages.get("/models")
    def models_page():
        return render_template("models.html", site=site, tasks=_models(records, site))

    return pages


# ---- now -------------------------------------------------------------------------------------------
def _now(records: RecordStore, site: Site, health: Health | None) -> dict:
    groups = [(a, t) for a in site.assets for t in site.targets]
    direction, timing = records.newest_forecasts(groups)
    problems = _public_reasons(records)
    closed = last_closed_before(utc_now())
    newest = {(r.symbol, round(r.target_pct, 6)): r for r in direction.itertuples()}
    timed = {(r.symbol, round(r.target_pct, 6), r.timestamp): r for r in timing.itertuples()}
    rows = []
    for symbol, target in groups:
        r = newest.get((symbol, round(target, 6)))
        if r is None:
            rows.append({"symbol": symbol, "target": target, "missing": problems.get((symbol, target),
                                                                                     "no forecast yet")})
            continue
        hour = pd.Timestamp(r.timestamp)
        rows.append({"symbol": symbol, "target": target, "hour": hour, "p_up": r.probability, "model": r.model_name,
                     "stale_hours": int((closed - hour) / pd.Timedelta(hours=1)),
                     "timing": timed.get((symbol, round(target, 6), r.timestamp))})
    report, healthy = (health() if health else (None, None))
    return {"rows": rows, "healthy": healthy, "now": utc_now(),
            "problems": [] if report is None else report.get("public_problems", [])}


def _public_reasons(records: RecordStore) -> dict[tuple[str, float], str]:
    """Why a group has no model or forecast, in fixed words: the stored reason can name a file or a host."""
    return {key: PUBLIC_REASONS.get(stage, "not available") for key, stage in records.group_stages().items()}


# ---- record ----------------------------------------------------------------------------------------
def _record(records: RecordStore, site: Site, asset: str | None, target: float | None, run: str,
            days: int | None) -> dict:
    runs, tables = {}, {}
    for kind in RUNS:
        newest = records.newest_forecast_day(kind)
        first = None if newest is None else newest - timedelta(days=(days or params.MAX_DAYS) - 1)
        by_day, by_bin = (records.record_sums(kind, first, newest, site.horizon, asset, bins=kind == run) if newest
                          else (pd.DataFrame(), None))
        if target is not None and len(by_day):
            by_day = by_day[np.isclose(by_day["target_pct"], target)]
            by_bin = None if by_bin is None else by_bin[np.isclose(by_bin["target_pct"], target)]
        runs[kind] = (by_day, by_bin)
        tables[kind] = track_record(by_day, by_bin, site.horizon) if len(by_day) else {}
    keys = sorted({k for table in tables.values() for k in table if k[0] != "all"}) + [("all", None)]
    shown = runs[run][0]
    periods = {k: (d["day"].min(), d["day"].max()) if len(d) else (None, None) for k, (d, _) in runs.items()}
    shown_runs = [k for k in RUNS if k == run or periods[k][0] is not None] or [run]  # runs with a record
    return {"keys": keys, "tables": tables, "run": run, "runs": shown_runs, "days": days, "asset": asset,
            "target": target, "periods": periods, "base_rate_share": BASE_RATE_SHARE,
            "charts": _record_charts(shown, tables[run].get(("all", None)), run, asset),
            "base_rate_only": _base_rate_only(tables[run]), "events": EVENTS}


def _record_json(shown: dict) -> dict:
    """The record's tables as plain JSON (floats, nulls for figures not shown)."""
    def figures(e) -> dict:
        return {"n": e.n, "skill": e.skill, "skill_low": e.skill_low, "skill_high": e.skill_high,
                "too_few": e.too_few, "base_rate": e.base_rate, "coverage": e.coverage, "coverage_claimed": e.claimed}
    runs = {}
    for run, table in shown["tables"].items():
        first, last = shown["periods"][run]
        runs[run] = {"first_day": None if first is None else f"{first:%Y-%m-%d}",
                     "last_day": None if last is None else f"{last:%Y-%m-%d}",
                     "groups": [{"asset": symbol, "target": target,
                                 **{event: figures(e) for event, e in events.items()}}
                                for (symbol, target), events in table.items()]}
    return {"days": shown["days"], "asset": shown["asset"], "target": shown["target"], "runs": runs}


def _base_rate_only(table: dict) -> bool:
    """True when climatology made (nearly) all the direction forecasts users got: their skill is 0 by construction."""
    everything = table.get(("all", None), {}).get("up")
    return bool(everything and everything.n and everything.climatology_share >= BASE_RATE_SHARE)


def _record_charts(by_day: pd.DataFrame, scope: dict[str, EventRecord] | None, run: str, asset: str | None) -> dict:
    """Per event: reliability, sharpness and running skill (one line per target) of the shown scope."""
    if scope is None:
        return {}
    where = f"{run}, {short_name(asset) if asset else 'all assets'}"
    out = {}
    for event, (label, forecast) in EVENTS.items():
        mine = by_day[by_day["event"] == event]
        lines = [(f"{t * 100:g} % target", running_skill(g)) for t, g in mine.groupby("target_pct")]
        out[event] = {
            "reliability": charts.reliability_chart(scope[event].reliability, f"{label}: reliability ({where})",
                                                    f"forecast {forecast}"),
            "sharpness": charts.sharpness_chart(scope[event].sharpness, f"{label}: how the forecasts spread",
                                                f"forecast {forecast}"),
            "running": charts.running_chart(lines, f"{label}: running skill ({where})")}
    return out


# ---- forecasts ---------------------------------------------------------------------------------------
def _csv(records: RecordStore, chosen) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(BROWSE_COLUMNS)
    yield buffer.getvalue()
    for frame in records.browse_all(chosen):
        buffer.seek(0)
        buffer.truncate()
        frame = _iso_times(frame)
        writer.writerows(frame.astype(object).where(frame.notna(), "").itertuples(index=False))
        yield buffer.getvalue()


def _iso_times(rows: pd.DataFrame) -> pd.DataFrame:
    """The forecast hours as ISO 8601 text (UTC), for the CSV and the JSON alike."""
    return rows.assign(timestamp=rows["timestamp"].map(lambda t: pd.Timestamp(t).isoformat()))


def _json_rows(rows: pd.DataFrame) -> list[dict]:
    rows = _iso_times(rows)
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in rows.astype(object).to_dict("records")]


# ---- models ------------------------------------------------------------------------------------------
def _models(records: RecordStore, site: Site) -> list[dict]:
    problems = _public_reasons(records)
    out = []
    for task, skill_key, label in (("resolution", "brier_skill_24h", "How soon (P within 24 h)"),
                                   ("direction", "brier_skill", "Direction (P up first)")):
        rows = records.model_history(task, MODEL_HISTORY)
        fits: dict[tuple[str, float], list[dict]] = {}
        for r in rows.itertuples():
            fits.setdefault((r.symbol, round(float(r.target_pct), 6)), []).append({
                "name": r.model_name, "version": r.version, "trained_to": r.train_end, "champion": bool(r.is_champion),
                "skill": (r.metrics or {}).get(skill_key),
                "since": r.promoted_at if pd.notna(r.promoted_at) else r.created_at})
        groups = []
        for symbol in site.assets:
            for target in site.targets:
                history = fits.get((symbol, round(target, 6)), [])
                champion = next((h for h in history if h["champion"]), None)
                groups.append({"symbol": symbol, "target": target, "champion": champion,
                               "since": champion and champion["since"], "history": history,
                               "problem": problems.get((symbol, target), "not trained yet")})
        out.append({"label": label, "groups": groups})
    return out


# ---- formatting for the templates -------------------------------------------------------------------
def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def pct(value, digits: int = 0) -> str:
    return "–" if _missing(value) else f"{value:.{digits}%}"


def skill(value) -> str:
    return "–" if _missing(value) else f"{value:+.3f}"


def hours(value, horizon: int | None = None) -> str:
    """A quantile's hours; one at the cap H lies past the window: "168+"."""
    if _missing(value):
        return "–"
    return hours_text(value, horizon)


def interval(q10, q90, horizon: int) -> str:
    """The how-soon interval as it claims: "80 %: a–b h", or "90 %: after a h" when its 90 % point lies past H."""
    return "–" if _missing(q10) or _missing(q90) else interval_text(q10, q90, horizon)


def utc(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"


def target_text(value) -> str:
    return "all" if value is None else f"{value * 100:g} %"


def page_url(endpoint: str, query: dict, **changes) -> str:
    """The URL of `endpoint` with the current filters, some changed."""
    return url_for(endpoint, **{**query, **changes})


def _register_formatting(pages: Blueprint, horizon: int) -> None:
    for name, function in {"pct": pct, "skill": skill, "hours": hours, "quantile_hours": lambda v: hours(v, horizon),
                           "utc": utc, "target": target_text,
                           "short": short_name}.items():
        pages.add_app_template_filter(function, name)
    pages.add_app_template_global(page_url, "page_url")
    pages.add_app_template_global(lambda q10, q90: interval(q10, q90, horizon), "interval")
    pages.add_app_template_global(asset_names, "asset_names")
