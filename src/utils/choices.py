"""What a person types for an asset, a target or a number of days, read the same way by the bot and the web
pages: `btc`, `BTC` or `BTC/USDT`; `2`, `2%` or `0.02`. Bad input raises BadInput, whose message names what was
wrong and the valid choices (plain text: each door escapes it for its own format)."""
from __future__ import annotations

import numpy as np


class BadInput(ValueError):
    """An argument that is not one of the valid choices: its message says which are."""


def short_name(asset: str) -> str:
    """How an asset is shown and typed: the base of a spot market (BTC/USDT -> BTC), and of a perpetual future
    with -PERP (BTC/USDT:USDT -> BTC-PERP; a dated one: BTC/USDT:USDT-250328 -> BTC-250328)."""
    base, _, rest = asset.partition("/")
    if ":" not in rest:
        return base
    _, _, expiry = rest.partition(":")[2].partition("-")
    return f"{base}-{expiry or 'PERP'}"


def asset_names(assets: list[str]) -> str:
    return ", ".join(short_name(a) for a in assets)


def target_names(targets: list[float]) -> str:
    return ", ".join(f"{t * 100:g} %" for t in targets)


def parse_asset(text: str, assets: list[str]) -> str:
    """`btc`, `BTC` or `BTC/USDT` -> the configured asset; `btc-perp` or `BTC/USDT:USDT` -> the perpetual."""
    wanted = text.strip().upper()
    for asset in assets:
        if wanted in (asset.upper(), short_name(asset).upper()):
            return asset
    raise BadInput(f"unknown asset {text.strip()[:40]}: {asset_names(assets)}")


def parse_target(text: str, targets: list[float]) -> float:
    """`2`, `2%` or `0.02` -> the configured target 0.02."""
    try:
        value = float(text.strip().rstrip("%").strip())
    except ValueError:
        raise BadInput(f"target {text.strip()[:40]}: {target_names(targets)}") from None
    for target in targets:
        if np.isclose(value, target) or np.isclose(value, target * 100):
            return target
    raise BadInput(f"target {text.strip()[:40]}{'' if '%' in text else ' %'}: {target_names(targets)}")


def parse_days(text: str, most: int) -> int:
    """A whole number of days from 1 to `most`."""
    try:
        days = int(text.strip())
    except ValueError:
        days = 0
    if not 1 <= days <= most:
        raise BadInput(f"days must be a whole number from 1 to {most}")
    return days
