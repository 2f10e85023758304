"""How the how-soon champion is served, decided on its out-of-sample evidence (the walk-forward folds, or the
backtest's forecasts known at a retrain point):

- **A champion per horizon.** The champion's P(within t) is kept only at the horizons t (6 h, 24 h, H) where
  its one-sided Diebold-Mariano test against climatology's P(within t) is significant at KEPT_LEVEL (Newey-West lag H at
  every horizon: the lag t, the overlap of t-hour windows alone, kept the same horizons on 2021-07..2022-06
  but for one group at 6 h, so the more cautious lag stayed; bench/soon_research.py's `lag_t` rows);
  elsewhere climatology's is served. The composed P is then made non-decreasing in t.
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

RECALIBRATION_DAYS = 60  # the newest evidence the interval follows (30 / 60 / 90 compared on 2021-07..2022-06)
MIN_RECALIBRATION = 500  # fewer labelled hours: the quantiles are served as the model gives them
PAST_HORIZON = 25.0  # the log-hour shift of a level the evidence does not reach: e^25 times any hour is past H
BASELINE = "climatology"
# the kept-horizon test's one-sided level (the champion's own is ml.champion_significance): 0.05, 0.10 and 0.20
# compared on 2021-07..2022-06, where 0.20 kept the most skill and lost none (bench/results/soon_choice.txt)
KEPT_LEVEL = 0.20


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


def kept_horizons(evidence: Evidence, champion: str, level: float, horizon: int,
                  lag: int | None = None) -> tuple[int, ...]:
    """The horizons at which the champion beats climatology's P(within t) significantly (one-sided DM, Newey-West
    lag `lag`, by default H)."""
    if champion == BASELINE or len(evidence) < MIN_EVIDENCE:
        return ()
    outcomes = within(evidence.y, horizon)
    kept = []
    for j, hours in enumerate((6, 24, horizon)):
        loss_champion = (evidence.p[champion][:, j] - outcomes[:, j]) ** 2
        loss_climatology = (evidence.p[BASELINE][:, j] - outcomes[:, j]) ** 2
        if diebold_mariano(loss_climatology, loss_champion, lag or horizon) < level:
            kept.append(hours)
    return tuple(kept)


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
    return ServingRule(kept_horizons(evidence, champion, KEPT_LEVEL, horizon),
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
