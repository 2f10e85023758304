"""What the reports say: pure functions from data to Telegram HTML text (and a PNG chart), testable
without a network. Sending is telegram.py's job."""
from __future__ import annotations

import html
import io
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from src.data.labels import DOWN, UP
from src.models.evaluation.record import BASE_RATE_SHARE, MIN_PER_BIN  # one definition for the chart and page
from src.models.evaluation.scoring import CHAMPION, MIN_SCORED, REFERENCE, known_fates, small_sample
from src.models.evaluation.time_metrics import hours_text, interval_text

TELEGRAM_LIMIT = 4096
TIMING_TABLE_ROWS = 30  # rows of the daily how-soon table per <pre>: 30 x 51 characters fit a message
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


def _pieces(block: str, first_room: int, room: int) -> list[str]:
    """A block longer than the room left, cut between whole lines: the first piece fills the `first_room` left in
    the current message, the others a message each (a <pre> table reopened in each piece)."""
    if len(block) <= first_room:
        return [block]
    pre = block.startswith("<pre>") and block.endswith("</pre>")
    wrap = len("<pre></pre>") if pre else 0
    pieces, current, limit = [], [], first_room
    for line in (block[5:-6] if pre else block).split("\n"):
        if len("\n".join([*current, line])) + wrap > limit and (current or limit < room):
            pieces.append(current)
            current, limit = [], room
        current.append(line[:room - wrap])  # a single line longer than a whole message (none of ours) is cut
    pieces.append(current)
    return [f"<pre>{chr(10).join(p)}</pre>" if pre else "\n".join(p) for p in pieces if p]


