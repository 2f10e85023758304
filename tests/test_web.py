"""The web pages over a stored record (60 days of hourly forecasts for 3 assets x 3 targets, live and backtest), through
Flask's test client: numbers checked against the database and against scoring.py; every kind of bad input gets a
400 naming the parameter; security headers; nothing is written (the pages run on a read-only connection); the
`web` command serves them from the database alone. The real-browser checks are in test_browser.py."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flask import Flask

from src.database.connection import DatabaseConnection
from src.database.records import RecordStore
from src.database.records.browse import ForecastFilter
from src.database.records.scores import settled_through
from src.models.evaluation.record import track_record
from src.models.evaluation.scoring import CHAMPION, DIRECTION_ROWS, TIMING_ROWS, score_rows
from src.models.evaluation.time_metrics import interval_text
from src.utils.candles import last_closed_before
from src.utils.clock import FrozenClock, use_clock
from src.web.pages import create_pages
from tests.stored_site import ASSETS, SITE, TARGETS

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.host_tz  # pages show times: UTC whatever the host's zone
READ_ONLY = "options=-c%20default_transaction_read_only%3Don"


@pytest.fixture
def client(site_db):
    """The pages on a read-only connection to the stored record: any write would fail the request. The clock is
    held in the hour after the record's newest candle closed (its ages do not move if the hour turns meanwhile)."""
    read_only = DatabaseConnection(site_db.database_url + ("&" if "?" in site_db.database_url else "?") + READ_ONLY)
    app = Flask("test_web")
    health = {"problems": ["BTC/USDT data stale"], "public_problems": ["BTC/USDT: candles late"]}
    app.register_blueprint(create_pages(RecordStore(read_only), SITE, lambda: (health, False)))
    newest = pd.Timestamp(RecordStore(site_db).newest_forecast_time("live")).tz_convert("UTC")
    with use_clock(FrozenClock(newest + pd.Timedelta(hours=1, minutes=5))):
        yield app.test_client(), RecordStore(site_db)
    read_only.dispose()


def _scored(kind, rows, as_of=None):
    return score_rows(kind, rows, 168, as_of, interval=True, series=CHAMPION).set_index(["symbol", "target_pct"])


@pytest.mark.parametrize("stored", [True, False], ids=["stored-days", "summed-from-forecasts"])
def test_the_track_records_figures_are_the_scorings(site_db, stored):
    """/record's daily sums (stored, or summed from the forecasts) give scoring.py's figures on the same rows: n,
    Brier skill, its 95 % interval, coverage; each reliability diagram counts every forecast once."""
    records = RecordStore(site_db)
    if not stored:
        with site_db.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM day_scores; DELETE FROM day_scores_through")
    newest = records.newest_forecast_day("live")
    now = pd.Timestamp.now(tz="UTC")  # what was known now: the newest windows are open
    by_day, by_bin = records.record_sums("live", newest - timedelta(days=400), newest, 168, as_of=now)
    table = track_record(by_day, by_bin, 168)
    direction = _scored(DIRECTION_ROWS, records.resolved("live"))
    timing = _scored(TIMING_ROWS, records.resolved_time("live", include_pending=True), now)
    assert len(direction) == len(timing) == 8 and set(table) == set(direction.index) | {("all", None)}
    for key in direction.index:
        up, soon = table[key]["up"], table[key]["within_24h"]
        assert up.n == direction.loc[key, "n"] and soon.n == timing.loc[key, "n"]
        assert up.skill == pytest.approx(direction.loc[key, "brier_skill"])
        assert soon.skill == pytest.approx(timing.loc[key, "brier_skill_24h"])
        assert soon.coverage == pytest.approx(timing.loc[key, "interval_coverage"])
        assert soon.claimed == pytest.approx(timing.loc[key, "interval_claimed"])
        assert (up.skill_low, up.skill_high) == pytest.approx((direction.loc[key, "skill_low"],
                                                               direction.loc[key, "skill_high"]))
        assert (soon.skill_low, soon.skill_high) == pytest.approx((timing.loc[key, "skill_low"],
                                                                   timing.loc[key, "skill_high"]))
        assert sum(n for _, _, n in up.reliability) == up.n == sum(up.sharpness)
        assert up.climatology_share == 0 and soon.climatology_share == 0  # xgboost and survival served
        assert all(n >= 20 for _, _, n in up.reliability) and len(up.reliability) <= 10
    everything = table[("all", None)]["up"]
    assert everything.n == direction["n"].sum()


