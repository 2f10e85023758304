"""Live cycle on real candles in the embedded database: predict, outcomes, performance, retrain."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.data.features import FEATURE_VERSION, compute_features, with_barrier
from src.models.estimators.direction import ClimatologyModel, prob_up
from src.models.estimators.serving import ServingRule, compose
from src.models.live.outcomes import resolve_outcomes
from src.models.live.performance import daily_performance
from src.models.live.prediction import Predictor, hour_forecast
from src.models.live.registry import ModelRegistry
from src.models.offline.retraining import Retrainer
from src.models.offline.training import TrainSettings
from tests.conftest import TRAINED_TARGETS
from tests.reference_labels import reference_outcome

ROOT = Path(__file__).resolve().parents[1]
TARGETS = TRAINED_TARGETS  # the `trained` fixture's models (tests/conftest.py)
SETTINGS = TrainSettings(n_folds=1, fold_days=60)
AT = pd.Timestamp("2023-01-20 06:15", tz="UTC")  # predicts from the 05:00 candle


def _history(ops, symbol):
    return ops.get_candles(symbol, "1h", end=pd.Timestamp("2023-01-20 05:00", tz="UTC"))


def test_predictions_equal_the_registry_models_on_that_hours_features(trained):
    ops, records, registry = trained
    result = Predictor(ops, records, registry, TARGETS).predict(["BTC/USDT", "ETH/USDT"], AT)
    assert result.written == 2 * 2 * 3 and not result.stale
    stored = pd.read_sql("SELECT * FROM predictions", ops.db.engine)
    assert set(stored["timestamp"]) == {pd.Timestamp("2023-01-20 05:00", tz="UTC")}
    full = compute_features(_history(ops, "ETH/USDT"), _history(ops, "BTC/USDT"))  # all history, not a window
    row = full.iloc[[-1]]
    for target in TARGETS:
        current = registry.current("ETH/USDT", "1h", target)
        for name in ("xgboost", "logistic", "climatology"):
            expected = prob_up(registry.load(current[name]).estimator, with_barrier(row, target))[0]
            got = stored[(stored.symbol == "ETH/USDT") & (stored.target_pct.astype(float) == target)
                         & (stored.model_name == name)].iloc[0]
            assert float(got.probability) == pytest.approx(expected, abs=1e-6)
            assert got.prediction_class == int(float(got.probability) >= 0.5)
            assert float(got.confidence) == pytest.approx(max(expected, 1 - expected), abs=1e-6)
            assert got.is_champion == (name == current["champion"]["model_name"])
    assert records.cached_features("ETH/USDT", "1h", current["xgboost"]["feature_version"],
                                   pd.Timestamp("2023-01-20 05:00", tz="UTC")) is not None
    # how soon: every time model's forecast of that hour (garch filtered through the window before it), and the
    # champion's row served by its stored rule from its own and climatology's forecasts
    timing = pd.read_sql("SELECT * FROM resolution_forecasts", ops.db.engine)
    window = full.loc[pd.Timestamp("2023-01-20 05:00", tz="UTC") - pd.Timedelta(hours=400):]
    columns = ["p_6h", "p_24h", "p_horizon", "q10_hours", "q50_hours", "q90_hours"]
    for target in TARGETS:
        models = registry.current("ETH/USDT", "1h", target, task="resolution")
        own = {name: hour_forecast(registry.load(models[name]).estimator, with_barrier(window, target), 168)[0]
               for name in ("climatology", "random_walk", "garch", "vol_logistic")}
        champion = models["champion"]
        rule = ServingRule.from_metrics(champion["metrics"], champion["model_name"], 168)
        assert "kept_horizons" in champion["metrics"]
        served = compose(own[champion["model_name"]][None, :], own["climatology"][None, :], rule, 168)[0]
        rows = timing[(timing.symbol == "ETH/USDT") & (timing.target_pct.astype(float) == target)]
        for name, forecast in own.items():
            got = rows[rows.model_name == name].iloc[0]
            expected = served if name == champion["model_name"] else forecast
            assert got[columns[:3]].to_numpy(float) == pytest.approx(expected[:3], abs=1e-4), (target, name)
            assert got[columns[3:]].to_numpy(float) == pytest.approx(expected[3:], abs=0.006), (target, name)  # 0.01 h
            assert got.is_champion == (name == champion["model_name"])


@pytest.mark.host_tz
def test_repeated_and_concurrent_runs_write_nothing_twice(trained, write_config):
    ops, records, registry = trained
    cfg = write_config({"database": {"url": ops.db.database_url}, "trading": {
        "assets": ["BTC/USDT", "ETH/USDT"], "target_percentages": TARGETS},
        "paths": {"data_dir": str(registry.models_dir.parent)}})
    command = [sys.executable, "-m", "src.main", "predict", "--at", AT.isoformat(), "--config", str(cfg)]
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    assert all(run.wait(timeout=120) == 0 for run in runs), [run.stderr.read() for run in runs]
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "0 predictions and 0 how-soon forecasts written" in again.stdout
    assert records.count("predictions") == 12 and records.count("resolution_forecasts") == 16


def test_stale_asset_gets_no_prediction(trained):
    ops, records, registry = trained
    late = pd.Timestamp("2023-03-05 10:00", tz="UTC")  # data ends 2023-02-28 23:00
    result = Predictor(ops, records, registry, TARGETS).predict(["BTC/USDT"], late)
    assert result.stale.keys() == {"BTC/USDT"} and result.written == 0
    assert records.count("predictions") == 0


def test_outcomes_agree_with_the_label_function_and_are_idempotent(trained):
    ops, records, registry = trained
    predictor = Predictor(ops, records, registry, TARGETS)
    hours = pd.date_range("2023-01-21", periods=24, freq="h", tz="UTC")  # 24: enough to be scored (n >= 20)
    for at in hours:
        predictor.predict(["BTC/USDT"], at)
    early = resolve_outcomes(ops, records, pd.Timestamp("2023-01-21 12:00", tz="UTC"))
    later = resolve_outcomes(ops, records, pd.Timestamp("2023-02-10 00:00", tz="UTC"))
    assert resolve_outcomes(ops, records, pd.Timestamp("2023-02-10 00:00", tz="UTC")) == 0
    assert early + later == records.count("prediction_outcomes") == 24 * 2 * 3
    resolved = records.resolved("live")
    candles = ops.get_candles("BTC/USDT", "1h").set_index("timestamp")
    for target in TARGETS:
        mine = resolved[(resolved.target_pct == target) & (resolved.model_name == "xgboost")].set_index("timestamp")
        for entry, row in mine.iterrows():  # expected values from the independent reference, not the code tested
            status, label, hours = reference_outcome(candles, entry, target)
            assert row["status"] == status
            got_hours, got_label = row["time_to_target_hours"], row["actual_outcome"]
            assert pd.isna(got_hours) if hours is None else got_hours == hours
            assert pd.isna(got_label) if label is None else got_label == label
    # the how-soon forecasts of the same hours are resolved by the same outcomes
    timing = records.resolved_time("live")
    assert len(timing) == 24 * 2 * 4 and timing.groupby(["timestamp", "target_pct"])["is_champion"].sum().eq(1).all()
    for r in timing.itertuples():
        status, _, hours = reference_outcome(candles, r.timestamp, r.target_pct)
        assert r.status == status
        assert pd.isna(r.hours_to_resolution) if hours is None else r.hours_to_resolution == hours
    assert daily_performance(records, pd.Timestamp("2023-01-21").date()) > 0
    performance = records.performance("live")
    assert set(performance["window_days"]) == {1, 7, 30}
    time_performance = records.performance("live", task="resolution")
    assert set(time_performance["model_name"]) == {"climatology", "random_walk", "garch", "vol_logistic", "champion"}
    assert time_performance["interval_coverage"].between(0, 1).all()
    assert time_performance["interval_claimed"].dropna().between(0.8, 0.9).all()
    assert (time_performance.loc[time_performance.model_name == "climatology", "pinball_skill"] == 0).all()
    # /metrics exports the champions' live figures
    from src.monitoring.app import Metrics
    from src.monitoring.health import live_skills
    skills = live_skills(records, pd.Timestamp("2023-01-22 00:15", tz="UTC"))  # the daily job of that day
    # (P(within H) of a 1 % move is 1 for every model here: its skill is undefined, so not exported)
    assert {("BTC/USDT", "0.01", name) for name in ("direction", "6h", "24h", "coverage", "claimed")} <= set(skills)
    exported = Metrics().refresh({"database": {"reachable": True}}, True, skills).decode()
    assert 'crypto_ml_live_resolution_skill{horizon="24h",symbol="BTC/USDT",target="0.01"}' in exported
    assert 'crypto_ml_live_interval_coverage{symbol="BTC/USDT",target="0.05"}' in exported
    assert 'crypto_ml_live_interval_claimed{symbol="BTC/USDT",target="0.05"}' in exported


@pytest.mark.host_tz
def test_retraining_deploys_a_fresh_fit_chosen_on_equal_footing(trained):
    """The sitting champion gets no say: every kind is refitted and scored out of sample alike, and the
    chosen kind's fresh fit on everything known now serves, even when the kind does not change."""
    ops, records, registry = trained
    now = pd.Timestamp("2023-02-20", tz="UTC")
    # a champion that always says UP, planted as the sitting one
    bad = ClimatologyModel().fit(np.zeros(2), np.ones(2))
    version = registry.save(bad, symbol="BTC/USDT", timeframe="1h", target=0.01, model_name="climatology",
                            train_start=now, train_end=now, n_samples=2, metrics={})
    records.promote(version)
    retrainer = Retrainer(ops, records, registry, SETTINGS)
    first = retrainer.retrain(["BTC/USDT"], [0.01], now)[0]
    assert first.previous == "climatology" and first.version != version
    deployed = registry.current("BTC/USDT", "1h", 0.01)["champion"]
    assert deployed["version"] == first.version and deployed["model_name"] == first.champion
    assert deployed["train_end"] == now and deployed["n_samples"] > 5000  # a fresh fit on all known labels
    history = records.models("BTC/USDT", "1h", 0.01)
    assert history["is_champion"].sum() == 1
    assert history.loc[history.version == version, "retired_at"].notna().all()
    # the next day: the same kind again, but a fresh fit serves
    second = retrainer.retrain(["BTC/USDT"], [0.01], now + pd.Timedelta(days=1))[0]
    assert second.champion == first.champion and not second.changed and second.version != first.version
    for day in (2, 3):  # daily refits do not pile up: never-champion models beyond 3 per kind are pruned
        retrainer.retrain(["BTC/USDT"], [0.01], now + pd.Timedelta(days=day))
    history = records.models("BTC/USDT", "1h", 0.01)
    never = history[~history["is_champion"] & history["promoted_at"].isna()]
    assert never.groupby("model_name").size().max() <= 3
    assert history["promoted_at"].notna().sum() == 6  # every champion, past and present (fixture, planted, 4 days)
    assert all(registry.model_folder(v).exists() for v in history["version"].iloc[-7:])
    # a group that cannot be retrained keeps its champion and says why
    eth = registry.current("ETH/USDT", "1h", 0.01)["champion"]
    failed = retrainer.retrain(["ETH/USDT"], [0.01], pd.Timestamp("2022-03-20", tz="UTC"))[0]
    assert failed.version is None and "failed, champion kept" in failed.reason and "labelled samples" in failed.reason
    assert registry.current("ETH/USDT", "1h", 0.01)["champion"]["version"] == eth["version"]


