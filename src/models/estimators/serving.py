"""How the how-soon champion is served, decided on its out-of-sample evidence (the walk-forward folds, or the
backtest's forecasts known at a retrain point):

- **The champion's own P, unless climatology's is significantly better.** The champion's P(within t) is served at
  every horizon t (6 h, 24 h, H) except where climatology's P(within t) beats it in a one-sided Diebold-Mariano
  test at DROP_LEVEL (Newey-West lag H); there climatology's is served. The composed P is then made non-decreasing
  in t. (Until issue #33 the burden lay the other way: the champion's P was kept only where it beat
  climatology's significantly at 0.20. With the learned model as champion, on 2022-07..2023-06 that served up to
  0.049 less 24 h skill and 0.075 less 168 h skill than the learned model alone, in groups where the learned
  model beat climatology throughout, because the lagging 240-day evidence had not yet shown it; the reversed
  test threw away nothing on 2021-07..2022-06 or 2022-07..2023-06: bench/soon_round3.py.)
- **Rolling conformal intervals.** Each of the champion's 10/50/90 % quantiles is corrected by a factor in
  hours: on the newest RECALIBRATION_DAYS of evidence, the q-quantile of log(outcome / forecast quantile)
  (a touch in hour k placed uniformly in (k - 1, k], a fixed seed; an expired window's score is only known to
  exceed log(H / forecast quantile): right-censored, so the quantile is Kaplan-Meier's, and a level it does
  not reach, because more of the newest windows expired than the level leaves, is put at H: the evidence places
  it past the horizon, where the model's own value, kept before, left the interval short of windows that
  outlived it). Conformalised
  quantile regression on log time (Romano et al., 2019), refreshed at every (re)training, so a calm or a wild
  half-year is followed within weeks. (Moving both ends of the interval together until it covered 80 % of the
  same days, as the coverage is judged, changed nothing on 2021-07..2022-06: bench/soon_research.py's `+joint`
  rows.)

The rule is stored with the champion (registry metrics `kept_horizons`, `quantile_shifts`); the live cycle
and the backtest compose the served row from the champion's and climatology's forecasts by `compose`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.models.estimators.survival import StepDistribution, kaplan_meier
from src.models.evaluation.selection import MIN_EVIDENCE, Evidence, diebold_mariano
from src.models.evaluation.time_metrics import QUANTILE_LEVELS, within

RECALIBRATION_DAYS = 60  # the newest evidence the interval follows (30 / 60 / 90 on 2021-07..2022-06, 30 / 45 / 60
# in round 3: bench/soon_round3.py)
MIN_RECALIBRATION = 500  # fewer labelled hours: the quantiles are served as the model gives them
PAST_HORIZON = 25.0  # the log-hour shift of a level the evidence does not reach: e^25 times any hour is past H
BASELINE = "climatology"
# the one-sided level at which climatology's P(within t) replaces the champion's (bench/soon_round3.py: 0.05 and
# 0.20 compared on 2021-07..2022-06 and 2022-07..2023-06; at 0.20 it cost 0.036 of 24 h skill in one group)
DROP_LEVEL = 0.05


@dataclass(frozen=True)
class ServingRule:
    kept_hours: tuple[int, ...] = ()  # the horizons whose P(within t) is the champion's own
    shifts: tuple[float, ...] = (0.0, 0.0, 0.0)  # added to log q10 / q50 / q90

    def metrics(self) -> dict:
        return {"kept_horizons": list(self.kept_hours), "quantile_shifts": [round(s, 6) for s in self.shifts]}

    @classmethod
    def from_metrics(cls, metrics: dict | None, champion: str, horizon: int) -> ServingRule:
        """The stored rule; a champion stored before rules existed serves its own P at every horizon."""
        metrics = metrics or {}
        if "kept_horizons" not in metrics:
            return cls(() if champion == BASELINE else (6, 24, horizon))
        return cls(tuple(int(h) for h in metrics["kept_horizons"]),
                   tuple(float(s) for s in metrics.get("quantile_shifts") or (0.0, 0.0, 0.0)))


def better_horizons(evidence: Evidence, model: str, baseline: str, level: float, horizon: int,
                    lag: int | None = None) -> tuple[int, ...]:
    """The horizons t (6 h, 24 h, H) at which `model`'s P(within t) beats `baseline`'s significantly (one-sided DM,
    Newey-West lag `lag`, by default H); none with too little evidence."""
    if len(evidence) < MIN_EVIDENCE:
        return ()
    outcomes = within(evidence.y, horizon)
    better = []
    for j, hours in enumerate((6, 24, horizon)):
        loss_model = (evidence.p[model][:, j] - outcomes[:, j]) ** 2
        loss_baseline = (evidence.p[baseline][:, j] - outcomes[:, j]) ** 2
        if diebold_mariano(loss_baseline, loss_model, lag or horizon) < level:
            better.append(hours)
    return tuple(better)


def kept_horizons(evidence: Evidence, champion: str, horizon: int, level: float = DROP_LEVEL) -> tuple[int, ...]:
    """The horizons whose P is the champion's own: every one, except where climatology's beats it significantly."""
    if champion == BASELINE:
        return ()
    dropped = better_horizons(evidence, BASELINE, champion, level, horizon)
    return tuple(t for t in (6, 24, horizon) if t not in dropped)


def interval_shifts(evidence: Evidence, champion: str, horizon: int, days: int = RECALIBRATION_DAYS,
                    fewest: int = MIN_RECALIBRATION, unreachable: float = PAST_HORIZON) -> tuple[float, float, float]:
    """Log-hour corrections of the champion's three quantiles from its newest `days` of evidence (none with fewer
    than `fewest` labelled hours); a level Kaplan-Meier does not reach gets `unreachable` (by default: at H)."""
    if len(evidence) == 0:
        return (0.0, 0.0, 0.0)
    recent = evidence.where(evidence.times > evidence.times.max() - pd.Timedelta(days=days))
    if len(recent) < fewest:
        return (0.0, 0.0, 0.0)
    hours = recent.y
    expired = ~np.isfinite(hours)
    touched = np.where(expired, float(horizon), hours - np.random.default_rng(0).uniform(size=len(hours)))
    shifts = []
    for j, level in enumerate(QUANTILE_LEVELS):
        quantile = np.maximum(recent.p[champion][:, 3 + j], 1e-3)
        # an expired window's score is only known to exceed log(H / q): right-censored, so Kaplan-Meier
        scores = np.log(np.maximum(touched, 1e-3) / quantile)
        shift = StepDistribution(*kaplan_meier(scores, expired)).quantile(level)
        shifts.append(shift if np.isfinite(shift) else unreachable)  # the level lies past every outcome seen
    return tuple(shifts)


def serving_rule(evidence: Evidence, champion: str, horizon: int) -> ServingRule:
    return ServingRule(kept_horizons(evidence, champion, horizon),
                       interval_shifts(evidence, champion, horizon))


def compose(champion: np.ndarray, climatology: np.ndarray | None, rule: ServingRule, horizon: int) -> np.ndarray:
    """The served forecast rows: the champion's P at the kept horizons and climatology's elsewhere, made
    non-decreasing in t; the champion's quantiles corrected by the rule's shifts, ordered and capped at H.
    Without climatology's forecast (it did not load) the champion's own P is served."""
    served = np.array(champion, dtype=float, copy=True)
    if climatology is not None:
        for j, hours in enumerate((6, 24, horizon)):
            if hours not in rule.kept_hours:
                served[:, j] = climatology[:, j]
    served[:, :3] = np.maximum.accumulate(served[:, :3], axis=1)
    quantiles = served[:, 3:6] * np.exp(np.asarray(rule.shifts, float))[None, :]
    served[:, 3:6] = np.minimum(np.maximum.accumulate(quantiles, axis=1), horizon)
    return served
