"""What the bot answers: each Telegram command's reply, read from the live record (read-only), as Telegram HTML
messages split on whole lines. Parsing of what a person types (`btc`, `BTC/USDT`; `2`, `2%`, `0.02`) and the
one-line answer to bad input live here too; receiving and sending are bot.py's job."""
from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.database.records import RecordStore
from src.models.estimators.any_size import parse_move
from src.models.estimators.serving import ServingRule
from src.models.evaluation.scoring import CHAMPION, TIMING_ROWS, score_rows, small_sample
from src.models.evaluation.time_metrics import hours_text, interval_text
from src.models.live.moves import MoveForecaster
from src.notifications.reports import daily_chart, split_messages
from src.utils import choices
from src.utils.candles import last_closed_before
from src.utils.choices import BadInput, parse_asset, parse_target, short_name
from src.utils.clock import service_run
from src.utils.errors import UserError

COMMANDS = {  # name -> (arguments, what it answers): /help lists them in this order
    "now": ("[ASSET]", "the newest forecast per asset: P(up), P(resolved within 24 h), how soon"),
    "soon": ("ASSET [MOVE]", "the how-soon forecast in full, and how such forecasts did over 30 days; MOVE: a "
             "configured target or any size from 0.5 to 10 %"),
    "record": ("[ASSET] [DAYS]", "the champion's record: resolved forecasts, skill vs climatology, the last 5"),
    "models": ("", "the champion of each group and task, since when, its validation skill"),
    "health": ("", "the service's health verdict and its problems"),
    "chart": ("[ASSET]", "the reliability and running-skill chart of the daily report"),
    "help": ("", "this list"),
}
RECORD_DAYS, MAX_RECORD_DAYS = 30, 365
SOON_HOURS = (6, 24)  # and the horizon


@dataclass
class Answer:
    messages: list[str]
    photo: bytes | None = None
    refresh: str | None = None  # the command a Refresh button re-runs, e.g. "now BTC/USDT"


def parse_days(text: str) -> int:
    return choices.parse_days(text, MAX_RECORD_DAYS)


def _pct(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.{digits}%}"


def _skill(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:+.3f}"


def _group(symbol: str, target: float) -> str:
    return f"{symbol} {target * 100:g} %"