# ---- the live record on any host clock, in every group, every day ------------------------------------
@pytest.mark.host_tz
def test_utc_whatever_the_server_and_host_zone_across_a_dst_change(trained, write_config):
    """A server whose default zone is New York and a host in New York: sessions still run in UTC, and
    predictions, outcomes, catch-up, performance and the report work across the 2022-11-06 DST change."""
    import time

    from src.database.connection import DatabaseConnection
    from src.notifications.reports import hourly_text
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config

    ops, records, registry = trained
    host_zone = os.environ.get("TZ")  # the run's own zone (CI runs these under UTC and New York): put back after
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        name = ops.db.engine.url.database
        with ops.db.engine.begin() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET timezone = \'America/New_York\'')
        ops.db.engine.dispose()  # new sessions get the database's New York default unless told otherwise
        assert ops.db.engine.connect().exec_driver_sql("SHOW timezone").scalar() == "UTC"
        raw = DatabaseConnection(ops.db.database_url).engine.url.set(drivername="postgresql")
        import psycopg2
        with psycopg2.connect(raw.render_as_string(hide_password=False)) as plain, plain.cursor() as cur:
            cur.execute("SHOW timezone")
            assert cur.fetchone()[0] == "America/New_York"  # what the fix has to overcome

        predictor = Predictor(ops, records, registry, TARGETS)
        hours = pd.date_range("2022-11-06 04:00", periods=5, freq="h", tz="UTC")  # 05:00-06:00 UTC: 2 am twice
        for hour in hours:
            predictor.predict(["BTC/USDT"], hour + pd.Timedelta(hours=1, minutes=5))
        assert resolve_outcomes(ops, records, pd.Timestamp("2022-11-20", tz="UTC")) == 5 * 2 * 3
        resolved = records.resolved("live")
        assert set(resolved["timestamp"]) == set(hours)
        assert all(str(t.tz) == "UTC" for t in resolved["timestamp"])

        config = Config(write_config({"database": {"url": ops.db.database_url}, "trading": {
            "assets": ["BTC/USDT"], "target_percentages": TARGETS}}))
        daemon = Daemon(Context(config))
        missed = daemon._missed_hours(pd.Timestamp("2022-11-06 12:03", tz="UTC"))
        assert missed == list(pd.date_range("2022-11-06 09:00", "2022-11-06 10:00", freq="h", tz="UTC"))
        assert daily_performance(records, pd.Timestamp("2022-11-06").date(), pd.Timestamp("2022-11-20", tz="UTC")) > 0
        [text] = hourly_text(records.recent_champions(hours=1), pd.Timestamp("2022-11-06 09:05", tz="UTC"))
        assert "2022-11-06 09:05 UTC" in text and "candle 2022-11-06 08:00 UTC" in text
    finally:
        if host_zone is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = host_zone
        time.tzset()
        assert os.environ.get("TZ") == host_zone


