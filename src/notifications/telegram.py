"""Sending reports with python-telegram-bot, and a record of every send in telegram_reports (final state)
and telegram_attempts (every try: method, attempt number, status, error).

Network failures, 429 (after its retry_after) and 5xx are retried within bounds; 400, 401/404 and 403 are
recorded and not retried. A failed send never raises to the caller and the text is always recorded.
Without a token or chat id, reports go to the log and console (a dry run). The token is never logged.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from src.database.records import RecordStore
from src.notifications.reports import plain_text
from src.utils.clock import service_run
from src.utils.logging_setup import SecretFilter
from src.utils.secrets import redact

log = logging.getLogger(__name__)
MAX_TRIES = 4
MAX_WAIT_SECONDS = 30.0
CAPTION_LIMIT = 1024  # Telegram's limit for a photo caption


@dataclass
class SendResult:
    success: bool
    error: str | None = None
    dry_run: bool = False


def send_failure(exc: TelegramError, attempt: int, backoff: float) -> tuple[str, float | None]:
    """A failed Bot API call's error text (token redacted) and the seconds to wait before trying again, or None
    when a retry cannot help (a bad request, token or chat): Telegram's retry_after, else exponential backoff."""
    if isinstance(exc, RetryAfter):
        retry = exc.retry_after  # int or timedelta, depending on python-telegram-bot's settings
        wait = retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)
        return f"rate limited by Telegram (retry after {wait:g} s)", wait
    if isinstance(exc, BadRequest | InvalidToken | Forbidden):
        return (f"{type(exc).__name__}: {redact(str(exc))}; fix the message or the telegram.bot_token / "
                "chat_id settings"), None
    if isinstance(exc, NetworkError):  # timeouts, connection errors and 5xx
        return f"{type(exc).__name__}: {redact(str(exc))}", min(backoff * 2 ** (attempt - 1), MAX_WAIT_SECONDS)
    return f"{type(exc).__name__}: {redact(str(exc))}", None


class TelegramNotifier:
    def __init__(self, token: str, chat_id: str | int, records: RecordStore | None = None,
                 base_url: str = "https://api.telegram.org/bot", timeout: float = 10.0, backoff: float = 2.0,
                 stop_event: threading.Event | None = None, pace_seconds: float = 0.0):
        self.token, self.chat_id, self.records = str(token or ""), str(chat_id or ""), records
        self.pace_seconds = pace_seconds  # at least this long between two sends (a replay's hundreds of reports)
        self._last_send = float("-inf")
        self.base_url, self.timeout, self.backoff = base_url, timeout, backoff
        self.stop_event = stop_event or threading.Event()  # set by the daemon's stop: ends a backoff wait
        SecretFilter.register(self.token)

    @property
    def dry_run(self) -> bool:
        return not (self.token and self.chat_id)

    def send(self, report_type: str, text: str, photo: bytes | None = None) -> SendResult:
        """Send text (HTML) and an optional PNG; record the report, every attempt and the final state.
        A chart goes as one sendPhoto with the text as caption when it fits; else the text once, then the
        photo retried on its own, so a retry never duplicates a message. Never raises."""
        report_id = self._record("log_report", report_type, text, False, "sending")
        if self.dry_run and service_run() == "replay":  # a month of hourly reports: the log has them, not the console
            log.debug("%s report (dry run): %d characters", report_type, len(text))
            result = SendResult(False, "dry run: no telegram.replay_chat_id configured", dry_run=True)
        elif self.dry_run:
            print(plain_text(text))
            log.info("%s report (dry run, no telegram token/chat id): %d characters", report_type, len(text))
            result = SendResult(False, "dry run: no telegram.bot_token / chat_id configured", dry_run=True)
        else:
            result = self._deliver(text, photo, report_id)
            log.log(logging.INFO if result.success else logging.ERROR, "%s report %s (%d characters)%s",
                    report_type, "sent" if result.success else "NOT sent", len(text),
                    f": {result.error}" if result.error else "")
        if report_id is None:
            log.error("could not record %s report; text was: %s", report_type, text)
        else:
            self._record("finish_report", report_id, result.success, result.error)
        return result

    def _record(self, write: str, *args: Any) -> Any:
        """A write to the record (a RecordStore method); the database being down must not stop the send."""
        if self.records is None:
            return None
        try:
            return getattr(self.records, write)(*args)
        except Exception as exc:
            log.error("telegram record not written (%s)", type(exc).__name__)
            return None

    def _deliver(self, text: str, photo: bytes | None, report_id: int | None) -> SendResult:
        html = {"parse_mode": ParseMode.HTML}
        if photo is not None and len(text) <= CAPTION_LIMIT:
            steps = [("sendPhoto", "send_photo", {"photo": photo, "caption": text, **html})]
        else:
            steps = [("sendMessage", "send_message", {"text": text, **html})]
            if photo is not None:
                steps.append(("sendPhoto", "send_photo", {"photo": photo}))
        for done, (method, call, kwargs) in enumerate(steps):
            wait = self._last_send + self.pace_seconds - time.monotonic()  # every message paced, a chart too
            if wait > 0 and self.stop_event.wait(wait):
                return SendResult(False, f"{method}: not sent, the service is stopping")
            error = self._with_retries(method, call, kwargs, report_id)
            self._last_send = time.monotonic()  # from the end of one call: the next one reaches Telegram later
            if error:
                sent = " (the text was delivered)" if done else ""
                return SendResult(False, f"{method}: {error}{sent}")
        return SendResult(True)

    def _with_retries(self, method: str, call: str, kwargs: dict, report_id: int | None) -> str | None:
        """One API call, retried within bounds; each attempt recorded. Returns the final error, or None."""
        deadline = time.monotonic() + MAX_WAIT_SECONDS * 2
        for attempt in range(1, MAX_TRIES + 1):
            error, wait = self._attempt(call, kwargs, attempt)
            if report_id is not None:
                self._record("log_attempt", report_id, attempt, method, error)
            if error is None:
                return None
            if wait is None:  # not worth retrying
                return error
            if attempt == MAX_TRIES or time.monotonic() + wait > deadline:
                return f"{error} after {attempt} tries"
            log.warning("telegram %s failed (%s), retry %d/%d in %.0f s", method, error, attempt, MAX_TRIES - 1,
                        wait)
            if self.stop_event.wait(min(wait, MAX_WAIT_SECONDS)):
                return f"{error}; not retried: the service is stopping"
        raise AssertionError("unreachable")

    def _attempt(self, call: str, kwargs: dict, attempt: int) -> tuple[str | None, float | None]:
        """(error or None, seconds to wait before a retry, or None when a retry cannot help)."""
        try:
            asyncio.run(self._call(call, kwargs))
            return None, None
        except TelegramError as exc:
            return send_failure(exc, attempt, self.backoff)

    async def _call(self, call: str, kwargs: dict) -> None:
        bot = Bot(self.token, base_url=self.base_url)
        async with bot:
            await getattr(bot, call)(self.chat_id, read_timeout=self.timeout, write_timeout=self.timeout,
                                     connect_timeout=self.timeout, **kwargs)
