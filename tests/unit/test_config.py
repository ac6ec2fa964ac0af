from pathlib import Path

import pytest

from fraudctl import errors
from fraudctl.config import Settings, load_settings


def test_defaults_are_the_local_fraud_stack() -> None:
    settings = load_settings({}, env={"FRAUDCTL_HOME": "/srv/x"})
    assert settings.stack == "fraud"
    assert settings.target == "local"
    assert settings.max_receive_count == 5
    assert settings.db_instance_class == "db.t3.micro"
    assert settings.stack_dir == Path("/srv/x/local/fraud")


def test_precedence_is_flags_then_env_then_file_then_defaults(tmp_path: Path) -> None:
    config = tmp_path / "fraudctl.toml"
    config.write_text('stack = "from-file"\nregion = "eu-west-1"\nmax_receive_count = 7\n')
    env = {"FRAUDCTL_STACK": "from-env", "FRAUDCTL_REGION": "eu-central-1"}
    settings = load_settings({"stack": "from-flag"}, config_file=config, env=env)
    assert settings.stack == "from-flag"          # flag beats env and file
    assert settings.region == "eu-central-1"      # env beats file
    assert settings.max_receive_count == 7        # file beats default
    assert settings.target == "local"             # default


def test_config_file_is_found_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "fraudctl.toml").write_text('stack = "here"\n')
    assert load_settings({}, env={}).stack == "here"


@pytest.mark.parametrize("name", ["Fraud", "1fraud", "fraud_", "fraud--x", "fraud-", "",
                                  "a" * 21, "fr aud"])
def test_invalid_stack_names_are_refused(name: str) -> None:
    with pytest.raises(errors.ConfigError, match="invalid stack name"):
        load_settings({"stack": name}, env={})


@pytest.mark.parametrize("name", ["fraud", "f", "prod-eu-1", "a" * 20])
def test_valid_stack_names(name: str) -> None:
    assert load_settings({"stack": name}, env={}).stack == name


@pytest.mark.parametrize(("field", "value", "message"), [
    ("target", "gcp", "unknown target"),
    ("region", "mars", "invalid region"),
    ("endpoint_url", "127.0.0.1:5000", "invalid endpoint URL"),
    ("node_sg", "default", "invalid security group id"),
    ("db_endpoint", "localhost", "invalid database endpoint"),
    ("max_receive_count", "0", "must be positive"),
    ("max_receive_count", "five", "whole number"),
    ("ingest", "kafka", "unknown ingest"),
    ("stream_shards", "-1", "must be positive"),
])
def test_bad_values_get_a_clear_error(field: str, value: str, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message) as caught:
        load_settings({field: value}, env={})
    assert caught.value.hint


def test_unknown_key_in_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "fraudctl.toml"
    config.write_text('stak = "typo"\n')
    with pytest.raises(errors.ConfigError, match="unknown setting 'stak'"):
        load_settings({}, config_file=config, env={})


def test_broken_toml_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "fraudctl.toml"
    config.write_text("stack = \n")
    with pytest.raises(errors.ConfigError, match="not valid TOML"):
        load_settings({}, config_file=config, env={})


def test_missing_explicit_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="does not exist"):
        load_settings({}, env={"FRAUDCTL_CONFIG": str(tmp_path / "nope.toml")})


def test_visibility_timeout_follows_the_batch_deadline() -> None:
    assert Settings(consumer_batch_deadline_s=10).visibility_timeout_s == 30