def test_a_days_performance_is_recomputed_as_its_predictions_resolve(trained):
    from src.models.live.performance import refresh_performance
    ops, records, registry = trained
    predictor = Predictor(ops, records, registry, TARGETS)
    day = pd.Timestamp("2023-01-20").date()
    for at in pd.date_range("2023-01-20 01:05", periods=23, freq="h", tz="UTC"):
        predictor.predict(["BTC/USDT"], at)
    next_day = pd.Timestamp("2023-01-21 00:15", tz="UTC")
    resolve_outcomes(ops, records, next_day)
    daily_performance(records, day, next_day)

    def row():
        table = records.performance("live", day)
        return table[(table.window_days == 1) & (table.model_name == "xgboost")
                     & (table.target_pct.astype(float) == 0.05)].iloc[0]
    first = row()
    assert first.pending_predictions > 0 and first.resolved_predictions + first.pending_predictions == 23
    assert pd.isna(first.hit_rate)  # no window is complete one day later: no hit rate yet, not 100 %
    assert refresh_performance(records, pd.Timestamp("2023-01-24 00:15", tz="UTC"))[0] == day  # still pending
    week_later = pd.Timestamp("2023-01-29 00:15", tz="UTC")
    resolve_outcomes(ops, records, week_later)
    assert day in refresh_performance(records, week_later)
    final = row()
    assert final.pending_predictions == 0 and final.resolved_predictions == 23
    assert final.total_predictions > first.total_predictions
    outcomes = records.resolved("live")
    mine = outcomes[(outcomes.model_name == "xgboost") & (outcomes.target_pct == 0.05)]
    assert final.hit_rate == pytest.approx((mine["status"] != "expired").mean())
    assert day not in records.days_with_pending("live", day)