def test_day_scores_are_refreshed_idempotently_and_catch_late_outcomes(site_db):
    records = RecordStore(site_db)
    end = last_closed_before(pd.Timestamp.now(tz="UTC"))
    through = settled_through(end, 168)
    records.refresh_day_scores("live", through, 168, full=True)
    before = pd.read_sql("SELECT * FROM day_scores ORDER BY 1, 2, 3, 4, 5, 6, 7", site_db.engine)
    assert records.refresh_day_scores("live", through, 168) > 0  # the last days summed again: the same rows
    pd.testing.assert_frame_equal(before, pd.read_sql("SELECT * FROM day_scores ORDER BY 1, 2, 3, 4, 5, 6, 7",
                                                      site_db.engine))
    late = pd.Timestamp(through, tz="UTC") - pd.Timedelta(days=20, hours=-12)  # an outcome 3 weeks late (an outage)
    with site_db.engine.begin() as conn:
        conn.exec_driver_sql("""UPDATE prediction_outcomes SET actual_outcome = 1 - actual_outcome,
                                    status = CASE status WHEN 'up' THEN 'down' ELSE 'up' END
                                WHERE prediction_id IN (SELECT id FROM predictions WHERE run_type = 'live'
                                    AND symbol = 'BTC/USDT' AND timestamp = %s)""", (late,))
    records.refresh_day_scores("live", through, 168)
    after = pd.read_sql("SELECT * FROM day_scores ORDER BY 1, 2, 3, 4, 5, 6, 7", site_db.engine)
    changed = before.round(6).merge(after.round(6), how="outer", indicator=True).query("_merge != 'both'")
    assert len(changed) and set(changed["day"]) == {late.date()}


def test_now_shows_each_groups_newest_forecast_from_the_database(client):
    http, records = client
    page = http.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    body = page.get_data(as_text=True)
    direction, timing = records.newest_forecasts([(a, t) for a in ASSETS for t in TARGETS])
    for r in direction.itertuples():
        card = _card(body, r.symbol.split("/")[0], r.target_pct)
        assert f"P(up) <b>{r.probability:.0%}</b>" in card and f"candle {r.timestamp:%Y-%m-%d %H:%M} UTC" in card
        t = timing[(timing["symbol"] == r.symbol) & np.isclose(timing["target_pct"], r.target_pct)].iloc[0]
        assert f"P(24 h) <b>{t.p_24h:.0%}</b>" in card
        assert interval_text(t.q10_hours, t.q90_hours, 168) in card  # labelled by what it claims
    assert "STALE: 3 h old" in _card(body, "ETH", 0.01) and "STALE" not in _card(body, "BTC", 0.01)
    assert "No forecast: not trained yet" in _card(body, "SOL", 0.05)
    assert "Unhealthy: BTC/USDT: candles late" in body


def test_public_pages_say_what_failed_not_where(site_db):
    """A failed cycle's exception and a group's stored reason can name a host, an address or a file: `/` and
    `/models` show a fixed category; /health keeps the detail for the operator."""
    import psycopg2
    from sqlalchemy.exc import OperationalError

    from src.database.operations import DatabaseOperations
    from src.monitoring.health import JobBoard, health_snapshot
    from src.utils.errors import problem_category
    records = RecordStore(site_db)
    records.record_group_problems("train", "1h", {("SOL/USDT", 0.05): "OSError: [Errno 13] /srv/secret/models/x"}, [])
    board = JobBoard()
    host = "could not connect to server at db.internal.example (10.9.8.7), port 5432"
    exc = OperationalError("SELECT 1", {}, psycopg2.OperationalError(host))
    board.record("hourly", 0.0, f"OperationalError: {host}", category=problem_category(exc))
    report, healthy = health_snapshot(DatabaseOperations(site_db), records, ASSETS, TARGETS, "1h", 10**6, "t", board)
    assert not healthy and any("10.9.8.7" in p for p in report["problems"])  # the operator's detail
    app = Flask("test_public")
    app.register_blueprint(create_pages(records, SITE, lambda: (report, healthy)))
    http = app.test_client()
    for path in ("/", "/models"):
        body = http.get(path).get_data(as_text=True)
        assert "10.9.8.7" not in body and "db.internal" not in body and "/srv/secret" not in body, path
    now = http.get("/").get_data(as_text=True)
    assert "last hourly cycle failed: database unreachable" in now and "not trained yet" in now
    assert problem_category(ValueError("x")) == "internal error"


