"""What the reports say: pure functions from data to Telegram HTML text (and a PNG chart), testable
without a network. Sending is telegram.py's job."""
from __future__ import annotations

import html
import io

import numpy as np
import pandas as pd

from src.data.labels import DOWN, UP

TELEGRAM_LIMIT = 4096
ARROWS = ((0.6, "⬆️"), (0.4, "↔️"), (0.0, "⬇️"))  # P(up) >= 0.6 up, <= 0.4 down, else sideways
PLAIN_WORDS = {
    "ret_1": "the last hour's move", "ret_3": "the 3-hour move", "ret_6": "the 6-hour move",
    "ret_12": "the 12-hour move", "ret_24": "the 24-hour move", "ret_72": "the 3-day move",
    "ret_168": "the 7-day move", "vol_24": "24-hour volatility", "vol_72": "3-day volatility",
    "vol_168": "7-day volatility", "vol_ratio": "volatility regime (24 h vs 7 d)", "atr_14": "14-hour average range",
    "atr_72": "3-day average range", "range_ratio": "the last candle's range", "body_ratio": "the last candle's body",
    "rsi_14": "RSI(14)", "macd_hist": "MACD histogram", "bb_pos_20": "position in the Bollinger band",
    "vol_z_24": "volume vs the last day", "vol_z_168": "volume vs the last week",
    "dist_high_24": "distance from the 24-hour high", "dist_low_24": "distance from the 24-hour low",
    "dist_high_168": "distance from the 7-day high", "dist_low_168": "distance from the 7-day low",
    "hour_sin": "time of day", "hour_cos": "time of day", "dow_sin": "day of week", "dow_cos": "day of week",
    "btc_ret_1": "BTC's last hour", "btc_ret_24": "BTC's 24-hour move", "btc_vol_24": "BTC's volatility",
    "barrier_z": "target size vs volatility",
}


def _arrow(p: float) -> str:
    return next(symbol for bound, symbol in ARROWS if p >= bound)


def fit_limit(lines: list[str], limit: int = TELEGRAM_LIMIT) -> str:
    """Join lines, dropping whole lines from the end (with a note) to stay under Telegram's limit."""
    text = "\n".join(lines)
    while len(text) > limit and len(lines) > 1:
        lines = lines[:-2] + ["… (truncated)"]
        text = "\n".join(lines)
    return text[:limit]


def _missing_lines(missing: dict[str, str] | None) -> list[str]:
    if not missing:
        return []
    return ["\n<b>No forecast</b>"] + [f"• {html.escape(group)}: {html.escape(why)}" for group, why in missing.items()]


def _how_soon(timings: pd.DataFrame | None, symbol: str, target: float, at: pd.Timestamp) -> str:
    """'~N h (a-b h)': the champion time model's median hours to resolution and its 80 % interval."""
    if timings is None or timings.empty:
        return ""
    row = timings[(timings["symbol"] == symbol) & ((timings["target_pct"] - target).abs() < 1e-9)
                  & (pd.to_datetime(timings["timestamp"], utc=True) == at)]
    if row.empty:
        return ""
    r = row.iloc[0]
    return f" ~{r.q50_hours:.0f}h ({r.q10_hours:.0f}-{r.q90_hours:.0f}h)"


