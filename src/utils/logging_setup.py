"""Logging: console plus a rotating file, one format, and a filter that removes secrets from every line."""
from __future__ import annotations

import logging
import logging.handlers
import time
from pathlib import Path

from src.utils.secrets import redact, register_secret

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # UTC, whatever the host's TZ


class SecretFilter(logging.Filter):
    """Redacts registered secrets, anything shaped like a bot token, and URL passwords."""

    @classmethod
    def register(cls, *values: str) -> None:
        register_secret(*values)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call is the handler's to report; a filter must never raise
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup_logging(level: str = "INFO", logs_dir: Path | None = None, console: bool = True) -> None:
    """Configure the root logger once: level from config, console and logs/crypto_ml.log."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(level.upper())
    handlers: list[logging.Handler] = []
    if console:
        handlers.append(logging.StreamHandler())
    if logs_dir is not None:
        try:
            logs_dir.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.handlers.RotatingFileHandler(
                logs_dir / "crypto_ml.log", maxBytes=10_000_000, backupCount=5, encoding="utf-8"))
        except OSError as exc:
            logging.getLogger(__name__).warning("cannot write logs to %s (%s); console only", logs_dir, exc)
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(SecretFilter())
        root.addHandler(handler)
    # Libraries that log request URLs (which carry the bot token) or chatter at INFO.
    for noisy in ("httpx", "httpcore", "telegram", "pgserver", "urllib3", "ccxt", "matplotlib", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # a warning per request waiting for a thread: under a crowd the pool's 503s already say it, once per request
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
