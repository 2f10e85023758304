"""Sending reports with python-telegram-bot, and a record of every send in telegram_reports.

Network failures, 429 (after its retry_after) and 5xx are retried within bounds; 400, 401/404 and 403 are
recorded and not retried. A failed send never raises to the caller and the text is always recorded.
Without a token or chat id, reports go to the log and console (a dry run). The token is never logged.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from src.database.records import RecordStore
from src.utils.logging_setup import SecretFilter, redact

log = logging.getLogger(__name__)
MAX_TRIES = 4
MAX_WAIT_SECONDS = 30.0


@dataclass
class SendResult:
    success: bool
    error: str | None = None
    dry_run: bool = False


class TelegramNotifier:
    def __init__(self, token: str, chat_id: str | int, records: RecordStore | None = None,
                 base_url: str = "https://api.telegram.org/bot", timeout: float = 10.0, backoff: float = 2.0):
        self.token, self.chat_id, self.records = str(token or ""), str(chat_id or ""), records
        self.base_url, self.timeout, self.backoff = base_url, timeout, backoff
        SecretFilter.register(self.token)

    @property
    def dry_run(self) -> bool:
        return not (self.token and self.chat_id)

    def send(self, report_type: str, text: str, photo: bytes | None = None) -> SendResult:
        """Send text (HTML) and an optional PNG; record the outcome. Never raises."""
        if self.dry_run:
            print(text)
            log.info("%s report (dry run, no telegram token/chat id): %d characters", report_type, len(text))
            result = SendResult(False, "dry run: no telegram.bot_token / chat_id configured", dry_run=True)
        else:
            result = self._send_with_retries(text, photo)
            log.log(logging.INFO if result.success else logging.ERROR, "%s report %s (%d characters)%s",
                    report_type, "sent" if result.success else "NOT sent", len(text),
                    f": {result.error}" if result.error else "")
        if self.records is not None:
            try:
                self.records.log_report(report_type, text, result.success, result.error)
            except Exception as exc:  # the database being down must not lose the report in the log
                log.error("could not record %s report (%s); text was: %s", report_type, type(exc).__name__, text)
        return result

    def _send_with_retries(self, text: str, photo: bytes | None) -> SendResult:
        deadline = time.monotonic() + MAX_WAIT_SECONDS * 2
        error = "not attempted"
        for attempt in range(1, MAX_TRIES + 1):
            try:
                asyncio.run(self._send_once(text, photo))
                return SendResult(True)
            except RetryAfter as exc:
                retry = exc.retry_after  # int or timedelta, depending on python-telegram-bot's settings
                wait = retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)
                error = f"rate limited by Telegram (retry after {wait:g} s)"
            except (BadRequest, InvalidToken, Forbidden) as exc:
                return SendResult(False, f"{type(exc).__name__}: {redact(str(exc))}; fix the message or the "
                                         "telegram.bot_token / chat_id settings")
            except NetworkError as exc:  # timeouts, connection errors and 5xx
                wait = min(self.backoff * 2 ** (attempt - 1), MAX_WAIT_SECONDS)
                error = f"{type(exc).__name__}: {redact(str(exc))}"
            except TelegramError as exc:
                return SendResult(False, f"{type(exc).__name__}: {redact(str(exc))}")
            if attempt == MAX_TRIES or time.monotonic() + wait > deadline:
                break
            log.warning("telegram send failed (%s), retry %d/%d in %.0f s", error, attempt, MAX_TRIES - 1, wait)
            time.sleep(min(wait, MAX_WAIT_SECONDS))
        return SendResult(False, f"{error} after {attempt} tries")

    async def _send_once(self, text: str, photo: bytes | None) -> None:
        bot = Bot(self.token, base_url=self.base_url)
        async with bot:
            if photo is not None and len(text) <= 1024:
                await bot.send_photo(self.chat_id, photo=photo, caption=text, parse_mode=ParseMode.HTML,
                                     read_timeout=self.timeout, write_timeout=self.timeout)
                return
            await bot.send_message(self.chat_id, text, parse_mode=ParseMode.HTML, read_timeout=self.timeout,
                                   write_timeout=self.timeout, connect_timeout=self.timeout)
            if photo is not None:
                await bot.send_photo(self.chat_id, photo=photo, read_timeout=self.timeout,
                                     write_timeout=self.timeout)
