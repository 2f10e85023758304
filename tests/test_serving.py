"""How soon, round 2: the champion served per horizon (by hand and by the DM test), rolling conformal intervals
through a regime switch, the censored coverage, and the garch model's first-passage probabilities against
simulations."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.models.estimators.serving import (
    DROP_LEVEL,
    PAST_HORIZON,
    ServingRule,
    better_horizons,
    compose,
    interval_shifts,
    kept_horizons,
)
from src.models.estimators.time_models import ClimatologyTime, GarchTime, LogisticTime, forecast_array
from src.models.evaluation.selection import Evidence
from src.models.evaluation.time_metrics import claimed_coverage, interval_coverage

H = 168


def test_the_served_row_takes_each_horizon_from_its_keeper_and_stays_monotone_by_hand():
    champion = np.array([[0.30, 0.10, 0.60, 2.0, 10.0, 50.0]])
    climatology = np.array([[0.20, 0.70, 0.90, 1.0, 20.0, 168.0]])
    only_6h = compose(champion, climatology, ServingRule((6,)), H)
    assert only_6h[0, :3].tolist() == [0.30, 0.70, 0.90]
    # 24 h kept, but the champion's 0.10 lies below climatology's 0.20 at 6 h: P made non-decreasing in t
    only_24h = compose(champion, climatology, ServingRule((24,)), H)
    assert only_24h[0, :3].tolist() == [0.20, 0.20, 0.90]
    every = compose(champion, climatology, ServingRule((6, 24, H)), H)
    assert every[0, :3].tolist() == [0.30, 0.30, 0.60]
    # the quantiles are the champion's, times exp(shift), kept in order and capped at H
    shifted = compose(champion, climatology, ServingRule((), (np.log(2.0), 0.0, np.log(4.0))), H)
    assert shifted[0, 3:].tolist() == pytest.approx([4.0, 10.0, 168.0])
    crossing = compose(champion, climatology, ServingRule((), (np.log(8.0), 0.0, 0.0)), H)
    assert crossing[0, 3:].tolist() == pytest.approx([16.0, 16.0, 50.0])
    # climatology's forecast missing (it did not load): the champion's own P is served
    assert compose(champion, None, ServingRule(()), H)[0, :3].tolist() == [0.30, 0.30, 0.60]


def test_climatology_serves_a_horizon_only_where_it_beats_the_champion_significantly():
    """Outcomes drawn from known probabilities: the champion knows the true P(within 6 h) and P(within H) but its
    24 h forecast is climatology's plus much noise (clearly worse), or off it by 0.003 (no worse beyond doubt)."""
    rng = np.random.default_rng(3)
    n = 6000
    times = pd.date_range("2023-01-01", periods=n, freq="h", tz="UTC")
    p6 = rng.uniform(0.05, 0.6, n)
    hours = np.where(rng.uniform(size=n) < p6, 3.0, np.where(rng.uniform(size=n) < 0.5, 30.0, np.inf))
    base6, base24, base_h = (hours <= 6).mean(), (hours <= 24).mean(), np.isfinite(hours).mean()
    truth_h = p6 + (1 - p6) * 0.5
    quantiles = np.tile([2.0, 20.0, 100.0], (n, 1))
    climatology = np.column_stack([np.full(n, base6), np.full(n, base24), np.full(n, base_h), quantiles])
    noisy = np.column_stack([p6, np.clip(base24 + rng.normal(0, 0.1, n), 0, 1), truth_h, quantiles])
    close = np.column_stack([p6, np.full(n, base24 + 0.003), truth_h, quantiles])
    evidence = Evidence(times, hours, {"climatology": climatology, "vol_logistic": noisy, "garch": close})
    assert better_horizons(evidence, "vol_logistic", "climatology", 0.05, H) == (6, H)  # where it knows better
    assert better_horizons(evidence, "climatology", "vol_logistic", DROP_LEVEL, H) == (24,)
    assert kept_horizons(evidence, "vol_logistic", H) == (6, H)  # its noisy 24 h: climatology's instead
    assert kept_horizons(evidence, "garch", H) == (6, 24, H)  # a 24 h forecast no worse beyond doubt stays its own
    assert kept_horizons(evidence, "climatology", H) == ()
    # with too little evidence nothing is shown against the champion (training then crowns climatology anyway)
    assert kept_horizons(evidence.where(np.arange(n) < 100), "vol_logistic", H) == (6, 24, H)


