"""Live figures score only what was known when they are computed, in the pandas scoring (reports, /soon, the
gauges), the day-sums SQL behind /record and the bot's /record SQL alike; each checked against values computed by
hand on a small hand-made record with the hard cases: windows still open at the time of scoring (and the same
record read later, when they have resolved), expired windows inside an interval at the cap ("168+") and outside a
closed one, expired direction windows, and an hour without a climatology forecast. And the small-sample rule, and
the weekly-block interval's coverage on overlapping windows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.database.records import RecordStore
from src.database.records.rows import prediction_rows, resolution_rows
from src.models.evaluation.record import track_record
from src.models.evaluation.scoring import CHAMPION, TIMING_ROWS, known_fates, score_rows, small_sample
from src.models.evaluation.selection import skill_interval

H = 168
FIRST = pd.Timestamp("2023-03-01", tz="UTC")
HOURS = pd.date_range(FIRST, periods=24 * 12, freq="h")  # 12 days of forecasts
AS_OF = pd.Timestamp("2023-03-12 06:30", tz="UTC")  # the time the figures are computed: many windows still open
NO_CLIMATOLOGY = HOURS[100]


def _truth(seed: int = 7) -> pd.DataFrame:
    """Every hour's forecast and what then happened: T hours to resolution (inf: expired), the champion's and
    climatology's P(within 6/24/H) and interval; a quarter of the intervals reach the cap."""
    rng = np.random.default_rng(seed)
    n = len(HOURS)
    t = np.where(rng.random(n) < 0.3, np.inf, np.ceil(rng.exponential(30, n)).clip(1, H))
    p24 = rng.uniform(0.1, 0.9, n)
    at_cap = rng.random(n) < 0.25
    return pd.DataFrame({  # as stored: probabilities to 6 decimals, hours to 2
        "timestamp": HOURS, "T": t, "p_6h": p24 / 3, "p_24h": p24, "p_horizon": np.minimum(0.95, p24 + 0.3),
        "q10_hours": rng.uniform(1, 10, n), "q50_hours": rng.uniform(10, 40, n),
        "q90_hours": np.where(at_cap, float(H), rng.uniform(40, 160, n)),
        "clim": np.full(n, 0.5), "direction_p": rng.uniform(0.2, 0.8, n), "up": rng.random(n) < 0.5}).round(
        {"p_6h": 6, "p_24h": 6, "p_horizon": 6, "q10_hours": 2, "q50_hours": 2, "q90_hours": 2, "direction_p": 6})


def _status(truth: pd.DataFrame, at: pd.Timestamp) -> pd.Series:
    """The outcome the daemon had stored at `at`: resolved once the hit candle closed, expired once H closed."""
    closed = (at - truth["timestamp"]) / pd.Timedelta(hours=1) - 1
    finite = np.isfinite(truth["T"])
    hit = finite & (truth["T"] <= closed)
    status = pd.Series(None, index=truth.index, dtype=object)
    status[hit] = np.where(truth["up"][hit], "up", "down")
    status[~finite & (closed >= H)] = "expired"
    return status


