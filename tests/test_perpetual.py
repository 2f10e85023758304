"""A perpetual future (BTC/USDT:USDT) beside the spot market it shares a base with: trained, predicted, reported,
shown on the pages and answered by the bot, end to end; a symbol the registry cannot name is refused by the
config's validation in one line."""
from __future__ import annotations

import pandas as pd
import pytest
from flask import Flask

from src.database.records import RecordStore
from src.models.live.prediction import Predictor
from src.models.live.registry import ModelRegistry
from src.models.offline.training import Trainer, TrainSettings
from src.notifications import reports
from src.notifications.answers import Answers
from src.utils.choices import parse_asset, short_name
from src.utils.config import registry_name
from src.web.pages import create_pages
from src.web.params import Site
from tests.shared_data import load_candles

PERP, SPOT, TARGET = "BTC/USDT:USDT", "BTC/USDT", 0.05
pytestmark = pytest.mark.host_tz  # forecasts stored and shown with their times, and product processes
AT = pd.Timestamp("2023-01-20 06:15", tz="UTC")  # predicts from the 05:00 candle


def test_a_perpetual_future_works_end_to_end(ops, tmp_path):
    candles = load_candles("BTC_USDT", "2022-03-01", "2023-02-28 23:00")
    for symbol in (SPOT, PERP):  # the perpetual's candles: the spot's stand in (no futures data is stored here)
        ops.save_ohlcv_data(symbol, "1h", candles)
    records = RecordStore(ops.db)
    registry = ModelRegistry(records, tmp_path / "models")
    results = Trainer(ops, records, registry, TrainSettings(n_folds=1, fold_days=60)).train(
        [SPOT, PERP], [TARGET], cut=pd.Timestamp("2023-01-15", tz="UTC"))
    assert all(not r.skipped for r in results), [r.skipped for r in results]
    versions = records.models(PERP, target=TARGET)["version"]
    assert len(versions) and all(v.startswith("BTCUSDT_USDT-0.05-") for v in versions)
    assert all((tmp_path / "models" / v / "model.joblib").exists() for v in versions)

    result = Predictor(ops, records, registry, [TARGET]).predict([SPOT, PERP], AT)
    assert result.written and not result.stale and not result.fallbacks
    champions = records.recent_champions(hours=1)
    assert set(champions["symbol"]) == {SPOT, PERP}

    [text] = reports.hourly_text(champions, AT)
    assert PERP in text and SPOT in text

    site = Site([SPOT, PERP], [TARGET])
    app = Flask("perp")
    app.register_blueprint(create_pages(records, site))
    http = app.test_client()
    now = http.get("/").get_data(as_text=True)
    assert '<h2>BTC-PERP <span class="target">5 %</span></h2>' in now and '<h2>BTC <span' in now
    for path in ("/forecasts?asset=btc-perp", "/forecasts?asset=BTC/USDT:USDT", "/record?asset=btc-perp",
                 "/models", "/api/forecasts?asset=btc-perp", "/forecasts.csv?asset=btc-perp"):
        answer = http.get(path)
        assert answer.status_code == 200, (path, answer.get_data(as_text=True)[:300])
    rows = http.get("/api/forecasts?asset=btc-perp&model=champion").get_json()["forecasts"]
    assert rows and {r["symbol"] for r in rows} == {PERP}

    answers = Answers(records, [SPOT, PERP], [TARGET])
    perp_now = "\n".join(answers.answer("now", ["btc-perp"], AT).messages)
    spot_now = "\n".join(answers.answer("now", ["btc"], AT).messages)
    assert PERP in perp_now and PERP not in spot_now and SPOT in spot_now


def test_names_of_perpetuals_and_dated_futures():
    assert short_name("BTC/USDT") == "BTC" and short_name(PERP) == "BTC-PERP"
    assert short_name("ETH/USDT:USDT-250328") == "ETH-250328"
    assert parse_asset("btc-perp", [SPOT, PERP]) == PERP and parse_asset("btc", [SPOT, PERP]) == SPOT
    assert registry_name(PERP) == "BTCUSDT_USDT" and registry_name("ETH/USDT:USDT-250328") == "ETHUSDT_USDT_250328"


@pytest.mark.parametrize("symbol", ["BTC/USDT:US DT", "BTC/ÜSDT", "../../etc/USDT", "A/" + "B" * 30])
def test_a_symbol_the_registry_cannot_name_is_refused_in_one_line(symbol, write_config, run_cli):
    path = write_config({"trading": {"assets": [symbol]}})
    result = run_cli("--config", str(path), "status")
    assert result.returncode == 2
    [line] = [x for x in result.stderr.splitlines() if "trading.assets" in x]
    assert "so models and records can name it" in line or "not of the form" in line


def test_a_perpetual_needs_its_futures_markets_loaded(write_config, run_cli):
    """Binance's markets are loaded as spot only by default: a perpetual is refused until its kind is added."""
    refused = run_cli("--config", str(write_config({"trading": {"assets": [SPOT, PERP]}})), "status")
    assert refused.returncode == 2 and 'add "linear"' in refused.stderr
    fine = write_config({"trading": {"assets": [SPOT, PERP]},
                         "exchange": {"options": {"fetchMarkets": {"types": ["spot", "linear"]}}}}, "fine.yaml")
    from src.utils.config import Config
    assert Config(fine).assets == [SPOT, PERP]