def hourly_text(champions: pd.DataFrame, now: pd.Timestamp, horizon: int = 168,
                missing: dict[str, str] | None = None, timings: pd.DataFrame | None = None) -> str:
    """Per asset: last price and candle time, then per target the champion's P(up first), arrow,
    confidence, model, hours left in the window and, from `timings`, how soon the window resolves; then the
    groups without a forecast and why. Times in UTC."""
    now = now.tz_convert("UTC")
    if champions.empty:
        return fit_limit(["<b>Hourly forecast</b>", "No predictions yet.", *_missing_lines(missing)])
    champions = champions.assign(timestamp=pd.to_datetime(champions["timestamp"], utc=True))
    newest = champions[champions["timestamp"] == champions.groupby("symbol")["timestamp"].transform("max")]
    lines = [f"<b>Hourly forecast</b> · {now:%Y-%m-%d %H:%M} UTC", "<i>P(up X% before down X%), 7-day window</i>"]
    if timings is not None and not timings.empty:
        lines.append("<i>~N h: resolves (either barrier touched) in about N hours; 80 % between a and b h</i>")
    for symbol, group in newest.groupby("symbol", sort=True):
        first = group.iloc[0]
        left = max(0, horizon - int((now - first["timestamp"]) / pd.Timedelta(hours=1)) + 1)
        lines.append(f"\n<b>{html.escape(symbol)}</b> {first['entry_price']:,.2f} · candle {first['timestamp']:%H:%M}")
        rows = []
        for r in group.sort_values("target_pct").itertuples():
            rows.append(f"{r.target_pct:>4.0%} {_arrow(r.probability)} {r.probability:5.1%} "
                        f"conf {r.confidence:4.0%} {r.model_name[:4]:<4} {left:>3}h"
                        f"{_how_soon(timings, symbol, r.target_pct, r.timestamp)}")
        lines.append("<pre>" + html.escape("\n".join(rows)) + "</pre>")
    baselines = sorted(set(newest.loc[newest["model_name"] != "xgboost", "model_name"]))
    if baselines:
        lines.append(f"\n<i>Where xgboost has not beaten the free baselines out of sample, the champion is "
                     f"{' / '.join(baselines)}.</i>")
    return fit_limit(lines + _missing_lines(missing))


def daily_text(day: pd.Timestamp, resolved_day: pd.DataFrame, performance: pd.DataFrame) -> str:
    """Yesterday's resolved outcomes and rolling 7/30-day champion performance per asset x target."""
    lines = [f"<b>Daily report</b> · {day:%Y-%m-%d}"]
    champion = resolved_day[resolved_day["is_champion"].astype(bool)]
    if len(champion):
        counts = champion.groupby(["symbol", "target_pct"])["status"].value_counts().unstack(fill_value=0)
        rows = [f"{'asset':<9}{'tgt':>4} {'up':>3} {'dn':>3} {'amb':>3} {'exp':>3}"]
        for (symbol, target), row in counts.iterrows():
            rows.append(f"{symbol:<9}{target:>4.0%} {row.get(UP, 0):>3} {row.get(DOWN, 0):>3} "
                        f"{row.get('ambiguous', 0):>3} {row.get('expired', 0):>3}")
        lines += ["Resolved yesterday (champion):", "<pre>" + html.escape("\n".join(rows)) + "</pre>"]
    else:
        lines.append("No predictions resolved yesterday.")
    if len(performance):
        rows = [f"{'asset':<9}{'tgt':>4} {'win':>3} {'n':>5} {'hit':>4} {'BSS':>7}"]
        for r in performance.sort_values(["symbol", "target_pct", "window_days"]).itertuples():
            skill = "   n/a" if r.brier_skill is None or pd.isna(r.brier_skill) else f"{r.brier_skill:+7.3f}"
            hit = "  - " if r.hit_rate is None or pd.isna(r.hit_rate) else f"{r.hit_rate:4.0%}"
            rows.append(f"{r.symbol:<9}{float(r.target_pct):>4.0%} {r.window_days:>2}d {r.total_predictions:>5} "
                        f"{hit} {skill}")
        lines += ["Live record, champion (BSS: Brier skill vs climatology; above 0 beats it):",
                  "<pre>" + html.escape("\n".join(rows)) + "</pre>"]
    return fit_limit(lines)


def alert_text(symbol: str, target: float, probability: float, threshold: float, model: str,
               reasons: list[tuple[str, float]], record: dict | None) -> str:
    direction = "UP" if probability >= threshold else "DOWN"
    lines = [f"🚨 <b>{html.escape(symbol)}</b>: {direction} {target:.0%} first is likely",
             f"P(up first) = <b>{probability:.1%}</b> ({html.escape(model)}), crossing {threshold:.0%}"
             f"{'' if direction == 'UP' else f' (down side: {1 - threshold:.0%})'}"]
    if reasons:
        lines.append("Top reasons:")
        for name, value in reasons:
            effect = "raises" if value > 0 else "lowers"
            lines.append(f"• {html.escape(PLAIN_WORDS.get(name, name))} {effect} P(up)")
    if record and record.get("total_predictions"):
        skill = record.get("brier_skill")
        shown = "n/a" if skill is None or pd.isna(skill) else f"{skill:+.3f}"
        lines.append(f"Live record, 30 days: n={record['total_predictions']}, accuracy "
                     f"{record.get('accuracy') or 0:.0%}, Brier skill {shown}")
    else:
        lines.append("Live record: not enough resolved predictions yet.")
    return fit_limit(lines)


