"""Bad input gets one clear line of error with a hint, a stable exit code, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fraudctl import errors
from tests.conftest import client, invoke


def assert_clean_error(result, exit_code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == exit_code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors_ = [line for line in lines if line.startswith("error:")]
    assert len(errors_) == 1 and message in errors_[0], result.stderr
    assert any(line.startswith("hint:") for line in lines)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_target(cli: CliRunner, isolated_env: Path) -> None:
    result = invoke(cli, "up", "--target", "gcp")
    assert_clean_error(result, errors.ConfigError.exit_code, "unknown target 'gcp'")
    assert not isolated_env.exists()


def test_invalid_stack_name(cli: CliRunner, isolated_env: Path) -> None:
    result = invoke(cli, "up", "--stack", "Prod_DB")
    assert_clean_error(result, errors.ConfigError.exit_code, "invalid stack name")
    assert not isolated_env.exists()


def test_unreachable_endpoint(cli: CliRunner, isolated_env: Path) -> None:
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    result = invoke(cli, "up", "--target", "aws", "--endpoint-url", "http://127.0.0.1:9",
                    "--node-sg", "sg-0123456789abcdef0")
    assert_clean_error(result, errors.EndpointUnreachable.exit_code, "cannot reach")
    assert not isolated_env.exists()


def test_missing_credentials(
    cli: CliRunner, moto: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = invoke(cli, "up", "--target", "aws", "--endpoint-url", moto,
                    "--node-sg", "sg-0123456789abcdef0")
    assert_clean_error(result, errors.CredentialsError.exit_code, "no AWS credentials")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert client(moto, "sqs").list_queues().get("QueueUrls", []) == []
    assert not isolated_env.exists()


def test_missing_region(
    cli: CliRunner, moto: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = invoke(cli, "up", "--target", "aws", "--endpoint-url", moto)
    assert_clean_error(result, errors.CredentialsError.exit_code, "no AWS region")


def test_unknown_profile(cli: CliRunner, isolated_env: Path) -> None:
    result = invoke(cli, "up", "--target", "aws", "--profile", "nope")
    assert_clean_error(result, errors.ConfigError.exit_code, "profile 'nope' does not exist")


def test_no_node_group_off_ec2(cli: CliRunner, moto: str, isolated_env: Path) -> None:
    result = invoke(cli, "up", "--target", "aws", "--endpoint-url", moto)
    assert_clean_error(result, errors.ConfigError.exit_code, "security group the cluster nodes")
    assert client(moto, "sqs").list_queues().get("QueueUrls", []) == []


def test_node_group_that_does_not_exist(cli: CliRunner, moto: str, isolated_env: Path) -> None:
    result = invoke(cli, "up", "--target", "aws", "--endpoint-url", moto,
                    "--node-sg", "sg-0123456789abcdef0")
    assert_clean_error(result, errors.ConfigError.exit_code, "does not exist")
    assert client(moto, "secretsmanager").list_secrets()["SecretList"] == []


def test_status_of_a_stack_that_was_never_up(cli: CliRunner, isolated_env: Path) -> None:
    result = invoke(cli, "status")
    assert_clean_error(result, errors.StackNotFound.exit_code, "no local stack named 'fraud'")


def test_bad_output_format(cli: CliRunner, isolated_env: Path) -> None:
    result = invoke(cli, "status", "--output", "yaml")
    assert_clean_error(result, errors.ConfigError.exit_code, "unknown output format")


def test_port_in_use_is_reported(cli: CliRunner, isolated_env: Path) -> None:
    import socket

    from fraudctl import lifecycle
    from fraudctl.config import load_settings
    from fraudctl.local.stack import LocalStack

    settings = load_settings({})
    lifecycle.up(settings)
    stack = LocalStack(settings)
    port = stack.postgres.configured_port()
    assert port is not None
    stack.postgres.stop()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        result = invoke(cli, "up")
        assert_clean_error(result, errors.PortInUse.exit_code, f"port {port}")
    finally:
        holder.close()
        lifecycle.down(settings)


def test_debug_shows_the_traceback(cli: CliRunner, isolated_env: Path) -> None:
    result = invoke(cli, "status", "--debug")
    assert result.exit_code == errors.StackNotFound.exit_code
    assert "Traceback" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--rate", "nan"), "--rate must be a positive number, got nan"),
    (("--rate", "inf"), "--rate must be a positive number, got inf"),
    (("--seed", "-1"), "--seed must be 0 to 4294967295, got -1"),
    (("--duration", "0s", "--count", "5"), "--duration must be longer than zero"),
    (("--duration", "10s", "--count", "5", "--rate", "3"), "over-determine"),
])
def test_produce_refuses_impossible_runs_before_touching_anything(
    cli: CliRunner, isolated_env: Path, args: tuple[str, ...], message: str
) -> None:
    result = invoke(cli, "produce", *args)
    assert_clean_error(result, errors.ConfigError.exit_code, message)
    assert not isolated_env.exists()


def test_count_and_duration_together_set_the_pace() -> None:
    from fraudctl.cli.produce import pace

    assert pace(None, 10.0, 5) == 0.5
    assert pace(7.0, None, 5) == 7.0 and pace(None, 10.0, None) is None


def test_a_settings_file_that_is_binary_or_a_folder_is_a_clear_error(
    cli: CliRunner, isolated_env: Path, tmp_path: Path
) -> None:
    binary = tmp_path / "fraudctl.toml"
    binary.write_bytes(bytes(range(256)))
    for config, message in ((binary, "is not valid TOML: it is not UTF-8 text"),
                            (tmp_path, "is not a file")):
        result = invoke(cli, "status", "--config", str(config))
        assert result.exit_code == errors.ConfigError.exit_code, result.stderr
        assert message in " ".join(result.stderr.split())    # (a long path wraps the line)
        assert "Traceback" not in result.stderr
    assert not isolated_env.exists()


def test_ctrl_c_while_the_command_loads_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGINT before any command runs (while pandas and friends import): no traceback."""
    import importlib.abc
    import sys

    from fraudctl.cli import main

    class InterruptedImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, *_args: object) -> None:
            if name == "fraudctl.cli.app":
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, "fraudctl.cli.app", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_help_keeps_its_defaults_and_environment_variables(cli: CliRunner) -> None:
    """Help texts are plain text: `[default: …]` used to vanish as an unknown markup tag."""
    text = " ".join(invoke(cli, "produce", "--help").stdout.split())
    assert "Transactions per second [default: as fast as the queue takes" in text
    assert "Stack name [env FRAUDCTL_STACK; default fraud]." in text
    assert "[default: 42]" in text
