"""Telegram commands, with the real python-telegram-bot client long-polling a loopback Bot API: each command from
an allowed chat answers from the live record (numbers checked against the database); anyone else gets nothing;
bad input gets its one line; a long answer arrives whole in several messages; Refresh edits in place; more than 20
commands a minute get one "slow down"; a Bot API that fails for a while is survived; old commands are skipped."""
from __future__ import annotations

import logging
import time
from collections import deque

import pandas as pd
import pytest

from src.database.operations import DatabaseOperations
from src.database.records import RecordStore
from src.monitoring.health import JobBoard, health_snapshot
from src.notifications.answers import Answers, BadInput, parse_asset, parse_days, parse_target  # noqa: F401
from src.notifications.bot import CommandBot
from src.utils.candles import last_closed_before
from src.utils.clock import FrozenClock, use_clock
from tests.long_record import fill_long_record
from tests.loopback_telegram import LoopbackBotApi

TOKEN = "123456789:AAHcommandsTokenForTests-abcdefghijkl"
ASSETS, TARGETS = ["BTC/USDT", "ETH/USDT"], [0.01, 0.05]
CHAT, GROUP, MEMBER, STRANGER = 777, -100123, 888, 555
pytestmark = pytest.mark.host_tz  # answers name hours relative to the clock


@pytest.fixture
def record(db) -> tuple[RecordStore, pd.Timestamp]:
    """60 days of hourly live forecasts to the last closed hour (ETH's newest 3 hours missing: stale), on a clock
    held at that moment: the ages the answers show are of the same "now" however long the test takes."""
    now = pd.Timestamp.now(tz="UTC")
    end = last_closed_before(now)
    fill_long_record(db.engine, ASSETS, TARGETS, end - pd.Timedelta(days=60), end)
    with db.engine.begin() as conn:
        for table in ("predictions", "resolution_forecasts"):
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE symbol = 'ETH/USDT' AND timestamp > %s",
                                 (end - pd.Timedelta(hours=3),))
    with use_clock(FrozenClock(now)):
        yield RecordStore(db), end


def _start(api: LoopbackBotApi, records: RecordStore, assets=ASSETS, **kwargs) -> CommandBot:
    ops = DatabaseOperations(records.db)
    answers = Answers(records, assets, TARGETS, health=lambda: health_snapshot(ops, records, assets, TARGETS, "1h",
                                                                               2, "test", JobBoard()))
    bot = CommandBot(TOKEN, answers, records, {str(CHAT), str(GROUP)}, kwargs.pop("users", {str(MEMBER)}),
                     api.base_url, **kwargs)
    bot.start()
    return bot


@pytest.fixture
def talk(record):
    records, _ = record
    with LoopbackBotApi(TOKEN) as api:
        bot = _start(api, records)
        yield api, records, bot
        bot.stop()


def _wait(condition, seconds: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds:.0f} s for {what}"
        time.sleep(0.05)


def _ask(api: LoopbackBotApi, records: RecordStore, text: str, **kwargs) -> list[dict]:
    """Send a command; the requests that answered it (once its answer is recorded)."""
    seen, answered = len(api.state.requests), records.count("telegram_reports")
    api.command(text, **kwargs)
    _wait(lambda: records.count("telegram_reports") > answered, what=f"the answer to {text}")
    return [r for r in api.state.requests[seen:] if r["method"] in ("sendMessage", "sendPhoto")]


def _text(requests: list[dict]) -> str:
    return "\n".join(r["fields"].get("text") or r["fields"].get("caption", "") for r in requests)


