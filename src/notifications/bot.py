"""Telegram commands: python-telegram-bot long polling in its own thread and event loop, answering the chats
and users the configuration allows from the live record (answers.py), read-only.

Anyone else gets no answer at all (counted, logged once an hour per chat). Commands older than 10 minutes
(sent while the daemon was down) are skipped and counted in the log. More than 20 commands a minute from one
chat get one "slow down" and are ignored for the rest of that minute. A Bot API that is down or answers errors
is retried with backoff, logged once per outage; it never stops the daemon. Every answer is recorded in
telegram_reports (report type `command:/now` etc.). The token is never logged.
"""
from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import pandas as pd
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, InvalidToken, TelegramError
from telegram.ext import Application, ContextTypes, TypeHandler

from src.database.records import RecordStore
from src.notifications.answers import Answer, Answers
from src.notifications.telegram import send_failure
from src.utils.choices import BadInput
from src.utils.clock import utc_now
from src.utils.logging_setup import SecretFilter
from src.utils.secrets import redact

log = logging.getLogger(__name__)
MAX_AGE = pd.Timedelta(minutes=10)  # older commands were sent while the daemon was down: skipped
PER_MINUTE = 20  # commands a chat may send in a minute
POLL_SECONDS = 10  # getUpdates long-polling timeout
# At a stop python-telegram-bot cancels the long poll without awaiting it, then calls getUpdates once more to mark
# the fetched updates read. With one connection that call may wait for the cancelled one to be released, and a busy
# machine makes it time out (an ERROR; the last updates may come again after a restart): it gets a second connection.
GET_UPDATES_CONNECTIONS = 2
RECOVERED_AFTER_S = 45  # no polling error for this long (more than the longest backoff) ends an outage
REJECTED_LOG_EVERY_S = 3600
SEND_TRIES = 3
REFRESHABLE = ("now", "soon")  # the commands whose answers carry a Refresh button: a button runs nothing else
SLOW_DOWN = f"Slow down: at most {PER_MINUTE} commands a minute. Ask again in a minute."
MAX_REFRESH_AGE = pd.Timedelta(hours=48)  # a button on an older message is not re-run: send the command again


