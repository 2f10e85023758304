"""Thread use under load: python bench/threads.py

Times one calibrated xgboost fit (the product's model with its calibration split, on three years of BTC
hours) alone and beside one and two busy processes (pure-Python loops, as other work on a 2-core machine),
for three settings: two OpenMP threads with OpenMP's default spin-waiting (the product before), two threads
waiting passively, and the product's setting (one thread per fit, OMP_WAIT_POLICY=PASSIVE from
src/__init__.py). Each fit runs in a fresh process, because libgomp reads its settings once.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIT = """
import sys, time
import pandas as pd
from src.models.estimators import direction as estimators
from src.models.estimators.dataset import asset_features, build_dataset
from tests.shared_data import load_candles
estimators.XGB_PARAMS["n_jobs"] = int(sys.argv[1])
frame = load_candles("BTC_USDT")
frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
data = build_dataset(frame, asset_features({"BTC/USDT": frame}, "BTC/USDT"), 0.02)
estimators.fit_model("xgboost", data.X.iloc[:500], data.y.iloc[:500])  # warm-up: imports, thread pool
started = time.perf_counter()
estimators.fit_model("xgboost", data.X, data.y)
print(time.perf_counter() - started)
"""
SETTINGS = (("2 threads, spin-wait (before)", 2, "ACTIVE"), ("2 threads, passive", 2, "PASSIVE"),
            ("1 thread, passive (ours)", 1, "PASSIVE"))


def fit_seconds(threads: int, policy: str) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    out = subprocess.run([sys.executable, "-c", FIT, str(threads)], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def beside_busy(busy: int, repeats: int = 3) -> list[float]:
    """Median fit time of each setting beside `busy` busy processes."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.5)
        return [statistics.median(fit_seconds(threads, policy) for _ in range(repeats))
                for _, threads, policy in SETTINGS]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def main() -> None:
    print(f"{os.cpu_count()} cores; one calibrated xgboost fit, median of 3 runs")
    alone, one, two = (beside_busy(busy) for busy in (0, 1, 2))
    print(f"{'setting':<32} {'alone':>7} {'+1 busy':>8} {'+2 busy':>8} {'+2 / alone':>11}")
    for (label, _, _), a, b, c in zip(SETTINGS, alone, one, two):
        print(f"{label:<32} {a:>6.2f}s {b:>7.2f}s {c:>7.2f}s {c / a:>10.1f}x")
    print("in proportion: beside 2 busy processes a fit gets 2/3 of a core, so about 1.5x")


if __name__ == "__main__":
    main()
