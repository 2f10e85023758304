"""Logging: console plus a rotating file, one format, and a filter that removes secrets from every line."""
from __future__ import annotations

import logging
import logging.handlers
import re
import time
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # UTC, whatever the host's TZ
# Telegram bot tokens look like 123456:ABC-xyz; python-telegram-bot and httpx put them in URLs.
_TOKEN_RE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b")
_URL_PASSWORD_RE = re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]+:)[^@\s]+@")


class SecretFilter(logging.Filter):
    """Redacts registered secrets, anything shaped like a bot token, and URL passwords."""

    secrets: set[str] = set()

    @classmethod
    def register(cls, *values: str) -> None:
        cls.secrets.update(v for v in values if v and len(v) >= 4)

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


def redact(text: str) -> str:
    for secret in SecretFilter.secrets:
        text = text.replace(secret, "***")
    text = _TOKEN_RE.sub("***", text)
    return _URL_PASSWORD_RE.sub(r"\1***@", text)


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