def test_each_command_answers_from_the_record(talk, record):
    api, records, _ = talk
    _, end = record
    with records.db.engine.connect() as conn:
        newest = pd.read_sql("SELECT p.symbol, p.target_pct, p.timestamp, p.model_name, p.probability, r.p_6h, "
                             "r.p_24h, r.p_horizon, r.q10_hours, r.q50_hours, r.q90_hours FROM predictions p JOIN "
                             "resolution_forecasts r USING (symbol, target_pct, timestamp) WHERE p.is_champion AND "
                             "r.is_champion AND p.timestamp = (SELECT max(timestamp) FROM predictions q WHERE "
                             "q.symbol = p.symbol)", conn)
    assert "/now" in _text(_ask(api, records, "/help")) and "/chart" in _text(_ask(api, records, "/start"))

    now = _ask(api, records, "/now")
    text = _text(now)
    for r in newest.itertuples():
        assert f"{float(r.target_pct) * 100:g} %: P(up) {float(r.probability):.0%} ({r.model_name})" in text
        assert f"P(24h) {float(r.p_24h):.0%}" in text
    assert f"candle {end:%Y-%m-%d %H:%M} UTC\n" in text  # BTC: the last closed hour, not stale
    assert "ETH/USDT</b> · candle" in text and "STALE: 3 h old" in text and text.count("STALE") == 1

    one = _ask(api, records, "/now btc")
    assert "ETH" not in _text(one) and "BTC/USDT" in _text(one)
    assert "Refresh" in one[-1]["fields"]["reply_markup"]

    soon = _text(_ask(api, records, "/soon ETH 5%"))
    eth = newest[(newest["symbol"] == "ETH/USDT") & (newest["target_pct"].astype(float) == 0.05)].iloc[0]
    assert f"within 6 h) {float(eth.p_6h):.0%} · 24 h {float(eth.p_24h):.0%} · 168 h {float(eth.p_horizon):.0%}" in soon
    assert f"median {float(eth.q50_hours):.0f}" in soon and "1 %" not in soon
    assert "last 30 days: P(24h) Brier skill" in soon and "interval covered" in soon and "(claimed " in soon

    record_text = _text(_ask(api, records, "/record BTC 30"))
    with records.db.engine.connect() as conn:
        expected = conn.exec_driver_sql("""
            SELECT count(*),
                   1 - sum((c.probability - o.actual_outcome) ^ 2) / sum((k.probability - o.actual_outcome) ^ 2)
            FROM predictions c JOIN prediction_outcomes o ON o.prediction_id = c.id
            JOIN predictions k ON k.symbol = c.symbol AND k.target_pct = c.target_pct AND k.timestamp = c.timestamp
             AND k.model_name = 'climatology'
            WHERE c.is_champion AND c.symbol = 'BTC/USDT' AND c.target_pct = 0.01 AND c.timestamp >= %s
              AND o.status IN ('up', 'down')""", (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=30),)).one()
        last = conn.exec_driver_sql("""SELECT c.timestamp FROM predictions c JOIN prediction_outcomes o
            ON o.prediction_id = c.id WHERE c.is_champion AND c.symbol = 'BTC/USDT' AND c.target_pct = 0.01
            ORDER BY c.timestamp DESC LIMIT 5""").scalars().all()
    block = record_text.split("BTC/USDT 1 %</b>")[1].split("<b>")[0]
    assert f"P(up) BSS {float(expected[1]):+.3f} (n {expected[0]})" in block
    shown = [" ".join(line.split()[:2]) for line in block.splitlines() if line.startswith("  ")]
    assert shown == [f"{pd.Timestamp(t):%m-%d %H:%M}" for t in last], block

    models = _text(_ask(api, records, "/models"))
    assert models.count("BTC/USDT 1 %: xgboost since") == 1 and "BTC/USDT 1 %: survival since" in models
    assert "Last retrain:" in models
    health = _text(_ask(api, records, "/health"))
    assert "unhealthy" in health and "ETH/USDT data stale" in health  # no candles in this database

    chart = _ask(api, records, "/chart BTC")
    assert chart[-1]["method"] == "sendPhoto" and chart[-1]["files"]["photo"].startswith(b"\x89PNG")
    reports = records.reports()
    assert {"command:/now", "command:/soon", "command:/record", "command:/models", "command:/health",
            "command:/chart"} <= set(reports["report_type"]) and reports["success"].all()


def test_anyone_not_allowed_gets_no_answer_at_all(talk, caplog):
    api, records, bot = talk
    caplog.set_level(logging.WARNING, logger="src.notifications.bot")
    for _ in range(3):
        api.command("/now", chat_id=STRANGER, user_id=STRANGER)
    api.command("/now", chat_id=GROUP, user_id=STRANGER, chat_type="supergroup")  # allowed group, user not
    api.command("/now@another_bot", chat_id=GROUP, user_id=MEMBER, chat_type="supergroup")  # not for us
    answered = _ask(api, records, "/now@loopback_bot", chat_id=GROUP, user_id=MEMBER, chat_type="supergroup")
    time.sleep(1)
    to_group = [r for r in api.sent("sendMessage") if r["fields"]["chat_id"] == str(GROUP)]
    assert answered and len(to_group) == 1, "answered once: /now@another_bot was not for us"
    assert str(STRANGER) not in api.named_chats()
    assert bot.rejected_total == 4
    assert caplog.text.count(f"chat {STRANGER} (not allowed") == 1  # logged once an hour per chat


def test_bad_input_gets_one_line_naming_the_valid_choices(talk):
    api, records, _ = talk
    for command, line in [("/now DOGE", "unknown asset DOGE: BTC, ETH"),
                          ("/soon BTC 3", "target 3 %: 1 %, 5 %"),
                          ("/soon btc/usdt 0.02", "target 0.02 %: 1 %, 5 %"),
                          ("/record BTC abc", "days must be a whole number from 1 to 365"),
                          ("/record 400", "days must be a whole number from 1 to 365"),
                          ("/soon", "which asset? /soon ASSET [MOVE]"),
                          ("/frobnicate", "unknown command /frobnicate: /now, /soon, /record")]:
        assert _text(_ask(api, records, command)).startswith(line), command


