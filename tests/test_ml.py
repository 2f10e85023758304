"""ML engine: labels by hand, no look-ahead, purging, registry round trip, train and a short backtest."""
import numpy as np
import pandas as pd
import pytest

from src.data.features import FEATURE_VERSION, compute_features, with_barrier
from src.data.history import load_candles
from src.data.labels import barrier_outcomes, label_known_time
from src.database.records import RecordStore
from src.models.estimators.dataset import asset_features, build_dataset
from src.models.estimators.direction import explain, fit_model, prob_up
from src.models.live.registry import ModelRegistry
from src.models.offline.backtest import run_backtest
from src.models.offline.training import TrainSettings
from src.utils.errors import UserError
from tests.reference_labels import reference_outcome
from tests.shared_data import load_candles as shared_candles

T0 = pd.Timestamp("2024-01-01 00:00", tz="UTC")


def _candles(rows: list[tuple[float, float, float]], skip: tuple[int, ...] = ()) -> pd.DataFrame:
    """Hand-made candles (high, low, close) one hour apart; hours listed in `skip` are absent."""
    kept = [(T0 + pd.Timedelta(hours=i), h, lo, c) for i, (h, lo, c) in enumerate(rows) if i not in skip]
    return pd.DataFrame(kept, columns=["timestamp", "high", "low", "close"])


def _first(candles, horizon=3, **kw) -> pd.Series:
    return barrier_outcomes(candles, 0.02, horizon, **kw).iloc[0]


def test_label_up_down_ambiguous_expired():
    up = _first(_candles([(100, 100, 100), (101, 99, 100), (102.5, 99.5, 101), (99, 97, 98)]))
    assert (up.status, up.label, up.hours_to_hit) == ("up", 1.0, 2.0)
    assert up.hit_time == T0 + pd.Timedelta(hours=2)
    assert up.max_favorable_move == pytest.approx(0.025) and up.max_adverse_move == pytest.approx(0.01)
    down = _first(_candles([(100, 100, 100), (100.5, 97.9, 99), (103, 99, 101), (100, 99, 100)]))
    assert (down.status, down.label, down.hours_to_hit) == ("down", 0.0, 1.0)
    both = _first(_candles([(100, 100, 100), (102, 98, 100), (100, 100, 100), (100, 100, 100)]))
    assert both.status == "ambiguous" and np.isnan(both.label)
    none = _first(_candles([(100, 100, 100), (101, 99, 100), (101.9, 98.1, 100), (101, 99, 100), (103, 97, 100)]))
    assert none.status == "expired" and np.isnan(none.hours_to_hit)  # the 4th hour is past H = 3
    assert none.max_favorable_move == pytest.approx(0.019)


def test_label_pending_and_missing_hours():
    few = _first(_candles([(100, 100, 100), (101, 99, 100)]))
    assert few.status == "pending"  # H = 3 candles are not there yet
    rows = [(100, 100, 100), (101, 99, 100), (101, 99, 100), (103, 99, 100), (100, 100, 100)]
    # hour 2 missing and known unfillable: skipped, the hit at hour 3 counts
    known = _first(_candles(rows, skip=(2,)), unfillable=pd.DatetimeIndex([T0 + pd.Timedelta(hours=2)]))
    assert (known.status, known.hours_to_hit) == ("up", 3.0)
    # hour 2 missing but not known unfillable: the window waits for it
    waiting = _first(_candles(rows, skip=(2,)), unfillable=pd.DatetimeIndex([], tz="UTC"))
    assert waiting.status == "pending"
    # a hit before the unknown hour decides the window anyway
    early = _first(_candles([(100, 100, 100), (103, 99, 100), (100, 100, 100), (100, 100, 100)], skip=(2,)),
                   unfillable=pd.DatetimeIndex([], tz="UTC"))
    assert early.status == "up"


def test_label_known_time():
    outcomes = barrier_outcomes(_candles([(100, 100, 100), (101, 99, 100), (103, 99, 100), (100, 100, 100),
                                          (100, 100, 100), (100, 100, 100)]), 0.02, 3)
    known = label_known_time(outcomes, 3)
    assert known.iloc[0] == T0 + pd.Timedelta(hours=3)  # hit candle 2 closes at 3:00
    assert known.iloc[2] == T0 + pd.Timedelta(hours=6)  # expired: after candle 5 closes