def split_messages(blocks: list[str], title: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Pack whole blocks (an asset's lines, a table) into as few messages as fit Telegram's limit, a block longer
    than a message split between its lines: nothing is cut. Every message after the first starts with
    `title (k/n)`, so a chat with many assets gets them all."""
    messages: list[list[str]] = [[]]
    room = limit - len(title) - 12  # the continuation title
    for whole in blocks:  # a block that fits a message stays whole; a longer one fills what is left, then more
        left = room - len("\n".join(messages[-1])) - 1
        for block in _pieces(whole, left if len(whole) > room and left > room // 4 else room, room):
            if messages[-1] and len("\n".join([*messages[-1], block])) > room:
                messages.append([])
            messages[-1].append(block)
    if len(messages) == 1:
        return ["\n".join(messages[0])]
    return ["\n".join(([] if k == 0 else [f"{title} ({k + 1}/{len(messages)})"]) + blocks)
            for k, blocks in enumerate(messages)]


def _missing_lines(missing: dict[str, str] | None) -> list[str]:
    if not missing:
        return []
    return ["\n<b>No forecast</b>"] + [f"• {html.escape(group)}: {html.escape(why)}" for group, why in missing.items()]


STALE_AFTER_HOURS = 2  # a forecast from an older candle is not the current one


def plain_text(html_text: str) -> str:
    """The console's version of a report: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"</?(b|i|pre|code)>", "", html_text))


def _how_soon(timings: pd.DataFrame | None, symbol: str, target: float, at: pd.Timestamp, horizon: int) -> str:
    """'~N h (80 %: a–b h)': the champion time model's median hours to resolution and its interval, labelled by what
    it claims (time_metrics.interval_text)."""
    if timings is None or timings.empty:
        return "-"
    row = timings[(timings["symbol"] == symbol) & ((timings["target_pct"] - target).abs() < 1e-9)
                  & (pd.to_datetime(timings["timestamp"], utc=True) == at)]
    if row.empty:
        return "-"
    r = row.iloc[0]
    return f"~{hours_text(r.q50_hours, horizon)}h ({interval_text(r.q10_hours, r.q90_hours, horizon)})"


def hourly_text(champions: pd.DataFrame, now: pd.Timestamp, horizon: int = 168,
                missing: dict[str, str] | None = None, timings: pd.DataFrame | None = None) -> list[str]:
    """The hourly report as Telegram messages (split by asset when long). Per asset: last price and its
    candle's date and time (UTC), flagged STALE when older than the last closed hours; then per target
    the champion's P(up first), arrow, confidence, model and how soon the window resolves (from
    `timings`); then the groups without a forecast and why."""
    now = now.tz_convert("UTC")
    if champions.empty:
        return split_messages(["<b>Hourly forecast</b>", "No predictions yet.", *_missing_lines(missing)],
                              "<b>Hourly forecast</b>")
    champions = champions.assign(timestamp=pd.to_datetime(champions["timestamp"], utc=True))
    newest = champions[champions["timestamp"] == champions.groupby("symbol")["timestamp"].transform("max")]
    lines = [f"<b>Hourly forecast</b> · {now:%Y-%m-%d %H:%M} UTC",
             f"<i>P(up): chance the price rises X% before it falls X% (within {horizon} h). Resolves: median "
             f"hours until either happens (80 %: between a and b h; 90 %: after a h, if at all within the "
             "window).</i>"]
    for symbol, group in newest.groupby("symbol", sort=True):
        first = group.iloc[0]
        age = int((now - first["timestamp"]) / pd.Timedelta(hours=1)) - 1  # hours since the candle closed
        stale = f" · ⚠️ STALE: {age} h old" if age >= STALE_AFTER_HOURS else ""
        rows = [f"{'tgt':>4}    {'P(up)':>6} {'conf':>4} {'model':<11} resolves"]
        for r in group.sort_values("target_pct").itertuples():
            rows.append(f"{r.target_pct:>4.0%} {_arrow(r.probability)} {r.probability:6.1%} {r.confidence:4.0%} "
                        f"{r.model_name:<11} {_how_soon(timings, symbol, r.target_pct, r.timestamp, horizon)}")
        lines.append(f"\n<b>{html.escape(symbol)}</b> {first['entry_price']:,.2f} · candle "
                     f"{first['timestamp']:%Y-%m-%d %H:%M} UTC{stale}\n<pre>" + html.escape("\n".join(rows)) + "</pre>")
    baselines = sorted(set(newest.loc[newest["model_name"] != "xgboost", "model_name"]))
    if baselines:
        lines.append(f"\n<i>Where xgboost has not beaten the free baselines out of sample, the champion is "
                     f"{' / '.join(baselines)}.</i>")
    return split_messages(lines + _missing_lines(missing), f"<b>Hourly forecast</b> · {now:%Y-%m-%d %H:%M} UTC")


def resolved_on(resolved: pd.DataFrame, day: pd.Timestamp, horizon: int = 168) -> pd.DataFrame:
    """The outcomes decided during `day` (UTC): the hit candle, or the window's last one, closed that day."""
    entry = pd.to_datetime(resolved["timestamp"], utc=True)
    hours = resolved["time_to_target_hours"].where(resolved["status"] != "expired", float(horizon))
    decided_at = entry + pd.to_timedelta(hours + 1, unit="h")
    start = pd.Timestamp(day.date(), tz="UTC")
    return resolved[resolved["status"].notna() & (decided_at >= start) & (decided_at < start + pd.Timedelta(days=1))]


def daily_text(day: pd.Timestamp, resolved_day: pd.DataFrame, performance: pd.DataFrame,
               champions: dict[tuple[str, float], str] | None = None,
               timing_performance: pd.DataFrame | None = None) -> list[str]:
    """As Telegram messages (split by asset when long): the outcomes decided on `day` (champion
    forecasts), the how-soon forecasts' live record (the forecasts users got: Brier skill of P(within 24 h)
    over the last 1, 7 and 30 days, the interval's coverage and claim), and the direction record of every model
    per asset x target (Brier skill over the last 1, 7 and 30 days; the champion marked *)."""
    lines = [f"<b>Daily report</b> · {day:%Y-%m-%d} (UTC)"]
    champion = resolved_day[resolved_day["is_champion"].astype(bool)]
    if len(champion):
        counts = champion.groupby(["symbol", "target_pct"])["status"].value_counts().unstack(fill_value=0)
        rows = [f"{'asset':<9}{'tgt':>4} {'up':>3} {'dn':>3} {'amb':>3} {'exp':>3}"]
        for (symbol, target), row in counts.iterrows():
            rows.append(f"{symbol:<9}{target:>4.0%} {row.get(UP, 0):>3} {row.get(DOWN, 0):>3} "
                        f"{row.get('ambiguous', 0):>3} {row.get('expired', 0):>3}")
        lines += [f"Decided on {day:%Y-%m-%d} (champion forecasts): up / down / ambiguous / expired",
                  "<pre>" + html.escape("\n".join(rows)) + "</pre>"]
    else:
        lines.append(f"No forecast was decided on {day:%Y-%m-%d}.")
    served = None if timing_performance is None else timing_performance[timing_performance["model_name"] == CHAMPION]
    if served is not None and len(served):
        lines.append("How soon, live record (the forecasts users got; BSS: Brier skill of P(within 24 h) vs "
                     "climatology, above 0 beats it, scored on the forecasts whose 24 hours had passed; 1d: "
                     f"{day - pd.Timedelta(days=1):%Y-%m-%d}, the newest day whose 24-hour outcomes are all known; "
                     "cover: share of outcomes inside the interval, complete windows of 30 days, beside the share "
                     "the intervals claimed (claim: 80 % closed, 90 % open, i.e. after a h); "
                     f"n/a: fewer than {MIN_SCORED} forecasts):")
        rows = _timing_rows(served)  # tables of 30 rows, each with its header: a message holds whole tables
        for first in range(1, len(rows), TIMING_TABLE_ROWS):
            lines.append("<pre>" + html.escape("\n".join([rows[0], *rows[first:first + TIMING_TABLE_ROWS]])) + "</pre>")
    if len(performance):
        lines.append("Direction, live record (BSS: Brier skill vs climatology, above 0 beats it; n: decided UP/DOWN "
                     f"over 30 days; n/a: fewer than {MIN_SCORED}; * champion):")
        for _, own in performance.groupby("symbol", sort=True):  # one table per asset: a message holds whole ones
            lines.append("<pre>" + html.escape("\n".join(_record_rows(own, champions))) + "</pre>")
    return split_messages(lines, f"<b>Daily report</b> · {day:%Y-%m-%d} (UTC)")


def _skill_cells(by_window: pd.DataFrame, column: str) -> str:
    """The skill over 1, 7 and 30 days; n/a where the window holds too few forecasts (scoring.small_sample: one or
    two outcomes would show a skill of +0.99 or -3 that says nothing)."""
    cells = []
    for days in (1, 7, 30):
        value, n = by_window[column].get(days), by_window["total_predictions"].get(days, 0)
        cells.append("   n/a" if value is None or pd.isna(value) or small_sample(int(n)) else f"{value:+6.3f}")
    return " ".join(cells)


def _timing_rows(served: pd.DataFrame) -> list[str]:
    rows = [f"{'asset':<9}{'tgt':>4} {'n':>5} {'BSS 1d':>6} {'7d':>6} {'30d':>6} {'cover':>5} {'claim':>5}"]
    for (symbol, target), group in served.groupby(["symbol", "target_pct"]):
        by_window = group.set_index("window_days")
        n = int(by_window["total_predictions"].get(30, 0))
        cover = [by_window[c].get(30) if c in by_window else None for c in ("interval_coverage", "interval_claimed")]
        cells = ["  n/a" if v is None or pd.isna(v) or small_sample(n) else f"{v:>5.0%}" for v in cover]
        rows.append(f"{symbol:<9}{float(target):>4.0%} {n:>5} {_skill_cells(by_window, 'brier_skill_24h')} "
                    f"{' '.join(cells)}")
    return rows


def _record_rows(performance: pd.DataFrame, champions: dict[tuple[str, float], str] | None) -> list[str]:
    rows = [f"{'asset':<9}{'tgt':>4} {'model':<12} {'n':>5} {'BSS 1d':>6} {'7d':>6} {'30d':>6}"]
    for (symbol, target, model), group in performance.groupby(["symbol", "target_pct", "model_name"]):
        by_window = group.set_index("window_days")
        n = by_window["total_predictions"].get(30, 0)
        mark = "*" if (champions or {}).get((symbol, round(float(target), 6))) == model else " "
        rows.append(f"{symbol:<9}{float(target):>4.0%} {model + mark:<12} {int(n):>5} "
                    f"{_skill_cells(by_window, 'brier_skill')}")
    return rows


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


COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def reliability_points(p: np.ndarray, outcome: np.ndarray, max_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(mean forecast, observed share) per bin; bins are quantiles of the forecasts, as many as leave
    MIN_PER_BIN forecasts in each (none when there are fewer than that)."""
    bins = min(max_bins, len(p) // MIN_PER_BIN)
    if bins < 1:
        return np.array([]), np.array([])
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    frame = pd.DataFrame({"p": p, "y": outcome, "bin": index}).groupby("bin")
    kept = frame.size() >= MIN_PER_BIN
    return frame["p"].mean()[kept].to_numpy(), frame["y"].mean()[kept].to_numpy()


def _reliability_panel(ax, groups, title: str, xlabel: str) -> None:
    """groups: (label, forecasts, outcomes) per target; a note instead of points when there are too few."""
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    drawn = 0
    for (label, p, y), color in zip(groups, COLORS):
        x, observed = reliability_points(np.asarray(p, float), np.asarray(y, float))
        if len(x):
            drawn += 1
            ax.plot(x, observed, marker="o", linewidth=0.8, color=color, label=f"{label} (n={len(p)})")
    if not drawn:
        ax.text(0.5, 0.55, f"too few decided forecasts yet\n(a point needs {MIN_PER_BIN})", ha="center",
                va="center", fontsize=9, color="dimgrey")
    ax.set(title=title, xlabel=xlabel, ylabel="observed share", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=7)


def _running_skill_panel(ax, series: list[tuple[float, pd.DataFrame, bool]], backtest: dict[float, float], title: str,
                         source: str = "live", note: str | None = None) -> None:
    """Running Brier skill against climatology per target over a date axis (series: target, rows with timestamp,
    p, reference, y in time order, and whether climatology served them), with the backtest's skill beside it;
    `note` instead of lines when given."""
    import matplotlib.dates as mdates
    ax.set_title(title)
    drawn = 0
    for (target, rows, base_rate), color in zip(series, COLORS):
        if note is not None or rows.empty:
            continue
        y, p, reference = (rows[c].to_numpy(float) for c in ("y", "p", "reference"))
        skill = 1 - np.cumsum((p - y) ** 2) / np.maximum(np.cumsum((reference - y) ** 2), 1e-9)
        skill[:MIN_PER_BIN - 1] = np.nan  # the first handful of outcomes swing it wildly
        ax.plot(pd.to_datetime(rows["timestamp"], utc=True), skill, color=color, marker="." if len(rows) < 30 else "",
                label=f"{target:.0%} {source}" + (" (climatology served: 0)" if base_rate else ""))
        drawn += 1
        if target in backtest:
            ax.axhline(backtest[target], color=color, linestyle=":", linewidth=1,
                       label=f"{target:.0%} backtest {backtest[target]:+.3f}")
    if not drawn:
        ax.text(0.5, 0.5, note or "no decided forecasts yet", ha="center", va="center", transform=ax.transAxes,
                fontsize=10, color="dimgrey")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_ylabel("skill (> 0 beats the free forecast)")
    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.legend(loc="lower left", fontsize=7)


def _skill_series(champion: pd.DataFrame, climatology: pd.DataFrame, forecast: str,
                  outcome: Callable[[pd.DataFrame], np.ndarray]) -> list[tuple[float, pd.DataFrame, bool]]:
    """Per target: the champions' decided forecasts in time order, with climatology's for the same hours, and
    whether climatology served them (its skill is then 0 by construction)."""
    reference = climatology.drop_duplicates(["symbol", "target_pct", "timestamp"], keep="last").set_index(
        ["symbol", "target_pct", "timestamp"])[forecast]
    series = []
    for target, group in champion.sort_values("timestamp").groupby("target_pct"):
        key = pd.MultiIndex.from_arrays([group["symbol"], group["target_pct"], group["timestamp"]])
        compared = reference.reindex(key).notna().to_numpy()  # an hour without climatology is left out, as scoring
        group, key = group[compared], key[compared]  # does: no stand-in forecast is scored against
        series.append((target, pd.DataFrame({
            "timestamp": group["timestamp"].to_numpy(), "p": group[forecast].to_numpy(float),
            "reference": reference.reindex(key).to_numpy(float), "y": outcome(group)}),
            _served_base_rate(group)))
    return series


def _served_base_rate(champion: pd.DataFrame) -> bool:
    """Whether climatology made (nearly) all these champion forecasts: their skill is 0 by construction."""
    return bool(len(champion)) and (champion["model_name"] == REFERENCE).mean() >= BASE_RATE_SHARE


def _within_24h(rows: pd.DataFrame) -> np.ndarray:
    return ((rows["status"] != "expired") & (rows["hours_to_resolution"] <= 24)).to_numpy(float)


def daily_chart(resolved: pd.DataFrame, timing: pd.DataFrame | None = None,
                backtest: dict[float, float] | None = None, source: str = "live",
                as_of: pd.Timestamp | None = None) -> bytes:
    """The daily figure as PNG bytes."""
    fig = daily_figure(resolved, timing, backtest, source, as_of)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def daily_figure(resolved: pd.DataFrame, timing: pd.DataFrame | None = None,
                 backtest: dict[float, float] | None = None, source: str = "live", as_of: pd.Timestamp | None = None):
    """Four panels, how soon first (where the skill is): the running Brier skill of the how-soon champions'
    P(resolved within 24 h) against climatology and its reliability; then direction's running skill (with the
    backtest's champion skill per target beside it; a note when climatology served, skill 0 by construction)
    and its reliability. 2 x 2, so a phone shows it large enough to read. How soon is drawn from the forecasts
    whose 24-hour fate was known at `as_of` (scoring.known_fates; None: the resolved ones). A Figure of its own,
    not pyplot's: /chart and the daily job may draw at the same time, and pyplot's figures are global."""
    from matplotlib.figure import Figure

    if timing is None:
        timing = pd.DataFrame(columns=["symbol", "target_pct", "timestamp", "model_name", "is_champion", "p_24h",
                                       "status", "hours_to_resolution"])
    decided = timing[known_fates(timing, as_of, 168)[:, 1]] if len(timing) else timing
    soon = decided[decided["is_champion"].astype(bool)]
    labelled = resolved[resolved["status"].isin([UP, DOWN])]
    champion = labelled[labelled["is_champion"].astype(bool)]
    fig = Figure(figsize=(12, 8.6), dpi=110)
    (soon_skill, soon_reliability), (up_skill, up_reliability) = fig.subplots(2, 2)
    _running_skill_panel(soon_skill, _skill_series(soon, decided[decided["model_name"] == REFERENCE], "p_24h",
                                                   _within_24h), {},
                         "How soon: running Brier skill of P(within 24 h)", source)
    _reliability_panel(soon_reliability, [(f"{t:.0%} target", g["p_24h"], _within_24h(g))
                                          for t, g in soon.groupby("target_pct")],
                       f"How soon: reliability ({source})", "forecast P(resolved within 24 h)")
    _running_skill_panel(up_skill, _skill_series(champion, labelled[labelled["model_name"] == REFERENCE],
                                                 "probability", lambda g: g["actual_outcome"].to_numpy(float)),
                         backtest or {}, "Direction: running Brier skill of P(up first)", source,
                         note="Climatology (the base rate) served these forecasts:\nskill 0 by construction.\n"
                              "No model beat it on fresh data." if _served_base_rate(champion) else None)
    _reliability_panel(up_reliability, [(f"{t:.0%} target", g["probability"], g["actual_outcome"])
                                        for t, g in champion.groupby("target_pct")],
                       f"Direction: reliability ({source})", "forecast P(up first)")
    fig.text(0.5, 0.008, "Neighbouring hours' windows overlap, so their outcomes are alike: a reliability point "
             "rests on fewer independent outcomes than its n, and scatters more.", ha="center", va="bottom",
             fontsize=8, color="dimgrey")
    fig.tight_layout(rect=(0, 0.025, 1, 1))
    return fig
