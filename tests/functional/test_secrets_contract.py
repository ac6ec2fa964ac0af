"""The Secrets port, one test body run against both adapters: owner-only files and Secrets
Manager (a moto server on loopback). `create` is exclusive: the first writer's value wins."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fraudctl import errors
from fraudctl.ports import Secrets

NAME = "fraudctl/contract/db-admin"


@pytest.fixture(params=["files", "secretsmanager"])
def secrets(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Secrets]:
    if request.param == "files":
        from fraudctl.local.secrets import FileSecrets

        yield FileSecrets(tmp_path / "secrets")
        return
    from fraudctl.aws.secrets import SecretsManagerSecrets
    from fraudctl.aws.session import AwsSession
    from fraudctl.config import load_settings

    endpoint = request.getfixturevalue("moto")
    settings = load_settings({"target": "aws", "endpoint_url": endpoint}, env={})
    yield SecretsManagerSecrets(AwsSession(settings))


def test_create_is_exclusive_and_keeps_the_first_value(secrets: Secrets) -> None:
    assert not secrets.exists(NAME)
    with pytest.raises(errors.StackNotFound):
        secrets.get(NAME)
    assert secrets.create(NAME, {"password": "first"}) is True
    assert secrets.create(NAME, {"password": "second"}) is False
    assert secrets.exists(NAME)
    assert secrets.get(NAME) == {"password": "first"}
    secrets.put(NAME, {"password": "rotated"})  # put is the deliberate overwrite
    assert secrets.get(NAME) == {"password": "rotated"}


def test_racing_creators_agree_on_one_value(secrets: Secrets) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(
            lambda i: secrets.create(NAME, {"password": f"writer-{i}"}), range(8)
        ))
    assert created.count(True) == 1
    winner = created.index(True)
    assert secrets.get(NAME) == {"password": f"writer-{winner}"}


def test_secret_files_are_owner_only_and_no_temporaries_remain(tmp_path: Path) -> None:
    from fraudctl.local.secrets import FileSecrets

    store = FileSecrets(tmp_path / "secrets")
    store.create(NAME, {"password": "first"})
    store.create(NAME, {"password": "second"})
    files = list((tmp_path / "secrets").iterdir())
    assert [f.name for f in files] == ["db-admin"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) & 0o077 == 0