def _real(name: str, start: str, end: str) -> pd.DataFrame:
    frame = shared_candles(name, start, end)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    return frame


def test_features_have_no_look_ahead_and_respect_missing_hours():
    eth, btc = _real("ETH_USDT", "2021-04-01", "2021-05-15"), _real("BTC_USDT", "2021-04-01", "2021-05-15")
    full = compute_features(eth, btc)
    cut = pd.Timestamp("2021-04-25 03:00", tz="UTC")  # just before Binance's 3 missing hours
    for t in (cut, pd.Timestamp("2021-05-01 12:00", tz="UTC")):
        part = compute_features(eth[eth.timestamp <= t], btc[btc.timestamp <= t])
        pd.testing.assert_frame_equal(part, full.loc[:t])
    assert pd.Timestamp("2021-04-25 05:00", tz="UTC") not in full.index  # no row for an unpublished hour
    after = full.loc[pd.Timestamp("2021-04-25 08:00", tz="UTC")]
    assert np.isnan(after["ret_3"])  # its 3-hour-ago candle does not exist: not silently the one before


def test_purging_drops_exactly_the_unknown_labels():
    btc = _real("BTC_USDT", "2021-06-01", "2021-09-01")
    data = build_dataset(btc, compute_features(btc), 0.02, 168)
    cut = pd.Timestamp("2021-08-01", tz="UTC")
    purged = data.purged(cut, embargo_hours=24)
    assert (purged.known_at <= cut - pd.Timedelta(hours=24)).all()
    dropped = data.known_at[~data.known_at.index.isin(purged.known_at.index)]
    assert (dropped > cut - pd.Timedelta(hours=24)).all()
    assert len(purged.y) + len(dropped) == len(data.y)


def test_registry_round_trip_and_feature_version_guard(btc_year, tmp_path):
    records = RecordStore(btc_year.db)
    registry = ModelRegistry(records, tmp_path / "models")
    candles = load_candles(btc_year, ["BTC/USDT"], "1h")
    data = build_dataset(candles["BTC/USDT"], asset_features(candles, "BTC/USDT"), 0.02)
    model = fit_model("xgboost", data.X, data.y)
    version = registry.save(model, symbol="BTC/USDT", timeframe="1h", target=0.02, model_name="xgboost",
                            train_start=data.X.index[0], train_end=data.X.index[-1], n_samples=len(data.y),
                            metrics={"brier": 0.25})
    records.promote(version)
    row = registry.current("BTC/USDT", "1h", 0.02)["champion"]
    assert row["version"] == version and row["feature_version"] == FEATURE_VERSION
    loaded = ModelRegistry(records, tmp_path / "models").load(row)
    np.testing.assert_array_equal(prob_up(loaded.estimator, data.X.tail(50)), prob_up(model, data.X.tail(50)))
    assert len(explain("xgboost", loaded.estimator, data.X.tail(1))) == 3
    assert (tmp_path / "models" / version / "booster-0.ubj").exists()
    with pytest.raises(UserError, match="retrain"):
        ModelRegistry(records, tmp_path / "models").load({**row.to_dict(), "feature_version": "old"})


