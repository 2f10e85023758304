"""Telegram: the real python-telegram-bot client against a loopback Bot API; reports, alerts and faults."""
import logging

import numpy as np
import pandas as pd
import pytest

from src.database.records import RecordStore
from src.notifications import reports
from src.notifications.service import crossings
from src.notifications.telegram import TelegramNotifier
from tests.loopback_telegram import LoopbackBotApi

TOKEN = "123456789:AAHloopbackTokenForTests-abcdefghijkl"
NOW = pd.Timestamp("2023-06-01 10:05", tz="UTC")


@pytest.fixture
def bot_api():
    with LoopbackBotApi(TOKEN) as server:
        yield server


def _champions(symbols, probabilities=(0.62, 0.48, 0.3), hours=1) -> pd.DataFrame:
    rows = []
    for h in range(hours):
        t = NOW.floor("h") - pd.Timedelta(hours=1 + h)
        for symbol in symbols:
            for target, p in zip((0.01, 0.02, 0.05), probabilities):
                rows.append({"symbol": symbol, "timeframe": "1h", "target_pct": target, "timestamp": t,
                             "model_name": "xgboost", "model_version": "v", "probability": p,
                             "confidence": max(p, 1 - p), "entry_price": 27123.45})
    return pd.DataFrame(rows)


def _notifier(bot_api, ops, **kw) -> TelegramNotifier:
    return TelegramNotifier(TOKEN, "4242", RecordStore(ops.db), bot_api.base_url, timeout=2, backoff=0.05, **kw)


def test_hourly_report_request_and_escaping(bot_api, ops):
    [text] = reports.hourly_text(_champions(["BTC/USDT", "A<B&C/USDT"]), NOW)
    assert "A&lt;B&amp;C/USDT" in text and "<b>BTC/USDT</b>" in text
    assert "27,123.45" in text and "62.0%" in text and "⬆️" in text and "⬇️" in text
    assert _notifier(bot_api, ops).send("hourly", text).success
    sent = bot_api.sent("sendMessage")
    assert len(sent) == 1
    assert sent[0]["fields"]["chat_id"] == "4242"
    assert sent[0]["fields"]["parse_mode"] == "HTML"
    assert sent[0]["fields"]["text"] == text
    logged = RecordStore(ops.db).reports()
    assert list(logged["report_type"]) == ["hourly"] and logged["success"].all()


def test_daily_report_sends_a_real_png(bot_api, ops):
    resolved = pd.DataFrame({
        "symbol": "BTC/USDT", "timeframe": "1h", "target_pct": 0.02,
        "timestamp": pd.date_range("2023-05-01", periods=200, freq="h", tz="UTC"), "model_name": "xgboost",
        "is_champion": True, "probability": 0.55, "status": ["up", "down"] * 100,
        "actual_outcome": [1, 0] * 100, "time_to_target_hours": 5.0})
    chart = reports.daily_chart(resolved)
    [text] = reports.daily_text(NOW, reports.resolved_on(resolved, NOW), pd.DataFrame())
    assert _notifier(bot_api, ops).send("daily", text, chart).success
    photo = bot_api.sent("sendPhoto")[0]
    assert photo["files"]["photo"].startswith(b"\x89PNG\r\n\x1a\n") and len(photo["files"]["photo"]) > 10_000
    assert photo["fields"]["caption"] == text


def test_the_daily_chart_says_when_climatology_served_direction_instead_of_drawing_a_flat_line():
    hours = pd.date_range("2023-05-01", periods=200, freq="h", tz="UTC")
    resolved = pd.concat([pd.DataFrame({
        "symbol": "BTC/USDT", "timeframe": "1h", "target_pct": 0.02, "timestamp": hours, "model_name": model,
        "is_champion": model == "climatology", "probability": 0.52, "status": ["up", "down"] * 100,
        "actual_outcome": [1, 0] * 100, "time_to_target_hours": 5.0}) for model in ("climatology", "xgboost")])
    timing = pd.DataFrame({"symbol": "BTC/USDT", "target_pct": 0.02, "timestamp": hours, "model_name": "survival",
                           "is_champion": True, "p_24h": np.linspace(0.2, 0.9, 200), "status": "up",
                           "hours_to_resolution": np.linspace(1, 60, 200)[::-1]})
    timing = pd.concat([timing, timing.assign(model_name="climatology", is_champion=False, p_24h=0.5)])
    figure = reports.daily_figure(resolved, timing)
    soon_skill, _, up_skill, _ = figure.axes
    assert [line.get_label() for line in soon_skill.lines][0] == "2% live"  # a learned champion: its line
    assert not up_skill.lines and up_skill.texts[0].get_text().startswith("Climatology (the base rate) served")
    assert "windows overlap" in figure.texts[0].get_text()  # why a reliability point scatters more than its n says
    import matplotlib.pyplot as plt
    plt.close(figure)


