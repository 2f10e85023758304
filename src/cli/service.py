"""Commands that run the service or look at it: run (the daemon), health, demo."""
from __future__ import annotations

import argparse

from src.scheduler.services import Context


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    from src.scheduler.daemon import Daemon
    return Daemon(ctx).run()


def cmd_health(args: argparse.Namespace, ctx: Context) -> int:
    """The daemon's /health when it runs; else the same checks made here (without job history)."""
    import json
    health = ctx.config.config["health"]
    url = f"http://{health['host']}:{health['port']}"
    report, healthy = _daemon_health(url) or (None, False)
    if report is None:
        from src.monitoring.health import health_snapshot
        report, healthy = health_snapshot(ctx.ops, ctx.records, ctx.config.assets, ctx.config.target_percentages,
                                          ctx.config.timeframe, health["stale_after_hours"],
                                          ctx.config.get("app.version"))
        report["source"] = f"cli (daemon not reachable at {url}/health)"
    print(json.dumps(report, indent=2, default=str))
    return 0 if healthy else 3


def cmd_demo(args: argparse.Namespace, ctx: Context) -> int:
    from src.scheduler.demo import run_demo
    return run_demo(ctx.config, ctx.config.data_dir / "demo")


def cmd_replay(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    import pandas as pd

    from src.scheduler.replay import run_replay
    return run_replay(ctx.config, pd.Timestamp(args.start), pd.Timestamp(args.end), args.source,
                      Path(args.keep).resolve() if args.keep else None, args.database, args.port)


def cmd_web(args: argparse.Namespace, ctx: Context) -> int:
    """The pages alone, from the database (a second machine, a read replica): nothing is written. With
    `--daemon-url`, the pages of that daemon, in a process of its own (scheduler/pages.py): `/` shows the daemon's
    health verdict, and it ends when the daemon does."""
    import threading

    from cachetools.func import ttl_cache
    from flask import Flask

    from src.monitoring.app import SNAPSHOT_CACHE_SECONDS, HealthServer
    from src.monitoring.health import health_snapshot
    records = ctx.read_records()
    health = ctx.config.config["health"]
    if args.daemon_url:  # the daemon's pages, at its lower priority: their queries too
        records.db.sessions_at_my_priority()
        records.db.engine.dispose()  # sessions opened before (the schema check) go: the next ones are matched

    @ttl_cache(maxsize=1, ttl=SNAPSHOT_CACHE_SECONDS)
    def snapshot() -> tuple[dict, bool]:
        if args.daemon_url:
            return _daemon_health(args.daemon_url) or ({"problems": ["daemon unreachable"],
                                                        "public_problems": ["service unreachable"]}, False)
        return health_snapshot(ctx.ops, records, ctx.config.assets, ctx.config.target_percentages,
                               ctx.config.timeframe, health["stale_after_hours"], ctx.config.get("app.version"))

    app = Flask("crypto_ml_web")
    app.register_blueprint(ctx.pages(records, snapshot))
    port = args.port if args.port is not None else health["port"]
    server = HealthServer(app, args.host or health["host"], port, "--port (and --host)",
                          page_workers=health["page_workers"])
    server.start()
    if args.daemon_url:
        _end_with_parent()
    print(f"serving the track record on http://{server.server.effective_host}:{server.port}/ (Ctrl-C stops)",
          flush=True)
    try:
        threading.Event().wait()  # until a stop signal unwinds this thread
    finally:
        server.stop()
    return 0


def _daemon_health(url: str) -> tuple[dict, bool] | None:
    """The /health of the daemon at `url` (HTTP 503 carries the report too), or None when it does not answer."""
    import json
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=5) as answer:
            return json.loads(answer.read()), True
    except urllib.error.HTTPError as err:
        return json.loads(err.read() or b"{}"), False
    except OSError:
        return None


def _end_with_parent() -> None:
    """A thread that stops this process (SIGTERM to itself) once the process that started it has gone: a daemon
    killed outright must not leave its pages serving."""
    import os
    import signal
    import threading
    import time
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
