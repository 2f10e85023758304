"""Monitoring that works in Prometheus and Grafana: every metric the alert rules and the dashboard query is
exported, with the labels they use, none of them Prometheus's own `job`; counts are counters."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from src.monitoring.app import Metrics

ROOT = Path(__file__).resolve().parents[1]
REPORT = {"database": {"reachable": True}, "data": {"BTC/USDT": {"candles_last_7_days": 10, "age_hours": 1.0}},
          "jobs": {"hourly": {"runs": 5, "failures": 1, "last_duration_s": 0.3, "consecutive_failures": 0,
                              "last_counts": {"predictions": 27}}},
          "models": {"champions": 9}, "forecasts": {}}
SKILLS = {("BTC/USDT", "0.01", "direction"): 0.01, ("BTC/USDT", "0.01", "24h"): 0.3,
          ("BTC/USDT", "0.01", "coverage"): 0.8, ("BTC/USDT", "0.01", "claimed"): 0.82}


def _exported() -> dict[str, tuple[str, set[str]]]:
    """Sample name -> (type, label names) as Prometheus would scrape them."""
    text = Metrics().refresh(REPORT, True, SKILLS).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, (family.type, set()))[1].update(sample.labels)
    return out


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert rule and dashboard panel, with the panel's legend."""
    rules = yaml.safe_load((ROOT / "monitoring" / "alert_rules.yml").read_text())
    found = [(r["alert"], r["expr"] + " " + r.get("annotations", {}).get("summary", ""))
             for group in rules["groups"] for r in group["rules"]]
    dashboard = json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())
    found += [(panel["title"], t["expr"] + " " + t.get("legendFormat", ""))
              for panel in dashboard["panels"] for t in panel["targets"]]
    return found


def test_rules_and_dashboard_query_only_exported_metrics_and_labels():
    exported = _exported()
    for where, query in _queries():
        names = set(re.findall(r"\bcrypto_ml_[a-z0-9_]+", query))
        for name in names:
            assert name in exported, f"{where}: {name} is not exported"
        used = set(re.findall(r"{{\s*\$?(?:labels\.)?([a-z_]+)\s*}}", query)) - {"value"}
        available = set().union(*(exported[n][1] for n in names)) if names else {"job", "instance"}
        assert used <= available, f"{where}: labels {used - available} not on {names}"


def test_no_exported_label_clashes_with_prometheus_target_labels_and_counts_are_counters():
    exported = _exported()
    assert all(not ({"job", "instance"} & labels) for _, labels in exported.values())
    assert exported["crypto_ml_job_runs_total"][0] == "counter"
    assert exported["crypto_ml_live_resolution_skill"][1] == {"symbol", "target", "horizon"}


def test_alert_rules_are_well_formed():
    rules = yaml.safe_load((ROOT / "monitoring" / "alert_rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s"))


def test_the_image_leaves_out_environments_data_and_secrets():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", "logs", ".env", ".git"} <= set(ignored)


def test_the_health_server_stops_at_once_even_with_a_kept_alive_connection():
    """Closed from its own loop thread: no select() on a closed socket (a traceback at every stop, seen under
    load), and an open keep-alive connection does not hold the loop for the join's 5 s."""
    import http.client
    import time

    from flask import Flask

    from src.monitoring.app import HealthServer
    app = Flask("probe")
    app.get("/health")(lambda: "ok")
    server = HealthServer(app, "127.0.0.1", 0)
    server.start()
    client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    client.request("GET", "/health")
    assert client.getresponse().read() == b"ok"  # the connection stays open
    started = time.perf_counter()
    server.stop()
    assert not server.thread.is_alive() and time.perf_counter() - started < 3
    client.close()


def test_a_job_error_is_shown_redacted():
    from src.monitoring.health import JobBoard
    board = JobBoard()
    board.record("hourly", 0.0, "OperationalError: could not connect to postgresql://bob:S3cretPw@db:5432/x")
    shown = json.dumps(board.snapshot())
    assert "S3cretPw" not in shown and "postgresql://bob:***@db" in shown


def test_pages_run_on_their_own_bounded_pool_and_never_starve_health():
    """Two page workers held by slow pages (a download, a long /record): the next page gets 503 with Retry-After at
    once, /health and /metrics answer meanwhile; a worker is free again once its response is closed, a streamed
    one after its last byte."""
    import threading
    import time
    import urllib.error
    import urllib.request

    from flask import Flask, Response, stream_with_context

    from src.monitoring.app import RETRY_AFTER_SECONDS, HealthServer
    release = threading.Event()
    app = Flask("pool")
    app.add_url_rule("/health", "health", lambda: "ok")
    app.add_url_rule("/slow", "slow", lambda: (release.wait(60), "done")[1])
    app.add_url_rule("/stream", "stream", lambda: Response(stream_with_context(iter([b"a" * 10, b"b" * 10]))))
    server = HealthServer(app, "127.0.0.1", 0, page_workers=2)
    server.start()
    base = f"http://127.0.0.1:{server.port}"

    def get(path: str) -> tuple[int, bytes, dict]:
        try:
            with urllib.request.urlopen(base + path, timeout=30) as answer:
                return answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    try:
        assert get("/stream")[:2] == (200, b"a" * 10 + b"b" * 10)
        assert server.pool._free._value == 2  # noqa: SLF001 (released after the streamed body was closed)
        held = [threading.Thread(target=get, args=("/slow",)) for _ in range(2)]
        for thread in held:
            thread.start()
        deadline = time.monotonic() + 30
        while server.pool._free._value:  # noqa: SLF001
            assert time.monotonic() < deadline, "the slow pages never started"
            time.sleep(0.02)
        started = time.perf_counter()
        status, body, headers = get("/stream")
        assert status == 503 and headers["Retry-After"] == str(RETRY_AFTER_SECONDS) and b"try again" in body
        assert time.perf_counter() - started < 5  # at once, not queued behind the slow pages
        for _ in range(5):
            assert get("/health")[:2] == (200, b"ok")
        assert server.pool.turned_away == 1
        release.set()
        for thread in held:
            thread.join(timeout=30)
        assert get("/slow")[:2] == (200, b"done")
    finally:
        release.set()
        server.stop()


def test_the_compose_file_gives_the_daemon_time_to_stop():
    """Docker kills at 10 s unless told otherwise; the daemon may take its job's safe point, the bot's and the
    pages' stops (daemon.STOP_GRACE_SECONDS + 2 + 5 s)."""
    from pathlib import Path

    import yaml

    from src.scheduler.daemon import STOP_GRACE_SECONDS
    compose = yaml.safe_load((Path(__file__).resolve().parents[1] / "docker-compose.dev.yml").read_text())
    grace = compose["services"]["app"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) >= STOP_GRACE_SECONDS + 2 + 5 + 5  # and a margin
