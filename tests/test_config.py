"""Configuration: defaults, overrides, no blanking, and every kind of bad config refused with one line."""
import pytest
import yaml

from src.utils.config import Config, mask_url
from src.utils.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("DATABASE_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "CRYPTO_ML_CONFIG", "LOG_LEVEL",
                 "TELEGRAM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _config(tmp_path, tree: dict) -> Config:
    path = tmp_path / "over.yaml"
    path.write_text(yaml.safe_dump(tree))
    return Config(path, env_file=tmp_path / "none.env")


def test_defaults(tmp_path):
    c = Config(env_file=tmp_path / "none.env")
    assert c.assets == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    assert c.target_percentages == [0.01, 0.02, 0.05]
    assert c.database_url == "embedded"
    assert c.get("exchange.id") == "binance"
    assert c.get("health.host") == "127.0.0.1"


def test_env_overrides_and_empty_never_blanks(tmp_path, monkeypatch):
    c = _config(tmp_path, {"telegram": {"bot_token": "123456:yaml-token-aaaaaaaaaaaaaaaaaaaa", "chat_id": "42"}})
    assert c.get("telegram.bot_token").startswith("123456:yaml")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:secret@db.example:5433/crypto")
    c = _config(tmp_path, {"telegram": {"bot_token": "123456:yaml-token-aaaaaaaaaaaaaaaaaaaa", "chat_id": "42"}})
    assert c.get("telegram.bot_token").startswith("123456:yaml"), "an empty variable blanked the YAML value"
    assert c.get("telegram.chat_id") == "42"
    assert c.database_url == "postgresql://u:secret@db.example:5433/crypto"
    masked = c.masked()
    assert masked["telegram"]["bot_token"] == "***"
    assert "secret" not in str(masked)


def test_dotenv_file_and_config_env_var(tmp_path, monkeypatch):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"trading": {"assets": ["BTC/USDT"]}}))
    env = tmp_path / ".env"
    env.write_text(f"CRYPTO_ML_CONFIG={other}\nTELEGRAM_CHAT_ID=777\n")
    c = Config(env_file=env)
    assert c.assets == ["BTC/USDT"]
    assert c.get("telegram.chat_id") == "777"
    # --config (an explicit path) wins over CRYPTO_ML_CONFIG
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(yaml.safe_dump({"trading": {"assets": ["ETH/USDT"]}}))
    assert Config(explicit, env_file=env).assets == ["ETH/USDT"]


@pytest.mark.parametrize("tree, key, words", [
    ({"trading": {"target_percentages": [0.01, 1.5]}}, "trading.target_percentages", "outside (0, 1)"),
    ({"trading": {"timeframe": "7m"}}, "trading.timeframe", "not a known timeframe"),
    ({"trading": {"assets": ["BTC/USDT", "BTC/USDT"]}}, "trading.assets", "more than once"),
    ({"trading": {"assets": "BTC/USDT"}}, "trading.assets", "expected list"),
    ({"trading": {"lookback_days": "many"}}, "trading.lookback_days", "expected int"),
    ({"database": {"url": "mysql://x@y/z"}}, "database.url", "not a PostgreSQL URL"),
    ({"health": {"port": 70000}}, "health.port", "out of range"),
    ({"telegram": {"base_url": "not a url"}}, "telegram.base_url", "not an http(s) URL"),
    ({"exchange": {"options": "fast"}}, "exchange.options", "expected dict"),
    ({"scheduler": {"catch_up_hours": 500}}, "scheduler.catch_up_hours", "models are pruned"),
])
def test_bad_config_names_the_key(tmp_path, tree, key, words):
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, tree)
    assert len(err.value.problems) == 1
    line = err.value.problems[0]
    assert key in line and words in line and ";" in line  # names the key, what is wrong, then the fix


def test_all_errors_at_once(tmp_path):
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, {"trading": {"timeframe": "7m", "target_percentages": [2]}, "health": {"port": 0}})
    assert len(err.value.problems) == 3


def test_missing_key_reported(tmp_path, monkeypatch):
    import src.utils.config as config_module
    base = tmp_path / "base.yaml"
    tree = yaml.safe_load(config_module.DEFAULT_CONFIG_PATH.read_text())
    del tree["health"]["port"]
    base.write_text(yaml.safe_dump(tree))
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", base)
    with pytest.raises(ConfigError) as err:
        Config(base, env_file=tmp_path / "none.env")
    assert err.value.problems == ["config key health.port: missing; add it (e.g. 8080)"]


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trading: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        Config(bad, env_file=tmp_path / "none.env")
    with pytest.raises(ConfigError, match="not found"):
        Config(tmp_path / "absent.yaml", env_file=tmp_path / "none.env")


@pytest.mark.host_tz
def test_cli_refuses_target_above_one_with_one_line(run_cli, write_config):
    path = write_config({"trading": {"target_percentages": [1.5]}})
    result = run_cli("status", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: config key trading.target_percentages: [1.5] has [1.5], outside (0, 1); "
                     "use fractions such as [0.01, 0.02, 0.05]"]
    assert "Traceback" not in result.stderr


def test_mask_url():
    assert mask_url("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert mask_url("postgresql://h/d") == "postgresql://h/d"


def test_config_option_before_or_after_the_command():
    from src.cli.parser import build_parser
    parser = build_parser()
    assert parser.parse_args(["--config", "a.yaml", "status"]).config == "a.yaml"
    assert parser.parse_args(["status", "--config", "b.yaml"]).config == "b.yaml"
    assert parser.parse_args(["status"]).config is None


def test_a_section_that_is_not_a_mapping_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config section trading in .*: is not a mapping"):
        _config(tmp_path, {"trading": None})


def test_a_target_finer_than_the_database_stores_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"0\.00125\] with more than 4 decimals"):
        _config(tmp_path, {"trading": {"target_percentages": [0.00125]}})


def test_the_old_horizon_key_still_works_with_a_deprecation_line(tmp_path):
    config = _config(tmp_path, {"ml": {"max_lookback_hours": 72}})
    assert config.horizon == 72 and config.get("ml.horizon_hours") == 72
    assert any("ml.max_lookback_hours" in line and "ml.horizon_hours" in line for line in config.deprecations)
    with pytest.raises(ConfigError, match="both given; keep only ml.horizon_hours"):
        _config(tmp_path, {"ml": {"max_lookback_hours": 72, "horizon_hours": 168}})
