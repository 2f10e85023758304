"""Building reports from the database and handing them to the notifier: hourly, daily (with chart), alerts."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from src.data.features import with_barrier
from src.database.records import RecordStore
from src.models.estimators.direction import explain
from src.models.live.registry import ModelRegistry
from src.notifications import reports
from src.notifications.telegram import SendResult, TelegramNotifier
from src.utils.clock import service_run, utc_now
from src.utils.config import group_key
from src.utils.faults import kill_point

log = logging.getLogger(__name__)
ALERT_RETRY_HOURS = 6  # an alert Telegram did not take is sent again while its hour is this young
RECORD_MAX_AGE_DAYS = 7  # an alert quotes its model's 30-day live record if the daily job computed it this recently


def crossings(champions: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Champion forecasts of the newest hour that crossed the threshold (UP side >= t, DOWN side <= 1 - t)
    since the hour before: once per crossing, not every hour while they stay beyond it. Climatology uses
    no market data, so it never alerts."""
    if champions.empty:
        return champions
    rows = []
    for _, group in champions.groupby(["symbol", "target_pct"]):
        group = group.sort_values("timestamp")
        now = group.iloc[-1]
        if now["model_name"] == "climatology":
            continue
        before = group.iloc[-2]["probability"] if len(group) > 1 else 0.5
        up = now["probability"] >= threshold > before
        down = now["probability"] <= 1 - threshold < before
        if up or down:
            rows.append(now)
    return pd.DataFrame(rows)