class Answers:
    """The replies, from the live record. `health`: the service's health snapshot (the one /health serves)."""

    def __init__(self, records: RecordStore, assets: list[str], targets: list[float], timeframe: str = "1h",
                 horizon: int = 168, health: Callable[[], tuple[dict, bool]] | None = None,
                 moves: MoveForecaster | None = None):
        self.records, self.assets, self.targets = records, assets, targets
        self.timeframe, self.horizon, self.health_snapshot = timeframe, horizon, health
        self.moves = moves  # answers a size other than the configured targets (None: those only)

    def answer(self, command: str, args: list[str], now: pd.Timestamp) -> Answer:
        """The reply to `/command args` (BadInput for an argument that is not a valid choice)."""
        handlers = {"now": self.now, "soon": self.soon, "record": self.record, "models": self.models,
                    "health": self.health, "chart": self.chart, "help": self.help, "start": self.help}
        if command not in handlers:
            raise BadInput(f"unknown command /{command[:40]}: " + ", ".join(f"/{c}" for c in COMMANDS))
        return handlers[command](args, now)

    # ---- the commands ----------------------------------------------------------------------------
    def help(self, args: list[str], now: pd.Timestamp) -> Answer:
        lines = ["<b>Commands</b> (assets as BTC or BTC/USDT, targets as 2, 2% or 0.02)"]
        lines += [f"/{name} {html.escape(arguments)}".rstrip() + f": {what}"
                  for name, (arguments, what) in COMMANDS.items()]
        lines.append(f"Assets: {', '.join(short_name(a) for a in self.assets)}; targets: "
                     f"{', '.join(f'{t * 100:g} %' for t in self.targets)}.")
        return Answer(["\n".join(lines)])

    def now(self, args: list[str], now: pd.Timestamp) -> Answer:
        assets = [parse_asset(args[0], self.assets)] if args else self.assets
        direction, timing = self.records.newest_forecasts([(a, t) for a in assets for t in self.targets])
        closed = last_closed_before(now)
        title = f"<b>Now</b> · {now:%Y-%m-%d %H:%M} UTC"
        blocks = [title + f"\n<i>P(up): the price rises X % before it falls X % (within {self.horizon} h). "
                  "P(24h): either happens within 24 h.</i>"]
        for asset in assets:
            mine = direction[direction["symbol"] == asset]
            if mine.empty:
                blocks.append(f"\n<b>{html.escape(asset)}</b>: no forecast yet")
                continue
            hour = pd.Timestamp(mine["timestamp"].max())
            age = int((closed - hour) / pd.Timedelta(hours=1))
            stale = f" · ⚠️ STALE: {age} h old" if age > 0 else ""
            lines = [f"\n<b>{html.escape(asset)}</b> · candle {hour:%Y-%m-%d %H:%M} UTC{stale}"]
            for r in mine.sort_values("target_pct").itertuples():
                lines.append(f"{r.target_pct * 100:g} %: P(up) {r.probability:.0%} ({html.escape(r.model_name)})"
                             + self._timing_words(timing, asset, r.target_pct, r.timestamp))
            blocks.append("\n".join(lines))
        return Answer(split_messages(blocks, title), refresh="now " + " ".join(args[:1]))

    def soon(self, args: list[str], now: pd.Timestamp) -> Answer:
        if not args:
            raise BadInput(f"which asset? /soon ASSET [MOVE], e.g. /soon {short_name(self.assets[0])} 2")
        asset = parse_asset(args[0], self.assets)
        if len(args) > 1 and not self._configured(args[1]):
            return self._any_size(asset, args[1], now)
        targets = [parse_target(args[1], self.targets)] if len(args) > 1 else self.targets
        _, timing = self.records.newest_forecasts([(asset, t) for t in targets])
        month = self._scored(TIMING_ROWS, self.records.resolved_time, asset, now, 30)
        champions = self.records.models(asset, self.timeframe, champions_only=True, task="resolution")
        title = f"<b>How soon</b> · {html.escape(asset)} · {now:%Y-%m-%d %H:%M} UTC"
        blocks = [title]
        for target in targets:
            row = timing[np.isclose(timing["target_pct"], target)]
            if row.empty:
                blocks.append(f"\n<b>{target * 100:g} %</b>: no how-soon forecast yet")
                continue
            r = row.iloc[0]
            lines = [f"\n<b>{target * 100:g} %</b> · candle {pd.Timestamp(r.timestamp):%Y-%m-%d %H:%M} UTC "
                     f"({html.escape(r.model_name)})",
                     f"P(either move within 6 h) {r.p_6h:.0%} · 24 h {r.p_24h:.0%} · {self.horizon} h "
                     f"{r.p_horizon:.0%}",
                     f"hours until it resolves: 10 % {hours_text(r.q10_hours, self.horizon)} · median "
                     f"{hours_text(r.q50_hours, self.horizon)} · 90 % {hours_text(r.q90_hours, self.horizon)}",
                     self._learned_line(champions, target)]
            lines.append(self._month_line(month, target))
            blocks.append("\n".join(lines))
        return Answer(split_messages(blocks, title))

    def _learned_line(self, champions: pd.DataFrame, target: float) -> str:
        """Which horizons' P the champion serves itself, and which climatology's (src.models.estimators.serving)."""
        rows = champions[np.isclose(champions["target_pct"].astype(float), target)] if len(champions) else champions
        if rows.empty:
            return "<i>learned at: unknown (no champion recorded)</i>"
        row = rows.iloc[-1]
        rule = ServingRule.from_metrics(row["metrics"], row["model_name"], self.horizon)
        learned = [f"{h} h" for h in (6, 24, self.horizon) if h in rule.kept_hours]
        base = [f"{h} h" for h in (6, 24, self.horizon) if h not in rule.kept_hours]
        if not learned:
            return "<i>the base rate (climatology) at every horizon</i>"
        return (f"<i>{html.escape(row['model_name'])} learned at {', '.join(learned)}"
                + (f"; the base rate at {', '.join(base)}" if base else "") + "</i>")

    def _configured(self, text: str) -> bool:
        try:
            parse_target(text, self.targets)
        except BadInput:
            return self.moves is None  # without the any-size model, parse_target's message says what is valid
        return True

    def _any_size(self, asset: str, text: str, now: pd.Timestamp) -> Answer:
        """/soon ASSET 3.5: the asset's any-size model, from the newest candle."""
        move = parse_move(text)
        try:
            answer = self.moves.forecast(asset, move, now)
        except UserError as exc:
            return Answer([f"<b>How soon</b> · {html.escape(asset)} · {move * 100:g} %: {html.escape(str(exc))}"])
        p6, p24, ph, q10, q50, q90 = answer.forecast
        stale = f"\n⚠️ STALE: {html.escape(answer.stale)}" if answer.stale else ""
        lines = [f"<b>How soon</b> · {html.escape(asset)} · {move * 100:g} % · candle "
                 f"{answer.candle_time:%Y-%m-%d %H:%M} UTC ({html.escape(answer.model)})",
                 f"P(either move within 6 h) {p6:.0%} · 24 h {p24:.0%} · {self.horizon} h {ph:.0%}",
                 f"hours until it resolves: 10 % {hours_text(q10, self.horizon)} · median "
                 f"{hours_text(q50, self.horizon)} · 90 % {hours_text(q90, self.horizon)}",
                 "<i>A size the hourly forecasts do not cover: the asset's model for any size from 0.5 to 10 % "
                 "answered (its record on past data is in the README).</i>" + stale]
        return Answer(["\n".join(lines)], refresh=f"soon {asset} {move * 100:g}")

    def record(self, args: list[str], now: pd.Timestamp) -> Answer:
        asset, days = self._record_args(args)
        start = now - pd.Timedelta(days=days)
        record = self.records.champion_record(start, now, now - pd.Timedelta(hours=self.horizon + 1), asset)
        assets = [asset] if asset else self.assets
        last = self.records.last_resolved([(a, t) for a in assets for t in self.targets], start, now, 5)
        title = f"<b>Record</b> · last {days} days to {now:%Y-%m-%d %H:%M} UTC"
        blocks = [title + "\n<i>The champion's forecasts (what users got). BSS: Brier skill vs climatology for the "
                          "same hours, above 0 beats it; hit: share of complete windows that hit either move.</i>"]
        for symbol in assets:
            for target in self.targets:
                blocks.append(self._record_block(symbol, target, record, last))
        return Answer(split_messages(blocks, title))

    def models(self, args: list[str], now: pd.Timestamp) -> Answer:
        title = "<b>Models</b>"
        blocks = [title + " (champion per asset × target; validation skill on the held-out fold)"]
        problems = self.records.group_problems(self.timeframe)
        for task, skill_key, label in (("direction", "brier_skill", "P(up)"),
                                       ("resolution", "brier_skill_24h", "how soon")):
            rows = self.records.models(champions_only=True, task=task)
            lines = [f"\n<b>{label}</b>"]
            for symbol in self.assets:
                for target in self.targets:
                    mine = rows[(rows["symbol"] == symbol) & np.isclose(rows["target_pct"], target)]
                    if mine.empty:
                        why = problems.get((symbol, target), "not trained yet")
                        lines.append(f"{html.escape(_group(symbol, target))}: no model ({html.escape(why)})")
                        continue
                    r = mine.iloc[0]
                    since = r.promoted_at if pd.notna(r.promoted_at) else r.created_at
                    lines.append(f"{html.escape(_group(symbol, target))}: {html.escape(r.model_name)} since "
                                 f"{since:%Y-%m-%d}, skill {_skill((r.metrics or {}).get(skill_key))}, "
                                 f"trained to {r.train_end:%Y-%m-%d %H:%M}")
            blocks.append("\n".join(lines))
        newest = self.records.newest_model_time(self.timeframe)
        blocks.append(f"\nLast retrain: {'never' if newest is None else f'{newest:%Y-%m-%d %H:%M} UTC'}")
        return Answer(split_messages(blocks, title))

    def health(self, args: list[str], now: pd.Timestamp) -> Answer:
        if self.health_snapshot is None:
            return Answer(["Health is checked by the daemon; it is not running here."])
        report, healthy = self.health_snapshot()
        lines = [f"<b>Health</b>: {'✅ healthy' if healthy else '❌ unhealthy'}"]
        lines += [f"• {html.escape(problem)}" for problem in report.get("problems", [])]
        data = report.get("data", {})
        if data:
            lines.append("Newest candles: " + ", ".join(
                f"{html.escape(short_name(s))} {d['age_hours']:.1f} h old" if d.get("age_hours") is not None
                else f"{html.escape(short_name(s))} none" for s, d in data.items()))
        return Answer(split_messages(lines, "<b>Health</b>"))

    def chart(self, args: list[str], now: pd.Timestamp) -> Answer:
        asset = parse_asset(args[0], self.assets) if args else None
        start = now - pd.Timedelta(days=30)
        resolved = self.records.resolved(service_run(), start, now, symbol=asset)
        timing = self.records.resolved_time(service_run(), start, now, include_pending=True, symbol=asset)
        if resolved.empty:
            return Answer([f"No resolved forecast{' of ' + html.escape(asset) if asset else ''} in the last 30 days "
                           "yet: the chart needs some."])
        caption = f"Reliability and running skill, last 30 days{' · ' + html.escape(asset) if asset else ''}"
        return Answer([caption], photo=daily_chart(resolved, timing, self.records.backtest_champion_skill(),
                                                   source=f"{service_run()}, {asset}" if asset else service_run(),
                                                   as_of=now))

    # ---- pieces ----------------------------------------------------------------------------------
    def _record_args(self, args: list[str]) -> tuple[str | None, int]:
        if len(args) > 2:
            raise BadInput("use /record [ASSET] [DAYS], e.g. /record BTC 30")
        if not args:
            return None, RECORD_DAYS
        if len(args) == 1 and args[0].lstrip("+-").replace(".", "", 1).isdigit():
            return None, parse_days(args[0])
        return parse_asset(args[0], self.assets), parse_days(args[1]) if len(args) > 1 else RECORD_DAYS

    def _scored(self, kind, read, asset: str | None, now: pd.Timestamp, days: int) -> pd.DataFrame:
        rows = read(service_run(), now - pd.Timedelta(days=days), now, include_pending=True, symbol=asset,
                    champion_and_reference=True)
        return score_rows(kind, rows, self.horizon, as_of=now, series=CHAMPION) if len(rows) else pd.DataFrame()

    def _timing_words(self, timing: pd.DataFrame, asset: str, target: float, hour) -> str:
        row = timing[(timing["symbol"] == asset) & np.isclose(timing["target_pct"], target)
                     & (timing["timestamp"] == hour)]
        if row.empty:
            return ""
        r = row.iloc[0]
        return (f" · P(24h) {r.p_24h:.0%} · resolves in ~{hours_text(r.q50_hours, self.horizon)} h "
                f"({interval_text(r.q10_hours, r.q90_hours, self.horizon)})")

    @staticmethod
    def _month_line(month: pd.DataFrame, target: float) -> str:
        mine = month[(month["model_name"] == CHAMPION) & np.isclose(month["target_pct"], target)] \
            if len(month) else month
        if mine.empty or not mine.iloc[0]["n"]:
            return "last 30 days: no resolved forecast yet"
        r = mine.iloc[0]
        return (f"last 30 days: P(24h) Brier skill {_sampled(r.get('brier_skill_24h'), r['n'])} vs climatology, "
                f"interval covered {_pct(r.get('interval_coverage'))} (claimed {_pct(r.get('interval_claimed'))})")

    @staticmethod
    def _record_block(symbol: str, target: float, record: pd.DataFrame, last: pd.DataFrame) -> str:
        header = f"\n<b>{html.escape(_group(symbol, target))}</b>"
        mine = record[(record["symbol"] == symbol) & np.isclose(record["target_pct"], target)]
        if mine.empty or not mine.iloc[0]["resolved"] > 0:
            return header + ": no resolved forecast in this period"
        r = mine.iloc[0]
        lines = [header + f": {int(r.resolved)} resolved, hit {_pct(r.hit_rate)}",
                 f"P(up) BSS {_sampled(_bss(r.loss, r.reference_loss), r.n)}"
                 + ("" if pd.isna(r.n_24h) else
                    f" · P(24h) BSS {_sampled(_bss(r.loss_24h, r.reference_loss_24h), r.n_24h)}")]
        shown = last[(last["symbol"] == symbol) & np.isclose(last["target_pct"], target)]
        for f in shown.itertuples():
            took = "" if pd.isna(f.time_to_target_hours) else f" after {hours_text(f.time_to_target_hours)} h"
            lines.append(f"  {pd.Timestamp(f.timestamp):%m-%d %H:%M} P(up) {f.probability:.0%} → {f.status}{took}")
        return "\n".join(lines)


def _sampled(skill: float | None, n: float) -> str:
    """A skill with its count, or n/a (n N) from too few forecasts (scoring.small_sample)."""
    n = 0 if n is None or pd.isna(n) else int(n)
    if small_sample(n) or skill is None or pd.isna(skill):
        return f"n/a (n {n})"
    return f"{_skill(skill)} (n {n})"


def _bss(loss: float, reference: float) -> float | None:
    """Brier skill from summed losses (scoring.py's definition)."""
    return None if pd.isna(reference) or not reference > 0 else 1 - loss / reference
