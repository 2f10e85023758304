"""The real Binance candles in shared/data (beside the repository), for tests and benchmarks."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pandas as pd

SHARED_DATA = Path(os.environ.get("CRYPTO_ML_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))


@functools.lru_cache(maxsize=8)
def _read(symbol_file: str) -> pd.DataFrame:
    path = SHARED_DATA / f"{symbol_file}-1h.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; set CRYPTO_ML_SHARED_DATA to the folder of the candles")
    return pd.read_csv(path)


def load_candles(symbol_file: str, start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Rows of e.g. 'BTC_USDT' with start <= open time <= end (ISO dates, UTC), timestamp in ms."""
    frame = _read(symbol_file)
    if start:
        frame = frame[frame["timestamp"] >= pd.Timestamp(start, tz="UTC").value // 1_000_000]
    if end:
        frame = frame[frame["timestamp"] <= pd.Timestamp(end, tz="UTC").value // 1_000_000]
    return frame.reset_index(drop=True)
