"""How soon for any move size: the pooled model on a synthetic random walk whose exit times are known, and the
three doors that ask it (`predict --move`, `/soon ASSET 3.5`, `/api/soon`) on a trained database."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from flask import Flask

from src.data.features import compute_features, with_barrier
from src.models.estimators.any_size import (
    SIZE_GRID,
    fit_any_size,
    forecast_move,
    parse_move,
    size_samples,
    with_move,
)
from src.models.estimators.dataset import build_dataset, build_time_dataset
from src.models.estimators.survival import exit_probability
from src.models.live.moves import MoveForecaster
from src.models.live.prediction import Predictor
from src.notifications.answers import Answers
from src.utils.choices import BadInput
from src.web.pages import create_pages
from src.web.params import Site
from tests.conftest import TRAINED_TARGETS

H = 72
AT = pd.Timestamp("2023-01-20 06:15", tz="UTC")
NEWEST = pd.Timestamp("2023-02-28 23:00", tz="UTC")  # the trained database's newest candle


def _walk(hours: int, rng: np.random.Generator, steps: int = 30) -> tuple[pd.DataFrame, np.ndarray]:
    """Hourly candles of a driftless log-price walk whose volatility per hour switches every 40 days between
    0.4 % and 1.0 % (monitored `steps` times an hour: the candle's high and low are the path's), and each hour's
    true volatility."""
    sigma = np.where((np.arange(hours) // (24 * 40)) % 2 == 0, 0.004, 0.010)
    moves = rng.normal(size=(hours, steps)) * (sigma / np.sqrt(steps))[:, None]
    path = np.cumsum(moves.ravel()).reshape(hours, steps)
    opens = np.r_[0.0, path[:-1, -1]]
    high = np.maximum(path.max(axis=1), opens)
    low = np.minimum(path.min(axis=1), opens)
    times = pd.date_range("2021-01-01", periods=hours, freq="h", tz="UTC")
    candles = pd.DataFrame({"timestamp": times, "open": 100 * np.exp(opens), "high": 100 * np.exp(high),
                            "low": 100 * np.exp(low), "close": 100 * np.exp(path[:, -1]), "volume": 1000.0})
    return candles, sigma


def test_any_size_forecasts_match_the_known_exit_times_of_a_random_walk_at_sizes_it_never_saw():
    """Fitted on the grid (which leaves out 3 % and 7 %), its P(within 6 h / 24 h / H) for 3 % and 7 % lies
    within 0.08 of the exact first-exit probabilities of the walk (watched 30 times an hour), in both volatility
    regimes, and it gives about one half to the median of the walk's own exit hours."""
    rng = np.random.default_rng(31)
    candles, sigma = _walk(24 * 480, rng)
    features = compute_features(candles)
    samples = size_samples(candles, features, H)
    assert 0.03 not in SIZE_GRID and 0.07 not in SIZE_GRID
    assert len(samples.y) > 0.95 * (len(features) - H)  # every hour used once, by one size
    model = fit_any_size(samples.purged(pd.Timestamp("2022-01-01", tz="UTC")), H)
    test_rows = features.index[(features.index >= "2022-01-10")]
    position = ((test_rows - candles["timestamp"].iloc[0]) // pd.Timedelta(hours=1)).to_numpy()
    regime_of = position // (24 * 40)
    # rows whose week before and whole window lie in one regime (the volatility features have caught up)
    settled = ((position - 170) // (24 * 40) == regime_of) & ((position + H) // (24 * 40) == regime_of)
    true_sigma = sigma[position]
    for move in (0.03, 0.07):
        data = build_time_dataset(build_dataset(candles, features, move, H), features, move, H)
        forecast = forecast_move(model, features.loc[test_rows], move, H)
        lower, upper = np.log(1 - move), np.log(1 + move)
        for regime in (0.004, 0.010):
            rows = (true_sigma == regime) & settled
            assert rows.sum() > 500
            for j, hours in enumerate((6, 24, H)):
                exact = exit_probability(np.array([hours]), np.array([regime]), lower, upper)[0, 0]
                # the walk is watched 30 times an hour, not continuously: a few touches come later than theory's
                assert forecast[rows, j].mean() == pytest.approx(exact, abs=0.08), (move, regime, hours)
            # at the median of the walk's own exit hours in these rows, its P(resolved by then) is about one half
            realized = np.median(data.y.reindex(test_rows[rows]).to_numpy())
            if realized < H:
                at_median = model.model.cdf(with_move(with_barrier(features.loc[test_rows[rows]], move)),
                                            np.array([realized]))
                assert at_median.mean() == pytest.approx(0.5, abs=0.1), (move, regime)
    # and it orders sizes: a larger move takes longer, whatever the hour
    small, large = (forecast_move(model, features.loc[test_rows], m, H) for m in (0.02, 0.05))
    assert (small[:, 1] >= large[:, 1] - 1e-9).mean() > 0.99


def test_a_move_is_read_as_people_type_it_and_refused_outside_half_a_percent_to_ten():
    assert parse_move("3.5") == parse_move("3.5%") == parse_move("0.035") == 0.035
    assert parse_move("0.5") == 0.005 and parse_move("10 %") == 0.10
    for bad in ("0.3%", "12", "abc", "", "nan"):
        with pytest.raises(BadInput, match="from 0.5 to 10"):
            parse_move(bad)


@pytest.fixture
def asked(trained):
    """The trained database with one live cycle stored, and the forecaster of any size."""
    ops, records, registry = trained
    Predictor(ops, records, registry, TRAINED_TARGETS).predict(["BTC/USDT", "ETH/USDT"], AT)
    return ops, records, registry, MoveForecaster(ops, records, registry, TRAINED_TARGETS)


@pytest.mark.host_tz
def test_each_door_answers_a_size_nobody_configured_from_the_newest_candle(asked):
    ops, records, registry, moves = asked
    now = NEWEST + pd.Timedelta(hours=1, minutes=5)
    answer = moves.forecast("BTC/USDT", 0.035, now)
    assert answer.model == "any_size" and answer.candle_time == NEWEST and answer.stale is None
    model = registry.load(registry.current("BTC/USDT", "1h", 0.0, task="any_size")["champion"]).estimator
    history, _ = Predictor(ops, records, registry, TRAINED_TARGETS).features_at("BTC/USDT", NEWEST)
    assert answer.forecast == pytest.approx(forecast_move(model, history.iloc[[-1]], 0.035, 168)[0])
    p6, p24, ph, q10, q50, q90 = answer.forecast
    assert 0 <= p6 <= p24 <= ph <= 1 and 0 < q10 <= q50 <= q90 <= 168
    # a configured target answers with what the hourly cycle stored for its champion from the newest candle
    Predictor(ops, records, registry, TRAINED_TARGETS).predict(["BTC/USDT"], now)
    stored = moves.forecast("BTC/USDT", 0.05, now)
    _, timing = records.newest_forecasts([("BTC/USDT", 0.05)])
    assert pd.Timestamp(timing.iloc[0]["timestamp"]) == NEWEST == stored.candle_time
    assert stored.forecast[1] == pytest.approx(float(timing.iloc[0]["p_24h"])) and stored.model != "any_size"
    # the bot
    bot = Answers(records, ["BTC/USDT", "ETH/USDT"], TRAINED_TARGETS, moves=moves)
    reply = bot.answer("soon", ["btc", "3.5%"], now).messages[0]
    assert "3.5 %" in reply and f"24 h {p24:.0%}" in reply and "any_size" in reply
    with pytest.raises(BadInput, match="from 0.5 to 10"):
        bot.answer("soon", ["btc", "30"], now)
    # the page's API
    app = Flask(__name__)
    pages = create_pages(records, Site(["BTC/USDT", "ETH/USDT"], TRAINED_TARGETS), None, moves)
    app.register_blueprint(pages)
    client = app.test_client()
    got = client.get("/api/soon?asset=BTC&move=3.5")
    assert got.status_code == 200
    assert client.get("/api/soon?asset=btc&move=3.5%").data == got.data  # the same asset, size and hour: kept
    assert (pages.soon_cache.misses, pages.soon_cache.hits) == (1, 1)
    body = json.loads(got.data)
    assert body["model"] == "any_size" and body["move_pct"] == 3.5 and body["p_24h"] == pytest.approx(p24, abs=1e-4)
    assert body["horizon_hours"] == 168 and body["q10_hours"] <= body["q50_hours"] <= body["q90_hours"] <= 168
    assert body["candle_time"] == NEWEST.isoformat() and body["stale"]  # "now" is 2026 here: the candle is old
    for query, message in (("asset=BTC&move=12", "from 0.5 to 10"), ("move=3", "asset"),
                           ("asset=DOGE&move=3", "unknown asset DOGE")):
        bad = client.get(f"/api/soon?{query}")
        assert bad.status_code == 400 and message in json.loads(bad.data)["error"], query


@pytest.mark.host_tz
def test_a_configured_size_answers_before_the_hourly_cycle_stored_it(trained, run_cli, write_config, tmp_path):
    """`predict --move 1%` on a database whose newest candle has no stored forecast yet: the answer is the one the
    hourly cycle then stores for that candle (the group's time champion, served by its rule), not an error."""
    ops, records, registry = trained
    moves = MoveForecaster(ops, records, registry, TRAINED_TARGETS)
    now = NEWEST + pd.Timedelta(hours=1, minutes=5)
    assert records.count("resolution_forecasts") == 0
    early = moves.forecast("BTC/USDT", 0.01, now)
    assert early.candle_time == NEWEST and early.model != "any_size"
    config = write_config({"database": {"url": ops.db.database_url}, "paths": {"data_dir": str(tmp_path)},
                           "trading": {"assets": ["BTC/USDT", "ETH/USDT"], "target_percentages": TRAINED_TARGETS}})
    answered = run_cli("--config", str(config), "predict", "--move", "1%")
    assert answered.returncode == 0, answered.stderr
    assert f"{early.forecast[1]:.0%}" in answered.stdout and early.model in answered.stdout
    Predictor(ops, records, registry, TRAINED_TARGETS).predict(["BTC/USDT"], now)  # the hourly cycle stores it
    stored = moves.forecast("BTC/USDT", 0.01, now)
    assert stored.model == early.model and stored.candle_time == early.candle_time
    assert stored.forecast[:3] == pytest.approx(early.forecast[:3], abs=1e-6)  # as stored: probabilities to 1e-6,
    assert stored.forecast[3:] == pytest.approx(early.forecast[3:], abs=0.005)  # hours to 0.01
