"""Load benchmark: /health's latency while 16 clients fetch the pages, against its latency idle, on the same run
and server (the daemon's: /health, /metrics and the pages, the pages on their bounded pool).

The pages run as the daemon runs them (health.page_process): in a process of their own at a lower priority, the
server forwarding them; `--in-process` serves them from the server's own threads instead, for comparison.
The record is two years of hourly forecasts for 3 assets x 3 targets, live and backtest (tests/long_record.py).
The clients loop on loopback, bounded in count and time: /record with changing parameters (each one a fresh
computation, as a crawler's would be), the whole backtest as CSV (refused at once: over the row cap), a month of
it as CSV, and /api/soon. A prober asks /health every 100 ms.

    python bench/load.py                         # 2 years, 16 clients for 30 s
    python bench/load.py --keep /tmp/loaddb      # keep the database for the next run
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.database.operations import DatabaseOperations  # noqa: E402
from src.database.records import RecordStore  # noqa: E402
from src.database.records.scores import settled_through  # noqa: E402
from src.models.live.moves import MoveForecaster  # noqa: E402
from src.models.live.registry import ModelRegistry  # noqa: E402
from src.monitoring.app import HealthServer, PageProxy, create_app  # noqa: E402
from src.monitoring.health import JobBoard, health_snapshot, live_skills  # noqa: E402
from src.scheduler.pages import PageProcess  # noqa: E402
from src.utils.config import Config  # noqa: E402
from src.web.pages import create_pages  # noqa: E402
from src.web.params import Site  # noqa: E402
from tests.long_record import open_long_record  # noqa: E402

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
TARGETS = [0.01, 0.02, 0.05]


def _get(url: str) -> tuple[float, int, float]:
    """(milliseconds, status, the Retry-After seconds asked for or 0)."""
    started = time.perf_counter()
    retry = 0.0
    try:
        with urllib.request.urlopen(url, timeout=120) as answer:
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as exc:
        exc.read()
        status, retry = exc.code, float(exc.headers.get("Retry-After") or 0)
    return (time.perf_counter() - started) * 1000, status, retry


def _probe(base: str, seconds: float, stop: threading.Event | None = None) -> list[float]:
    times, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        took, status, _ = _get(base + "/health")
        times.append(took if status in (200, 503) else float("inf"))
        time.sleep(0.1)
    return times


def _client(base: str, month: str, deadline: float, most: int, seen: Counter, lock: threading.Lock,
            polite: bool) -> None:
    """Up to `most` requests until `deadline`; `polite`: waits the Retry-After of a 503 (a browser or a crawler
    behind the README's nginx), else asks again at once (a loop that ignores it)."""
    rng = random.Random()
    for _ in range(most):
        if time.monotonic() > deadline:
            return
        path = rng.choice([f"/record?days={rng.randint(1, 730)}", f"/api/record?days={rng.randint(1, 730)}",
                           "/forecasts.csv?run=backtest", f"/forecasts.csv?run=backtest&{month}",
                           f"/api/soon?asset={rng.choice(['btc', 'eth', 'sol'])}&move={rng.choice([1, 2, 5])}"])
        _, status, retry = _get(base + path)
        with lock:
            seen[(path.split("?")[0] + (" (whole)" if path == "/forecasts.csv?run=backtest" else ""), status)] += 1
        if polite and retry:
            time.sleep(min(retry, max(0.0, deadline - time.monotonic())))


def _visit(base: str, month: str, clients: int, seconds: float, most: int, polite: bool, results) -> None:
    """The visitors, in a process of their own at the lowest priority: on this 2-core machine they stand in for
    people elsewhere, and their reading megabytes must not take the cores the service is measured on. Puts the
    answers seen on `results`."""
    os.nice(19)
    seen: Counter = Counter()
    lock, deadline = threading.Lock(), time.monotonic() + seconds
    threads = [threading.Thread(target=_client, args=(base, month, deadline, most, seen, lock, polite))
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(seen)


def _summary(label: str, times: list[float]) -> str:
    return (f"{label:<34} n {len(times):>4}   p50 {np.percentile(times, 50):7.1f} ms   "
            f"p95 {np.percentile(times, 95):7.1f} ms   max {max(times):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--requests", type=int, default=200, help="at most this many per client")
    parser.add_argument("--keep", type=Path, help="use (and keep) this folder for the database")
    parser.add_argument("--in-process", action="store_true", help="the pages in the server's process "
                        "(health.page_process: false)")
    parser.add_argument("--impolite", action="store_true", help="clients ignore Retry-After (a 503 flood)")
    parser.add_argument("--page-workers", type=int, default=4, help="health.page_workers")
    args = parser.parse_args()
    end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)
    folder = args.keep or Path(tempfile.mkdtemp())
    db = open_long_record(folder, SYMBOLS, TARGETS, args.days, end)
    try:
        records, ops = RecordStore(db), DatabaseOperations(db)
        for run in ("live", "backtest"):
            if records.stored_through(run) is None:  # the daily sums, as the daily job and the backtest store them
                records.refresh_day_scores(run, settled_through(end, 168), 168, full=True)
        print(f"{records.count('predictions'):,} predictions, {records.count('resolution_forecasts'):,} how-soon "
              f"forecasts")
        board = JobBoard()
        app = create_app(lambda: health_snapshot(ops, records, SYMBOLS, TARGETS, "1h", 2, "bench", board),
                         lambda: live_skills(records), board)
        moves = MoveForecaster(ops, records, ModelRegistry(records, folder / "models"), TARGETS)
        app.register_blueprint(create_pages(records, Site(SYMBOLS, TARGETS), None, moves))
        server = HealthServer(app, "127.0.0.1", 0, page_workers=args.page_workers)
        server.start()
        base = f"http://127.0.0.1:{server.port}"
        pages = None
        if not args.in_process:  # the daemon's way (health.page_process): the pages in their own process
            config_file = folder / "bench-config.yaml"
            config_file.write_text(yaml.safe_dump({"paths": {"data_dir": str(folder)},
                                                   "health": {"page_workers": args.page_workers}}))
            ready = threading.Event()
            pages = PageProcess(Config(config_file), base, lambda port: (server.route_pages(
                PageProxy("127.0.0.1", port)), ready.set()), lambda: None)
            pages.start()
            assert ready.wait(120), "the pages process did not start"
        month = f"start={(end - pd.Timedelta(days=30)):%Y-%m-%d}&end={end:%Y-%m-%d}"
        _probe(base, 2)  # warm connections and imports
        idle = _probe(base, args.seconds / 2)
        results = multiprocessing.get_context("spawn").Queue()
        visitors = multiprocessing.get_context("spawn").Process(target=_visit, args=(
            base, month, args.clients, args.seconds, args.requests, not args.impolite, results))
        visitors.start()
        loaded = _probe(base, args.seconds)
        seen = results.get(timeout=args.seconds * 3 + 600)
        visitors.join(timeout=60)
        if pages is not None:
            pages.stop()
        server.stop()
        print(f"\n/health, {args.clients} clients loading the pages for {args.seconds:.0f} s "
              f"({server.pool.workers} page workers {'in this process' if args.in_process else 'in their own process'}"
              f"; clients {'ignore' if args.impolite else 'honour'} Retry-After):")
        print(_summary("idle", idle))
        print(_summary("under load", loaded))
        print(f"p95 under load / idle: {np.percentile(loaded, 95) / np.percentile(idle, 95):.1f}x")
        print("\npage requests by answer:")
        for (path, status), count in sorted(seen.items()):
            print(f"  {path:<34} {status}  {count:>5}")
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