@pytest.mark.host_tz
def test_train_cli_stores_models_metrics_and_champion(btc_year, run_cli, write_config):
    cfg = write_config({"database": {"url": btc_year.db.database_url}, "trading": {"assets": ["BTC/USDT"]}})
    result = run_cli("train", "--target", "0.02", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    records = RecordStore(btc_year.db)
    models = records.models("BTC/USDT", "1h", 0.02)
    assert sorted(models["model_name"]) == ["climatology", "logistic", "xgboost"]
    assert models["is_champion"].sum() == 1
    validation = records.performance("validation").set_index("model_name")
    assert set(validation.index) == {"climatology", "logistic", "xgboost", "champion"}
    assert set(validation["window_days"]) == {60}  # the held-out last fold only
    assert float(validation.loc["climatology", "brier_skill"]) == 0.0
    # the reported champion is one of the kinds, chosen on the earlier folds, scored on the held-out one
    assert validation.loc["champion", "brier"] in set(validation.loc[["climatology", "logistic", "xgboost"], "brier"])
    champion = models[models["is_champion"]].iloc[0]
    chosen_on = {m["model_name"]: m["metrics"] for _, m in models.iterrows()}
    assert chosen_on["xgboost"]["selection_p_value"] is not None  # the evidence the choice rested on
    assert chosen_on["climatology"]["selection_loss"] is not None
    if champion["model_name"] != "climatology":  # replaced the simpler model only on evidence
        assert chosen_on[champion["model_name"]]["selection_p_value"] < 0.05


def test_short_backtest_end_to_end(btc_year):
    records = RecordStore(btc_year.db)
    candles = load_candles(btc_year, ["BTC/USDT"], "1h")
    start, end = pd.Timestamp("2022-12-01", tz="UTC"), pd.Timestamp("2022-12-15", tz="UTC")
    settings = TrainSettings(min_samples=500)
    table, _ = run_backtest(candles, ["BTC/USDT"], [0.01, 0.05], start, end, records, settings, retrain_every_days=7)
    assert len(table) == 8 and set(table["model_name"]) == {"xgboost", "logistic", "climatology", "champion"}
    assert records.count("predictions") == 14 * 24 * 2 * 3  # one row per model and hour, no copy
    assert ((table["skill_low"] <= table["brier_skill"]) & (table["brier_skill"] <= table["skill_high"])).all()
    # the product's forecast: one model's row per hour and target, flagged as live rows are, one kind per point
    stored = pd.read_sql("SELECT timestamp, target_pct, model_name, model_version, probability, is_champion "
                         "FROM predictions", btc_year.db.engine)
    champion = stored[stored.is_champion]
    assert (champion.groupby(["timestamp", "target_pct"]).size() == 1).all() and len(champion) == 14 * 24 * 2
    assert (champion.groupby(["model_version", "target_pct"])["model_name"].nunique() == 1).all()
    # the champion series is scored from exactly those rows
    resolved = records.resolved("backtest")
    flagged = resolved[resolved.is_champion & resolved.status.isin(["up", "down"])]
    for target, rows in flagged.groupby("target_pct"):
        assert table[(table.target_pct == target) & (table.model_name == "champion")]["n"].item() == len(rows)
    resolved = records.resolved("backtest")
    sample = resolved[(resolved.target_pct == 0.01) & (resolved.model_name == "xgboost")].set_index("timestamp")
    indexed = candles["BTC/USDT"].set_index("timestamp")
    expected = [reference_outcome(indexed, entry, 0.01)[0] for entry in sample.index]  # independent rule
    assert sample["status"].tolist() == expected
    # a second run replaces, never duplicates
    run_backtest(candles, ["BTC/USDT"], [0.01, 0.05], start, end, records, settings, retrain_every_days=7)
    assert records.count("predictions") == 14 * 24 * 2 * 3


@pytest.mark.parametrize("n", [468, 660, 803, 804, 2000, 20000])
def test_calibration_splits_fit_every_size_and_keep_the_horizon_gap(n):
    from sklearn.model_selection import check_cv

    from src.models.estimators.direction import MIN_CALIBRATION_FOLD, calibration_cv
    splits = list(check_cv(calibration_cv(n, 168)).split(np.zeros((n, 1))))
    assert len(splits) == 1
    for train, test in splits:
        assert test.min() - train.max() > 168  # no label of the fitting piece reaches into calibration
        assert len(train) >= MIN_CALIBRATION_FOLD and len(test) >= MIN_CALIBRATION_FOLD
    assert splits[-1][1].max() == n - 1  # the calibrators see the newest samples


def test_a_small_training_set_fits_or_is_refused_with_a_reason(btc_year):
    """The issue's case: 660 samples crashed calibration with 3 splits; too few now says what is needed."""
    from src.models.estimators.direction import TooFewSamples, fit_model, min_calibration_samples
    candles = load_candles(btc_year, ["BTC/USDT"], "1h")
    data = build_dataset(candles["BTC/USDT"], asset_features(candles, "BTC/USDT"), 0.05)
    X, y = data.X.iloc[:660], data.y.iloc[:660]  # noqa: N806
    for name in ("xgboost", "logistic", "climatology"):
        p = prob_up(fit_model(name, X, y, 168), data.X.iloc[660:700])
        assert ((p > 0) & (p < 1)).all()
    too_few = min_calibration_samples(168) - 1
    with pytest.raises(TooFewSamples, match=f"need at least {too_few + 1}"):
        fit_model("logistic", X.iloc[:too_few], y.iloc[:too_few], 168)


def test_a_group_with_too_little_history_is_skipped_and_the_others_train(btc_year, tmp_path):
    from src.models.offline.training import Trainer
    short = shared_candles("ETH_USDT", "2022-12-01", "2022-12-31 23:00")  # 31 days: too few labels
    btc_year.save_ohlcv_data("ETH/USDT", "1h", short)
    records = RecordStore(btc_year.db)
    trainer = Trainer(btc_year, records, ModelRegistry(records, tmp_path / "models"),
                      TrainSettings(n_folds=1, training_days=300))
    results = trainer.train(["ETH/USDT", "BTC/USDT"], [0.05])
    eth, btc = results
    assert eth.skipped and "labelled samples, need" in eth.skipped and "ml.training_days" in eth.skipped
    assert btc.skipped is None and btc.versions
    assert set(records.models(champions_only=True)["symbol"]) == {"BTC/USDT"}
    assert records.group_problems() == {("ETH/USDT", 0.05): f"not trained: {eth.skipped}"}  # kept for /health
    trained_on = records.models("BTC/USDT", "1h", 0.05)["n_samples"].iloc[0]
    assert trained_on < 300 * 24  # ml.training_days bounds the history learnt from


def test_a_high_exactly_on_the_barrier_is_a_hit_despite_floating_point():
    # 1.1 * 1.01 is 1.1110000000000002 in floating point; the barrier is the decimal 1.111
    candles = _candles([(1.1, 1.1, 1.1), (1.111, 1.1, 1.1), (1.1, 1.1, 1.1), (1.1, 1.1, 1.1)])
    first = barrier_outcomes(candles, 0.01, 3).iloc[0]
    assert (first.status, first.hours_to_hit) == ("up", 1.0)
    candles = _candles([(1.1, 1.1, 1.1), (1.1, 1.089, 1.1), (1.1, 1.1, 1.1), (1.1, 1.1, 1.1)])  # 1.1 * 0.99
    assert barrier_outcomes(candles, 0.01, 3).iloc[0].status == "down"


def test_imported_history_gaps_are_recorded_so_train_and_backtest_label_alike(ops, tmp_path):
    """One rule for missing hours: recorded exchange gaps. import-csv records the hours missing inside the
    file, so training (which reads recorded gaps) labels the windows around them as decided."""
    from src.data.history import unfillable_hours
    from src.data.importer import import_csv
    frame = shared_candles("BTC_USDT", "2023-03-20", "2023-03-31 23:00")  # holds Binance's 2023-03-24 13:00 gap
    path = tmp_path / "btc.csv"
    frame.to_csv(path, index=False)
    import_csv(ops, path, "BTC/USDT")
    gap = pd.Timestamp("2023-03-24 13:00", tz="UTC")
    assert list(unfillable_hours(ops, "BTC/USDT", "1h")) == [gap]
    candles = ops.get_candles("BTC/USDT", "1h")
    recorded = barrier_outcomes(candles, 0.05, 168, unfillable=unfillable_hours(ops, "BTC/USDT", "1h"))
    nothing_recorded = barrier_outcomes(candles, 0.05, 168, unfillable=pd.DatetimeIndex([], tz="UTC"))
    entry = pd.Timestamp("2023-03-24 12:00", tz="UTC")  # its window spans the gap
    assert recorded.loc[entry, "status"] != "pending"
    assert nothing_recorded.loc[entry, "status"] == "pending"  # what an unrecorded gap would do


def test_btc_context_is_required_never_stood_in_for(ops, tmp_path):
    from src.models.offline.training import Trainer
    ops.save_ohlcv_data("ETH/USDT", "1h", shared_candles("ETH_USDT", "2022-06-01", "2022-12-31 23:00"))
    records = RecordStore(ops.db)
    result = Trainer(ops, records, ModelRegistry(records, tmp_path / "models"), TrainSettings(n_folds=1)).train(
        ["ETH/USDT"], [0.05])[0]
    assert result.skipped and "no BTC/USDT candles" in result.skipped and "backfill" in result.skipped
    with pytest.raises(UserError, match="btc_\\* context"):
        asset_features({"ETH/USDT": ops.get_candles("ETH/USDT")}, "ETH/USDT")


def _up_share_known_by(candles: pd.DataFrame, target: float, cut: pd.Timestamp, embargo_hours: int,
                       window_days: int | None = None) -> tuple:
    """What climatology may learn at `cut`: the up-share of UP/DOWN labels whose window had resolved by
    cut - embargo (hit candle closed, i.e. hit time + 1 h), of the entries within `window_days` before the
    cut, computed here apart from Dataset.purged."""
    outcomes = barrier_outcomes(candles, target, 168)
    labelled = outcomes[outcomes["status"].isin(["up", "down"])]
    known = labelled[labelled["hit_time"] + pd.Timedelta(hours=1) <= cut - pd.Timedelta(hours=embargo_hours)]
    if window_days is not None:
        known = known[known.index > cut - pd.Timedelta(days=window_days)]
    return known["label"].mean(), len(known)


def test_backtest_and_train_learn_from_the_same_training_window(btc_year, tmp_path):
    """With ml.training_days set, a backtest point learns from the window `train` at that cut would use, not
    from all stored history: the daemon's retrain at 00:15 serves the day, fitted on every label known then (the
    deployed fit has no embargo). Fails if the backtest's units ignore training_days (tried: window_days=None)."""
    records = RecordStore(btc_year.db)
    candles = load_candles(btc_year, ["BTC/USDT"], "1h")
    start, end = pd.Timestamp("2022-12-01", tz="UTC"), pd.Timestamp("2022-12-02", tz="UTC")
    point = start + pd.Timedelta(minutes=15)
    settings = TrainSettings(min_samples=500, embargo_hours=24, training_days=150)
    run_backtest(candles, ["BTC/USDT"], [0.01], start, end, records, settings, retrain_every_days=7)
    got = pd.read_sql("SELECT DISTINCT model_version, probability FROM predictions WHERE model_name = 'climatology'",
                      btc_year.db.engine)
    windowed, n = _up_share_known_by(candles["BTC/USDT"], 0.01, point, 0, window_days=150)
    everything, _ = _up_share_known_by(candles["BTC/USDT"], 0.01, point, 0)
    assert n > 500 and abs(windowed - everything) > 1e-4  # the window makes a difference here
    assert got["model_version"].tolist() == ["backtest-202212010015"]
    assert got["probability"].astype(float).tolist() == [pytest.approx(windowed, abs=1e-6)]
    from src.models.offline.training import Trainer
    registry = ModelRegistry(records, tmp_path / "models")
    Trainer(btc_year, records, registry, settings).train(["BTC/USDT"], [0.01], cut=point)
    deployed = registry.load(registry.current("BTC/USDT", "1h", 0.01)["climatology"])
    row = with_barrier(asset_features(candles, "BTC/USDT").tail(1), 0.01)
    assert prob_up(deployed.estimator, row)[0] == pytest.approx(windowed, abs=1e-9)


def test_backtest_models_see_only_labels_known_before_each_retrain_point(btc_year):
    """Climatology's forecast is its training up-share, so it shows exactly which labels a retrain point
    learnt from: those whose window had resolved by the point (the daemon's retrain at 00:15, weekly here).
    Fails if purging is dropped from the backtest's fits."""
    records = RecordStore(btc_year.db)
    candles = load_candles(btc_year, ["BTC/USDT"], "1h")
    start, end = pd.Timestamp("2022-11-01", tz="UTC"), pd.Timestamp("2022-11-15", tz="UTC")
    settings = TrainSettings(min_samples=500, embargo_hours=24)
    run_backtest(candles, ["BTC/USDT"], [0.01], start, end, records, settings, retrain_every_days=7)
    stored = pd.read_sql("SELECT model_version, probability FROM predictions WHERE model_name = 'climatology'",
                         btc_year.db.engine).drop_duplicates()
    assert len(stored) == 2
    for point in (start + pd.Timedelta(minutes=15), start + pd.Timedelta(days=7, minutes=15)):
        share, n = _up_share_known_by(candles["BTC/USDT"], 0.01, point, 0)
        got = stored.loc[stored.model_version == f"backtest-{point:%Y%m%d%H%M}", "probability"].astype(float)
        assert n > 500 and got.tolist() == [pytest.approx(share, abs=1e-6)]
        later, _ = _up_share_known_by(candles["BTC/USDT"], 0.01, point + pd.Timedelta(days=3), 0)
        assert abs(later - share) > 1e-6  # labels known later would give another forecast


def test_walk_forward_folds_see_only_labels_known_before_each_fold(btc_year):
    """Each fold's climatology forecast is the up-share of the labels known by the fold's start minus the
    embargo, and its test hours are those labelled by the cut. Fails if purging or the embargo is dropped
    from walk_forward (tried: `train = data`)."""
    from src.models.offline.training import walk_forward
    candles = load_candles(btc_year, ["BTC/USDT"], "1h")
    data = build_dataset(candles["BTC/USDT"], asset_features(candles, "BTC/USDT"), 0.05)
    cut = pd.Timestamp("2023-01-15", tz="UTC")
    settings = TrainSettings(n_folds=2, fold_days=30, embargo_hours=24)
    folds = walk_forward(data, cut, settings)
    assert len(folds) == 2
    outcomes = barrier_outcomes(candles["BTC/USDT"], 0.05, 168)
    for fold_end, evidence in folds:
        fold_start = fold_end - pd.Timedelta(days=30)
        share, _ = _up_share_known_by(candles["BTC/USDT"], 0.05, fold_start, 24)
        test = outcomes[(outcomes.index >= fold_start) & (outcomes.index < fold_end)
                        & outcomes["status"].isin(["up", "down"])
                        & (outcomes["hit_time"] + pd.Timedelta(hours=1) <= cut)]
        assert evidence.times.equals(test.index) and (evidence.y == test["label"]).all()
        assert evidence.p["climatology"] == pytest.approx(np.full(len(test), share), abs=1e-12)


@pytest.mark.host_tz
def test_models_stored_before_the_move_to_rooms_still_load(db, tmp_path):
    """Model files written before src/models was grouped by role name src.models.resolution and
    src.models.estimators as their classes' modules; a fresh process loads them and forecasts alike."""
    import subprocess
    import sys
    from pathlib import Path

    from src.models.estimators import direction, survival, time_models
    from src.models.live import registry as registry_module
    X = pd.DataFrame({"vol_24": [0.01] * 400},  # noqa: N806
                     index=pd.date_range("2023-01-01", periods=400, freq="h", tz="UTC"))
    hours, expired = np.arange(400) % 50 + 1.0, np.arange(400) % 7 == 0
    timing = time_models.fit_time_model("climatology", X, hours, expired, 0.02)
    registry = ModelRegistry(RecordStore(db), tmp_path / "models")
    old = {"time": ("src.models.resolution", "ClimatologyTime"), "step": ("src.models.resolution", "_StepDistribution"),
           "direction": ("src.models.estimators", "ClimatologyModel")}
    classes = {"time": time_models.ClimatologyTime, "step": survival.StepDistribution,
               "direction": direction.ClimatologyModel}
    saved = {k: (c.__module__, c.__qualname__) for k, c in classes.items()}
    registry_module._alias_legacy_modules()  # pickle checks the names it writes resolve
    try:
        for key, cls in classes.items():
            cls.__module__, cls.__qualname__ = old[key]
        versions = [registry.save(model, symbol="BTC/USDT", timeframe="1h", target=0.02, model_name=name,
                                  task=task, train_start=X.index[0], train_end=X.index[-1], n_samples=400, metrics={})
                    for model, name, task in ((timing, "climatology", "resolution"),
                                              (direction.ClimatologyModel().fit(X, hours > 20), "climatology",
                                               "direction"))]
    finally:
        for key, cls in classes.items():
            cls.__module__, cls.__qualname__ = saved[key]
    assert b"src.models.resolution" in (tmp_path / "models" / versions[0] / "model.joblib").read_bytes()
    code = ("import sys, pandas as pd\nfrom src.database.connection import DatabaseConnection\n"
            "from src.database.records import RecordStore\nfrom src.models.live.registry import ModelRegistry\n"
            "records = RecordStore(DatabaseConnection(sys.argv[1]))\n"
            "registry = ModelRegistry(records, __import__('pathlib').Path(sys.argv[2]))\n"
            "for task in ('resolution', 'direction'):\n"
            "    row = records.models('BTC/USDT', '1h', 0.02, task=task).iloc[0]\n"
            "    print(type(registry.load(row).estimator).__module__)\n")
    done = subprocess.run([sys.executable, "-c", code, db.database_url, str(tmp_path / "models")],
                          cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["src.models.estimators.time_models", "src.models.estimators.direction"]
