"""The web pages in a process of their own beside the daemon: `python -m src.main web --daemon-url ...` at a lower
CPU priority, on a free loopback port, its answers forwarded by the daemon's server (monitoring.app.PageProxy).
The pages' work (bootstraps, charts, CSV, models) then never holds the daemon's interpreter lock, and /health
answers under a crowd of visitors as fast as idle. It follows the daemon: started after its server, stopped with
it, started again by the health job when it died (meanwhile the daemon serves the pages itself)."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from src.utils.config import Config

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
NICENESS = 19  # below the daemon's jobs and /health: the pages wait, the service does not
SERVING = "serving the track record on http://"
STOPPED_CODES = {-signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGINT}


class PageProcess:
    """`on_ready(port)`: called once the pages answer on `port`; `on_exit()`: called when the process ended."""

    def __init__(self, config: Config, daemon_url: str, on_ready: Callable[[int], None],
                 on_exit: Callable[[], None]) -> None:
        self.config, self.daemon_url = config, daemon_url
        self.on_ready, self.on_exit = on_ready, on_exit
        self.process: subprocess.Popen | None = None
        self._stopping = False

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "src.main", "web", "--host", "127.0.0.1", "--port", "0",
                   "--daemon-url", self.daemon_url, "--config", str(self.config.path)]
        if self.config.database_url == "embedded":  # the daemon's own folder, whatever the file says
            command += ["--data-dir", str(self.config.data_dir)]
        return command

    def start(self) -> None:
        self._stopping = False
        # its own session: a Ctrl-C or a signal to the daemon's process group is the daemon's to act on, and the
        # daemon stops the pages itself (they also end when the daemon is gone)
        self.process = subprocess.Popen(self.command(), cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                        text=True, start_new_session=True)
        try:
            os.setpriority(os.PRIO_PROCESS, self.process.pid, NICENESS)
        except OSError as exc:  # not allowed here: the pages run at the daemon's priority
            log.warning("pages process: priority not lowered (%s)", exc)
        threading.Thread(target=self._follow, args=(self.process,), name="pages-process", daemon=True).start()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _follow(self, process: subprocess.Popen) -> None:
        """Wait for its "serving" line (its port), then for its end."""
        started = time.monotonic()
        for line in process.stdout:  # type: ignore[union-attr]
            if line.startswith(SERVING):
                port = int(line[len(SERVING):].split("/")[0].rsplit(":", 1)[1])
                log.info("pages process %d serving on 127.0.0.1:%d (ready in %.1f s)", process.pid, port,
                         time.monotonic() - started)
                self.on_ready(port)
        code = process.wait()
        if not self._stopping:
            stopped = code in STOPPED_CODES  # a stop signal sent to it (a service manager stops every process)
            log.log(logging.INFO if stopped else logging.WARNING, "pages process %d ended (exit %s); the daemon "
                    "serves the pages until the health job starts it again", process.pid, code)
        self.on_exit()

    def stop(self, timeout: float = 3.0) -> None:
        self._stopping = True
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)