def test_hourly_report_dates_every_candle_flags_stale_ones_and_prints_plain_text_on_a_console(capsys):
    fresh = _champions(["BTC/USDT"])
    old = _champions(["ETH/USDT"]).assign(timestamp=pd.Timestamp("2023-05-20 05:00", tz="UTC"), model_name="logistic")
    timings = pd.DataFrame({"symbol": "BTC/USDT", "target_pct": [0.01, 0.05], "timestamp": fresh["timestamp"].iloc[0],
                            "q10_hours": [2.0, 40.0], "q50_hours": [6.4, 150.0], "q90_hours": [15.0, 168.0]})
    [text] = reports.hourly_text(pd.concat([fresh, old]), NOW, timings=timings)
    assert "~150h (90 %: after 40 h)" in text  # a 90 % point at the cap lies past the window: labelled by its claim
    assert "candle 2023-06-01 09:00 UTC" in text and "candle 2023-05-20 05:00 UTC · ⚠️ STALE: 292 h old" in text
    assert "BTC/USDT</b> 27,123.45 · candle 2023-06-01 09:00 UTC\n" in text  # the fresh one is not flagged
    assert " logistic " in text and "xgboost" in text  # model names whole
    assert "~6.4h (80 %: 2–15 h)" in text and "Resolves: median hours" in text
    TelegramNotifier("", "").send("hourly", text)  # no token: the console
    printed = capsys.readouterr().out
    assert "<b>" not in printed and "<pre>" not in printed and "Hourly forecast · 2023-06-01 10:05 UTC" in printed


def test_daily_report_one_row_per_model_champion_marked_and_counts_of_that_day():
    day = pd.Timestamp("2023-06-01", tz="UTC")
    models = (("xgboost", -0.01), ("logistic", 0.0), ("climatology", 0.0))
    performance = pd.DataFrame([
        {"symbol": "BTC/USDT", "target_pct": 0.01, "model_name": model, "window_days": w, "total_predictions": 100 * w,
         "brier_skill": skill + w / 1000} for model, skill in models for w in (1, 7, 30)])
    entries = pd.date_range("2023-05-20", "2023-06-01 23:00", freq="h", tz="UTC")
    resolved = pd.DataFrame({"symbol": "BTC/USDT", "target_pct": 0.01, "timestamp": entries, "is_champion": True,
                             "status": "up", "time_to_target_hours": 3.0})
    decided = reports.resolved_on(resolved, day)
    # decided on June 1 (hit candle closed that day): entries from May 31 20:00 (closes 00:00) to June 1 19:00
    assert decided["timestamp"].min() == pd.Timestamp("2023-05-31 20:00", tz="UTC") and len(decided) == 24
    timing = pd.DataFrame([  # how soon: the forecasts users got ("champion") come first, one row per group
        {"symbol": "BTC/USDT", "target_pct": 0.01, "model_name": model, "window_days": w, "total_predictions": 24 * w,
         "brier_skill_24h": 0.2 + w / 100, "interval_coverage": 0.81, "interval_claimed": 0.83}
        for model in ("champion", "survival") for w in (1, 7, 30)])
    [text] = reports.daily_text(day, decided, performance, {("BTC/USDT", 0.01): "logistic"}, timing)
    plain = reports.plain_text(text)
    assert plain.index("How soon, live record") < plain.index("Direction, live record")
    rows = [line for line in plain.splitlines() if line.startswith("BTC/USDT")]
    assert "BTC/USDT   1%  24   0   0   0" in rows  # the day's counts
    # how soon: n over 30 days, 1/7/30 d, coverage and the share the intervals claimed
    assert "BTC/USDT   1%   720 +0.210 +0.270 +0.500   81%   83%" in rows
    assert len(rows) == 1 + 1 + 3  # the counts, the served how-soon row (not each time model's), 3 direction models
    record = [r for r in rows if "%" in r and ("xgboost" in r or "logistic" in r or "climatology" in r)]
    assert len(record) == 3 and any("logistic*" in r for r in record)
    assert any(r.split()[2:6] == ["xgboost", "3000", "-0.009", "-0.003"] for r in record)


