"""Nothing lost, nothing half-written: `train`, `predict --at` and `outcomes --at` killed with SIGKILL at
several points, then run again to completion. Afterwards every registry row's files exist, match their
checksum and load; no model folder is left that no row names; every (hour, group) predicted has its direction
and its how-soon rows, each exactly once; every forecast decided by the candles has its outcome once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from src.models.live.registry import ModelRegistry

ROOT = Path(__file__).resolve().parents[1]
KILL_AFTER = (0.3, 1.5, 4.0)  # seconds: early (imports), mid-write, late
pytestmark = pytest.mark.host_tz  # product processes


def _cli(config: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRYPTO_ML_CONFIG")}
    return subprocess.Popen([sys.executable, "-m", "src.main", *args, "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _killed_then_completed(config: Path, *args: str) -> None:
    for delay in KILL_AFTER:
        process = _cli(config, *args)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    process = _cli(config, *args)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err


@pytest.fixture
def config(trained, write_config, tmp_path) -> Path:
    ops, _, registry = trained
    assert registry.models_dir == tmp_path / "models"
    return write_config({"database": {"url": ops.db.database_url}, "trading": {"assets": ["BTC/USDT", "ETH/USDT"],
                         "target_percentages": [0.01, 0.05]}, "paths": {"data_dir": str(tmp_path)},
                         "ml": {"min_samples_for_training": 500, "n_workers": 1}})


def test_predict_and_outcomes_killed_and_run_again_leave_every_hour_whole(trained, config):
    ops, records, _ = trained
    _killed_then_completed(config, "predict", "--at", "2023-01-20T06:15")
    _killed_then_completed(config, "predict", "--at", "2023-01-20T07:15")
    with ops.db.engine.connect() as conn:
        direction = pd.read_sql("SELECT timestamp, symbol, target_pct, count(*) AS n FROM predictions "
                                "GROUP BY 1, 2, 3", conn)
        timing = pd.read_sql("SELECT timestamp, symbol, target_pct, count(*) AS n FROM resolution_forecasts "
                             "GROUP BY 1, 2, 3", conn)
    assert len(direction) == 2 * 2 * 2 and (direction["n"] == 3).all()  # 2 hours x 2 assets x 2 targets
    assert len(timing) == len(direction) and (timing["n"] == 3).all()
    _killed_then_completed(config, "outcomes", "--at", "2023-02-20")
    with ops.db.engine.connect() as conn:
        once = pd.read_sql("SELECT prediction_id, count(*) AS n FROM prediction_outcomes GROUP BY 1", conn)
        unresolved = conn.exec_driver_sql("SELECT count(*) FROM resolution_forecasts WHERE status IS NULL").scalar()
    assert len(once) == records.count("predictions") and (once["n"] == 1).all()
    assert unresolved == 0


def test_train_killed_and_run_again_leaves_whole_models_only(trained, config, tmp_path):
    ops, records, _ = trained
    _killed_then_completed(config, "train", "--symbol", "BTC/USDT", "--target", "0.05")
    registry = ModelRegistry(records, tmp_path / "models")
    rows = pd.concat([records.models(task=task) for task in ("direction", "resolution")])
    for _, row in rows.iterrows():
        assert registry.load(row)  # files there, checksum matching, loadable
    assert {p.name for p in registry.models_dir.iterdir()} == set(rows["version"])