def test_arguments_read_as_people_type_them():
    assert parse_asset("btc", ASSETS) == parse_asset("BTC/USDT", ASSETS) == parse_asset("BTC", ASSETS) == "BTC/USDT"
    assert parse_target("5", TARGETS) == parse_target("5%", TARGETS) == parse_target("0.05", TARGETS) == 0.05
    assert parse_days("30") == 30
    with pytest.raises(BadInput, match="days must be"):
        parse_days("-3")


def test_a_long_answer_arrives_whole_in_several_messages(record):
    records, _ = record
    assets = [f"C{k:02d}/USDT" for k in range(70)] + ASSETS  # 144 groups x 2 tasks: about 12,500 characters
    with LoopbackBotApi(TOKEN) as api:
        bot = _start(api, records, assets)
        try:
            messages = _ask(api, records, "/models")
        finally:
            bot.stop()
    texts = [m["fields"]["text"] for m in messages]
    assert len(texts) >= 3 and all(len(t) <= 4096 for t in texts) and sum(map(len, texts)) > 12_000
    assert all(len(t) > 2000 for t in texts[:-1]), [len(t) for t in texts]  # packed, not a title alone
    whole = "\n".join(texts)
    for asset in assets:  # nothing cut: every group's line, for both tasks
        for target in TARGETS:
            assert whole.count(f"{asset} {target * 100:g} %:") == 2, asset


def test_refresh_edits_the_message_in_place(talk):
    api, records, _ = talk
    answer = _ask(api, records, "/now BTC")[-1]
    message_id = api.state.requests.index(answer) + 1  # the loopback numbers messages by request
    for _ in range(2):  # the second edit changes nothing: "not modified" is no error
        answered = records.count("telegram_reports")
        api.press("now BTC", message_id)
        _wait(lambda seen=answered: records.count("telegram_reports") > seen, what="the refresh")
    edits = api.sent("editMessageText")
    assert len(edits) == 2 and {e["fields"]["message_id"] for e in edits} == {str(message_id)}
    assert "BTC/USDT" in edits[0]["fields"]["text"] and len(api.sent("answerCallbackQuery")) == 2
    assert records.reports().tail(2)["success"].all()


@pytest.fixture
def still(record):
    """The bot on a clock that stays inside one minute (the rate limit's), so 25 commands share it however slow
    the machine is."""
    records, _ = record
    with LoopbackBotApi(TOKEN) as api:
        bot = _start(api, records, clock=lambda: 600.0)
        yield api, records, bot
        bot.stop()


def test_more_than_20_commands_a_minute_get_one_slow_down(still):
    api, records, _ = still
    before = records.count("telegram_reports")
    for _ in range(25):
        api.command("/help")
    _wait(lambda: records.count("telegram_reports") >= before + 21, what="21 answers")
    time.sleep(2)
    texts = [m["fields"]["text"] for m in api.sent("sendMessage")]
    assert sum(t.startswith("Slow down") for t in texts) == 1 and records.count("telegram_reports") == before + 21
    # a Refresh press counts against the same minute: dropped, the message untouched
    api.press("now BTC", 1)
    _wait(lambda: len(api.sent("answerCallbackQuery")) == 1, what="the press's answer")
    assert api.sent("editMessageText") == []


def test_plain_text_is_throttled_like_commands(still):
    api, records, _ = still
    for _ in range(23):
        api.command("hello there")
    _wait(lambda: records.count("telegram_reports") >= 21, what="21 answers")
    time.sleep(2)
    texts = [m["fields"]["text"] for m in api.sent("sendMessage")]
    assert texts.count("I answer commands: /help lists them.") == 20 and len(texts) == 21
    assert texts[-1].startswith("Slow down")


def test_refresh_runs_only_its_own_command_for_allowed_chats_on_young_messages(talk):
    """The Refresh button's data is a user's to forge: only /now and /soon re-run; an old message or a stranger's
    press edits nothing (the stranger is counted, as for a command)."""
    api, records, bot = talk
    answer = _ask(api, records, "/now BTC")[-1]
    message_id = api.state.requests.index(answer) + 1
    for data, age, refusal in (("record 30", 0, "This button does nothing"), ("models", 0, "This button does"),
                               ("now BTC", 3 * 86400, "Too old to refresh")):
        pressed = len(api.sent("answerCallbackQuery"))
        api.press(data, message_id, message_age_s=age)
        _wait(lambda n=pressed: len(api.sent("answerCallbackQuery")) > n, what=f"the answer to {data}")
        assert api.sent("answerCallbackQuery")[-1]["fields"]["text"].startswith(refusal)
    rejected = bot.rejected_total
    api.press("now BTC", message_id, chat_id=STRANGER, user_id=STRANGER)
    _wait(lambda: bot.rejected_total == rejected + 1, what="the stranger's press")
    time.sleep(1)
    assert api.sent("editMessageText") == [] and len(api.sent("answerCallbackQuery")) == 3
    api.press("now BTC", message_id)  # the real one still works
    _wait(lambda: len(api.sent("editMessageText")) == 1, what="the refresh")


