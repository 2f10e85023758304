"""Champion choice on evidence, and confidence intervals for skill.

Out-of-sample forecasts of every model kind on the same labelled hours (`Evidence`) are compared by their
per-hour Brier losses. Models are tried from the simplest up (climatology, logistic, xgboost): a model
replaces the current choice only when its Brier advantage is significant by a one-sided Diebold-Mariano
test whose variance is autocorrelation-robust (Newey-West, Bartlett kernel, lag = the label horizon,
because windows that overlap by up to H hours share their outcome). Otherwise the simpler model stays.

Skill intervals come from a circular block bootstrap over days (blocks as long as the horizon), for the
same reason: neighbouring hours and days are not independent samples.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

SIMPLEST_FIRST = ("climatology", "logistic", "xgboost")
MIN_EVIDENCE = 200  # fewer labelled hours than this are no evidence at all


@dataclass
class Evidence:
    """Out-of-sample forecasts of each model kind on the same labelled hours, in time order: P(UP) per hour
    (direction), or one row of numbers per hour (time models); y the outcomes."""
    times: pd.DatetimeIndex
    y: np.ndarray
    p: dict[str, np.ndarray]

    @classmethod
    def empty(cls, names: tuple[str, ...], width: int | None = None) -> Evidence:
        """No forecasts yet; `width` for forecasts of several numbers per hour (the time models')."""
        shape = (0,) if width is None else (0, width)
        return cls(pd.DatetimeIndex([], tz="UTC"), np.array([], dtype=float), {n: np.empty(shape) for n in names})

    def __len__(self) -> int:
        return len(self.times)

    def where(self, keep: np.ndarray) -> Evidence:
        return Evidence(self.times[keep], self.y[keep], {n: p[keep] for n, p in self.p.items()})

    def between(self, start: pd.Timestamp, end: pd.Timestamp) -> Evidence:
        return self.where((self.times >= start) & (self.times < end))

    def known_by(self, known: pd.DatetimeIndex) -> Evidence:
        """Only the hours whose label is in `known` (labels known at a cut)."""
        return self.where(self.times.isin(known))

    def __add__(self, other: Evidence) -> Evidence:
        names = self.p.keys() & other.p.keys()
        return Evidence(self.times.append(other.times), np.concatenate([self.y, other.y]),
                        {n: np.concatenate([self.p[n], other.p[n]]) for n in names})


@dataclass
class ChampionChoice:
    champion: str
    n: int
    loss: dict[str, float] = field(default_factory=dict)  # mean per-hour loss of each model (Brier by default)
    p_values: dict[str, float] = field(default_factory=dict)  # challenger -> p against the choice before it
    reason: str = ""


def newey_west_variance(d: np.ndarray, lag: int) -> float:
    """Long-run variance of the series d (Bartlett kernel): the variance of its mean times n."""
    d = d - d.mean()
    n = len(d)
    variance = float(d @ d) / n
    for k in range(1, min(lag, n - 1) + 1):
        variance += 2 * (1 - k / (lag + 1)) * float(d[k:] @ d[:-k]) / n
    return max(variance, 0.0)


def diebold_mariano(loss_incumbent: np.ndarray, loss_challenger: np.ndarray, lag: int) -> float:
    """One-sided p-value that the challenger's expected loss is lower than the incumbent's."""
    d = np.asarray(loss_incumbent, dtype=float) - np.asarray(loss_challenger, dtype=float)
    variance = newey_west_variance(d, lag)
    if len(d) < 2 or variance <= 0:
        return 1.0 if d.mean() <= 0 else 0.0
    return float(norm.sf(d.mean() / np.sqrt(variance / len(d))))


def brier_loss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (p - y) ** 2


def choose_champion(evidence: Evidence, level: float, lag: int, order: tuple[str, ...] = SIMPLEST_FIRST,
                    loss: Callable[[np.ndarray, np.ndarray], np.ndarray] = brier_loss) -> ChampionChoice:
    """The first model of `order` (by default the simplest) that no later one beats significantly at `level`
    (one-sided), by the per-hour `loss` (Brier by default): each challenger in turn against the choice so far."""
    names = [n for n in order if n in evidence.p]
    choice = ChampionChoice(names[0], len(evidence))
    if len(evidence) < MIN_EVIDENCE:
        choice.reason = f"{len(evidence)} out-of-sample hours, fewer than {MIN_EVIDENCE}: the simplest model stays"
        return choice
    losses = {n: loss(evidence.p[n], evidence.y) for n in names}
    choice.loss = {n: float(loss.mean()) for n, loss in losses.items()}
    for challenger in names[1:]:
        p_value = diebold_mariano(losses[choice.champion], losses[challenger], lag)
        choice.p_values[challenger] = p_value
        if p_value < level:
            choice.champion = challenger
    beaten = ", ".join(f"{n} p={p:.3f}" for n, p in choice.p_values.items())
    choice.reason = (f"{choice.champion} on {len(evidence)} hours (one-sided DM of each challenger, in the order "
                     f"{' > '.join(names)}, vs the choice before it: {beaten})")
    return choice


def skill_interval(y: np.ndarray, p: np.ndarray, reference: np.ndarray, times: pd.DatetimeIndex,
                   block_days: int = 7, replicates: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the Brier skill 1 - sum(loss) / sum(reference loss): a circular block bootstrap
    over days, in blocks of `block_days` consecutive days."""
    frame = pd.DataFrame({"loss": (np.asarray(p, float) - y) ** 2, "ref": (np.asarray(reference, float) - y) ** 2},
                         index=times)
    daily = frame.groupby(times.floor("D")).sum()
    return daily_skill_interval(daily["loss"].to_numpy(), daily["ref"].to_numpy(), block_days, replicates, seed)


def daily_skill_interval(loss: np.ndarray, ref: np.ndarray, block_days: int = 7, replicates: int = 2000,
                         seed: int = 0) -> tuple[float, float]:
    """95 % interval of 1 - sum(loss) / sum(ref) from per-day sums (consecutive days): overlapping windows make
    neighbouring hours' outcomes alike, so whole blocks of days are resampled (circular block bootstrap)."""
    if len(loss) < 2 or ref.sum() <= 0:
        return float("nan"), float("nan")
    low, high = daily_skill_intervals(loss[None, :], ref[None, :], block_days, replicates, seed)[0]
    return float(low), float(high)


def daily_skill_intervals(loss: np.ndarray, ref: np.ndarray, block_days: int = 7, replicates: int = 2000,
                          seed: int = 0) -> np.ndarray:
    """daily_skill_interval for many series at once: `loss` and `ref` are (series, days) on the same days, the
    same resampled blocks for every series; returns (series, 2). Block sums come from prefix sums, so the cost
    grows with the blocks drawn, not with the days."""
    days = loss.shape[1]
    block = min(block_days, days)
    blocks = -(-days // block)
    last = days - (blocks - 1) * block  # the last block is cut to make `days` days, as when resampling days
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, days, size=(replicates, blocks))
    totals = []
    for values in (loss, ref):
        prefix = np.concatenate([np.zeros((len(values), 1)), np.cumsum(np.concatenate([values, values], axis=1),
                                                                        axis=1)], axis=1)
        full = prefix[:, np.arange(days) + block] - prefix[:, :days]  # (series, start): a whole block's sum
        cut = prefix[:, np.arange(days) + last] - prefix[:, :days]
        totals.append(full[:, starts[:, :-1]].sum(axis=2) + cut[:, starts[:, -1]])  # (series, replicates)
    skills = 1 - totals[0] / np.maximum(totals[1], 1e-12)
    return np.percentile(skills, [2.5, 97.5], axis=1).T