def _within_24h_panel(ax, timing: pd.DataFrame | None) -> None:
    """Reliability of the champion time models' P(resolved within 24 h), decided windows only."""
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    decided = [] if timing is None or timing.empty else timing[
        timing["status"].notna() & timing["is_champion"].astype(bool)].groupby("target_pct")
    bins = np.linspace(0, 1, 11)
    drawn = 0
    for (target, group), color in zip(decided, ("#1f77b4", "#ff7f0e", "#2ca02c")):
        within = ((group["status"] != "expired") & (group["hours_to_resolution"] <= 24)).astype(float)
        cells = within.groupby(pd.cut(group["p_24h"], bins), observed=True)
        forecast = group["p_24h"].groupby(pd.cut(group["p_24h"], bins), observed=True).mean()
        filled = cells.size() >= 20
        if filled.any():
            drawn += 1
            ax.plot(forecast[filled], cells.mean()[filled], marker="o", color=color,
                    label=f"{target:.0%} target (n={len(group)})")
    if not drawn:
        ax.text(0.5, 0.5, "too few decided forecasts yet\n(a bin needs 20)", ha="center", va="center", fontsize=8)
    ax.set(title="How soon: P(within 24 h) (live)", xlabel="forecast P(resolved within 24 h)",
           ylabel="observed share", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)


def daily_chart(resolved: pd.DataFrame, timing: pd.DataFrame | None = None) -> bytes:
    """PNG: calibration curve of the champions' live forecasts, the running Brier skill vs climatology, and
    the reliability of the how-soon champions' P(resolved within 24 h)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labelled = resolved[resolved["status"].isin([UP, DOWN])]
    champion = labelled[labelled["is_champion"].astype(bool)].sort_values("timestamp")
    clim = labelled[labelled["model_name"] == "climatology"].set_index(["symbol", "target_pct", "timestamp"])
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4.2), dpi=110)
    ax1.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    bins = np.linspace(0, 1, 11)
    for (target, group), color in zip(champion.groupby("target_pct"), ("#1f77b4", "#ff7f0e", "#2ca02c")):
        cells = group.groupby(pd.cut(group["probability"], bins), observed=True)
        filled = cells.size() >= 20  # a bin of a handful of forecasts says nothing
        ax1.plot(cells["probability"].mean()[filled], cells["actual_outcome"].mean()[filled], marker="o", color=color,
                 label=f"{target:.0%} target (n={len(group)})")
        key = list(zip(group["symbol"], group["target_pct"], group["timestamp"]))
        reference = clim["probability"].reindex(key).fillna(0.5).to_numpy()
        y, p = group["actual_outcome"].to_numpy(float), group["probability"].to_numpy()
        skill = 1 - np.cumsum((p - y) ** 2) / np.maximum(np.cumsum((reference - y) ** 2), 1e-9)
        ax2.plot(group["timestamp"], skill, color=color, label=f"{target:.0%}")
    ax2.axhline(0, color="grey", linewidth=1)
    ax1.set(title="Calibration (live, champions)", xlabel="forecast P(up first)", ylabel="observed up share",
            xlim=(0, 1), ylim=(0, 1))
    ax1.legend(loc="upper left", fontsize=8)
    ax2.set(title="Running Brier skill vs climatology", ylabel="skill (> 0 beats the free forecast)")
    if len(champion):
        ax2.legend(loc="lower left", fontsize=8)
    ax2.tick_params(axis="x", labelrotation=30, labelsize=7)
    _within_24h_panel(ax3, timing)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