def _card(body: str, asset: str, target: float) -> str:
    start = body.index(f"<h2>{asset} <span class=\"target\">{target * 100:g} %</span></h2>")
    return body[start:body.index("</section>", start)]


def test_record_shows_live_beside_backtest_with_intervals_and_charts(client):
    http, records = client
    body = http.get("/record").get_data(as_text=True)
    newest = records.newest_forecast_day("backtest")
    by_day, _ = records.record_sums("backtest", newest - timedelta(days=400), newest, 168, bins=False)
    btc = track_record(by_day, None, 168)[("BTC/USDT", 0.02)]["within_24h"]
    row = body[body.index("BTC 2 %</th>"):]
    row = row[:row.index("</tbody>")]
    assert f"{btc.skill:+.3f}" in row and f"[{btc.skill_low:+.3f}, {btc.skill_high:+.3f}]" in row
    assert ">live<" in row and ">backtest<" in row
    assert "counted once" in body and "whole weeks of days" in body  # how overlapping windows are counted
    assert body.count("<svg") == 6 and "reliability (live, all assets)" in body
    one = http.get("/record?asset=eth&target=5%25&run=backtest&days=30").get_data(as_text=True)
    assert "ETH 5 %</th>" in one and "BTC 1 %</th>" not in one and "reliability (backtest, ETH)" in one


def test_record_says_plainly_when_direction_serves_the_base_rate(site_db, client):
    http, _ = client
    with site_db.engine.begin() as conn:  # climatology served every hour
        conn.exec_driver_sql("UPDATE predictions SET is_champion = model_name = 'climatology'")
        conn.exec_driver_sql("DELETE FROM day_scores; DELETE FROM day_scores_through")
    body = http.get("/record").get_data(as_text=True)
    assert "Direction serves the base rate here: climatology made 100% of these forecasts" in body
    assert "Direction: running skill" not in body and body.count('<span class="tag">base rate</span>') == 2 * 9 + 1
    assert "How soon: running skill" in body  # how soon leads, with its skill over time


def test_forecasts_page_filters_and_paginates_newest_first(client):
    http, records = client
    first = http.get("/forecasts?asset=btc&target=0.01").get_data(as_text=True)
    hour = r'<td><span class="year">(\d{4}-)</span>(\d\d-\d\d \d\d:\d\d)</td>'  # the year is hidden on phones
    stamps = ["".join(t) for t in re.findall(hour + "<td>BTC</td><td>1 %</td>", first)]
    newest = records.browse(ForecastFilter(symbol="BTC/USDT", target=0.01), 100)
    assert stamps == [f"{t:%Y-%m-%d %H:%M}" for t in newest["timestamp"]] and len(stamps) == 100
    assert 'rel="next"' in first and 'rel="prev"' not in first
    second = http.get("/forecasts?asset=btc&target=0.01&page=2").get_data(as_text=True)
    assert "".join(re.findall(hour, second)[0]) < stamps[-1]
    pending = http.get("/forecasts?status=pending&model=logistic").get_data(as_text=True)
    assert set(re.findall(r'<td class="wide">(\w+)</td>\s*<td>\d+%</td>', pending)) == {"logistic"}
    assert set(re.findall(r'<tr class="(\w+)">', pending)) == {"pending"}
    window = http.get("/forecasts?start=2000-01-01&end=2000-01-31").get_data(as_text=True)
    assert "No forecast matches these filters" in window


def test_csv_and_api_hold_every_matching_forecast(client, site_db):
    http, records = client
    answer = http.get("/forecasts.csv?asset=ETH/USDT&target=2%25&status=up")
    assert answer.mimetype == "text/csv" and "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    with site_db.engine.connect() as conn:
        expected = conn.exec_driver_sql("""SELECT count(*) FROM predictions p JOIN prediction_outcomes o
            ON o.prediction_id = p.id WHERE p.run_type = 'live' AND p.is_champion AND p.symbol = 'ETH/USDT'
            AND p.target_pct = 0.02 AND o.status = 'up'""").scalar()
    assert len(rows) == expected > 500 and {r["status"] for r in rows} == {"up"}
    api = json.loads(http.get("/api/forecasts?asset=eth&target=2&status=up&limit=1000&offset=10").data)
    assert api["count"] == min(1000, len(rows) - 10) and api["offset"] == 10
    assert [f["timestamp"] for f in api["forecasts"][:3]] == [r["timestamp"] for r in rows[10:13]]
    assert api["forecasts"][0]["probability"] == pytest.approx(float(rows[10]["probability"]))