class CommandBot:
    """`allowed_chats`: chat ids that may ask; `allowed_users`: if set, in a group chat only these users may."""

    def __init__(self, token: str, answers: Answers, records: RecordStore | None, allowed_chats: set[str],
                 allowed_users: set[str] | None = None, base_url: str = "https://api.telegram.org/bot",
                 clock: Callable[[], float] = time.monotonic):
        """`clock`: seconds on a monotonic clock, for the rate limit's minutes (a test gives its own)."""
        self.token, self.answers, self.records, self.base_url = token, answers, records, base_url
        self.clock = clock
        self.allowed_chats, self.allowed_users = {str(c) for c in allowed_chats}, {str(u) for u in allowed_users or ()}
        self.rejected_total = 0
        self._rejected_logged: dict[str, float] = {}
        self._per_minute: dict[tuple[str, int], int] = defaultdict(int)
        self._skipped_old = 0
        self._down_since: float | None = None
        self._last_error = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telegram-commands", daemon=True)
        SecretFilter.register(token)

    # ---- lifecycle (called from the daemon's thread) ---------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=10)
        log.info("telegram commands: listening (%d allowed chats%s)", len(self.allowed_chats),
                 f", {len(self.allowed_users)} allowed users in groups" if self.allowed_users else "")

    def request_stop(self) -> None:
        """Ask the polling loop to end (returns at once)."""
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closing meanwhile: it has stopped already
                self._loop.call_soon_threadsafe(self._stopping.set)

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop()
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            log.warning("telegram commands: polling had not ended %.0f s after the stop", timeout)

    # ---- the event loop (its own thread) ---------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception:
            log.exception("telegram commands stopped unexpectedly; the rest of the service runs on")
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        app = (Application.builder().token(self.token).base_url(self.base_url)
               .get_updates_connection_pool_size(GET_UPDATES_CONNECTIONS).build())
        app.add_handler(TypeHandler(Update, self._on_update))
        app.add_error_handler(self._on_error)
        tasks = [asyncio.create_task(self._poll(app)), asyncio.create_task(self._watch())]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._shut_down(app)

    async def _poll(self, app: Application) -> None:
        wait = 1.0
        while True:  # getMe first: the Bot API may be down when the daemon starts
            try:
                await app.initialize()
                break
            except InvalidToken:
                log.error("telegram commands: the Bot API refuses the token; fix telegram.bot_token "
                          "(TELEGRAM_BOT_TOKEN). Not listening for commands; reports still try to send")
                return
            except TelegramError as exc:
                self._outage(exc)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 30.0)
        await app.start()
        await app.updater.start_polling(timeout=POLL_SECONDS, bootstrap_retries=-1, error_callback=self._outage,
                                        allowed_updates=["message", "callback_query"])

    @staticmethod
    async def _shut_down(app: Application) -> None:
        with contextlib.suppress(Exception):  # stopping: nothing left to save
            if app.updater and app.updater.running:
                await asyncio.wait_for(app.updater.stop(), timeout=5)
            if app.running:
                await app.stop()
            await app.shutdown()

    async def _watch(self) -> None:
        """Log the end of an outage, and the commands skipped for their age, at most every few seconds."""
        while True:
            await asyncio.sleep(2)
            if self._down_since is not None and time.monotonic() - self._last_error > RECOVERED_AFTER_S:
                log.info("telegram commands: the Bot API answers again (down for %.0f s)",
                         self._last_error - self._down_since)
                self._down_since = None
            if self._skipped_old:
                log.info("telegram commands: skipped %d commands older than %d minutes (sent while the service "
                         "was down)", self._skipped_old, MAX_AGE.total_seconds() // 60)
                self._skipped_old = 0

    def _outage(self, exc: TelegramError) -> None:
        self._last_error = time.monotonic()
        if self._down_since is None:
            self._down_since = self._last_error
            log.warning("telegram commands: the Bot API fails (%s: %s); retrying with backoff, commands wait",
                        type(exc).__name__, redact(str(exc)))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram commands: handling an update failed", exc_info=context.error)

    # ---- updates ---------------------------------------------------------------------------------
    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.callback_query is not None:
            await self._on_refresh(update)
        elif update.message is not None and (update.message.text or "").startswith("/"):
            await self._on_command(update)
        elif update.message is not None and update.effective_chat.type == "private" \
                and self._allowed(update.effective_chat, update.effective_user):  # words, not a command
            throttle = self._throttled(str(update.effective_chat.id))
            if throttle != "drop":
                words = SLOW_DOWN if throttle == "warn" else "I answer commands: /help lists them."
                await self._deliver(update.get_bot(), update.effective_chat.id, "text", Answer([words]))

    def _allowed(self, chat, user) -> bool:
        if str(chat.id) not in self.allowed_chats:
            return False
        if self.allowed_users and chat.type in ("group", "supergroup"):
            return user is not None and str(user.id) in self.allowed_users
        return True

    def _reject(self, chat, user) -> None:
        """No answer at all; counted, and logged once an hour per chat."""
        self.rejected_total += 1
        key, now = str(chat.id), self.clock()
        for old in [k for k, t in self._rejected_logged.items() if now - t >= REJECTED_LOG_EVERY_S]:
            del self._rejected_logged[old]  # bounded: only the chats logged within the hour are remembered
        if key not in self._rejected_logged:
            self._rejected_logged[key] = now
            who = "chat" if key not in self.allowed_chats else f"user {user.id if user else '?'} in chat"
            log.warning("telegram commands: ignored a command from %s %s (not allowed; see telegram."
                        "allowed_chat_ids / allowed_user_ids); logged once an hour", who, key)

    def _throttled(self, chat_id: str) -> str:
        """'ok', 'warn' (the first command over the limit: one 'slow down') or 'drop'."""
        minute = int(self.clock() // 60)
        key = (chat_id, minute)
        self._per_minute[key] += 1
        for old in [k for k in self._per_minute if k[1] < minute]:
            del self._per_minute[old]
        count = self._per_minute[key]
        return "ok" if count <= PER_MINUTE else "warn" if count == PER_MINUTE + 1 else "drop"

    async def _on_command(self, update: Update) -> None:
        message, chat, user = update.message, update.effective_chat, update.effective_user
        if not self._allowed(chat, user):
            return self._reject(chat, user)
        now = utc_now()
        if pd.Timestamp(message.date) < now - MAX_AGE:
            self._skipped_old += 1
            return None
        words = message.text.split()
        command, _, addressee = words[0][1:].lower().partition("@")
        if addressee and addressee != (update.get_bot().username or "").lower():
            return None  # /now@another_bot in a group: not for us
        args = words[1:]
        throttle = self._throttled(str(chat.id))
        if throttle == "drop":
            return None
        if throttle == "warn":
            answer = Answer([SLOW_DOWN])
        else:
            answer = await self._answer(command, args, now)
        await self._deliver(update.get_bot(), chat.id, command, answer)
        return None

    async def _answer(self, command: str, args: list[str], now: pd.Timestamp) -> Answer:
        """The answer, built off the event loop (database and charts); a failure is answered, never silent."""
        started = time.perf_counter()
        try:
            answer = await asyncio.to_thread(self.answers.answer, command, args, now)
        except BadInput as exc:
            answer = Answer([html.escape(str(exc))])
        except Exception as exc:
            log.exception("telegram commands: /%s failed", " ".join([command, *args]))
            answer = Answer([f"could not answer: {html.escape(type(exc).__name__)}: "
                             f"{html.escape(redact(str(exc))[:300])}"])
        log.info("telegram commands: /%s answered in %.0f ms (%d messages)", command,
                 (time.perf_counter() - started) * 1000, len(answer.messages))
        return answer

    async def _deliver(self, bot, chat_id: int, command: str, answer: Answer) -> None:
        """Each message in turn (a chart with the last as its caption), the Refresh button under a single one."""
        markup = self._refresh_markup(answer)
        error = None
        for k, text in enumerate(answer.messages):
            last = k == len(answer.messages) - 1
            if answer.photo is not None and last:
                def call(text=text):
                    return bot.send_photo(chat_id, answer.photo, caption=text, parse_mode=ParseMode.HTML)
            else:
                def call(text=text, last=last):
                    return bot.send_message(chat_id, text, parse_mode=ParseMode.HTML,
                                            reply_markup=markup if last else None)
            error = error or await self._with_retries(call)
        await asyncio.to_thread(self._record, f"command:/{command}"[:20], "\n\n".join(answer.messages), error)

    @staticmethod
    def _refresh_markup(answer: Answer) -> InlineKeyboardMarkup | None:
        if answer.refresh is None or len(answer.messages) != 1:  # a split answer cannot be edited as one
            return None
        return InlineKeyboardMarkup([[InlineKeyboardButton("Refresh", callback_data=answer.refresh)]])

    @staticmethod
    async def _with_retries(call) -> str | None:
        """One Bot API call (`call()` makes it), retried as the reports are (telegram.send_failure); the final
        error, or None."""
        for attempt in range(1, SEND_TRIES + 1):
            try:
                await call()
                return None
            except TelegramError as exc:
                error, wait = send_failure(exc, attempt, 1.0)
            if wait is None or attempt == SEND_TRIES:
                return error
            await asyncio.sleep(min(wait, 30.0))
        return None

    def _record(self, report_type: str, content: str, error: str | None) -> None:
        if self.records is None:
            return
        try:
            self.records.log_report(report_type, content, error is None, error)
        except Exception as exc:  # the database being down must not stop answering
            log.error("telegram commands: answer not recorded (%s)", type(exc).__name__)

    async def _on_refresh(self, update: Update) -> None:
        """A Refresh press: from an allowed chat and user, within the rate limit, on a message young enough, and
        for a command that offers the button; it edits the message in place."""
        query = update.callback_query
        chat = query.message.chat if query.message else None
        if chat is None or not self._allowed(chat, query.from_user):
            return self._reject(chat, query.from_user) if chat is not None else None
        words = (query.data or "").split()
        now = utc_now()
        throttle = self._throttled(str(chat.id))
        refusal = (SLOW_DOWN if throttle == "warn" else None if throttle == "ok" else "")
        if refusal is None and (not words or words[0] not in REFRESHABLE):
            refusal = "This button does nothing: send the command again."
        elif refusal is None and pd.Timestamp(query.message.date) < now - MAX_REFRESH_AGE:
            refusal = "Too old to refresh: send the command again."
        if refusal is not None:
            with contextlib.suppress(TelegramError):
                await query.answer(refusal or None)  # "" (dropped over the limit): the spinner ends, nothing said
            return None
        answer = await self._answer(words[0], words[1:], now)
        with contextlib.suppress(TelegramError):
            await query.answer()
        try:
            await query.edit_message_text(answer.messages[0], parse_mode=ParseMode.HTML,
                                          reply_markup=self._refresh_markup(answer))
            error = None
        except BadRequest as exc:
            error = None if "not modified" in str(exc).lower() else f"BadRequest: {exc}"
        except TelegramError as exc:
            error = f"{type(exc).__name__}: {redact(str(exc))}"
        await asyncio.to_thread(self._record, "command:refresh", answer.messages[0], error)
        return None
