"""The schema, declared once (SQLAlchemy Core). Migrations build it; a test proves they agree.

Times are timestamptz. Prices and volumes are NUMERIC(28, 10): exact for BTC's five-digit prices and
SOL's fractional ones alike. Every unique key of a hypertable contains its time column.
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
PRICE = Numeric(28, 10)
TARGET = Numeric(6, 4)
PROB = Numeric(7, 6)


def _tz() -> DateTime:
    return DateTime(timezone=True)


ohlcv_data = Table(
    "ohlcv_data", metadata,
    Column("symbol", String(20), primary_key=True),
    Column("timeframe", String(10), primary_key=True),
    Column("timestamp", _tz(), primary_key=True),
    Column("open", PRICE, nullable=False),
    Column("high", PRICE, nullable=False),
    Column("low", PRICE, nullable=False),
    Column("close", PRICE, nullable=False),
    Column("volume", PRICE, nullable=False),
    Column("created_at", _tz(), server_default=func.now(), nullable=False),
)

feature_cache = Table(
    "feature_cache", metadata,
    Column("symbol", String(20), primary_key=True),
    Column("timeframe", String(10), primary_key=True),
    Column("timestamp", _tz(), primary_key=True),
    Column("feature_version", String(16), primary_key=True),
    Column("feature_set", JSONB, nullable=False),
    Column("created_at", _tz(), server_default=func.now(), nullable=False),
)

# Hours the exchange answered with nothing: recorded so recovery does not ask again every hour.
exchange_gaps = Table(
    "exchange_gaps", metadata,
    Column("symbol", String(20), primary_key=True),
    Column("timeframe", String(10), primary_key=True),
    Column("gap_start", _tz(), primary_key=True),
    Column("gap_end", _tz(), nullable=False),
    Column("first_checked_at", _tz(), server_default=func.now(), nullable=False),
    Column("last_checked_at", _tz(), server_default=func.now(), nullable=False),
    Column("attempts", Integer, server_default="1", nullable=False),
)

predictions = Table(
    "predictions", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("run_type", String(10), nullable=False, server_default="live"),  # live | backtest
    Column("symbol", String(20), nullable=False),
    Column("timeframe", String(10), nullable=False),
    Column("target_pct", TARGET, nullable=False),
    Column("timestamp", _tz(), nullable=False),  # open time of the last closed candle used
    Column("model_name", String(50), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("feature_version", String(16), nullable=False),
    Column("is_champion", Boolean, nullable=False, server_default="false"),
    Column("prediction_class", Integer, nullable=False),
    Column("probability", PROB, nullable=False),
    Column("confidence", PROB, nullable=False),
    Column("entry_price", PRICE, nullable=False),
    Column("features_used", JSONB),
    Column("created_at", _tz(), server_default=func.now(), nullable=False),
    UniqueConstraint("run_type", "symbol", "timeframe", "timestamp", "target_pct", "model_name",
                     name="uq_predictions_run_symbol_tf_time_target_model"),
)
Index("idx_predictions_symbol_target_time", predictions.c.symbol, predictions.c.target_pct,
      predictions.c.timestamp.desc())
# the hourly cycle's reads by time: the open windows, the newest hour, each group's newest champion forecast
Index("idx_predictions_run_time", predictions.c.run_type, predictions.c.timestamp)
Index("idx_predictions_live_champions", predictions.c.symbol, predictions.c.target_pct, predictions.c.timestamp,
      postgresql_where=(predictions.c.run_type == "live") & predictions.c.is_champion)
# the web's /forecasts pages, newest first: the forecasts users got, by time or by group, read from the index alone
# (the rows of one page are then fetched by id), however deep the page
Index("idx_predictions_champions_time", predictions.c.run_type, predictions.c.timestamp,
      postgresql_include=["id", "symbol", "target_pct"], postgresql_where=predictions.c.is_champion)
Index("idx_predictions_champions_group", predictions.c.run_type, predictions.c.symbol, predictions.c.target_pct,
      predictions.c.timestamp, postgresql_include=["id"], postgresql_where=predictions.c.is_champion)

prediction_outcomes = Table(
    "prediction_outcomes", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("prediction_id", BigInteger, ForeignKey("predictions.id", ondelete="CASCADE"),
           nullable=False, unique=True),
    Column("status", String(10), nullable=False),  # up | down | ambiguous | expired
    Column("actual_outcome", Integer),
    Column("target_hit_timestamp", _tz()),
    Column("time_to_target_hours", Numeric(8, 2)),
    Column("max_favorable_move", Numeric(10, 6)),
    Column("max_adverse_move", Numeric(10, 6)),
    Column("completed_at", _tz(), server_default=func.now(), nullable=False),
)
# a forecast's outcome status from the index alone (the web's status filter probes it per forecast)
Index("idx_prediction_outcomes_status", prediction_outcomes.c.prediction_id, postgresql_include=["status"])

model_performance = Table(
    "model_performance", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("run_type", String(10), nullable=False, server_default="live"),  # live | backtest | validation
    Column("symbol", String(20), nullable=False),
    Column("timeframe", String(10), nullable=False),
    Column("target_pct", TARGET, nullable=False),
    Column("model_name", String(50), nullable=False),
    Column("task", String(12), nullable=False, server_default="direction"),  # direction | resolution
    Column("evaluation_date", Date, nullable=False),
    Column("window_days", Integer, nullable=False, server_default="1"),
    Column("total_predictions", Integer, nullable=False),
    Column("up_share", Float),
    Column("accuracy", Float),
    Column("precision_up", Float),
    Column("precision_down", Float),
    Column("recall_up", Float),
    Column("recall_down", Float),
    Column("f1_up", Float),
    Column("f1_down", Float),
    Column("auc", Float),
    Column("brier", Float),
    Column("brier_skill", Float),
    Column("log_loss", Float),
    Column("ece", Float),
    Column("avg_time_to_target_hours", Float),
    Column("hit_rate", Float),  # share of complete windows that hit either barrier
    Column("resolved_predictions", Integer),  # predictions of the window with an outcome when computed
    Column("pending_predictions", Integer),  # still open then: the row is recomputed until this is 0
    # resolution-time forecasts (task 'resolution'): Brier skill against the climatology time model per
    # horizon, share of outcomes inside the 10-90 % interval, and pinball-loss skill of the three quantiles
    Column("brier_skill_6h", Float),
    Column("brier_skill_24h", Float),
    Column("brier_skill_horizon", Float),
    Column("interval_coverage", Float),
    Column("interval_claimed", Float),  # the share those intervals claimed: 0.8 closed, 0.9 open (past H)
    Column("pinball_skill", Float),
    Column("created_at", _tz(), server_default=func.now(), nullable=False),
    UniqueConstraint("run_type", "symbol", "timeframe", "target_pct", "task", "model_name", "evaluation_date",
                     "window_days", name="uq_model_performance_key"),
)
Index("idx_model_performance_run_date", model_performance.c.run_type, model_performance.c.evaluation_date)

model_registry = Table(
    "model_registry", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("symbol", String(20), nullable=False),
    Column("timeframe", String(10), nullable=False),
    Column("target_pct", TARGET, nullable=False),
    Column("model_name", String(50), nullable=False),
    Column("task", String(12), nullable=False, server_default="direction"),  # direction | resolution
    Column("version", String(64), nullable=False, unique=True),
    Column("feature_version", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("train_start", _tz(), nullable=False),
    Column("train_end", _tz(), nullable=False),
    Column("n_samples", Integer, nullable=False),
    Column("metrics", JSONB, nullable=False),
    Column("library_versions", JSONB, nullable=False),
    Column("is_champion", Boolean, nullable=False, server_default="false"),
    Column("promoted_at", _tz()),
    Column("retired_at", _tz()),
    Column("created_at", _tz(), server_default=func.now(), nullable=False),
)
_r = model_registry.c
Index("idx_model_registry_current", _r.timeframe, _r.symbol, _r.target_pct, _r.task, _r.model_name,
      _r.created_at.desc(), _r.id.desc())  # the current rows (registry.current_models), however long the history
Index("uq_model_registry_one_champion", model_registry.c.symbol, model_registry.c.timeframe,
      model_registry.c.target_pct, model_registry.c.task, unique=True, postgresql_where=model_registry.c.is_champion)

# How soon: each hour's forecast of the hours until either barrier is touched, and (once decided) the
# outcome from the same label function as predictions: status and hours_to_resolution (NULL if expired).
resolution_forecasts = Table(
    "resolution_forecasts", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("run_type", String(10), nullable=False, server_default="live"),  # live | backtest
    Column("symbol", String(20), nullable=False),
    Column("timeframe", String(10), nullable=False),
    Column("target_pct", TARGET, nullable=False),
    Column("timestamp", _tz(), nullable=False),  # the entry candle, as in predictions
    Column("model_name", String(50), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("is_champion", Boolean, nullable=False, server_default="false"),
    Column("p_6h", PROB, nullable=False),
    Column("p_24h", PROB, nullable=False),
    Column("p_horizon", PROB, nullable=False),
    Column("q10_hours", Numeric(6, 2), nullable=False),
    Column("q50_hours", Numeric(6, 2), nullable=False),
    Column("q90_hours", Numeric(6, 2), nullable=False),
    Column("status", String(10)),  # up | down | ambiguous | expired; NULL while pending
    Column("hours_to_resolution", Numeric(8, 2)),
    Column("created_at", _tz(), server_default=func.now(), nullable=False),
    UniqueConstraint("run_type", "symbol", "timeframe", "timestamp", "target_pct", "model_name",
                     name="uq_resolution_forecasts_key"),
)
Index("idx_resolution_forecasts_symbol_target_time", resolution_forecasts.c.symbol,
      resolution_forecasts.c.target_pct, resolution_forecasts.c.timestamp.desc())
Index("idx_resolution_forecasts_run_time", resolution_forecasts.c.run_type, resolution_forecasts.c.timestamp)

telegram_reports = Table(
    "telegram_reports", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("report_type", String(20), nullable=False),  # hourly | daily | alert
    Column("content", Text, nullable=False),
    Column("sent_at", _tz(), server_default=func.now(), nullable=False),
    Column("success", Boolean, nullable=False, server_default="false"),
    Column("error_message", Text),
)

telegram_attempts = Table(  # every try of every send: the report row holds the final state
    "telegram_attempts", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("report_id", BigInteger, ForeignKey("telegram_reports.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),  # 1, 2, ... per method
    Column("method", String(20), nullable=False),  # sendMessage | sendPhoto
    Column("status", String(10), nullable=False),  # ok | failed
    Column("error_message", Text),
    Column("attempted_at", _tz(), server_default=func.now(), nullable=False),
)

group_status = Table(  # why an asset x target has no model or no forecast; a row is removed once it has
    "group_status", metadata,
    Column("symbol", String(20), primary_key=True),
    Column("timeframe", String(10), primary_key=True),
    Column("target_pct", TARGET, primary_key=True),
    Column("stage", String(10), primary_key=True),  # train | predict
    Column("reason", Text, nullable=False),
    Column("since", _tz(), server_default=func.now(), nullable=False),
    Column("updated_at", _tz(), server_default=func.now(), nullable=False),
)

alerts = Table(  # one alert per crossing per prediction hour, claimed before it is sent, sent until Telegram took it
    "alerts", metadata,
    Column("symbol", String(20), primary_key=True),
    Column("timeframe", String(10), primary_key=True),
    Column("target_pct", TARGET, primary_key=True),
    Column("timestamp", _tz(), primary_key=True),  # the prediction's hour
    Column("side", String(4), nullable=False),  # up | down
    Column("probability", PROB, nullable=False),
    Column("model_name", String(50), nullable=False),
    Column("created_at", _tz(), server_default=func.now(), nullable=False),
    Column("state", String(10), nullable=False, server_default="pending"),  # pending | sent | failed | expired
    Column("message", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error_message", Text),
    Column("updated_at", _tz(), server_default=func.now(), nullable=False),
)
Index("idx_alerts_unsent", alerts.c.timestamp, postgresql_where=alerts.c.state.in_(["pending", "failed"]))

system_health = Table(
    "system_health", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("timestamp", _tz(), server_default=func.now(), nullable=False),
    Column("cpu_percent", Float),
    Column("memory_percent", Float),
    Column("disk_percent", Float),
    Column("process_rss_mb", Float),
    Column("database_size_mb", Float),
    Column("prediction_latency_ms", Integer),
    Column("data_freshness_minutes", Integer),
    Column("active_models", Integer),
)
Index("idx_health_timestamp", system_health.c.timestamp.desc())

# The track record's daily sums (web /record): per run, asset x target, UTC day, event ('up': P(up) of decided
# windows; 'within_24h': P(resolved within 24 h)) and forecast bin (50 bins of 0.02), the champion's forecasts
# scored against climatology's for the same hours. Derived from the forecast tables, refreshed by the daily
# job and the backtest for settled days; the days after `day_scores_through` are summed from the forecasts.
day_scores = Table(
    "day_scores", metadata,
    Column("run_type", String(10), primary_key=True),
    Column("symbol", String(20), primary_key=True),
    Column("timeframe", String(10), primary_key=True),
    Column("target_pct", TARGET, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("event", String(12), primary_key=True),
    Column("bin", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("forecast_sum", Float, nullable=False),
    Column("outcome_sum", Float, nullable=False),
    Column("loss", Float, nullable=False),
    Column("reference_loss", Float, nullable=False),
    Column("covered", Float),  # 'within_24h': summed share of each outcome inside the 10-90 % interval
    Column("covered_n", Integer),  # 'within_24h': the complete windows that `covered` sums over
    Column("claimed", Float),  # 'within_24h': summed share their intervals claimed (0.8 closed, 0.9 open)
    Column("climatology_n", Integer, nullable=False),  # forecasts users got from climatology (the base rate)
)
Index("idx_day_scores_run_day", day_scores.c.run_type, day_scores.c.day)
Index("idx_day_scores_totals", day_scores.c.run_type, day_scores.c.day, postgresql_where=day_scores.c.bin == -1)

day_scores_through = Table(
    "day_scores_through", metadata,
    Column("run_type", String(10), primary_key=True),
    Column("day", Date, nullable=False),  # day_scores holds every day up to and including this one
)

HYPERTABLES = {"ohlcv_data": "timestamp", "feature_cache": "timestamp"}