def test_catch_up_uses_only_the_models_that_existed_at_that_hour(trained):
    ops, records, registry = trained
    # the models were trained just now: a past hour caught up now has no model of its time
    result = Predictor(ops, records, registry, TARGETS).predict(["BTC/USDT"], AT, registry_as_of_at=True)
    assert result.written == 0 and len(result.skipped) == 2
    assert all("no champion model existed" in why for why in result.skipped.values())
    # a champion replaced later: the registry as of between the two gives the old one
    old = registry.current("BTC/USDT", "1h", 0.01)["champion"]
    new = registry.save(ClimatologyModel().fit(np.zeros(2), np.ones(2)), symbol="BTC/USDT", timeframe="1h",
                        target=0.01, model_name="climatology", train_start=AT, train_end=AT, n_samples=2, metrics={})
    records.promote(new)
    between = records.models("BTC/USDT", "1h", 0.01).set_index("version").loc[new, "created_at"]
    assert registry.current("BTC/USDT", "1h", 0.01, as_of=between)["champion"]["version"] == old["version"]
    assert registry.current("BTC/USDT", "1h", 0.01)["champion"]["version"] == new
    assert "champion" not in registry.current("BTC/USDT", "1h", 0.01, as_of=old["created_at"] - pd.Timedelta(1, "s"))