def test_models_page_lists_champions_and_their_history(client):
    http, records = client
    body = http.get("/models").get_data(as_text=True)
    champions = records.models(champions_only=True, task="resolution")
    how_soon = body[:body.index("<h2>Direction")]
    served = dict(re.findall(r'<th scope="row">(\w+ \d %)</th>\s*<td>(\w+)</td>', how_soon))
    assert len(champions) == 8 and served == {f"{r.symbol.split('/')[0]} {r.target_pct * 100:g} %": "survival"
                                              for r in champions.itertuples()}
    assert "no model: not trained yet" in body  # SOL 5 %, no direction champion either (the why: /health)
    assert "fits</summary>" in body


BAD = [
    ("/forecasts?asset=DOGE", "asset: unknown asset DOGE: BTC, ETH, SOL"),
    ("/forecasts?target=3", "target=3 %: 1 %, 2 %, 5 %"),
    ("/forecasts?model=lstm", "model=lstm: champion, climatology, logistic, xgboost"),
    ("/forecasts?status=won", "status=won: up, down, expired, pending"),
    ("/forecasts?start=2023-13-45", "start=2023-13-45: a date as 2023-11-01"),
    ("/forecasts?end=yesterday", "end=yesterday: a date"),
    ("/forecasts?start=2023-02-01&end=2023-01-01", "start must be before end"),
    ("/forecasts?page=0", "page=0: a whole number from 1 to 50"),
    ("/forecasts?page=51", "narrow with start and end"),
    ("/forecasts?run=paper", "run=paper: live, backtest"),
    ("/record?days=abc", "days=abc: a whole number from 1 to 3,650"),
    ("/record?asset=btc&target=0.03", "target=0.03 %"),
    ("/forecasts.csv?asset=%3Cscript%3E", "unknown asset &lt;script&gt;"),
    ("/api/forecasts?limit=-1", "limit=-1: a whole number from 1 to 1,000"),
    ("/api/forecasts?limit=100000", "limit=100000: a whole number from 1 to 1,000"),
    ("/api/forecasts?offset=x", "offset=x: a whole number from 0 to 5,000"),
]


@pytest.mark.parametrize("path, message", BAD, ids=[p for p, _ in BAD])
def test_bad_parameters_get_400_naming_the_parameter_and_the_choices(client, path, message):
    http, _ = client
    answer = http.get(path)
    assert answer.status_code == 400
    body = answer.get_data(as_text=True)
    if path.startswith("/api/"):
        assert answer.mimetype == "application/json" and message in json.loads(body)["error"]
    else:
        assert answer.mimetype == "text/html" and message in body and "<script>" not in body
    assert "Traceback" not in body


def test_every_page_sends_the_security_headers(client):
    http, _ = client
    for path in ("/", "/record", "/forecasts", "/forecasts.csv?asset=btc", "/api/forecasts", "/models",
                 "/forecasts?page=0", "/assets/style.css"):
        answer = http.get(path)
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'"), path
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert http.get("/assets/style.css").mimetype == "text/css"


