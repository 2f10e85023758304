"""Configuration: config.yaml defaults, overridden by another YAML file, a .env file and the environment.

Precedence (highest first): environment variables (a .env file fills unset ones), the file named by
--config or CRYPTO_ML_CONFIG, the project's config.yaml. An unset or empty variable never blanks a value.
Everything is validated at load time; all problems are reported at once as ConfigError.
"""
from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from dotenv import load_dotenv

from src.utils.errors import ConfigError
from src.utils.secrets import redact

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config.yaml"
CONFIG_ENV_VAR = "CRYPTO_ML_CONFIG"
TIMEFRAME_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
                "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
SECRET_KEYS = ("telegram.bot_token", "telegram.chat_id", "telegram.replay_chat_id")
TARGET_DECIMALS = 4  # target_pct is NUMERIC(6, 4): a finer target would never match its stored rows
# Environment variable -> dotted config key.
ENV_OVERRIDES = {
    "DATABASE_URL": "database.url",
    "TELEGRAM_BOT_TOKEN": "telegram.bot_token",
    "TELEGRAM_CHAT_ID": "telegram.chat_id",
    "TELEGRAM_BASE_URL": "telegram.base_url",
    "LOG_LEVEL": "app.log_level",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _is_db_url(value: str) -> bool:
    if value == "embedded":
        return True
    parts = urlsplit(value)
    return parts.scheme.split("+")[0] in ("postgresql", "postgres") and bool(parts.path.strip("/"))


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_hhmm(value: str) -> bool:
    hours, _, minutes = value.partition(":")
    return hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60 and len(minutes) == 2


REGISTRY_NAME = re.compile(r"[A-Za-z0-9_.]{1,40}")  # a symbol as model versions and folders name it


def registry_name(symbol: str) -> str:
    """The symbol as the model registry names it: BTC/USDT -> BTCUSDT, BTC/USDT:USDT -> BTCUSDT_USDT (a
    version's parts are split by '-', so a dated future's '-' becomes '_' too)."""
    return symbol.replace("/", "").replace(":", "_").replace("-", "_")


def _assets_ok(value: list) -> str | None:
    if not value:
        return "is empty"
    bad = [a for a in value if not isinstance(a, str) or a.count("/") != 1]
    if bad:
        return f"has {bad!r}, not of the form BASE/QUOTE (a perpetual future: BASE/QUOTE:SETTLE)"
    unnamed = [a for a in value if not REGISTRY_NAME.fullmatch(registry_name(a)) or len(a) > 20]
    if unnamed:
        return (f"has {unnamed!r}: up to 20 characters of letters, digits, '.', '_' and '-' around the '/' and "
                "':' of BASE/QUOTE[:SETTLE], so models and records can name it")
    dupes = sorted({a for a in value if value.count(a) > 1})
    return f"lists {dupes} more than once" if dupes else None


def _targets_ok(value: list) -> str | None:
    if not value:
        return "is empty"
    bad = [t for t in value if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < 1]
    if bad:
        return f"has {bad}, outside (0, 1)"
    too_fine = [t for t in value if round(t, TARGET_DECIMALS) != t]
    if too_fine:
        return f"has {too_fine} with more than {TARGET_DECIMALS} decimals (the database stores {TARGET_DECIMALS})"
    return f"lists {value} with duplicates" if len(set(value)) != len(value) else None


LOCAL = "local"
DASK_PREFIX = "dask://"
DASK_TLS_PREFIX = "dask+tls://"  # the cluster over TLS: certificates from Dask's own configuration


def _ids_ok(value: list) -> str | None:
    """Telegram ids: whole numbers (a group's is negative), as numbers or strings."""
    bad = [v for v in value if isinstance(v, bool) or not str(v).lstrip("-").isdigit()]
    return f"holds {bad}, not whole-number ids" if bad else None


def check_executor_spec(spec: str) -> str | None:
    """None when `spec` names an executor, else what is wrong with it (for the config check)."""
    if spec == LOCAL:
        return None
    for prefix in (DASK_PREFIX, DASK_TLS_PREFIX):
        if spec.startswith(prefix):
            host, _, port = spec[len(prefix):].rpartition(":")
            if host and port.isdigit():
                return None
    return "is neither 'local' nor 'dask://HOST:PORT' (or 'dask+tls://HOST:PORT')"


Check = Callable[[Any], "str | None"]
# key: (expected type(s), check returning a problem or None, the fix to suggest)
SCHEMA: dict[str, tuple[type | tuple[type, ...], Check | None, str]] = {
    "app.name": (str, None, "give the service a name"),
    "app.version": (str, None, 'e.g. "1.0.0"'),
    "app.log_level": (str, lambda v: None if v.upper() in LOG_LEVELS else "is not a log level",
                      f"use one of {', '.join(LOG_LEVELS)}"),
    "trading.assets": (list, _assets_ok, 'list each market once, e.g. ["BTC/USDT", "ETH/USDT"]'),
    "trading.target_percentages": (list, _targets_ok, "use fractions such as [0.01, 0.02, 0.05]"),
    "trading.timeframe": (str, lambda v: None if v in TIMEFRAME_MS else "is not a known timeframe",
                          f"use one of {', '.join(TIMEFRAME_MS)}"),
    "trading.lookback_days": (int, lambda v: None if v >= 1 else "must be at least 1", "e.g. 180"),
    "database.url": (str, lambda v: None if _is_db_url(v) else "is not a PostgreSQL URL",
                     'use "embedded" or postgresql://user:password@host:5432/dbname'),
    "database.timescaledb": (str, lambda v: None if v in ("auto", "on", "off") else "is not auto/on/off",
                             "use auto, on or off"),
    "database.compress_after_days": (int, lambda v: None if v >= 1 else "must be at least 1", "e.g. 30"),
    "exchange.id": (str, None, "a CCXT exchange id such as binance"),
    "exchange.options": (dict, None, "a mapping passed to CCXT, or {}"),
    "exchange.api_urls": (dict, None, "a mapping merged over CCXT's urls['api'], or {}"),
    "exchange.timeout_ms": (int, lambda v: None if v > 0 else "must be positive", "e.g. 30000"),
    "exchange.max_retries": (int, lambda v: None if v >= 0 else "must not be negative", "e.g. 5"),
    "exchange.retry_max_seconds": ((int, float), lambda v: None if v > 0 else "must be positive", "e.g. 120"),
    "exchange.rate_limit": (bool, None, "true (CCXT spaces the requests as the exchange asks) or false"),
    "ml.retrain_frequency": (str, lambda v: None if v in ("daily", "weekly") else "is not daily/weekly",
                             "use daily or weekly"),
    "ml.min_samples_for_training": (int, lambda v: None if v >= 50 else "must be at least 50", "e.g. 500"),
    "ml.horizon_hours": (int, lambda v: None if 1 <= v <= 24 * 60 else "must be 1..1440", "e.g. 168"),
    "ml.embargo_hours": (int, lambda v: None if v >= 0 else "must not be negative", "e.g. 24"),
    "ml.training_days": (int, lambda v: None if v >= 7 else "must be at least 7", "e.g. 1460 (four years)"),
    "ml.champion_significance": ((int, float), lambda v: None if 0 < v < 0.5 else "must lie in (0, 0.5)",
                                 "e.g. 0.05: a model replaces a simpler one only at this one-sided level"),
    "ml.executor": (str, check_executor_spec, 'use "local" or "dask://HOST:PORT" (a running Dask scheduler)'),
    "ml.n_workers": (int, lambda v: None if v >= 0 else "must not be negative", "0 (one per core) or e.g. 2"),
    "telegram.bot_token": (str, None, "the token from @BotFather, or empty for console-only reports"),
    "telegram.chat_id": ((str, int), None, "the chat id, or empty"),
    "telegram.replay_chat_id": ((str, int), None, "the chat a `replay` sends to (never chat_id), or empty for none"),
    "telegram.replay_pace_seconds": ((int, float), lambda v: None if v >= 0 else "must not be negative",
                                     "e.g. 3 (Telegram takes about 20 messages a minute in a group)"),
    "telegram.base_url": (str, lambda v: None if _is_http_url(v) else "is not an http(s) URL",
                          'e.g. "https://api.telegram.org/bot"'),
    "telegram.report_frequency": (str, lambda v: None if v in ("hourly", "daily") else "is not hourly/daily",
                                  "use hourly or daily"),
    "telegram.alert_threshold": ((int, float), lambda v: None if 0.5 < v < 1 else "must be in (0.5, 1)",
                                 "e.g. 0.75"),
    "telegram.commands": (bool, None, "true (answer commands from the allowed chats) or false"),
    "telegram.allowed_chat_ids": (list, _ids_ok, "chat ids, e.g. [123456789, -1001234567890]; [] means chat_id only"),
    "telegram.allowed_user_ids": (list, _ids_ok, "user ids, e.g. [123456789]; [] lets every member of an allowed "
                                                 "group ask"),
    "scheduler.hourly_minute": (int, lambda v: None if 0 <= v <= 59 else "must be 0..59", "e.g. 2"),
    "scheduler.daily_time": (str, lambda v: None if _is_hhmm(v) else "is not HH:MM", 'e.g. "00:15"'),
    "scheduler.health_minutes": (int, lambda v: None if v >= 1 else "must be at least 1", "e.g. 5"),
    "scheduler.run_at_start": (bool, None, "true or false"),
    # a missed hour is predicted with the models of its own time: the files of the newest 7 retired champions of
    # each group are kept (a week of daily retrains), so catch-up reaches at most a week back
    "scheduler.catch_up_hours": (int, lambda v: None if 0 <= v <= 168 else "must be 0..168 (older hours' models "
                                 "are pruned: a week of retired champions is kept)", "e.g. 48"),
    "scheduler.repair_minutes": (int, lambda v: None if 1 <= v <= 60 else "must be 1..60", "e.g. 5"),
    "retention.feature_cache_days": (int, lambda v: None if 1 <= v <= 3650 else "must be 1..3650", "e.g. 7"),
    "retention.health_days": (int, lambda v: None if 1 <= v <= 3650 else "must be 1..3650", "e.g. 90"),
    "retention.report_texts_days": (int, lambda v: None if 1 <= v <= 3650 else "must be 1..3650", "e.g. 90"),
    "retention.daily_charts": (int, lambda v: None if 1 <= v <= 3650 else "must be 1..3650", "e.g. 30"),
    # catch-up predicts a missed hour with the champion of its own day: a week back needs a week of them
    "retention.retired_champions": (int, lambda v: None if 7 <= v <= 3650 else "must be 7..3650 (catch-up "
                                    "predicts up to a week back with the champions of those days)", "e.g. 7"),
    "health.host": (str, None, 'e.g. "127.0.0.1"'),
    "health.port": (int, lambda v: None if 1 <= v <= 65535 else "is out of range 1..65535", "e.g. 8080"),
    "health.page_workers": (int, lambda v: None if 1 <= v <= 64 else "must be 1..64", "e.g. 4 (pages served at "
                            "once; more get 503 with Retry-After, /health never waits)"),
    "health.page_process": (bool, None, "true (the pages in a process of their own, at a lower priority: /health "
                            "stays fast under load; about 300 MB more) or false"),
    "health.stale_after_hours": ((int, float), lambda v: None if v > 0 else "must be positive", "e.g. 3"),
    "paths.data_dir": (str, None, 'a folder, e.g. "data"'),
    "paths.logs_dir": (str, None, 'a folder, e.g. "logs"'),
}


def _get(tree: dict, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def _set(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


FREE_FORM = ("exchange.options", "exchange.api_urls")  # mappings passed through to CCXT as they are
# empty (or null) means "not set": reports go to the log
BLANKABLE = ("telegram.bot_token", "telegram.chat_id", "telegram.replay_chat_id")


def _merge(base: dict, over: dict) -> dict:
    """Deep-merge `over` onto `base`; an empty string never blanks a value."""
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif value != "" or key not in merged:
            merged[key] = value
    return merged


DEPRECATED_KEYS = {"ml.max_lookback_hours": "ml.horizon_hours"}  # old name -> new name (still accepted)


def _leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in FREE_FORM:
            keys += _leaf_keys(value, f"{dotted}.")
        else:
            keys.append(dotted)
    return keys


def file_problems(tree: dict, path: Path) -> list[str]:
    """Keys in a user's YAML file that the product does not know (with the nearest known key) and nulls
    where a value belongs: a misspelt key must not be silently ignored."""
    problems = []
    sections = {known.split(".")[0] for known in SCHEMA}
    for key in _leaf_keys(tree):
        value = _get(tree, key)
        if key in sections:
            problems.append(f"config section {key} in {path}: is not a mapping of keys; give its keys (see "
                            "config.yaml) or remove it")
        elif key not in SCHEMA and key not in FREE_FORM:
            near = difflib.get_close_matches(key, [*SCHEMA, *FREE_FORM], n=1, cutoff=0.6)
            hint = f"did you mean {near[0]}?" if near else "remove it (see config.yaml for every key)"
            problems.append(f"config key {key} in {path}: unknown; {hint}")
        elif value is None and key not in BLANKABLE:
            problems.append(f"config key {key} in {path}: is empty (null); give a value ({SCHEMA[key][2]}) or "
                            "remove the line to keep the default")
    return problems


def _rename_deprecated(tree: dict, path: Path) -> list[str]:
    """Move renamed keys to their new names (in place); one line per old name for the log. Both names at once
    is an error: which one is meant cannot be told."""
    lines = []
    for old, new in DEPRECATED_KEYS.items():
        try:
            value = _get(tree, old)
        except KeyError:
            continue
        try:
            _get(tree, new)
            raise ConfigError([f"config keys {old} and {new} in {path}: both given; keep only {new} (the new name)"])
        except KeyError:
            pass
        _set(tree, new, value)
        section, _, leaf = old.partition(".")
        del tree[section][leaf]
        lines.append(f"config key {old} in {path} is deprecated: it is now {new} (same meaning); rename it")
    return lines


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError([f"config file {path}: not found; pass an existing file with --config"]) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise ConfigError([f"config file {path}: invalid YAML{where}; fix the syntax"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"config file {path}: top level must be a mapping of sections"])
    return data


def _futures_markets_problems(tree: dict) -> list[str]:
    """A future (BASE/QUOTE:SETTLE) whose kind of market CCXT is told not to load: Binance's fetchMarkets types
    (linear: settled in the quote, inverse: in the base) must include it, or every fetch would fail."""
    types = (tree["exchange"]["options"].get("fetchMarkets") or {}).get("types")
    if tree["exchange"]["id"] != "binance" or not isinstance(types, list):
        return []
    problems = []
    for asset in tree["trading"]["assets"]:
        base, _, rest = asset.partition("/")
        quote, _, settle = rest.partition(":")
        kind = "" if not settle else "linear" if settle.split("-")[0] == quote else "inverse"
        if kind and kind not in types:
            problems.append(f"config key exchange.options.fetchMarkets.types: {types!r} leaves out {asset}'s "
                            f"{kind} futures market; add \"{kind}\" (e.g. [\"spot\", \"{kind}\"])")
    return problems


def validate(tree: dict) -> list[str]:
    """Every problem in the tree, one line each naming the key, what is wrong and the fix."""
    problems = []
    for key, (kind, check, fix) in SCHEMA.items():
        try:
            value = _get(tree, key)
        except KeyError:
            problems.append(f"config key {key}: missing; add it ({fix})")
            continue
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            problems.append(f"config key {key}: expected {names}, got {type(value).__name__} {value!r}; {fix}")
            continue
        problem = check(value) if check else None
        if problem:
            problems.append(f"config key {key}: {value!r} {problem}; {fix}")
    return problems


class Config:
    """The validated configuration. `config` holds the merged tree; properties name common values."""

    def __init__(self, path: str | Path | None = None, env_file: str | Path | None = None):
        load_dotenv(env_file or PROJECT_ROOT / ".env", override=False)
        self.path = Path(path or os.getenv(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)
        self.config = self.load_config()

    def load_config(self) -> dict:
        """Load configuration from YAML and environment variables, then validate it."""
        tree = _read_yaml(DEFAULT_CONFIG_PATH)
        self.deprecations: list[str] = []  # lines for the log: renamed keys still accepted
        if self.path.resolve() != DEFAULT_CONFIG_PATH:
            override = _read_yaml(self.path)
            self.deprecations = _rename_deprecated(override, self.path)
            problems = file_problems(override, self.path)
            if problems:
                raise ConfigError(problems)
            tree = _merge(tree, override)
        for key in BLANKABLE:  # a null token or chat id is the same as none
            if _get(tree, key) is None:
                _set(tree, key, "")
        for env_name, key in ENV_OVERRIDES.items():
            value = os.getenv(env_name, "").strip()
            if value:
                _set(tree, key, value)
        problems = validate(tree)
        problems += [] if problems else _futures_markets_problems(tree)
        if problems:
            raise ConfigError(problems)
        return tree

    def get(self, dotted: str, default: Any = None) -> Any:
        try:
            return _get(self.config, dotted)
        except KeyError:
            return default

    @property
    def assets(self) -> list[str]:
        return self.config["trading"]["assets"]

    @property
    def target_percentages(self) -> list[float]:
        return [float(t) for t in self.config["trading"]["target_percentages"]]

    @property
    def timeframe(self) -> str:
        return self.config["trading"]["timeframe"]

    @property
    def allowed_chats(self) -> set[str]:
        """Chats whose commands are answered: telegram.allowed_chat_ids, else the configured chat."""
        ids = self.config["telegram"]["allowed_chat_ids"] or [self.config["telegram"]["chat_id"]]
        return {str(i) for i in ids if str(i)}

    @property
    def groups(self) -> list[tuple[str, float]]:
        """Every (asset, target) the product forecasts."""
        return [(symbol, target) for symbol in self.assets for target in self.target_percentages]

    @property
    def horizon(self) -> int:
        """H, the label horizon in hours (ml.horizon_hours)."""
        return self.config["ml"]["horizon_hours"]

    @property
    def history_days(self) -> int:
        """Days of candles to keep: the training history or the live window, whichever is longer."""
        return max(self.config["ml"]["training_days"], self.config["trading"]["lookback_days"])

    @property
    def database_url(self) -> str:
        return self.config["database"]["url"]

    @property
    def data_dir(self) -> Path:
        return self._project_path(self.config["paths"]["data_dir"])

    @property
    def logs_dir(self) -> Path:
        return self._project_path(self.config["paths"]["logs_dir"])

    @staticmethod
    def _project_path(value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path

    def masked(self) -> dict:
        """The tree with secrets and URL passwords hidden, safe to print or log."""
        tree = copy.deepcopy(self.config)
        for key in SECRET_KEYS:
            if _get(tree, key):
                _set(tree, key, "***")
        _set(tree, "database.url", mask_url(self.database_url))
        return tree


def group_key(symbol: str, target: float) -> str:
    """How an asset x target group is named in logs, /health and reports, e.g. "ETH/USDT 0.05"."""
    return f"{symbol} {target:g}"


def mask_url(url: str) -> str:
    """The URL with any password (userinfo or a password= parameter) replaced by ***."""
    return redact(url)