def _regime(n: int, start: str, spread: float, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """log T = 2 log(X / sigma) + N(0, spread): the features know sigma, not the spread of what they miss."""
    sigma = np.exp(rng.uniform(np.log(0.004), np.log(0.012), n))
    X = pd.DataFrame({"vol_24": sigma}, index=pd.date_range(start, periods=n, freq="h", tz="UTC"))  # noqa: N806
    time = np.exp(2 * np.log(0.02 / sigma) + rng.normal(0, spread, n))
    return X, np.where(time > H, np.inf, np.ceil(time))


def test_rolling_conformal_intervals_follow_a_regime_switch_that_the_fitted_levels_miss():
    """A model fitted (and its levels recalibrated) in a calm regime meets a wild one. Served month by month,
    the interval corrected on the newest 60 days of its own forecasts covers 75-85 % of each wild month once
    those 60 days are wild (the third and fourth); the model's own interval (the correction disabled) covers
    far less."""
    rng = np.random.default_rng(21)
    X, hours = _regime(24 * 200, "2023-01-01", 0.3, rng)  # noqa: N806
    model = LogisticTime(("vol_24",), half_life_days=None).fit(X, np.where(np.isfinite(hours), hours, 0),
                                                              ~np.isfinite(hours), H)
    calm_x, calm_hours = _regime(24 * 60, "2023-07-20", 0.3, rng)
    wild_x, wild_hours = _regime(24 * 120, "2023-09-18", 1.0, rng)
    evidence = Evidence(calm_x.index, calm_hours, {"vol_logistic": forecast_array(model, calm_x)})
    own, rolled = [], []
    for month in range(4):
        rows = slice(month * 720, (month + 1) * 720)
        forecast = forecast_array(model, wild_x.iloc[rows])
        shifts = interval_shifts(evidence, "vol_logistic", H, days=60)
        served = compose(forecast, None, ServingRule((6, 24, H), shifts), H)
        if month >= 2:
            own.append(interval_coverage(forecast, wild_hours[rows]).mean())
            rolled.append(interval_coverage(served, wild_hours[rows]).mean())
        # this month's outcomes join the evidence (all known by the next point in this test's simplification)
        evidence = evidence + Evidence(wild_x.index[rows], wild_hours[rows], {"vol_logistic": forecast})
    assert all(c < 0.6 for c in own), own
    assert all(0.75 <= c <= 0.85 for c in rolled), rolled


def test_a_calibrated_interval_that_reaches_past_the_horizon_holds_what_it_claims():
    """T exponential with mean 200 h, H = 168: P(T <= H) = 0.57 < 0.9, so q90 lies past H. The exact quantiles (q90
    capped at H) make an open interval, "90 %: after q10 h": it claims 0.9, and holds 0.9 of the outcomes, the
    expired windows inside it (issue #33: judged as shown)."""
    rng = np.random.default_rng(5)
    n = 200_000
    time = rng.exponential(200.0, n)
    hours = np.where(time > H, np.inf, np.ceil(time))
    p_h = 1 - np.exp(-H / 200.0)
    q = -200.0 * np.log(1 - np.array([0.1, 0.5, 0.9]))
    forecast = np.tile([1 - np.exp(-6 / 200), 1 - np.exp(-24 / 200), p_h, *np.minimum(q, H)], (n, 1))
    assert (claimed_coverage(forecast[:, 5], H) == 0.9).all()
    assert interval_coverage(forecast, hours).mean() == pytest.approx(0.90, abs=0.005)


def test_a_level_the_evidence_does_not_reach_is_put_at_the_horizon():
    """Outcomes exponential with mean 200 h (43 % of windows expire) and a model whose quantiles are an
    exponential's with mean 20 h. Kaplan-Meier places q10 and q50 (0.57 of windows resolve) but cannot reach 0.9:
    the served q90 is then H, an open interval that holds the 0.9 it claims; the model's own q90, kept as it was
    before, makes a closed interval claiming 0.8 that holds far less."""
    rng = np.random.default_rng(9)
    n = 24 * 60
    times = pd.date_range("2023-01-01", periods=n, freq="h", tz="UTC")
    time = rng.exponential(200.0, n)
    hours = np.where(time > H, np.inf, np.ceil(time))
    p_true = [1 - np.exp(-t / 200.0) for t in (6, 24, H)]
    model = np.tile([*p_true, *(-20.0 * np.log(1 - np.array([0.1, 0.5, 0.9])))], (n, 1))
    evidence = Evidence(times, hours, {"vol_logistic": model})
    shifts = interval_shifts(evidence, "vol_logistic", H, days=60)
    assert shifts[2] == PAST_HORIZON and np.isfinite(shifts[:2]).all()
    served = compose(model, None, ServingRule((6, 24, H), shifts), H)
    assert served[0, 3:].tolist() == pytest.approx([21.1, 139, H], rel=0.15)
    later = rng.exponential(200.0, 50_000)  # new windows of the same regime
    fresh = np.where(later > H, np.inf, np.ceil(later))
    assert claimed_coverage(served[:1, 5], H)[0] == 0.9
    assert interval_coverage(np.tile(served[0], (len(fresh), 1)), fresh).mean() == pytest.approx(0.90, abs=0.03)
    as_modelled = compose(model, None, ServingRule((6, 24, H), interval_shifts(evidence, "vol_logistic", H, 60,
                                                                               unreachable=0.0)), H)
    assert claimed_coverage(as_modelled[:1, 5], H)[0] == 0.8
    assert interval_coverage(np.tile(as_modelled[0], (len(fresh), 1)), fresh).mean() < 0.6


def _garch_returns(n: int, omega: float, alpha: float, beta: float, rng: np.random.Generator) -> np.ndarray:
    variance, out = omega / (1 - alpha - beta), np.empty(n)
    for i in range(n):
        out[i] = rng.normal(0, np.sqrt(variance))
        variance = omega + alpha * out[i] ** 2 + beta * variance
    return out


def _exit_hours(variances: np.ndarray, target: float, rng: np.random.Generator, steps_per_hour: int = 25) -> np.ndarray:
    """Hours until Brownian paths with the given variance per hour (paths x hours) leave log(1 -+ target)."""
    lower, upper = np.log(1 - target), np.log(1 + target)
    paths, hours = variances.shape
    step_sd = np.repeat(np.sqrt(variances / steps_per_hour), steps_per_hour, axis=1)
    log_price = np.cumsum(rng.normal(size=step_sd.shape) * step_sd, axis=1)
    out = (log_price >= upper) | (log_price <= lower)
    first = np.where(out.any(axis=1), out.argmax(axis=1) + 1, -1)
    return np.where(first > 0, first / steps_per_hour, np.inf)


def test_garch_first_passage_probabilities_match_simulations():
    """Fitted on simulated GARCH(1,1) returns it recovers the dynamics; its P(exit by t) after a calm and after
    a wild hour equals the simulated exit share of walks with its variance path (what it claims), and lies
    near that of simulated GARCH processes themselves (whose variance is random, not only expected)."""
    rng = np.random.default_rng(8)
    omega, alpha, beta = 2e-7, 0.08, 0.9
    returns = _garch_returns(20_000, omega, alpha, beta, rng)
    index = pd.date_range("2022-01-01", periods=len(returns), freq="h", tz="UTC")
    X = pd.DataFrame({"ret_1": returns, "vol_72": pd.Series(returns).rolling(72).std().to_numpy()},  # noqa: N806
                     index=index)
    model = GarchTime(0.02, calibrated=False).fit(X, np.zeros(len(X)), np.zeros(len(X), bool), H)  # the walk's maths
    assert model.alpha_ == pytest.approx(alpha, abs=0.03) and model.beta_ == pytest.approx(beta, abs=0.04)
    assert model.mean_variance_ == pytest.approx(omega / (1 - alpha - beta), rel=0.3)
    t = np.array([6.0, 24.0, 72.0])
    for last_return in (0.0, 0.03):  # a calm hour, then a 3 % move: the path starts high and decays
        rows = X.iloc[-400:].copy()
        rows.iloc[-1, 0] = last_return
        formula = model.cdf(rows, t)[-1]
        first = model.next_variance(rows)[-1]
        m = model.mean_variance_
        path = m + (first - m) * model.persistence_ ** np.arange(72)
        claimed = _exit_hours(np.tile(path, (4000, 1)), 0.02, rng)
        for k, hours in enumerate(t):
            assert formula[k] == pytest.approx((claimed <= hours).mean(), abs=0.03), (last_return, hours)
        # GARCH processes from the same state: the same persistence, random variance
        variances = np.empty((4000, 72))
        variance, shock = np.full(4000, first), np.zeros(4000)
        for h in range(72):
            variances[:, h] = variance
            shock = rng.normal(0, np.sqrt(variance))
            variance = model.omega_ + model.alpha_ * shock ** 2 + model.beta_ * variance
        garch = _exit_hours(variances, 0.02, rng)
        for k, hours in enumerate(t):
            assert formula[k] == pytest.approx((garch <= hours).mean(), abs=0.06), (last_return, hours)
    quantiles = model.quantiles(X.iloc[-400:])[-1]
    assert model.cdf(X.iloc[-400:], quantiles[:2])[-1] == pytest.approx([0.1, 0.5], abs=0.01)


def test_garch_filters_through_consecutive_hours_and_restarts_after_a_gap():
    rng = np.random.default_rng(9)
    returns = _garch_returns(3000, 2e-7, 0.08, 0.9, rng)
    index = pd.date_range("2022-01-01", periods=3000, freq="h", tz="UTC")
    X = pd.DataFrame({"ret_1": returns, "vol_72": 0.004}, index=index)  # noqa: N806
    model = GarchTime(0.02).fit(X, np.zeros(3000), np.zeros(3000, bool), H)  # calibrated: the served curve
    whole = model.next_variance(X.iloc[-400:])
    # the live cycle's one-row forecast is forecast_array's last row
    assert model.last_forecast(X.iloc[-400:], H) == pytest.approx(forecast_array(model, X.iloc[-400:], H)[-1:])
    # the last hour's variance does not depend on where the 400-hour run starts (the filter forgets)
    assert model.next_variance(X.iloc[-300:])[-1] == pytest.approx(whole[-1], rel=1e-6)
    # after a missing hour the filter restarts from the row's own 72 h variance
    gap = X.drop(X.index[-10])
    restarted = model.next_variance(gap.iloc[-9:])
    assert model.next_variance(gap)[-9:] == pytest.approx(restarted)


def test_calibrated_garch_holds_what_it_claims_on_a_simulated_garch_path():
    """A GARCH(1,1) price path whose exit times are known from the path itself (its hourly closes: later than a
    continuous walk's, so the walk's own P(within t) is too high). `garch`, calibrated on its training window's
    outcomes (two years), forecasts the third: its P(within 24 h) is as frequent as the outcomes, in every fifth
    of the forecasts, beats the uncalibrated walk and climatology, and its interval holds what it claims."""
    rng = np.random.default_rng(11)
    n = 24 * 365 * 3
    returns = _garch_returns(n + H, 2e-7, 0.08, 0.9, rng)
    paths = np.cumsum(np.lib.stride_tricks.sliding_window_view(returns[1:], H), axis=1)[:n]
    out = (paths >= np.log(1.02)) | (paths <= np.log(0.98))
    hours = np.where(out.any(axis=1), out.argmax(axis=1) + 1.0, np.inf)  # the first close past a barrier
    expired = ~np.isfinite(hours)
    X = pd.DataFrame({"ret_1": returns[:n], "vol_72": pd.Series(returns[:n]).rolling(72).std().to_numpy()},  # noqa: N806
                     index=pd.date_range("2022-01-01", periods=n, freq="h", tz="UTC"))
    train, test = slice(0, 24 * 730 - H), slice(24 * 730, n)  # the horizon apart: no label straddles the two
    fitted = {name: model.fit(X.iloc[train], np.where(expired, 0, hours)[train], expired[train], H)
              for name, model in (("calibrated", GarchTime(0.02)), ("walk", GarchTime(0.02, calibrated=False)),
                                  ("climatology", ClimatologyTime()))}
    forecasts = {name: forecast_array(model, X.iloc[test], H) for name, model in fitted.items()}
    outcome = (hours[test] <= 24).astype(float)
    brier = {name: float(((f[:, 1] - outcome) ** 2).mean()) for name, f in forecasts.items()}
    served = forecasts["calibrated"]
    assert forecasts["walk"][:, 1].mean() - outcome.mean() > 0.06  # the walk alone overstates
    assert abs(served[:, 1].mean() - outcome.mean()) < 0.04
    fifth = pd.qcut(served[:, 1], 5, labels=False)
    assert all(abs(served[fifth == k, 1].mean() - outcome[fifth == k].mean()) < 0.07 for k in range(5))
    assert brier["calibrated"] < brier["walk"] and 1 - brier["calibrated"] / brier["climatology"] > 0.05
    coverage = interval_coverage(served, hours[test], H).mean()
    assert coverage == pytest.approx(claimed_coverage(served[:, 5], H).mean(), abs=0.05)
    assert (np.diff(served[:, :3], axis=1) >= 0).all() and (np.diff(served[:, 3:], axis=1) >= 0).all()
