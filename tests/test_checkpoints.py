"""The seed's checkpoint scripts (PHASE1.md) run as written against the product; only the config differs."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tests" / "checkpoints" / script)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env})


@pytest.mark.host_tz
def test_checkpoint_1a():
    result = _run("checkpoint_1a.py", {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Config loaded: ['BTC/USDT', 'ETH/USDT', 'SOL/USDT']"


@pytest.mark.host_tz
def test_checkpoint_1b(empty_db_url, write_config, raw_connect_tables):
    path = write_config({"database": {"url": empty_db_url}})
    result = _run("checkpoint_1b.py", {"CRYPTO_ML_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    assert "Database setup complete" in result.stdout
    assert {"ohlcv_data", "predictions", "prediction_outcomes"} <= raw_connect_tables(empty_db_url)


@pytest.mark.host_tz
def test_checkpoint_1c(empty_db_url, write_config, exchange, loaded_exchange):
    loaded_exchange(exchange, days=10)
    path = write_config({"database": {"url": empty_db_url},
                         "exchange": {"api_urls": {"public": exchange.api_url}}})
    env = {"CRYPTO_ML_CONFIG": str(path)}
    assert _run("checkpoint_1b.py", env).returncode == 0
    result = _run("checkpoint_1c.py", env)
    assert result.returncode == 0, result.stderr
    fetched = int(re.search(r"Fetched (\d+) BTC candles", result.stdout).group(1))
    assert fetched in (47, 48)  # two days of closed candles; the open one is left out
    assert f"Saved {fetched} candles" in result.stdout
    assert "Retrieved 10 candles" in result.stdout