def test_reports_of_many_assets_are_split_into_messages_within_telegram_limit():
    messages = reports.hourly_text(_champions([f"COIN{i}/USDT" for i in range(200)]), NOW)
    assert len(messages) > 5 and all(len(m) <= reports.TELEGRAM_LIMIT for m in messages)
    text = "\n".join(messages)
    assert all(f"<b>COIN{i}/USDT</b>" in text for i in range(200)), "every asset reaches the chat"
    assert all(m.count("<pre>") == m.count("</pre>") for m in messages), "no table is cut in two"
    assert messages[1].startswith(f"<b>Hourly forecast</b> · {NOW:%Y-%m-%d %H:%M} UTC (2/{len(messages)})")
    performance = pd.DataFrame([{"symbol": f"COIN{i}/USDT", "target_pct": t, "model_name": m, "window_days": w,
                                 "total_predictions": 10, "brier_skill": 0.01}
                                for i in range(60) for t in (0.01, 0.02, 0.05) for m in ("xgboost", "logistic")
                                for w in (1, 7, 30)])
    timing = pd.DataFrame([{"symbol": f"COIN{i}/USDT", "target_pct": t, "model_name": "champion", "window_days": w,
                            "total_predictions": 10, "brier_skill_24h": 0.2, "interval_coverage": 0.8}
                           for i in range(60) for t in (0.01, 0.02, 0.05) for w in (1, 7, 30)])
    daily = reports.daily_text(NOW, pd.DataFrame({"is_champion": []}), performance, None, timing)
    assert len(daily) > 1 and all(len(m) <= reports.TELEGRAM_LIMIT for m in daily)
    assert all(m.count("<pre>") == m.count("</pre>") for m in daily), "no table is cut in two"
    text = reports.plain_text("\n".join(daily))
    assert all(text.count(f"COIN{i}/USDT ") == 3 + 6 for i in range(60))  # every how-soon and direction row
    assert "+0.200" not in text and "+0.010" not in text  # 10 forecasts a window: no skill shown, n/a


def test_one_alert_per_crossing():
    def frame(previous, current):
        champions = _champions(["BTC/USDT"], hours=2)
        newest = champions["timestamp"] == champions["timestamp"].max()
        champions.loc[newest, "probability"] = current
        champions.loc[~newest, "probability"] = previous
        return champions
    assert len(crossings(frame(0.70, 0.80), 0.75)) == 3  # crossed up, each target
    assert len(crossings(frame(0.80, 0.85), 0.75)) == 0  # stayed above: no repeat
    assert len(crossings(frame(0.30, 0.20), 0.75)) == 3  # crossed the down side (<= 0.25)
    assert len(crossings(frame(0.20, 0.10), 0.75)) == 0


def test_alert_text_has_reasons_and_record():
    text = reports.alert_text("ETH/USDT", 0.02, 0.81, 0.75, "xgboost",
                              [("ret_24", 0.2), ("vol_168", -0.1), ("rsi_14", 0.05)],
                              {"total_predictions": 120, "accuracy": 0.56, "brier_skill": 0.012})
    assert "UP 2% first" in text and "the 24-hour move raises P(up)" in text
    assert "7-day volatility lowers P(up)" in text and "n=120" in text and "+0.012" in text


def test_429_is_retried_after_its_delay(bot_api, ops):
    bot_api.state.faults.extend(["429"])
    result = _notifier(bot_api, ops).send("hourly", "hello")
    assert result.success and len(bot_api.sent("sendMessage")) == 1


def test_500_retried_within_bounds_then_recorded(bot_api, ops):
    bot_api.state.faults.extend(["500"] * 10)
    result = _notifier(bot_api, ops).send("hourly", "will fail")
    assert not result.success and "after 4 tries" in result.error
    assert len(bot_api.state.faults) == 6  # 4 tries, no more
    row = RecordStore(ops.db).reports().iloc[-1]
    assert row["content"] == "will fail" and not row["success"] and "NetworkError" in row["error_message"]