def test_one_group_without_a_model_does_not_stop_the_others(trained):
    ops, records, registry = trained
    result = Predictor(ops, records, registry, [*TARGETS, 0.03]).predict(["BTC/USDT", "ETH/USDT"], AT)
    assert result.written == 2 * 2 * 3  # every trained group
    assert set(result.skipped) == {("BTC/USDT", 0.03), ("ETH/USDT", 0.03)}
    assert "train first" in result.skipped[("ETH/USDT", 0.03)]
    assert set(records.group_problems()) == {("BTC/USDT", 0.03), ("ETH/USDT", 0.03)}
    Predictor(ops, records, registry, TARGETS).predict(["BTC/USDT", "ETH/USDT"], AT)  # a cycle that works clears
    assert set(records.group_problems()) == {("BTC/USDT", 0.03), ("ETH/USDT", 0.03)}  # ...only its own groups


def _logistic_contributions_by_hand(estimator, row: pd.DataFrame) -> pd.Series:
    """Independent of src: coefficient x (value - mean) / scale, per ensemble member, averaged."""
    parts = []
    for member in estimator.calibrated_classifiers_:
        imputer, scaler, logistic = member.estimator.named_steps.values()
        values = row[list(estimator.feature_names_in_)].iloc[0].fillna(pd.Series(imputer.statistics_,
                                                                                 estimator.feature_names_in_))
        parts.append(logistic.coef_[0] * (values.to_numpy() - scaler.mean_) / scaler.scale_)
    return pd.Series(np.mean(parts, axis=0), index=estimator.feature_names_in_)


def test_alert_is_explained_by_the_model_that_made_it_and_sent_once(trained, capsys):
    from src.database.records.rows import prediction_rows
    from src.notifications.reports import PLAIN_WORDS
    from src.notifications.service import ReportService
    from src.notifications.telegram import TelegramNotifier

    ops, records, registry = trained
    target = 0.05
    Predictor(ops, records, registry, [target]).predict(["BTC/USDT"], AT)  # caches the hour's features
    logistic = registry.current("BTC/USDT", "1h", target)["logistic"]
    records.promote(logistic["version"])
    hour = pd.Timestamp("2023-01-20 05:00", tz="UTC")
    with ops.db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM predictions")
    for when, p in ((hour - pd.Timedelta(hours=1), 0.55), (hour, 0.80)):  # crosses 0.75 at `hour`
        records.save_predictions(prediction_rows("BTC/USDT", "1h", target, "logistic", logistic["version"],
                                                 pd.DatetimeIndex([when]), np.array([p]), np.array([1.0]), True,
                                                 "live", FEATURE_VERSION))
    service = ReportService(records, registry, TelegramNotifier("", "", records), threshold=0.75)
    capsys.readouterr()
    now = hour + pd.Timedelta(hours=1, minutes=3)  # the cycle of that hour
    assert len(service.alerts(now)) == 1
    text = capsys.readouterr().out
    cached = records.cached_features("BTC/USDT", "1h", logistic["feature_version"], hour)
    row = with_barrier(pd.DataFrame([cached], index=[hour]).astype(float), target)
    expected = _logistic_contributions_by_hand(registry.load(logistic).estimator, row)
    top = expected.abs().sort_values(ascending=False).index[:3]
    for name in top:
        effect = "raises" if expected[name] > 0 else "lowers"
        assert f"{PLAIN_WORDS.get(name, name)} {effect} P(up)" in text
    assert "(logistic)" in text
    # the next cycles bring no new prediction: nothing is sent again
    assert service.alerts(now) == [] and service.alerts(now) == []
    # a climatology champion never alerts
    with ops.db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE predictions SET model_name = 'climatology'")
    with ops.db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alerts")
    assert service.alerts(now) == []