def _store(db, truth: pd.DataFrame, at: pd.Timestamp) -> RecordStore:
    """The record as a live daemon had it at `at`: both tables, champion and climatology rows, outcomes."""
    records = RecordStore(db)
    status = _status(truth, at)
    hours = pd.DatetimeIndex(truth["timestamp"])
    champ = truth[["p_6h", "p_24h", "p_horizon", "q10_hours", "q50_hours", "q90_hours"]].to_numpy()
    clim = np.column_stack([truth["clim"] / 2, truth["clim"], truth["clim"] + 0.3, np.full((len(truth), 3), 1.0)
                            * [5.0, 30.0, float(H)]])
    keep = hours != NO_CLIMATOLOGY
    timing = pd.concat([
        resolution_rows("BTC/USDT", "1h", 0.02, "vol_logistic", "v1", hours, champ, True, "live"),
        resolution_rows("BTC/USDT", "1h", 0.02, "climatology", "v1", hours[keep], clim[keep], False, "live")])
    hours_to = truth.set_index("timestamp")["T"]
    st = pd.Series(status.to_numpy(), index=hours)
    timing["status"] = timing["timestamp"].map(st)
    timing["hours_to_resolution"] = np.where(timing["status"].isin(["up", "down"]),
                                             timing["timestamp"].map(hours_to), np.nan)
    direction = pd.concat([
        prediction_rows("BTC/USDT", "1h", 0.02, "xgboost", "v1", hours, truth["direction_p"].to_numpy(),
                        np.full(len(hours), 100.0), True, "live", "v1"),
        prediction_rows("BTC/USDT", "1h", 0.02, "climatology", "v1", hours[keep], np.full(keep.sum(), 0.5),
                        np.full(keep.sum(), 100.0), False, "live", "v1")])
    records.save_forecasts(direction, timing)
    decided = status.notna()
    records.save_outcomes(pd.DataFrame({
        "symbol": "BTC/USDT", "timeframe": "1h", "target_pct": 0.02, "timestamp": hours[decided],
        "status": status[decided].to_numpy(),
        "actual_outcome": pd.array(np.where(status[decided] == "expired", None, (status[decided] == "up").astype(int)),
                                   dtype="Int64"),
        "target_hit_timestamp": (hours[decided] + pd.to_timedelta(np.where(np.isfinite(truth["T"][decided]),
                                                                           truth["T"][decided], 0), unit="h")),
        "time_to_target_hours": np.where(np.isfinite(truth["T"][decided]), truth["T"][decided], np.nan),
        "max_favorable_move": 0.0, "max_adverse_move": 0.0}), "live")
    return records


def _by_hand(truth: pd.DataFrame, as_of: pd.Timestamp) -> dict:
    """The figures from what was known at `as_of`, written out plainly: P(within t) of the forecasts whose t hours
    had all closed (no touch by then: 0); coverage, P(within H) on complete windows; no climatology: left out."""
    rows = truth[truth["timestamp"] != NO_CLIMATOLOGY]
    closed = (as_of - rows["timestamp"]) / pd.Timedelta(hours=1) - 1
    t = rows["T"].to_numpy()
    out = {}
    for name, hours, column in (("6h", 6, "p_6h"), ("24h", 24, "p_24h"), ("horizon", H, "p_horizon")):
        known = (closed >= hours).to_numpy()
        y = (t[known] <= hours).astype(float)
        clim = {"p_6h": 0.25, "p_24h": 0.5, "p_horizon": 0.8}[column]
        loss = ((rows[column].to_numpy()[known] - y) ** 2).sum()
        reference = ((clim - y) ** 2).sum()
        out[name] = {"n": int(known.sum()), "loss": loss, "reference": reference, "skill": 1 - loss / reference}
    complete = (closed >= H).to_numpy()
    q10, q90 = (rows[c].to_numpy()[complete] for c in ("q10_hours", "q90_hours"))
    k = t[complete]
    open_ended = q90 >= H  # "90 %: after q10 h": an expired window lies inside it, and it claims 0.9
    inside = np.where(np.isfinite(k), np.clip(np.minimum(q90, k) - np.maximum(q10, k - 1), 0, 1),
                      open_ended.astype(float))
    out["covered"], out["covered_n"] = float(inside.sum()), int(complete.sum())
    out["claimed"] = float(np.where(open_ended, 0.9, 0.8).sum())
    return out


@pytest.fixture
def truth() -> pd.DataFrame:
    return _truth()


def test_the_hand_made_record_has_every_hard_case(truth):
    status = _status(truth, AS_OF)
    closed = (AS_OF - truth["timestamp"]) / pd.Timedelta(hours=1) - 1
    complete = closed >= H
    assert (status == "expired").sum() > 5 and status.isna().sum() > 50  # expired, and open at the time of scoring
    assert (complete & ~np.isfinite(truth["T"]) & (truth["q90_hours"] >= H)).sum() > 3  # expired inside "168+"
    assert (complete & ~np.isfinite(truth["T"]) & (truth["q90_hours"] < H)).sum() > 3  # expired, closed interval
    young = (closed < 24) & status.notna()
    assert young.sum() > 3  # resolved within a day, but too young to count at 24 h (they would lean to "yes")
    assert (status.isna() & (closed >= 24)).sum() > 20  # open, yet their 24-hour answer is known: no