@pytest.mark.parametrize("fault, kind", [("401", "InvalidToken"), ("400", "BadRequest")])
def test_client_errors_are_not_retried(bot_api, ops, fault, kind):
    bot_api.state.faults.extend([fault, fault])
    result = _notifier(bot_api, ops).send("alert", "x")
    assert not result.success and kind in result.error
    assert len(bot_api.state.faults) == 1  # one try only


def test_connection_refused_is_recorded_not_raised(ops):
    notifier = TelegramNotifier(TOKEN, "1", RecordStore(ops.db), "http://127.0.0.1:9/bot", timeout=1, backoff=0.05)
    result = notifier.send("hourly", "nobody listens")
    assert not result.success
    assert "NetworkError" in result.error or "TimedOut" in result.error


def test_no_token_is_a_dry_run(ops, capsys):
    result = TelegramNotifier("", "", RecordStore(ops.db)).send("hourly", "console only")
    assert result.dry_run and "console only" in capsys.readouterr().out
    assert RecordStore(ops.db).reports().iloc[-1]["error_message"].startswith("dry run")


@pytest.mark.host_tz
def test_token_never_reaches_logs_or_records(bot_api, ops, caplog, tmp_path):
    from src.utils.logging_setup import setup_logging
    setup_logging("DEBUG", tmp_path)
    bot_api.state.faults.extend(["500", "401"])
    with caplog.at_level(logging.DEBUG):
        _notifier(bot_api, ops).send("hourly", "a")
        TelegramNotifier(TOKEN, "1", RecordStore(ops.db), "http://127.0.0.1:9/bot", timeout=1, backoff=0.05).send(
            "hourly", "b")
    log_file = (tmp_path / "crypto_ml.log").read_text()
    secret = TOKEN.split(":")[1]
    assert "report NOT sent" in log_file  # the failures were logged...
    assert secret not in log_file  # ...without the token
    assert secret not in caplog.text
    assert secret not in RecordStore(ops.db).reports().to_string()
    setup_logging("INFO", None)


def test_a_failing_photo_never_resends_the_text_and_every_attempt_is_recorded(bot_api, ops):
    from collections import deque
    records = RecordStore(ops.db)
    long_text = "x" * 2000  # over the 1024-character caption limit: the text goes first, then the photo
    bot_api.state.method_faults["sendPhoto"] = deque(["500"] * 10)
    result = _notifier(bot_api, ops).send("daily", long_text, b"\x89PNG fake")
    assert not result.success and result.error.startswith("sendPhoto:") and "text was delivered" in result.error
    assert len(bot_api.sent("sendMessage")) == 1 and bot_api.sent("sendPhoto") == []
    report = records.reports().iloc[-1]
    assert not report["success"] and "sendPhoto" in report["error_message"]
    attempts = records.attempts(int(report["id"]))
    assert list(zip(attempts["method"], attempts["attempt"], attempts["status"])) == [
        ("sendMessage", 1, "ok")] + [("sendPhoto", n, "failed") for n in range(1, 5)]
    assert attempts["error_message"].iloc[1:].str.contains("NetworkError").all()


def test_a_short_report_with_a_chart_is_one_photo_with_its_caption(bot_api, ops):
    bot_api.state.faults.extend(["500"])  # the first try fails, the retry sends the same single photo
    result = _notifier(bot_api, ops).send("daily", "<b>Daily</b> report", b"\x89PNG fake")
    assert result.success and bot_api.sent("sendMessage") == []
    photos = bot_api.sent("sendPhoto")
    assert len(photos) == 1 and photos[0]["fields"]["caption"] == "<b>Daily</b> report"
    records = RecordStore(ops.db)
    report = records.reports().iloc[-1]
    assert report["success"] and report["error_message"] is None
    assert list(records.attempts(int(report["id"]))["status"]) == ["failed", "ok"]