class ReportService:
    def __init__(self, records: RecordStore, registry: ModelRegistry, notifier: TelegramNotifier,
                 threshold: float = 0.75, horizon: int = 168, preview: bool = False):
        """`preview`: print what would be sent and write nothing (no claim, no state, no report row)."""
        self.records, self.registry, self.notifier = records, registry, notifier
        self.threshold, self.horizon, self.preview = threshold, horizon, preview

    def hourly(self, now: pd.Timestamp, groups: list[tuple[str, float]] | None = None,
               reasons: dict[str, str] | None = None) -> SendResult:
        """The latest champion forecasts; configured `groups` without one this hour are named, with the
        reason from `reasons` ("symbol target" -> why) when known."""
        champions = self.records.recent_champions(hours=1)
        current = champions[champions["timestamp"] >= now.floor("h") - pd.Timedelta(hours=1)]
        have = {(s, round(t, 6)) for s, t in zip(current["symbol"], current["target_pct"])}
        missing = {group_key(s, t): (reasons or {}).get(group_key(s, t), "no forecast for this hour")
                   for s, t in groups or [] if (s, round(t, 6)) not in have}
        messages = reports.hourly_text(champions, now, self.horizon, missing, self.records.recent_timings(hours=1))
        return self._send("hourly", messages)

    def daily(self, day: pd.Timestamp, chart_path: Path | None = None) -> SendResult:
        """The report of `day` (UTC): what was decided that day and the live record as computed for it."""
        start = pd.Timestamp(day.date(), tz="UTC")
        resolved = self.records.resolved(service_run(), start - pd.Timedelta(days=30), start + pd.Timedelta(days=1))
        performance = self.records.performance(service_run(), day.date())
        champions = {(r.symbol, round(float(r.target_pct), 6)): r.model_name
                     for r in self.records.models(champions_only=True).itertuples()}
        messages = reports.daily_text(day, reports.resolved_on(resolved, day, self.horizon), performance, champions,
                                      self._timing_record(day))
        timing = self.records.resolved_time(service_run(), start - pd.Timedelta(days=30), start + pd.Timedelta(days=1),
                                            include_pending=True)  # an open window past 24 h is a known "no"
        chart = reports.daily_chart(resolved, timing, self.records.backtest_champion_skill(), service_run(),
                                    utc_now())
        if chart_path is not None:
            chart_path.parent.mkdir(parents=True, exist_ok=True)
            chart_path.write_bytes(chart)
        return self._send("daily", messages, chart)

    def _timing_record(self, day: pd.Timestamp) -> pd.DataFrame:
        """The how-soon record of the daily report: 7 and 30 days to `day`, and the 1-day figure of the day before,
        the newest day whose 24-hour fates are all known at the report (its last forecast's 24 h end at midnight)."""
        run = service_run()
        record = self.records.performance(run, day.date(), task="resolution")
        before = self.records.performance(run, (day - pd.Timedelta(days=1)).date(), task="resolution")
        return pd.concat([record[record["window_days"] != 1], before[before["window_days"] == 1]], ignore_index=True)

    def _send(self, report_type: str, messages: list[str], photo: bytes | None = None) -> SendResult:
        """Each message in turn (the photo with the last); the result of the first that failed, else ok."""
        results = [self.notifier.send(report_type, text, photo if k == len(messages) - 1 else None)
                   for k, text in enumerate(messages)]
        return next((r for r in results if not r.success), results[-1])

    def alerts(self, now: pd.Timestamp | None = None) -> list[SendResult]:
        """One alert per champion forecast that crossed the threshold, with the reasons of the model that made
        it. Each is claimed first (recorded once however often this runs), then taken by one sender and sent; a
        claim Telegram did not take (an outage, a crash before the send) is sent again on the next cycles while
        its prediction hour is under ALERT_RETRY_HOURS old, then marked expired with the reason. A preview
        (`report --dry-run`) prints the new crossings and the alerts waiting, and writes nothing."""
        now = now if now is not None else utc_now()
        fresh = [self._alert(row, now) for row in
                 crossings(self.records.recent_champions(hours=2), self.threshold).itertuples()]
        if self.preview:
            return self._preview_alerts(fresh)
        for claim in fresh:
            self.records.claim_alert(claim)
        results: list[SendResult] = []
        while self._send_next_alert(now, results):
            pass
        return results

    def _send_next_alert(self, now: pd.Timestamp, results: list[SendResult]) -> bool:
        """Take the oldest alert waiting, send it (or expire it) and write its state; False when there is none left
        to try this run (none waiting, or Telegram failing: the rest wait for the next cycle, not fail in turn)."""
        with self.records.take_alert() as taken:
            if taken is None:
                return False
            claim = taken.row
            if pd.Timestamp(claim["timestamp"]) < now - pd.Timedelta(hours=ALERT_RETRY_HOURS):
                reason = f"not sent within {ALERT_RETRY_HOURS} h of its hour ({claim['error_message'] or 'no try'})"
                taken.mark("expired", reason)
                log.warning("alert %s %g %s expired: %s", claim["symbol"], float(claim["target_pct"]),
                            claim["timestamp"], reason)
                return True
            result = self.notifier.send("alert", claim["message"])
            kill_point("alert-sent-not-marked")
            delivered = result.success or result.dry_run  # no Telegram configured: the console was its delivery
            taken.mark("sent" if delivered else "failed", None if delivered else result.error)
            results.append(result)
            return delivered

    def _alert(self, row, now: pd.Timestamp) -> dict:
        text = reports.alert_text(row.symbol, row.target_pct, row.probability, self.threshold, row.model_name,
                                  self._reasons(row), self._record(row.symbol, row.target_pct, row.model_name, now))
        return {"symbol": row.symbol, "timeframe": row.timeframe, "target_pct": row.target_pct,
                "timestamp": row.timestamp, "side": "up" if row.probability >= self.threshold else "down",
                "probability": row.probability, "model_name": row.model_name, "message": text}

    def _preview_alerts(self, fresh: list[dict]) -> list[SendResult]:
        """What a send would deliver now: the alerts waiting, then the new crossings not claimed yet."""
        waiting = self.records.unsent_alerts()
        known = {(r.symbol, round(float(r.target_pct), 6), pd.Timestamp(r.timestamp)) for r in waiting.itertuples()}
        new = [a for a in fresh if (a["symbol"], round(float(a["target_pct"]), 6), pd.Timestamp(a["timestamp"]))
               not in known]
        return [self.notifier.send("alert", message) for message in [*waiting["message"], *(a["message"] for a in new)]]

    def _reasons(self, row) -> list[tuple[str, float]]:
        """The top feature contributions of the model that made the forecast (its registry version), from
        that hour's cached features."""
        try:
            made_by = self.records.model_row(row.model_version)
            if made_by is None:
                log.warning("no reasons for %s %g alert: model %s is no longer in the registry", row.symbol,
                            row.target_pct, row.model_version)
                return []
            model = self.registry.load(made_by)
            cached = self.records.cached_features(row.symbol, row.timeframe, model.meta["feature_version"],
                                                  row.timestamp)
            if cached is None:
                return []
            frame = pd.DataFrame([cached], index=[row.timestamp]).astype(float)
            return explain(model.model_name, model.estimator, with_barrier(frame, row.target_pct))
        except Exception as exc:  # an alert without reasons beats no alert
            log.warning("no reasons for %s %g alert: %s", row.symbol, row.target_pct, exc)
            return []

    def _record(self, symbol: str, target: float, model: str, now: pd.Timestamp) -> dict | None:
        """The model's newest 30-day live record, if computed within the last week."""
        since = (now - pd.Timedelta(days=RECORD_MAX_AGE_DAYS)).date()
        mine = self.records.newest_performance(service_run(), model, 30, since, symbol, target)
        return mine.iloc[0].to_dict() if len(mine) else None
