"""Features of hour t from candles with open time <= t only, on an hourly grid (a missing hour is NaN,
never a shift). All windows look backwards; `feature_version` changes whenever the definitions do.

| name | meaning |
| --- | --- |
| ret_{k} | log return over k hours, k in 1, 3, 6, 12, 24, 72, 168 |
| vol_{w} | std of hourly log returns over w hours (24, 72, 168) |
| vol_ratio | vol_24 / vol_168: volatility regime |
| atr_{w} | mean true range / close over w hours (14, 72) |
| range_ratio, body_ratio | (high - low) / close; (close - open) / (high - low) of the candle |
| rsi_14 | relative strength index (simple averages), 0..100 |
| macd_hist | MACD(12, 26, 9) histogram / close |
| bb_pos_20 | (close - SMA20) / (2 std20): Bollinger position |
| vol_z_{w} | z-score of log volume over w hours (24, 168) |
| dist_high_{w}, dist_low_{w} | close / rolling max(high) - 1, close / rolling min(low) - 1 (24, 168) |
| hour_sin/cos, dow_sin/cos | time of day and day of week |
| btc_ret_1, btc_ret_24, btc_vol_24 | BTC's context (BTC itself: its own values; others need BTC candles) |
Per target X, models add `barrier_z` = X / (vol_24 * sqrt(24)): the barrier in units of a day's volatility.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from src.data.labels import hourly_grid

RETURN_LAGS = (1, 3, 6, 12, 24, 72, 168)
VOL_WINDOWS = (24, 72, 168)
ATR_WINDOWS = (14, 72)
EXTREME_WINDOWS = (24, 168)
VOLUME_WINDOWS = (24, 168)
MIN_SHARE = 0.8  # a window needs 80 % of its hours present
CONTEXT_SYMBOL = "BTC/USDT"
FEATURE_WINDOW_HOURS = 400  # > the longest window (168 h) plus EWM warm-up; older hours change nothing
_SPEC = {"lags": RETURN_LAGS, "vol": VOL_WINDOWS, "atr": ATR_WINDOWS, "ext": EXTREME_WINDOWS,
         "volume": VOLUME_WINDOWS, "min_share": MIN_SHARE, "rsi": 14, "macd": (12, 26, 9), "bb": 20,
         "context": CONTEXT_SYMBOL, "barrier_z": "X/(vol_24*sqrt(24))", "revision": 1}
FEATURE_VERSION = hashlib.sha256(json.dumps(_SPEC, sort_keys=True).encode()).hexdigest()[:12]


def _roll(series: pd.Series, window: int):
    return series.rolling(window, min_periods=max(2, int(window * MIN_SHARE)))


def _own_features(grid: pd.DataFrame) -> pd.DataFrame:
    o, h, lo, c, v = (grid[k] for k in ("open", "high", "low", "close", "volume"))
    logc = np.log(c)
    r1 = logc.diff()
    f: dict[str, pd.Series] = {f"ret_{k}": logc - logc.shift(k) for k in RETURN_LAGS}
    for w in VOL_WINDOWS:
        f[f"vol_{w}"] = _roll(r1, w).std()
    f["vol_ratio"] = f["vol_24"] / f["vol_168"]
    true_range = pd.concat([h - lo, (h - c.shift(1)).abs(), (lo - c.shift(1)).abs()], axis=1).max(axis=1,
                                                                                                   skipna=False)
    for w in ATR_WINDOWS:
        f[f"atr_{w}"] = _roll(true_range / c, w).mean()
    f["range_ratio"] = (h - lo) / c
    f["body_ratio"] = ((c - o) / (h - lo)).where(h > lo, 0.0)
    gain, loss = _roll(r1.clip(lower=0), 14).mean(), _roll((-r1).clip(lower=0), 14).mean()
    f["rsi_14"] = 100 - 100 / (1 + gain / loss.replace(0, np.nan))
    # EWMs skip missing hours (ignore_na) rather than shifting values; they need no fixed window.
    ema = {span: c.ewm(span=span, adjust=False, ignore_na=True).mean() for span in (12, 26)}
    macd = ema[12] - ema[26]
    f["macd_hist"] = (macd - macd.ewm(span=9, adjust=False, ignore_na=True).mean()) / c
    f["macd_hist"] = f["macd_hist"].where(c.notna())
    sma, std = _roll(c, 20).mean(), _roll(c, 20).std()
    f["bb_pos_20"] = (c - sma) / (2 * std)
    logv = np.log1p(v)
    for w in VOLUME_WINDOWS:
        f[f"vol_z_{w}"] = (logv - _roll(logv, w).mean()) / _roll(logv, w).std()
    for w in EXTREME_WINDOWS:
        f[f"dist_high_{w}"] = c / _roll(h, w).max() - 1
        f[f"dist_low_{w}"] = c / _roll(lo, w).min() - 1
    hours = grid.index.hour.to_numpy()
    days = grid.index.day_of_week.to_numpy()
    f["hour_sin"], f["hour_cos"] = (pd.Series(fn(2 * np.pi * hours / 24), index=grid.index) for fn in (np.sin, np.cos))
    f["dow_sin"], f["dow_cos"] = (pd.Series(fn(2 * np.pi * days / 7), index=grid.index) for fn in (np.sin, np.cos))
    return pd.DataFrame(f, index=grid.index)


def _context_features(grid: pd.DataFrame) -> pd.DataFrame:
    """The three of _own_features that BTC lends every asset, computed the same way (and only those)."""
    logc = np.log(grid["close"])
    r1 = logc.diff()
    return pd.DataFrame({"ret_1": logc - logc.shift(1), "ret_24": logc - logc.shift(24), "vol_24": _roll(r1, 24).std()})


def compute_features(candles: pd.DataFrame, context: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features for every candle of `candles` (timestamp, open, high, low, close, volume); `context`
    is BTC's candles (None: the asset is BTC). Rows of hours with no candle are dropped."""
    grid = hourly_grid(candles)
    features = _own_features(grid)
    if context is None:
        ctx = features[["ret_1", "ret_24", "vol_24"]]
    else:
        ctx = _context_features(hourly_grid(context).reindex(grid.index))
    features[["btc_ret_1", "btc_ret_24", "btc_vol_24"]] = ctx.to_numpy()
    features = features.replace([np.inf, -np.inf], np.nan)
    return features[grid["close"].notna()]


def with_barrier(features: pd.DataFrame, target: float) -> pd.DataFrame:
    """The model matrix for one target: the features plus the barrier in units of a day's volatility."""
    matrix = features.copy()
    matrix["barrier_z"] = target / (features["vol_24"] * np.sqrt(24))
    return matrix