def test_daily_chart_of_a_month_of_backtest_forecasts_draws_every_panel(ops):
    from src.data.history import load_candles
    from src.models.offline.backtest import run_backtest
    from src.models.offline.training import TrainSettings
    from tests.shared_data import load_candles as shared_candles
    ops.save_ohlcv_data("BTC/USDT", "1h", shared_candles("BTC_USDT", "2022-01-01", "2023-04-15 23:00"))
    records = RecordStore(ops.db)
    start, end = pd.Timestamp("2023-03-01", tz="UTC"), pd.Timestamp("2023-03-29", tz="UTC")
    run_backtest(load_candles(ops, ["BTC/USDT"], "1h"), ["BTC/USDT"], [0.01, 0.05], start, end, records,
                 TrainSettings(), retrain_every_days=7)
    resolved, timing = records.resolved("backtest", start, end), records.resolved_time("backtest", start, end)
    figure = reports.daily_figure(resolved, timing, records.backtest_champion_skill())
    soon_skill, soon_reliability, up_skill, up_reliability = figure.axes  # how soon first: where the skill is
    soon_labels = [line.get_label().split(" (")[0] for line in soon_skill.lines]
    assert {"1% live", "5% live"} <= set(soon_labels)
    assert len(soon_skill.lines[0].get_xdata()) > 300  # one point per decided forecast, on a date axis
    for panel in (soon_reliability, up_reliability):
        labels = [line.get_label() for line in panel.lines]
        assert labels[0] == "perfect" and any(label.startswith("1% target (n=") for label in labels)
    champions = resolved[resolved["is_champion"] & resolved["status"].isin(["up", "down"])]
    if (champions["model_name"] == "climatology").mean() >= 0.95:  # skill 0 by construction: said, not drawn
        assert not up_skill.lines and "Climatology (the base rate) served" in up_skill.texts[0].get_text()
    else:
        up_labels = [line.get_label() for line in up_skill.lines]
        assert "1% live" in up_labels and any("backtest" in label for label in up_labels)
    assert not any(text.get_text().startswith("too few") for ax in figure.axes for text in ax.texts)
    import matplotlib.pyplot as plt
    plt.close(figure)


def test_an_alert_telegram_did_not_take_is_sent_again_once_then_expires(bot_api, ops, tmp_path):
    """At least once, recorded once: a claim stays pending/failed until the Bot API says ok, is retried on
    the next cycles while its hour is under 6 h old, and is marked expired with the reason after that."""
    import numpy as np

    from src.database.records.rows import prediction_rows
    from src.models.live.registry import ModelRegistry
    from src.notifications.service import ReportService
    records = RecordStore(ops.db)
    hour = pd.Timestamp("2023-06-01 09:00", tz="UTC")
    for when, p in ((hour - pd.Timedelta(hours=1), 0.55), (hour, 0.80)):  # BTC 2 % crosses 0.75 at `hour`
        records.save_predictions(prediction_rows("BTC/USDT", "1h", 0.02, "xgboost", "v", pd.DatetimeIndex([when]),
                                                 np.array([p]), np.array([1.0]), True, "live", "v"))
    service = ReportService(records, ModelRegistry(records, tmp_path / "models"), _notifier(bot_api, ops), 0.75)
    bot_api.state.faults.extend(["500"] * 50)  # Telegram is down
    [failed] = service.alerts(hour + pd.Timedelta(hours=1, minutes=2))
    claim = records.alerts().iloc[0]
    assert not failed.success and claim["state"] == "failed" and claim["attempts"] == 1 and claim["error_message"]
    assert bot_api.sent("sendMessage") == []
    bot_api.state.faults.clear()  # back
    [sent] = service.alerts(hour + pd.Timedelta(hours=2, minutes=2))
    assert sent.success and records.alerts().iloc[0]["state"] == "sent"
    assert service.alerts(hour + pd.Timedelta(hours=3, minutes=2)) == []  # never twice
    assert len([m for m in bot_api.sent("sendMessage") if "BTC/USDT" in m["fields"]["text"]]) == 1
    # a claim whose send never happened (a crash right after the claim) is tried while young, then expires
    records.claim_alert({"symbol": "ETH/USDT", "timeframe": "1h", "target_pct": 0.05, "timestamp": hour,
                         "side": "up", "probability": 0.8, "model_name": "xgboost", "message": "ETH alert"})
    assert service.alerts(hour + pd.Timedelta(hours=7)) == []
    eth = records.alerts().set_index("symbol").loc["ETH/USDT"]
    assert eth["state"] == "expired" and "not sent within 6 h" in eth["error_message"]
    assert records.alerts().set_index("symbol").loc["BTC/USDT", "state"] == "sent"