def test_web_command_serves_the_pages_from_the_database_alone(site_db, write_config):
    """`python -m src.main web` on a read-only connection (as on a replica): the pages answer, times in UTC
    whatever TZ says, and SIGTERM ends it."""
    url = site_db.database_url + ("&" if "?" in site_db.database_url else "?") + READ_ONLY
    free_port = _free_port()
    config = write_config({"database": {"url": url}, "trading": {"assets": ASSETS}})
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRYPTO_ML_CONFIG")}
    process = subprocess.Popen([sys.executable, "-m", "src.main", "web", "--port", str(free_port), "--config",
                                str(config)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        serving = f"serving the track record on http://127.0.0.1:{free_port}/"
        lines = [process.stdout.readline()]
        while serving not in lines[-1] and lines[-1] and len(lines) < 20:  # maybe after a log line or two
            lines.append(process.stdout.readline())
        assert serving in lines[-1], (lines, process.poll() is not None and process.stderr.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{free_port}/", timeout=60) as answer:
            body = answer.read().decode()
        newest = RecordStore(site_db).newest_forecasts([("BTC/USDT", 0.01)])[0]["timestamp"].iloc[0]
        assert f"candle {newest:%Y-%m-%d %H:%M} UTC" in body
        for path in ("/record", "/forecasts?asset=sol", "/models"):
            with urllib.request.urlopen(f"http://127.0.0.1:{free_port}{path}", timeout=60) as answer:
                assert answer.status == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_web_command_refuses_a_schema_that_is_not_current(empty_db_url, write_config, run_cli):
    config = write_config({"database": {"url": empty_db_url}})
    done = run_cli("web", "--port", "1", "--config", str(config))
    assert done.returncode == 1 and "run `python -m src.main init-db`" in done.stderr


def test_the_record_is_computed_once_until_it_changes(site_db):
    """/record and /api/record share one computation per set of parameters until new forecasts are written, the
    daily sums change or the hour turns."""
    records = RecordStore(site_db)
    pages = create_pages(records, SITE)
    app = Flask("cache")
    app.register_blueprint(pages)
    http, cache = app.test_client(), pages.record_cache
    first = http.get("/record?asset=btc").get_data(as_text=True)
    api = json.loads(http.get("/api/record?asset=BTC/USDT").data)
    assert (cache.misses, cache.hits) == (1, 1) and "live" in api["runs"]
    assert http.get("/record?asset=btc").get_data(as_text=True) == first and cache.hits == 2
    http.get("/record?asset=eth")
    assert cache.misses == 2  # other parameters: computed on their own
    with site_db.engine.begin() as conn:  # the hourly cycle writes a forecast: the record has changed
        conn.exec_driver_sql("INSERT INTO predictions (run_type, symbol, timeframe, target_pct, timestamp, model_name, "
                             "model_version, feature_version, is_champion, prediction_class, probability, confidence, "
                             "entry_price) VALUES ('live', 'BTC/USDT', '1h', 0.01, now() + interval '1 day', "
                             "'xgboost', 'v', 'f', false, 1, 0.6, 0.6, 1)")
    http.get("/record?asset=btc")
    assert cache.misses == 3
    records.forget_day_scores("backtest")  # and so have the stored sums
    http.get("/record?asset=btc")
    assert cache.misses == 4


def test_the_csv_download_is_capped_and_says_how_to_narrow_it(client, monkeypatch):
    from src.web import params
    http, records = client
    monkeypatch.setattr(params, "MAX_CSV_ROWS", 500)
    refused = http.get("/forecasts.csv?asset=btc&target=1")
    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert "at most 500 forecasts" in text and "start and end" in text
    newest = records.browse(ForecastFilter(symbol="BTC/USDT", target=0.01), 1)["timestamp"].iloc[0]
    start = (pd.Timestamp(newest) - pd.Timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")
    narrowed = http.get(f"/forecasts.csv?asset=btc&target=1&start={start}")
    rows = list(csv.DictReader(io.StringIO(narrowed.get_data(as_text=True))))
    assert narrowed.status_code == 200 and 100 < len(rows) <= 500
    assert "at most 500: narrow with start and end" in http.get("/forecasts").get_data(as_text=True)


def test_the_daily_job_stores_the_sums_a_stopped_backtest_left_missing(site_db, write_config):
    """A backtest killed half-way leaves its run without daily sums (every page would sum it from the forecasts):
    the daily job stores them again, equal to the full refresh."""
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config
    records = RecordStore(site_db)
    now = pd.Timestamp(records.newest_forecast_time("live")) + pd.Timedelta(hours=1, minutes=15)
    with site_db.engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT count(*), sum(n) FROM day_scores WHERE run_type = 'backtest'").one()
    records.forget_day_scores("backtest")
    assert records.runs_without_sums() == ["backtest"]
    daemon = Daemon(Context(Config(write_config({"database": {"url": site_db.database_url},
                                                 "trading": {"assets": ASSETS, "target_percentages": TARGETS}}))))
    assert daemon._restore_missing_sums(now) > 0
    with site_db.engine.connect() as conn:
        after = conn.exec_driver_sql("SELECT count(*), sum(n) FROM day_scores WHERE run_type = 'backtest'").one()
    assert tuple(after) == tuple(before) and records.runs_without_sums() == []


def test_missing_values_are_null_in_the_json_never_nan(client):
    """A pending forecast has no outcome and no hours to its target: JSON null, which every parser reads (NaN is
    not JSON)."""
    http, _ = client
    text = http.get("/api/forecasts?status=pending&limit=50").get_data(as_text=True)

    def refuse(constant: str):
        raise AssertionError(f"{constant} in the JSON")
    forecasts = json.loads(text, parse_constant=refuse)["forecasts"]
    assert forecasts and all(f["status"] is None and f["time_to_target_hours"] is None for f in forecasts)