def test_an_answer_the_bot_api_fails_is_retried(talk):
    api, records, _ = talk
    api.state.method_faults["sendMessage"] = deque(["500", "500"])
    [sent] = _ask(api, records, "/help")
    assert "/now" in sent["fields"]["text"] and records.reports().iloc[-1]["success"]
    assert not api.state.method_faults["sendMessage"]  # both faults were met, then the third try went through


def test_a_bot_api_failing_for_a_while_is_survived_and_logged_once(record, caplog):
    records, _ = record
    caplog.set_level(logging.INFO, logger="src.notifications.bot")
    with LoopbackBotApi(TOKEN) as api:
        api.state.down = True
        bot = _start(api, records)
        try:
            time.sleep(6)  # polling fails several times meanwhile
            api.state.down = False
            answer = _ask(api, records, "/help")
        finally:
            bot.stop()
    assert answer and caplog.text.count("the Bot API fails") == 1


def test_commands_older_than_10_minutes_at_start_are_skipped(record, caplog):
    records, _ = record
    caplog.set_level(logging.INFO, logger="src.notifications.bot")
    with LoopbackBotApi(TOKEN) as api:
        api.command("/now", age_s=11 * 60)
        api.command("/models", age_s=30 * 60)
        bot = _start(api, records)
        try:
            answered = _ask(api, records, "/help")
            _wait(lambda: "skipped 2 commands older than 10 minutes" in caplog.text, 10, "the skip line")
        finally:
            bot.stop()
    assert len(answered) == 1 and set(records.reports()["report_type"]) == {"command:/help"}


def test_a_command_that_fails_inside_is_answered_and_logged(talk, caplog):
    api, records, _ = talk
    caplog.set_level(logging.ERROR, logger="src.notifications.bot")
    with records.db.engine.begin() as conn:  # the registry gone: /models cannot be answered
        conn.exec_driver_sql("ALTER TABLE model_registry RENAME TO model_registry_moved")
    answer = _text(_ask(api, records, "/models"))
    assert answer.startswith("could not answer: ProgrammingError") and "model_registry" in answer
    assert "/models failed" in caplog.text and "Traceback" in caplog.text
    assert _text(_ask(api, records, "/help")).startswith("<b>Commands</b>")  # and the bot answers on


def test_the_records_figures_in_sql_are_the_scorings(record):
    """/record aggregates in the database (fast over a year); its figures equal scoring.py's on the same rows."""
    from src.models.evaluation.scoring import CHAMPION, DIRECTION_ROWS, TIMING_ROWS, score_rows
    records, end = record
    start, now = end - pd.Timedelta(days=40), end + pd.Timedelta(minutes=30)
    fast = records.champion_record(start, now, now - pd.Timedelta(hours=169)).set_index(["symbol", "target_pct"])
    direction = score_rows(DIRECTION_ROWS, records.resolved("live", start, now, include_pending=True), 168, now,
                           series=CHAMPION).set_index(["symbol", "target_pct"])
    timing = score_rows(TIMING_ROWS, records.resolved_time("live", start, now, include_pending=True), 168, now,
                        series=CHAMPION).set_index(["symbol", "target_pct"])
    assert len(fast) == len(direction) == 4
    for key, r in fast.iterrows():
        assert r.resolved == direction.loc[key, "resolved_predictions"] and r.n == direction.loc[key, "n"]
        assert r.hit_rate == pytest.approx(direction.loc[key, "hit_rate"])
        assert 1 - r.loss / r.reference_loss == pytest.approx(direction.loc[key, "brier_skill"])
        assert r.n_24h == timing.loc[key, "n"]
        assert 1 - r.loss_24h / r.reference_loss_24h == pytest.approx(timing.loc[key, "brier_skill_24h"])


def test_the_bots_memory_of_rejected_chats_is_bounded():
    """Strangers' chats are remembered for the hour their rejection is logged once, then forgotten."""
    from types import SimpleNamespace
    now = [0.0]
    bot = CommandBot(TOKEN, None, None, {str(CHAT)}, clock=lambda: now[0])
    for chat in range(1000):
        bot._reject(SimpleNamespace(id=chat), None)
    assert len(bot._rejected_logged) == 1000 and bot.rejected_total == 1000
    now[0] = 3601.0
    bot._reject(SimpleNamespace(id=5), None)
    assert list(bot._rejected_logged) == ["5"]
