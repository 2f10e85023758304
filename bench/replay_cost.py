"""What a replay costs beside the backtest of the same days (issue #31): `replay` over a period into a kept folder,
then, back to back on the same machine, `backtest --retrain-every 1` over the same period in that folder's database
(the same fits, on the daemon's schedule), then `compare-runs replay backtest`. Prints the replay's own lines (one
per simulated day, and where its time went), both wall times, their ratio and the comparison.

    python bench/replay_cost.py --start 2023-10-01 --end 2023-10-31 --config my.yaml [--folder /tmp/replay-cost]

The figures of README "Replay" come from this script with a config of `ml.training_days: 365`; results in
bench/results/replay_cost.txt.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CRYPTO_ML_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _run(*args: str) -> tuple[float, str]:
    """One CLI command; its wall time and its standard output (its errors go to ours)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "src.main", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          check=False)
    if done.returncode != 0 and not (args[0] == "compare-runs" and done.returncode == 1):  # 1: the runs differ
        raise SystemExit(f"{args[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}")
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2023-10-01")
    parser.add_argument("--end", default="2023-10-31")
    parser.add_argument("--config", required=True, help="e.g. a file with ml: {training_days: 365}")
    parser.add_argument("--folder", default="/tmp/replay-cost", help="the replay's kept database and models")
    options = parser.parse_args()
    folder, config = options.folder, ["--config", options.config]
    period = ["--start", options.start, "--end", options.end]
    shutil.rmtree(folder, ignore_errors=True)
    replay_s, replay_out = _run("replay", *period, "--source", str(SHARED), "--keep", folder, *config)
    print(replay_out, flush=True)
    backtest_s, _ = _run("backtest", *period, "--retrain-every", "1", "--data-dir", folder, *config)
    _, compared = _run("compare-runs", "replay", "backtest", *period, "--data-dir", folder, *config)
    print(f"replay {replay_s:.0f} s, backtest with daily retraining {backtest_s:.0f} s: the replay costs "
          f"{replay_s / backtest_s:.2f} times its backtest")
    print(compared)


if __name__ == "__main__":
    main()
