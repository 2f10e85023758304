"""Secrets out of every message: registered values (the bot token), anything shaped like a bot token, and a
password in any form a database URL or connection string carries it (userinfo, a `password=` query
parameter, a libpq key/value string). Used by the log filter, the CLI's error lines and every shown URL."""
from __future__ import annotations

import re

_registered: set[str] = set()
# Telegram bot tokens look like 123456:ABC-xyz; python-telegram-bot and httpx put them in URLs.
_TOKEN_RE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b")
_USERINFO_RE = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)[^@\s'\"]+@", re.IGNORECASE)
# password=... in a query string (up to & or the end) or a libpq string (a quoted or bare value)
_PASSWORD_RE = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s'\"]+)", re.IGNORECASE)


def register_secret(*values: str) -> None:
    _registered.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    for secret in _registered:
        text = text.replace(secret, "***")
    text = _TOKEN_RE.sub("***", text)
    text = _USERINFO_RE.sub(r"\1***@", text)
    return _PASSWORD_RE.sub(r"\1***", text)
