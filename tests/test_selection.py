"""The champion rule and the skill interval on constructed data whose answer is known."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.models.evaluation.selection import (
    Evidence,
    choose_champion,
    diebold_mariano,
    newey_west_variance,
    skill_interval,
)

HOURS = pd.date_range("2022-01-01", periods=6000, freq="h", tz="UTC")


def _evidence(rng: np.random.Generator, edge: float, n: int = 6000, **extra) -> tuple[Evidence, np.ndarray]:
    """Outcomes drawn from a true probability q in 0.5 +- edge: `logistic` forecasts q itself."""
    q = 0.5 + rng.uniform(-edge, edge, n)
    y = (rng.random(n) < q).astype(float)
    forecasts = {"climatology": np.full(n, 0.5), "logistic": q}
    forecasts |= {name: make(q, y) for name, make in extra.items()}
    return Evidence(HOURS[:n], y, forecasts), q


def test_a_real_edge_replaces_climatology_and_an_equal_complex_model_does_not_replace_a_simpler_one():
    rng = np.random.default_rng(1)
    noise = np.random.default_rng(2)
    evidence, _ = _evidence(rng, 0.2, xgboost=lambda q, y: np.clip(q + noise.normal(0, 0.01, len(q)), 0, 1))
    choice = choose_champion(evidence, level=0.05, lag=0)
    assert choice.p_values["logistic"] < 1e-6  # q explains the outcomes: overwhelming evidence
    assert choice.p_values["xgboost"] > 0.05  # q plus noise is no better than q
    assert choice.champion == "logistic"


def test_noise_or_a_tiny_edge_never_replaces_climatology():
    rng = np.random.default_rng(3)
    noise = np.random.default_rng(4)
    evidence, _ = _evidence(rng, 0.005, n=2000, xgboost=lambda q, y: noise.uniform(0.3, 0.7, len(q)))
    choice = choose_champion(evidence, level=0.05, lag=0)
    assert choice.champion == "climatology"
    assert choice.p_values["xgboost"] > 0.5  # pure noise is worse than the base rate


def test_a_model_that_peeks_at_the_outcome_wins_and_too_little_evidence_keeps_the_simplest():
    rng = np.random.default_rng(5)
    evidence, _ = _evidence(rng, 0.01, xgboost=lambda q, y: 0.3 + 0.4 * y)
    assert choose_champion(evidence, level=0.05, lag=168).champion == "xgboost"
    few = evidence.where(np.arange(len(evidence)) < 150)
    assert choose_champion(few, level=0.05, lag=168).champion == "climatology"


def test_autocorrelation_robust_variance_of_blocks_of_repeated_values():
    """A series of 50 independent values each repeated 120 times has the information of 50 samples: the
    Newey-West variance at a lag of the block length is near 120 times the naive one, and the test less sure."""
    rng = np.random.default_rng(6)
    d = np.repeat(rng.normal(0.05, 1, 50), 120)
    naive, robust = newey_west_variance(d, 0), newey_west_variance(d, 120)
    assert naive == pytest.approx(d.var())
    assert 40 < robust / naive < 130
    assert diebold_mariano(d, np.zeros_like(d), 120) > 10 * diebold_mariano(d, np.zeros_like(d), 0)


def test_identical_forecasts_give_no_evidence():
    loss = np.linspace(0, 1, 500)
    assert diebold_mariano(loss, loss, 24) == 1.0


def test_skill_interval_covers_the_true_skill_and_shrinks_with_more_days():
    """Forecast = true probability: the population skill is known in closed form
    (1 - E[q(1-q)] / E[(q-0.5)^2 + q(1-q)]); the 95 % interval holds it, and is narrower on 4x the days."""
    rng = np.random.default_rng(7)
    edge = 0.2
    variance = edge ** 2 / 3  # of q - 0.5 when q is uniform on 0.5 +- edge
    true_skill = 1 - (0.25 - variance) / 0.25
    widths = []
    for n in (24 * 120, 24 * 480):
        times = pd.date_range("2022-01-01", periods=n, freq="h", tz="UTC")
        q = 0.5 + rng.uniform(-edge, edge, n)
        y = (rng.random(n) < q).astype(float)
        low, high = skill_interval(y, q, np.full(n, 0.5), times, block_days=7, replicates=1000)
        assert low < true_skill < high
        widths.append(high - low)
    assert widths[1] < 0.7 * widths[0]