@pytest.mark.parametrize("stored_at", [AS_OF, AS_OF + pd.Timedelta(days=9)], ids=["as-it-was", "read-later"])
def test_pandas_scoring_scores_only_what_was_known(db, truth, stored_at):
    records = _store(db, truth, stored_at)
    rows = records.resolved_time("live", include_pending=True)
    table = score_rows(TIMING_ROWS, rows, H, as_of=AS_OF, interval=True, series=CHAMPION).iloc[0]
    hand = _by_hand(truth, AS_OF)
    assert table["n"] == hand["24h"]["n"] and table["n_complete"] == hand["covered_n"]
    for name in ("6h", "24h", "horizon"):
        assert table[f"brier_skill_{name}"] == pytest.approx(hand[name]["skill"], abs=1e-5)
    assert table["interval_coverage"] == pytest.approx(hand["covered"] / hand["covered_n"], abs=1e-5)
    assert table["interval_claimed"] == pytest.approx(hand["claimed"] / hand["covered_n"], abs=1e-9)
    # today's rule (the resolved windows only) gives another figure: this test fails on it
    resolved_only = rows[rows["status"].notna()]
    old = score_rows(TIMING_ROWS, resolved_only, H, as_of=None, series=CHAMPION).iloc[0]
    assert old["n"] != table["n"]


@pytest.mark.parametrize("stored_at", [AS_OF, AS_OF + pd.Timedelta(days=9)], ids=["as-it-was", "read-later"])
def test_the_day_sums_sql_and_the_bots_record_score_only_what_was_known(db, truth, stored_at):
    records = _store(db, truth, stored_at)
    hand = _by_hand(truth, AS_OF)
    by_day, _ = records.record_sums("live", FIRST.date(), AS_OF.date(), H, as_of=AS_OF)
    soon = by_day[by_day["event"] == "within_24h"]
    assert soon["n"].sum() == hand["24h"]["n"]
    assert soon["loss"].sum() == pytest.approx(hand["24h"]["loss"], abs=1e-4)
    assert soon["reference_loss"].sum() == pytest.approx(hand["24h"]["reference"], abs=1e-4)
    assert soon["covered"].sum() == pytest.approx(hand["covered"], abs=1e-4)
    assert soon["covered_n"].sum() == hand["covered_n"]
    assert soon["claimed"].sum() == pytest.approx(hand["claimed"], abs=1e-9)
    record = track_record(by_day, None, H)[("BTC/USDT", 0.02)]["within_24h"]
    assert record.coverage == pytest.approx(hand["covered"] / hand["covered_n"], abs=1e-5)
    assert record.claimed == pytest.approx(hand["claimed"] / hand["covered_n"], abs=1e-9)
    bot = records.champion_record(FIRST, AS_OF, AS_OF - pd.Timedelta(hours=H + 1)).iloc[0]
    assert bot["n_24h"] == hand["24h"]["n"]
    assert 1 - bot["loss_24h"] / bot["reference_loss_24h"] == pytest.approx(hand["24h"]["skill"], abs=1e-5)
    # direction: the hit rate of complete windows (expired ones among them) and the windows still open
    status = _status(truth, stored_at)
    complete = truth["timestamp"] <= AS_OF - pd.Timedelta(hours=H + 1)
    assert bot["hit_rate"] == pytest.approx((status[complete] != "expired").mean(), abs=1e-9)
    assert 0 < bot["hit_rate"] < 1


def test_stored_day_sums_and_fresh_ones_add_up_to_the_same(db, truth):
    """Days stored by the daily job (settled) and days summed on request give the figures computed by hand."""
    late = AS_OF + pd.Timedelta(days=20)  # every window complete
    records = _store(db, truth, late)
    records.refresh_day_scores("live", (FIRST + pd.Timedelta(days=4)).date(), H)  # the first 5 days stored
    by_day, _ = records.record_sums("live", FIRST.date(), late.date(), H, as_of=late)
    hand = _by_hand(truth, late)
    soon = by_day[by_day["event"] == "within_24h"]
    assert soon["n"].sum() == hand["24h"]["n"] == len(HOURS) - 1
    assert soon["loss"].sum() == pytest.approx(hand["24h"]["loss"], abs=1e-4)
    assert soon["covered"].sum() == pytest.approx(hand["covered"], abs=1e-4)
    assert soon["claimed"].sum() == pytest.approx(hand["claimed"], abs=1e-9)