def _claim_alerts(records: RecordStore, hour: pd.Timestamp, symbols: list[str]) -> None:
    for symbol in symbols:
        records.claim_alert({"symbol": symbol, "timeframe": "1h", "target_pct": 0.02, "timestamp": hour,
                             "side": "up", "probability": 0.8, "model_name": "xgboost", "message": f"{symbol} alert"})


def test_a_dry_run_prints_the_alerts_and_writes_nothing(bot_api, ops, tmp_path, capsys, write_config):
    """`report --dry-run`: the alerts waiting (one Telegram refused earlier) and the new crossing are printed;
    no claim, no state, no attempt and no report row is written, so the daemon still sends them all."""
    from src.database.records.rows import prediction_rows
    from src.models.live.registry import ModelRegistry
    from src.notifications.service import ReportService
    from src.scheduler.services import Context
    from src.utils.config import Config
    records = RecordStore(ops.db)
    hour = pd.Timestamp("2023-06-01 09:00", tz="UTC")
    for when, p in ((hour - pd.Timedelta(hours=1), 0.55), (hour, 0.80)):  # BTC 2 % crosses 0.75 at `hour`
        records.save_predictions(prediction_rows("BTC/USDT", "1h", 0.02, "xgboost", "v", pd.DatetimeIndex([when]),
                                                 np.array([p]), np.array([1.0]), True, "live", "v"))
    _claim_alerts(records, hour, ["ETH/USDT"])
    records.mark_alert(records.alerts().iloc[0].to_dict(), "failed", "Telegram was down")
    before_alerts, before_reports = records.alerts(), records.reports()
    # the test's own database and folders: the repository's config.yaml would start an embedded PostgreSQL
    # in the clone's data/ (where the product's own database lives)
    ctx = Context(Config(write_config({"database": {"url": ops.db.database_url}})))
    preview = ctx.report_service(dry_run=True)
    assert preview.preview and preview.notifier.records is None  # the wiring of `report --dry-run`
    preview = ReportService(records, ModelRegistry(records, tmp_path / "models"), TelegramNotifier("", "", None),
                            0.75, preview=True)
    capsys.readouterr()
    results = preview.alerts(hour + pd.Timedelta(hours=1, minutes=2))
    out = capsys.readouterr().out
    assert len(results) == 2 and all(r.dry_run for r in results)
    assert "ETH/USDT alert" in out and "BTC/USDT" in out
    pd.testing.assert_frame_equal(records.alerts(), before_alerts)
    pd.testing.assert_frame_equal(records.reports(), before_reports)
    # the real sender afterwards still has both to send
    service = ReportService(records, ModelRegistry(records, tmp_path / "models"), _notifier(bot_api, ops), 0.75)
    assert len(service.alerts(hour + pd.Timedelta(hours=1, minutes=3))) == 2
    assert set(records.alerts()["state"]) == {"sent"}


def test_two_senders_never_send_one_alert_twice(bot_api, ops, tmp_path):
    """The daemon and a manual `report` at once: each alert is taken by one sender (UPDATE ... SKIP LOCKED)."""
    import threading

    from src.models.live.registry import ModelRegistry
    from src.notifications.service import ReportService
    from src.utils.clock import utc_now
    records = RecordStore(ops.db)
    hour = utc_now().floor("h") - pd.Timedelta(hours=1)
    symbols = [f"C{k}/USDT" for k in range(8)]
    _claim_alerts(records, hour, symbols)
    services = [ReportService(records, ModelRegistry(records, tmp_path / "models"), _notifier(bot_api, ops), 0.75)
                for _ in range(2)]
    with records.take_alert() as held:  # another sender is sending the oldest one right now
        assert held.row["symbol"] == "C0/USDT"
        threads = [threading.Thread(target=s.alerts) for s in services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    texts = [m["fields"]["text"] for m in bot_api.sent("sendMessage")]
    assert sorted(texts) == sorted(f"{s} alert" for s in symbols[1:])  # each once; the held one not at all
    # the holder died without a word (its transaction rolled back): the next run sends it
    [result] = services[0].alerts()
    assert result.success and set(records.alerts()["state"]) == {"sent"}
    assert services[1].alerts() == []