def test_an_asset_is_not_predicted_from_a_stand_in_for_btc(trained):
    ops, records, registry = trained
    with ops.db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM ohlcv_data WHERE symbol = 'BTC/USDT'")
    result = Predictor(ops, records, registry, TARGETS).predict(["ETH/USDT"], AT)
    assert result.written == 0 and "no BTC/USDT candles" in result.stale["ETH/USDT"]
    assert records.group_problems()[("ETH/USDT", 0.05)].startswith("no BTC/USDT candles")


def test_a_champion_that_cannot_be_loaded_falls_back_to_an_earlier_one_and_the_others_predict(trained):
    """One byte changed in the champion's file, or a row whose version points outside the models folder: the
    load is refused with its reason, the group serves its newest earlier champion that loads (said in
    group_status and /health), and every other group predicts as usual."""
    from src.monitoring.health import health_snapshot
    ops, records, registry = trained
    earlier = registry.current("BTC/USDT", "1h", 0.01)["champion"]
    newer = registry.save(ClimatologyModel().fit(np.zeros((4, 1)), np.array([1, 1, 1, 0])), symbol="BTC/USDT",
                          timeframe="1h", target=0.01, model_name="climatology", train_start=AT, train_end=AT,
                          n_samples=4, metrics={})
    records.promote(newer)
    model_file = registry.model_folder(newer) / "model.joblib"
    data = bytearray(model_file.read_bytes())
    data[-10] ^= 0xFF
    model_file.write_bytes(bytes(data))
    result = Predictor(ops, records, ModelRegistry(records, registry.models_dir), TARGETS).predict(
        ["BTC/USDT", "ETH/USDT"], AT)
    left_out = 0 if earlier["model_name"] == "climatology" else 1  # the broken model, unless the fallback is its kind
    assert result.written == 2 * 2 * 3 - left_out  # every group predicted
    assert "does not match its checksum" in result.fallbacks[("BTC/USDT", 0.01)]
    stored = pd.read_sql("SELECT symbol, target_pct, model_version FROM predictions WHERE is_champion",
                         ops.db.engine)
    btc = stored[(stored.symbol == "BTC/USDT") & (stored.target_pct.astype(float) == 0.01)]
    assert btc["model_version"].tolist() == [earlier["version"]]  # the earlier champion served
    assert len(stored) == 4 and set(result.fallbacks) == {("BTC/USDT", 0.01)}
    why = records.group_problems("1h", "model")[("BTC/USDT", 0.01)]
    assert earlier["version"] in why and "retrained" in why
    report, healthy = health_snapshot(ops, records, ["BTC/USDT", "ETH/USDT"], TARGETS, "1h", 1e9, "test")
    assert not healthy and any("BTC/USDT 0.01" in p and "cannot be loaded" in p for p in report["problems"])
    # a row whose version would lead out of the models folder: refused the same way, never followed
    with ops.db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM predictions")
        conn.exec_driver_sql("UPDATE model_registry SET version = '../../outside' WHERE version = %s", (newer,))
    result = Predictor(ops, records, ModelRegistry(records, registry.models_dir), TARGETS).predict(
        ["BTC/USDT", "ETH/USDT"], AT)
    assert "not one this registry writes" in result.fallbacks[("BTC/USDT", 0.01)]
    assert result.written == 2 * 2 * 3 - left_out


@pytest.mark.host_tz
def test_the_daemon_retrains_a_group_whose_champion_could_not_be_loaded(trained, write_config, tmp_path):
    from src.scheduler.daemon import Daemon
    from src.scheduler.services import Context
    from src.utils.config import Config
    ops, records, registry = trained
    before = registry.current("BTC/USDT", "1h", 0.05)["champion"]["version"]
    config = Config(write_config({"database": {"url": ops.db.database_url}, "paths": {"data_dir": str(tmp_path)},
                                  "trading": {"assets": ["BTC/USDT", "ETH/USDT"]}, "ml": {"n_workers": 1}}))
    daemon = Daemon(Context(config))
    assert daemon.heal([("BTC/USDT", 0.05)]) == {"groups_retrained": 1, "groups_failed": 0}
    after = registry.current("BTC/USDT", "1h", 0.05)["champion"]
    assert after["version"] != before and registry.load(after)
