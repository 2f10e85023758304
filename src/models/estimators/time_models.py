"""How soon: models of the hours until either barrier is touched, right-censored at the horizon H.

A window that resolves at hour k (its k-th candle touches a barrier; an ambiguous candle counts) has its
touch somewhere in (k - 1, k]; it is represented by its midpoint k - 1/2. An expired window is censored:
its time is only known to exceed H. Every model gives a continuous distribution function F(t | x), from
which each forecast takes P(resolved within 6 h), within 24 h and within H, and the 10/50/90 % quantiles
in hours (capped at H: a quantile beyond H is reported as H, and p_horizon says how much mass lies past it).

Models (one interface: fit(X, hours, expired) -> self, cdf(X, t) -> (n, len(t)), quantiles(X, qs)):
- `climatology`: the training window's distribution (Kaplan-Meier of log time), whatever the features; with
  `days`, that of the newest days only (a recent-history climatology, studied in bench/soon_round3.py).
- `random_walk`: first exit of a driftless Brownian motion from (log(1 - X), log(1 + X)) with the
  current volatility (vol_24 per hour); no fitting. The free physics baseline.
- `vol_logistic`: the product's learned model, a discrete-time formulation: P(resolved within t) fitted
  directly by one logistic regression per t on a grid of hours up to H, on the logarithms of the
  volatility estimates, the volume surprise, BTC's volatility and the hour's and weekday's cycles.
  Censoring here is only administrative (every training window is observed up to H), so "touched
  within t" is known for every window and each t is an ordinary classification; the grid's
  probabilities are made non-decreasing in t. Samples weigh less with age (halving every 180 days:
  volatility regimes change). Its 10/50/90 % quantiles are served with the rolling conformal correction
  of src.models.estimators.serving, on its own out-of-sample forecasts of the newest 60 days (since
  2026-12-02; before, its levels were recalibrated inside the fit on its forecasts of the newest 90 days, an
  option kept as `recalibrate_days`: on 2021-07..2022-06 the served interval covered 0.736-0.813 per
  half-year with both, 0.739-0.812 with the rolling one alone, at 60 % of the fitting time). Chosen over
  `xgboost_aft` on 2022-01..06 (bench/time_model_research.py): as good on the mean of the 6 h / 24 h /
  quantile scores at a ninth of its fitting time, which is what lets the backtest refit every model
  weekly on two cores; the weights were chosen on 2021-07..2022-06 and 2022-01..06.
- `garch`: the volatility desk's baseline: the first exit of a driftless random walk from the barriers with
  the variance path of a GARCH(1,1) (`arch`, zero mean, normal quasi-likelihood) fitted on the newest year
  of the training window's hourly returns and filtered through the hours it forecasts (each run of
  consecutive hours starts from its first row's 72 h variance; the live cycle passes the 400 h feature
  window, so the filter has run for days when it reaches the forecast hour). The walk's exit probability
  depends only on the variance accumulated by t, V(t) = sigma_bar^2 t + (sigma_1^2 - sigma_bar^2)(1 - phi^t) /
  -log(phi) (phi = alpha + beta: the forecast variance reverting to its mean). Chosen over GJR (the same
  with a leverage term) on 2021-07..2022-06 (bench/time_model_research.py). Calibrated since issue #33, as the
  direction models are: the walk's P(within t) at each time of TIME_GRID is mapped by Platt's logistic fitted
  on its training window's outcomes (the GARCH learns from returns alone, so its forecasts of that window are
  not fitted to them), made non-decreasing in t and linear between the grid's times; its quantiles are read
  from that curve, and served through the same conformal step as the others (serving.py). Uncalibrated, it
  scored below climatology at 24 h in 6 of 9 groups on 2022-07..2023-12 (hourly closes and intra-hour
  ranges make real exits differ from a continuous walk's), its interval holding 0.45-0.66 of outcomes.
- `xgboost_aft`: accelerated failure time, log T = mu(x) + e, mu(x) xgboost's `survival:aft` boosted from
  the random walk's time scale 2 log(X / vol_24), e's distribution the Kaplan-Meier estimate of the
  residuals on the newest third (held out with the horizon as gap). No longer fitted by the product; kept
  so the models earlier versions stored still load until the daily retraining replaces them, and as the
  comparison in the research script.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost
from arch import arch_model
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from src.models.estimators.survival import StepDistribution as _StepDistribution  # the name stored models use
from src.models.estimators.survival import (
    curve_quantiles,
    exit_probability,
    interpolate_rows,
    kaplan_meier,
    observed_hours,
)

TIME_MODEL_NAMES = ("climatology", "random_walk", "garch", "vol_logistic")  # simplest first
WITHIN_HOURS = (6, 24)
QUANTILES = (0.1, 0.5, 0.9)
VOLATILITY_FEATURE = "vol_24"
AFT_PARAMS = {"objective": "survival:aft", "aft_loss_distribution": "normal", "aft_loss_distribution_scale": 1.0,
              "eval_metric": "aft-nloglik", "tree_method": "hist", "learning_rate": 0.05, "max_depth": 3,
              "min_child_weight": 50, "subsample": 0.8, "colsample_bytree": 0.7, "reg_lambda": 10.0,
              "nthread": 1, "verbosity": 0}
AFT_ROUNDS = 200
# volatility scales (used as logarithms), the volume surprise, and the calendar cycles volatility follows
LOGISTIC_TIME_FEATURES = ("vol_24", "vol_72", "vol_168", "atr_14", "atr_72", "range_ratio", "btc_vol_24",
                          "vol_z_24", "hour_sin", "hour_cos", "dow_sin", "dow_cos")
VOLATILITY_SCALES = frozenset({"vol_24", "vol_72", "vol_168", "atr_14", "atr_72", "range_ratio", "btc_vol_24"})
TIME_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 36, 48, 72, 96, 120, 144, 168)  # hours
HALF_LIFE_DAYS = 180  # vol_logistic's sample weights halve every half-year back: volatility regimes change
RECALIBRATE_DAYS = 90  # the in-fit recalibration's window, when asked for (the product serves a rolling one)
LEVELS = np.linspace(0.0, 1.0, 201)  # where the recalibration map is kept
MIN_EARLY_SAMPLES, MIN_RECALIBRATION_SAMPLES = 2000, 500  # else the model is not recalibrated


class TimeModel:
    """Log-time location model plus an error distribution: F(t | x) = G(log t - mu(x))."""

    horizon: int = 168

    def location(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return np.zeros(len(X))

    def cdf(self, X: pd.DataFrame, t: np.ndarray) -> np.ndarray:  # noqa: N803
        mu = self.location(X)
        return self.errors_.cdf(np.log(np.asarray(t, float))[None, :] - mu[:, None])

    def quantiles(self, X: pd.DataFrame, qs: tuple[float, ...] = QUANTILES) -> np.ndarray:  # noqa: N803
        """(n, len(qs)) hours, capped at H."""
        mu = self.location(X)
        return np.column_stack([np.minimum(np.exp(mu + self.errors_.quantile(q)), self.horizon) for q in qs])

    def _fit_errors(self, log_time: np.ndarray, censored: np.ndarray, mu: np.ndarray) -> None:
        self.errors_ = _StepDistribution(*kaplan_meier(log_time - mu, censored))


class ClimatologyTime(TimeModel):
    """The training window's distribution of resolution times, whatever the features; with `days`, that of its
    newest days only (a recent-history climatology)."""

    def __init__(self, days: int | None = None):
        self.days = days

    def fit(self, X: pd.DataFrame, hours: np.ndarray, expired: np.ndarray, horizon: int = 168):  # noqa: N803
        self.horizon = horizon
        rows = np.ones(len(X), bool)
        if getattr(self, "days", None) is not None and isinstance(X.index, pd.DatetimeIndex) and len(X):
            rows = X.index > X.index.max() - pd.Timedelta(days=self.days)
        expired = np.asarray(expired, bool)[rows]
        self._fit_errors(np.log(observed_hours(np.asarray(hours, float)[rows], expired, horizon)), expired,
                         np.zeros(int(rows.sum())))
        return self


def diffusive_scale(X: pd.DataFrame, target: float) -> np.ndarray:  # noqa: N803
    """log of the hours a random walk with the current volatility needs to move X: 2 log(X / sigma)."""
    sigma = X[VOLATILITY_FEATURE].to_numpy(dtype=float)
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.nanmedian(sigma[sigma > 0]) if (sigma > 0).any()
                     else target / 10)
    return 2 * np.log(target / sigma)


class XGBoostAFT(TimeModel):
    """xgboost's accelerated failure time location over the diffusive time scale, held-out Kaplan-Meier
    errors."""

    def __init__(self, target: float):
        self.target = target

    def fit(self, X: pd.DataFrame, hours: np.ndarray, expired: np.ndarray, horizon: int = 168):  # noqa: N803
        self.horizon = horizon
        expired = np.asarray(expired, bool)
        log_time = np.log(observed_hours(hours, expired, horizon))
        held = len(X) // 3
        first = len(X) - held - horizon
        if held < 100 or first < 100:
            raise ValueError(f"{len(X)} samples are too few for a time model with a {horizon} h gap")
        self.feature_names_in_ = np.array(X.columns)
        self.booster_ = self._booster(X.iloc[:first], hours[:first], expired[:first], horizon)
        late = X.iloc[len(X) - held:]
        self._fit_errors(log_time[len(X) - held:], expired[len(X) - held:], self.location(late))
        self.booster_ = self._booster(X, hours, expired, horizon)
        return self

    def _booster(self, X: pd.DataFrame, hours: np.ndarray, expired: np.ndarray, horizon: int):  # noqa: N803
        """Hits are interval-censored in (k - 1, k]; expiries right-censored at H."""
        matrix = xgboost.DMatrix(X, base_margin=diffusive_scale(X, self.target))
        hours = np.asarray(hours, float)
        matrix.set_float_info("label_lower_bound", np.where(expired, float(horizon), hours - 1.0))
        matrix.set_float_info("label_upper_bound", np.where(expired, np.inf, hours))
        return xgboost.train(AFT_PARAMS, matrix, num_boost_round=AFT_ROUNDS)

    def location(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        X = X[list(self.feature_names_in_)]  # noqa: N806 (a cached row comes back with sorted columns)
        matrix = xgboost.DMatrix(X.to_numpy(dtype=np.float32), base_margin=diffusive_scale(X, self.target),
                                 feature_names=list(self.feature_names_in_))  # numpy: no per-column checks
        return self.booster_.predict(matrix, output_margin=True)


class LogisticTime:
    """`vol_logistic`: P(resolved within t), one logistic regression per t of TIME_GRID (see the module
    notes). Between grid points F is linear in t, so the quantiles are too."""

    def __init__(self, features: tuple[str, ...] = LOGISTIC_TIME_FEATURES,
                 half_life_days: float | None = HALF_LIFE_DAYS, recalibrate_days: int | None = None):
        self.features, self.half_life_days, self.recalibrate_days = features, half_life_days, recalibrate_days

    def fit(self, X: pd.DataFrame, hours: np.ndarray, expired: np.ndarray, horizon: int = 168):  # noqa: N803
        self.horizon = horizon
        self.grid_ = np.array(sorted({t for t in TIME_GRID if t < horizon} | {horizon}), dtype=float)
        design = self._design(X, fit=True)
        hours, expired = np.asarray(hours, float), np.asarray(expired, bool)
        resolved_by = np.where(expired, np.inf, hours)
        self.pit_quantiles_ = None
        start = None
        if self.recalibrate_days:
            newest = X.index.max()
            early = X.index <= newest - pd.Timedelta(days=self.recalibrate_days, hours=horizon)
            late = X.index > newest - pd.Timedelta(days=self.recalibrate_days)
            if early.sum() >= MIN_EARLY_SAMPLES and late.sum() >= MIN_RECALIBRATION_SAMPLES:
                start = self._fit_grid(design[early], resolved_by[early], X.index[early])
                # the early fit, now in coef_, forecasts the newest days it did not see
                self.pit_quantiles_ = self._pit_quantiles(X[late], hours[late], expired[late])
        self._fit_grid(design, resolved_by, X.index, start)
        return self

    def _fit_grid(self, design: np.ndarray, resolved_by: np.ndarray, index: pd.Index,
                  start: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One logistic regression per grid time (warm-started from `start`, an earlier fit's coefficients)."""
        weights = self._recency_weights(index)
        self.coef_ = np.zeros((len(self.grid_), design.shape[1]))
        self.intercept_ = np.zeros(len(self.grid_))
        for i, t in enumerate(self.grid_):
            y = resolved_by <= t
            if y.all() or not y.any():  # one outcome: its (clipped) certainty
                self.intercept_[i] = 12.0 if y.all() else -12.0
                continue
            model = LogisticRegression(C=1.0, max_iter=500, warm_start=start is not None)
            if start is not None:
                model.coef_, model.intercept_ = start[0][i:i + 1].copy(), start[1][i:i + 1].copy()
            model.fit(design, y, sample_weight=weights)
            self.coef_[i], self.intercept_[i] = model.coef_[0], model.intercept_[0]
        return self.coef_.copy(), self.intercept_.copy()

    def _pit_quantiles(self, X: pd.DataFrame, hours: np.ndarray, expired: np.ndarray) -> np.ndarray:  # noqa: N803
        """Quantiles (at LEVELS) of the fitted F at the outcomes of X: uniform if F is calibrated. A touch in
        hour k is placed uniformly in (k - 1, k] (a fixed seed); an expired window counts as beyond H."""
        points, values = self._curve(X)
        touched = hours - np.random.default_rng(0).uniform(size=len(hours))
        pit = np.where(expired, 1.0, interpolate_rows(points, values, np.where(expired, 0.0, touched)))
        return np.quantile(pit, LEVELS)

    def _recency_weights(self, index: pd.Index) -> np.ndarray | None:
        """Halving every half_life_days back from the newest sample (None: equal weights)."""
        if self.half_life_days is None or not isinstance(index, pd.DatetimeIndex) or len(index) == 0:
            return None
        age_days = (index.max() - index) / pd.Timedelta(days=1)
        weights = 0.5 ** (np.asarray(age_days, float) / self.half_life_days)
        return weights * len(weights) / weights.sum()  # mean 1: the regularisation keeps its strength

    def _design(self, X: pd.DataFrame, fit: bool = False) -> np.ndarray:  # noqa: N803
        """Standardised log volatilities and calendar cycles; a missing value takes the training median."""
        columns = []
        for name in self.features:
            values = X[name].to_numpy(dtype=float)
            columns.append(np.log(np.where(values > 0, values, np.nan)) if name in VOLATILITY_SCALES else values)
        design = np.column_stack(columns)
        if fit:  # pandas' median and std skip missing values, and say nothing about an empty column
            table = pd.DataFrame(design)
            self.center_ = table.median().fillna(0.0).to_numpy()
            spread = table.std(ddof=0).to_numpy()
            self.scale_ = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
        design = np.where(np.isfinite(design), design, self.center_)
        return (design - self.center_) / self.scale_

    def _grid_cdf(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        logits = self._design(X) @ self.coef_.T + self.intercept_
        return np.maximum.accumulate(expit(logits), axis=1)

    def cdf(self, X: pd.DataFrame, t: np.ndarray) -> np.ndarray:  # noqa: N803
        points, values = self._curve(X)
        return np.column_stack([interpolate_rows(points, values, np.full(len(values), at))
                                for at in np.asarray(t, float)])

    def _curve(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """The grid with 0 prepended, and each row's F on it."""
        grid_cdf = self._grid_cdf(X)
        return np.r_[0.0, self.grid_], np.column_stack([np.zeros(len(grid_cdf)), grid_cdf])

    def _level(self, q: float) -> float:
        """The level of the fitted F whose quantile has share q of the outcomes below it (recalibrated)."""
        if getattr(self, "pit_quantiles_", None) is None:  # not recalibrated (or stored by an earlier version)
            return q
        return float(np.interp(q, LEVELS, self.pit_quantiles_))

    def quantiles(self, X: pd.DataFrame, qs: tuple[float, ...] = QUANTILES) -> np.ndarray:  # noqa: N803
        """(n, len(qs)) hours, capped at H: where the piecewise-linear F reaches each q."""
        points, values = self._curve(X)
        return curve_quantiles(points, values, [self._level(q) for q in qs], self.horizon)


class RandomWalkTime:
    """First exit of a driftless random walk from the barriers with the current volatility (no fitting).
    The exit probability depends on sigma^2 t alone, so one curve per target serves every row."""

    def __init__(self, target: float, horizon: int = 168):
        self.target, self.horizon = target, horizon
        self.lower, self.upper = np.log(1 - target), np.log(1 + target)
        width = self.upper - self.lower
        self.u_ = np.geomspace(1e-6, 10.0, 4000) * width ** 2  # variance accumulated: sigma^2 t
        self.curve_ = exit_probability(self.u_, np.array(1.0), self.lower, self.upper)

    def fit(self, X, hours, expired, horizon: int = 168):  # noqa: N803 (the shared interface; nothing to learn)
        self.horizon = horizon
        return self

    def _variance(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return np.exp(-diffusive_scale(X, self.target)) * self.target ** 2  # sigma^2, with the same fallback

    def cdf(self, X: pd.DataFrame, t: np.ndarray) -> np.ndarray:  # noqa: N803
        u = np.multiply.outer(self._variance(X), np.asarray(t, float))
        return np.interp(u, self.u_, self.curve_, left=0.0, right=1.0)

    def quantiles(self, X: pd.DataFrame, qs: tuple[float, ...] = QUANTILES) -> np.ndarray:  # noqa: N803
        u = np.array([np.interp(q, self.curve_, self.u_) for q in qs])
        return np.minimum(u[None, :] / self._variance(X)[:, None], self.horizon)


GARCH_YEAR_HOURS = 365 * 24  # the newest year of the training window: volatility's dynamics change slowly
HOUR_NS = 3_600_000_000_000
GARCH_START = "vol_72"  # a run of consecutive hours starts its filter from this variance


class GarchTime:
    """`garch`: first exit of a driftless walk with a GARCH(1,1) variance path (see the module notes);
    `leverage` adds GJR's term for falls (o = 1)."""

    needs_history = True  # its forecast of an hour filters through the hours before it

    def __init__(self, target: float, leverage: bool = False, horizon: int = 168, calibrated: bool = True):
        self.target, self.leverage, self.horizon, self.calibrated = target, leverage, horizon, calibrated
        self.walk_ = RandomWalkTime(target, horizon)

    def fit(self, X: pd.DataFrame, hours, expired, horizon: int = 168):  # noqa: N803 (outcomes are not used)
        self.horizon = horizon
        returns = X["ret_1"].to_numpy(dtype=float)[-GARCH_YEAR_HOURS:]
        returns = returns[np.isfinite(returns)]
        if len(returns) < 500:
            raise ValueError(f"{len(returns)} hourly returns are too few to fit a GARCH model (need 500)")
        scale = float(np.std(returns)) or 1.0  # the optimiser works best on returns of unit variance
        fitted = arch_model(returns / scale, mean="Zero", vol="GARCH", p=1, o=int(self.leverage), q=1,
                            dist="normal", rescale=False).fit(disp="off", show_warning=False)
        params = fitted.params
        self.omega_ = float(params["omega"]) * scale ** 2
        self.alpha_, self.beta_ = float(params["alpha[1]"]), float(params["beta[1]"])
        self.gamma_ = float(params["gamma[1]"]) if self.leverage else 0.0
        self.persistence_ = min(self.alpha_ + self.gamma_ / 2 + self.beta_, 0.999)
        self.mean_variance_ = self.omega_ / (1 - self.persistence_)
        self.calibration_ = self._fit_calibration(X, np.asarray(hours, float), np.asarray(expired, bool)) \
            if self.calibrated else None
        return self

    def _fit_calibration(self, X: pd.DataFrame, hours: np.ndarray, expired: np.ndarray  # noqa: N803
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per time t of the grid (TIME_GRID and H): Platt's map of the walk's P(within t), fitted on the training
        window's outcomes. The GARCH itself learns from returns only, so its forecasts of the window it was fitted
        on are not fitted to their outcomes."""
        grid = np.array(sorted({t for t in TIME_GRID if t < self.horizon} | {self.horizon}), dtype=float)
        raw = _logit(self._cdf(self.next_variance(X), grid))
        resolved_by = np.where(expired, np.inf, hours)
        intercept, slope = np.zeros(len(grid)), np.ones(len(grid))
        for i, t in enumerate(grid):
            y = resolved_by <= t
            if y.all() or not y.any():  # one outcome: its (clipped) certainty, as vol_logistic's grid
                intercept[i], slope[i] = (12.0 if y.all() else -12.0), 0.0
                continue
            platt = LogisticRegression(C=1.0, max_iter=500, solver="newton-cholesky").fit(raw[:, i:i + 1], y)
            intercept[i], slope[i] = platt.intercept_[0], platt.coef_[0, 0]
        return grid, intercept, slope

    def next_variance(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """sigma^2 of the hour after each row, filtered through the consecutive rows before it."""
        returns = X["ret_1"].to_numpy(dtype=float).tolist()  # plain floats: the loop runs 400 times an hour
        start = (X[GARCH_START].to_numpy(dtype=float) ** 2).tolist()
        fresh = np.r_[True, np.diff(X.index.as_unit("ns").asi8) != HOUR_NS] if isinstance(X.index, pd.DatetimeIndex) \
            else np.ones(len(X), bool)
        alpha, gamma, beta, omega = self.alpha_, self.gamma_, self.beta_, self.omega_
        out = np.empty(len(X))
        variance = self.mean_variance_
        for i, new_run in enumerate(fresh.tolist()):
            if new_run:  # a new run of hours: its own recent variance stands in for the filter's past
                variance = start[i] if start[i] > 0 else self.mean_variance_  # (NaN > 0 is False)
            r = returns[i]
            shock = (alpha + gamma * (r < 0)) * r * r if r == r else (alpha + gamma / 2) * variance
            variance = omega + shock + beta * variance
            out[i] = variance
        return out

    def accumulated(self, first: np.ndarray, t: np.ndarray) -> np.ndarray:
        """(n, len(t)): the variance V(t) the path accumulates by each t, from each row's next-hour variance."""
        start = first[:, None] - self.mean_variance_
        t = np.asarray(t, float)[None, :]
        decay = -np.log(self.persistence_)
        return self.mean_variance_ * t + start * (1 - self.persistence_ ** t) / decay

    def cdf(self, X: pd.DataFrame, t: np.ndarray) -> np.ndarray:  # noqa: N803
        return self._served_cdf(self.next_variance(X), t)

    def quantiles(self, X: pd.DataFrame, qs: tuple[float, ...] = QUANTILES) -> np.ndarray:  # noqa: N803
        return self._served_quantiles(self.next_variance(X), qs)

    def last_forecast(self, X: pd.DataFrame, horizon: int) -> np.ndarray:  # noqa: N803
        """(1, 6): forecast_array's row for the last hour of X, filtered through the hours before it."""
        first = self.next_variance(X)[-1:]
        return np.column_stack([self._served_cdf(first, np.array([*WITHIN_HOURS, horizon], dtype=float)),
                                self._served_quantiles(first, QUANTILES)])

    def _served_cdf(self, first: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The calibrated F at t (piecewise linear between the grid's times), or the walk's own when uncalibrated
        (and as stored before calibration existed)."""
        if getattr(self, "calibration_", None) is None:
            return self._cdf(first, t)
        points, values = self._calibrated_curve(first)
        return np.column_stack([interpolate_rows(points, values, np.full(len(values), at))
                                for at in np.asarray(t, float)])

    def _served_quantiles(self, first: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
        if getattr(self, "calibration_", None) is None:
            return self._quantiles(first, qs)
        points, values = self._calibrated_curve(first)
        return curve_quantiles(points, values, list(qs), self.horizon)

    def _calibrated_curve(self, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The grid with 0 prepended, and each row's calibrated F on it (non-decreasing in t)."""
        grid, intercept, slope = self.calibration_
        values = np.maximum.accumulate(expit(intercept + slope * _logit(self._cdf(first, grid))), axis=1)
        return np.r_[0.0, grid], np.column_stack([np.zeros(len(values)), values])

    def _cdf(self, first: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.interp(self.accumulated(first, t), self.walk_.u_, self.walk_.curve_, left=0.0, right=1.0)

    def _quantiles(self, first: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
        """Where V(t) reaches the variance at which the walk's exit probability is q (V increases with t)."""
        grid = np.geomspace(0.01, self.horizon, 400)
        variance = self.accumulated(first, grid)
        rows = np.arange(len(first))
        out = np.empty((len(first), len(qs)))
        for j, q in enumerate(qs):
            needed = np.interp(q, self.walk_.curve_, self.walk_.u_)
            index = np.minimum((variance < needed).sum(axis=1), len(grid) - 1)
            low = np.maximum(index - 1, 0)
            span = variance[rows, index] - variance[rows, low]
            share = np.clip((needed - variance[rows, low]) / np.where(span > 0, span, 1.0), 0, 1)
            hours = grid[low] + share * (grid[index] - grid[low])
            out[:, j] = np.where(variance[:, -1] < needed, self.horizon, hours)
        return np.minimum(out, self.horizon)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def make_time_model(name: str, target: float):
    if name == "climatology":
        return ClimatologyTime()
    if name == "random_walk":
        return RandomWalkTime(target)
    if name == "garch":
        return GarchTime(target)
    if name == "vol_logistic":
        return LogisticTime()
    if name == "xgboost_aft":
        return XGBoostAFT(target)
    raise ValueError(f"unknown time model {name!r}; use one of {', '.join(TIME_MODEL_NAMES)} (or xgboost_aft)")


def fit_time_model(name: str, X: pd.DataFrame, hours: np.ndarray, expired: np.ndarray, target: float,  # noqa: N803
                   horizon: int = 168):
    return make_time_model(name, target).fit(X, np.asarray(hours, float), np.asarray(expired, bool), horizon)


def forecast_array(model, X: pd.DataFrame, horizon: int = 168) -> np.ndarray:  # noqa: N803
    """(n, 6): p_6h, p_24h, p_horizon, then the 10/50/90 % quantile hours (capped at H), per row of X."""
    p = model.cdf(X, np.array([*WITHIN_HOURS, horizon], dtype=float))
    return np.column_stack([p, model.quantiles(X)])

