"""`replay` runs the daemon itself on a simulated clock over past candles, and a backtest on the daemon's schedule
stores the same forecasts (`compare-runs`: zero differences). The real CLI, the real embedded PostgreSQL (a
database of the test's own, given with --database), the real CCXT client against the replayed exchange."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from src.data.replayed_exchange import ReplayedExchange, read_source
from src.scheduler.timetable import Timetable
from src.utils.clock import SimulatedClock, service_run, use_clock, utc_now
from tests.conftest import raw_connect
from tests.shared_data import load_candles

pytestmark = pytest.mark.host_tz  # the simulated clock and its days must be UTC whatever TZ says
START, END = "2023-11-01", "2023-11-04"


def _btc_source(folder) -> str:
    """BTC's real candles of 2023-03-01 .. 2023-11-30 as a CSV folder (the replayed exchange's source)."""
    folder.mkdir()
    load_candles("BTC_USDT", "2023-03-01", "2023-11-30 23:00").to_csv(folder / "BTC_USDT-1h.csv.gz", index=False)
    return str(folder)


def test_three_replayed_days_equal_the_backtest_on_the_daemons_schedule(empty_db_url, write_config, run_cli,
                                                                       tmp_path):
    source = _btc_source(tmp_path / "candles")
    config = write_config({"trading": {"assets": ["BTC/USDT"]}, "ml": {"training_days": 200},
                           "database": {"url": empty_db_url}})
    replay = run_cli("replay", "--start", START, "--end", END, "--source", source, "--database", empty_db_url,
                     "--config", str(config), timeout=1200)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    days = [line for line in replay.stdout.splitlines() if re.match(r"2023-11-0[123] ", line)]
    assert [d[:10] for d in days] == ["2023-11-01", "2023-11-02", "2023-11-03"], replay.stdout
    assert all(" 200 " in d for d in days), replay.stdout  # /health answered 200 at the end of every day
    assert "replay done through 2023-11-04 00:00 UTC" in replay.stdout
    with raw_connect(empty_db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_type, count(*), min(timestamp), max(timestamp) FROM predictions GROUP BY 1")
        runs = {row[0]: row[1:] for row in cur.fetchall()}
    # every hour of the three days but the last (its candle closes at the end) x 3 targets x 3 models; the hour
    # before the start, forecast at start, is the daemon's too
    assert runs["replay"][0] == (72 - 1 + 1) * 9
    assert runs["replay"][2] == pd.Timestamp("2023-11-03 22:00", tz="UTC")

    backtest = run_cli("backtest", "--start", START, "--end", END, "--retrain-every", "1", "--config", str(config),
                       timeout=1200)
    assert backtest.returncode == 0, backtest.stdout + backtest.stderr
    same = run_cli("compare-runs", "replay", "backtest", "--start", START, "--end", END, "--config", str(config))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "0 differences" in same.stdout and "639 direction forecasts in both" in same.stdout, same.stdout

    # the comparison can fail, and says why: one forecast off by its last stored decimal, one champion flag
    with raw_connect(empty_db_url) as conn, conn.cursor() as cur:
        cur.execute("""UPDATE predictions SET probability = probability + 0.000001 WHERE id = (SELECT min(id)
                       FROM predictions WHERE run_type = 'backtest' AND timestamp >= %s)""", (START,))
        cur.execute("""UPDATE resolution_forecasts SET is_champion = NOT is_champion WHERE id = (SELECT min(id)
                       FROM resolution_forecasts WHERE run_type = 'backtest' AND timestamp >= %s)""", (START,))
    differ = run_cli("compare-runs", "replay", "backtest", "--start", START, "--end", END, "--config", str(config))
    assert differ.returncode == 1, differ.stdout + differ.stderr
    counts = dict(re.findall(r"^  (\S.*?)\s+(\d+)$", differ.stdout, re.M))
    assert counts["direction forecast"] == "1" and counts["champion"] == "1", differ.stdout
    assert "2 differences" in differ.stdout


def test_the_replayed_exchange_answers_as_the_exchange_did_at_the_simulated_time(tmp_path):
    """Through the real CCXT client: only candles that had opened by the clock, the clock as the server time."""
    import ccxt
    source = _btc_source(tmp_path / "candles")
    clock = SimulatedClock(pd.Timestamp("2023-06-01 12:30", tz="UTC"))
    with ReplayedExchange(read_source(source, ["BTC/USDT"])) as exchange, use_clock(clock):
        client = ccxt.binance({"options": {"fetchMarkets": {"types": ["spot"]}}})
        client.urls["api"] = {**client.urls["api"], "public": exchange.api_url}
        assert client.fetch_time() == pd.Timestamp("2023-06-01 12:30", tz="UTC").value // 10**6
        rows = client.fetch_ohlcv("BTC/USDT", "1h", since=pd.Timestamp("2023-06-01", tz="UTC").value // 10**6)
        assert pd.Timestamp(rows[-1][0], unit="ms", tz="UTC") == pd.Timestamp("2023-06-01 12:00", tz="UTC")
        assert len(rows) == 13  # 00:00 .. 12:00, the last one still open (the fetcher keeps closed ones only)
        clock.advance_to(pd.Timestamp("2023-06-01 14:00", tz="UTC"))
        rows = client.fetch_ohlcv("BTC/USDT", "1h", since=pd.Timestamp("2023-06-01 12:00", tz="UTC").value // 10**6)
        assert len(rows) == 3
        assert service_run() == "replay" and utc_now() == clock.now()
    assert service_run() == "live"


def test_the_timetable_runs_what_is_due_on_the_service_clock():
    clock = SimulatedClock(pd.Timestamp("2023-06-01 23:50", tz="UTC"))
    ran = []
    with use_clock(clock):
        table = Timetable()
        table.hourly_at(2, "hourly", lambda: ran.append(("hourly", utc_now())))
        table.daily_at("00:15", "daily", lambda: ran.append(("daily", utc_now())))
        table.every_minutes(5, "health", lambda: ran.append(("health", utc_now())))
        assert table.next_run() == pd.Timestamp("2023-06-01 23:55", tz="UTC")
        while table.next_run() <= pd.Timestamp("2023-06-02 01:02", tz="UTC"):
            clock.advance_to(table.next_run())
            table.run_pending()
        clock.advance_to(pd.Timestamp("2023-06-02 03:31", tz="UTC"))  # a machine that slept: each runs once
        assert table.run_pending() == ["health", "hourly"]  # in the order they fell due
    names = [name for name, _ in ran]
    assert names.count("hourly") == 3 and names.count("daily") == 1 and names.count("health") == 15
    assert ("daily", pd.Timestamp("2023-06-02 00:15", tz="UTC")) in ran
    assert [t for name, t in ran if name == "hourly"][:2] == [pd.Timestamp("2023-06-02 00:02", tz="UTC"),
                                                              pd.Timestamp("2023-06-02 01:02", tz="UTC")]
    assert table.next_run() == pd.Timestamp("2023-06-02 03:35", tz="UTC")


def test_a_replay_reports_to_its_own_chat_at_a_pace_and_answers_commands(write_config, run_cli, tmp_path):
    """With telegram.replay_chat_id set, the replay's hourly and daily reports go to that chat only (never to the
    live chat_id), at least replay_pace_seconds apart, and its command listener answers there with the simulated
    time."""
    import threading

    from tests.loopback_telegram import LoopbackBotApi
    source = _btc_source(tmp_path / "candles")
    with LoopbackBotApi("123:replay") as api:
        config = write_config({"trading": {"assets": ["BTC/USDT"], "target_percentages": [0.02]},
                               "ml": {"training_days": 200},
                               "telegram": {"bot_token": "123:replay", "chat_id": "111", "replay_chat_id": "999",
                                            "replay_pace_seconds": 0.5, "base_url": api.base_url}})
        asked = threading.Timer(20.0, lambda: api.command("/now", chat_id=999, user_id=999))
        asked.start()
        replay = run_cli("replay", "--start", "2023-11-01 12:00", "--end", "2023-11-02 01:00", "--source", source,
                         "--config", str(config), timeout=900)
        asked.cancel()
        assert replay.returncode == 0, replay.stdout + replay.stderr
        sends = api.sent("sendMessage") + api.sent("sendPhoto")
        assert api.named_chats() == {"999"}  # never the live chat
        texts = [r["fields"].get("text") or r["fields"].get("caption") or "" for r in sends]
        hourly = [t for t in texts if "2023-11-01" in t and "BTC/USDT" in t]
        assert len(hourly) >= 12, texts  # 12:00 .. 00:02: an hourly report each simulated hour
        answers = [t for t in texts if t.startswith("<b>Now</b> · 2023-11-0")]  # the simulated time, not the host's
        assert answers, texts
        times = sorted(r["time"] for r, t in zip(sends, texts) if not t.startswith("<b>Now"))  # the reports
        assert min(b - a for a, b in zip(times, times[1:])) >= 0.45  # paced


def test_sigterm_stops_a_replay_within_15_s_with_every_hour_whole(empty_db_url, write_config, tmp_path):
    from tests.test_stop import _sigterm_mid_run
    source = _btc_source(tmp_path / "candles")
    config = write_config({"trading": {"assets": ["BTC/USDT"]}, "ml": {"training_days": 200}})

    def forecasts() -> int:
        try:
            with raw_connect(empty_db_url) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM predictions WHERE run_type = 'replay'")
                return cur.fetchone()[0]
        except Exception:  # not migrated yet
            return 0
    done = _sigterm_mid_run(config, ["replay", "--start", START, "--end", "2023-11-10", "--source", source,
                                     "--database", empty_db_url], lambda: forecasts() >= 9 * 5)
    assert "replay stopped at 2023-11-0" in done.stdout
    with raw_connect(empty_db_url) as conn, conn.cursor() as cur:
        cur.execute("""SELECT timestamp, count(*) FROM predictions GROUP BY 1 HAVING count(*) <> 9 UNION ALL
                       SELECT timestamp, count(*) FROM resolution_forecasts GROUP BY 1 HAVING count(*) <> 12""")
        assert cur.fetchall() == []  # every hour whole: 3 targets x 3 direction and 4 how-soon models


def test_training_ends_compare_exactly_and_to_the_hour_for_a_pruned_version():
    from src.models.evaluation.runs import same_train_ends, train_end
    registry = {"BTCUSDT-0.01-xgboost-2023100100-abc123": pd.Timestamp("2023-10-01 00:15", tz="UTC")}
    assert train_end("backtest-202310010015", registry) == pd.Timestamp("2023-10-01 00:15", tz="UTC")
    assert train_end("BTCUSDT-0.01-logistic-2023100100-def456", registry) == pd.Timestamp("2023-10-01", tz="UTC")
    both = pd.DataFrame({"model_version_a": ["BTCUSDT-0.01-xgboost-2023100100-abc123",  # in the registry: exact
                                             "BTCUSDT-0.01-logistic-2023100100-def456",  # pruned: to the hour
                                             "BTCUSDT-0.01-logistic-2023100200-def456",  # another day
                                             "unknown"],
                         "model_version_b": ["backtest-202310010015", "backtest-202310010015",
                                             "backtest-202310010015", "backtest-202310010015"]})
    assert same_train_ends(both, registry).tolist() == [True, True, False, False]
    both.loc[0, "model_version_b"] = "backtest-202310010000"  # exact: 00:00 is not 00:15
    assert not same_train_ends(both, registry)[0]


def test_only_the_replays_own_exchange_is_asked_without_rate_limiting(tmp_path):
    """CCXT spaces requests as the exchange asks (exchange.rate_limit); the replay's exchange on 127.0.0.1 is its
    own, so it is asked without the pauses (about 50 ms a request for Binance, a minute of a 30-day replay)."""
    from pathlib import Path

    from src.data.fetcher import ExchangeDataFetcher
    from src.scheduler.replay import replay_config
    from src.utils.config import Config
    config = Config()
    assert ExchangeDataFetcher(config=config).exchange.enableRateLimit is True
    own = replay_config(config, Path(tmp_path), "http://127.0.0.1:9/api/v3", None, 0)
    assert ExchangeDataFetcher(config=own).exchange.enableRateLimit is False
    assert config.get("exchange.rate_limit") is True  # the product's own config is left as it was