def test_known_fates_of_a_young_resolved_window_and_an_old_open_one():
    rows = pd.DataFrame({"timestamp": [AS_OF - pd.Timedelta(hours=5), AS_OF - pd.Timedelta(hours=30),
                                       AS_OF - pd.Timedelta(hours=200), AS_OF - pd.Timedelta(hours=200)],
                         "status": ["up", None, "expired", None]})
    known = known_fates(rows, AS_OF, H)
    assert known.tolist() == [[False, False, False],  # resolved at hour 2, but 6 hours had not closed yet
                              [True, True, False],  # open after 29 closed hours: no at 6 h and 24 h
                              [True, True, True],  # complete
                              [True, True, False]]  # its outcome not written yet: no figure of H


def test_one_small_sample_rule():
    week = pd.date_range("2023-03-01", periods=24 * 7, freq="h", tz="UTC")
    assert small_sample(19) and not small_sample(20)
    assert small_sample(168, week, H)  # an interval on one week of days rests on one block
    assert not small_sample(200, week.append(week + pd.Timedelta(days=7)), H)


def test_three_forecasts_are_not_called_certain(db):
    """A group with three scored forecasts reads n/a (n 3) on the page's record, not +0.911 [+0.911, +0.911]."""
    by_day = pd.DataFrame({"symbol": "BTC/USDT", "target_pct": 0.02, "event": "within_24h",
                           "day": pd.to_datetime(["2023-03-01"]), "n": [3.0], "forecast_sum": [2.0],
                           "outcome_sum": [3.0], "loss": [0.01], "reference_loss": [0.75], "covered": [2.0],
                           "covered_n": [3.0], "climatology_n": [0.0]})
    record = track_record(by_day, None, H)[("BTC/USDT", 0.02)]["within_24h"]
    assert record.too_few and record.skill is None and record.skill_low is None and record.n == 3
    assert record.coverage is None


def _overlapping_record(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n hours of (forecast, outcome) as the product makes them: the outcome is whether a random walk touches
    +-2 % within the next 24 hours (neighbouring hours share most of their windows), its volatility a slow regime
    (half-life 3 days); the forecast knows the current volatility, so it has skill."""
    from scipy.stats import norm
    phi, level = 0.5 ** (1 / 72), np.log(0.006)
    log_vol, shocks = np.empty(n + 24), rng.normal(size=n + 24) * 0.08
    log_vol[0] = level
    for i in range(1, n + 24):
        log_vol[i] = level * (1 - phi) + phi * log_vol[i - 1] + shocks[i]
    vol = np.exp(log_vol)
    path = np.cumsum(rng.normal(size=n + 24) * vol)
    windows = np.lib.stride_tricks.sliding_window_view(path, 25)[:n]
    y = (np.abs(windows[:, 1:] - windows[:, :1]).max(axis=1) >= 0.02).astype(float)
    return np.clip(4 * (1 - norm.cdf(0.02 / (vol[:n] * np.sqrt(24)))), 0.01, 0.99), y


def test_the_weekly_block_interval_covers_better_than_a_daily_resample_on_overlapping_windows():
    """Repeated simulation of half a year of overlapping windows: how often the 95 % interval holds the skill the
    forecasts have (from a very long run). Measured (300 records): weekly blocks 0.89, days resampled alone 0.81
    (they take neighbouring days for independent); at 12 weeks 0.85 against 0.80, at a year 0.90. So the weekly
    interval under-covers a little on short records (the percentile bootstrap's small-sample bias, and volatility
    regimes longer than a week); longer blocks do not help (14 and 28 days: 0.87, 0.85 at half a year)."""
    rng = np.random.default_rng(5)
    p, y = _overlapping_record(rng, 300_000)
    base = y.mean()
    truth = 1 - np.mean((p - y) ** 2) / np.mean((base - y) ** 2)
    hours = pd.date_range("2023-01-01", periods=24 * 7 * 26, freq="h", tz="UTC")
    weekly, daily = [], []
    for _ in range(150):
        p, y = _overlapping_record(rng, len(hours))
        reference = np.full(len(hours), base)
        low, high = skill_interval(y, p, reference, hours, block_days=7, replicates=300, seed=1)
        weekly.append(low <= truth <= high)
        low, high = skill_interval(y, p, reference, hours, block_days=1, replicates=300, seed=1)
        daily.append(low <= truth <= high)
    assert 0.82 <= np.mean(weekly) <= 0.99, np.mean(weekly)
    assert np.mean(daily) < np.mean(weekly) - 0.03, (np.mean(daily), np.mean(weekly))
