"""Shared fixtures: an isolated environment per test, a moto server on loopback, a TLS-only
PostgreSQL that stands in for RDS behind `--db-endpoint`, and a fake Kubernetes API.

No test talks to anything beyond 127.0.0.1: instance-metadata lookups are disabled (botocore
would otherwise try 169.254.169.254 when credentials are missing).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from fraudctl.cli.app import app
from fraudctl.local import postgres as local_postgres
from tests.k8s_fake import FakeKubernetes
from tests.tls_proxy import TlsPostgresProxy

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own FRAUDCTL_HOME, no FRAUDCTL_* leaking in, fake AWS credentials;
    a local stack a failed test left up in it is taken down after it."""
    for name in list(os.environ):
        if name.startswith(("FRAUDCTL_", "AWS_")) or name == "KUBECONFIG":
            monkeypatch.delenv(name)
    # No ~/.kube/config of the machine's: a test reaches a cluster only when it says so.
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    home = tmp_path / "home"
    monkeypatch.setenv("FRAUDCTL_HOME", str(home))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.chdir(tmp_path)
    yield home
    _down_leftover_local_stacks(home)


def _down_leftover_local_stacks(home: Path) -> None:
    """A test that fails between `up` and `down` would leave its server and supervised
    processes running (restarted by their keepers) for the rest of the session."""
    from fraudctl import lifecycle
    from fraudctl.config import load_settings

    stacks = home / "local"
    if not stacks.is_dir():
        return
    for stack_dir in sorted(stacks.iterdir()):
        if (stack_dir / "postgres").exists() or (stack_dir / "run").exists():
            settings = load_settings({"home": str(home), "stack": stack_dir.name}, env={})
            try:
                lifecycle.down(settings)
            except Exception as exc:    # the test's own failure is the one to see
                logging.getLogger(__name__).warning("could not take down %s: %s",
                                                    stack_dir, exc)


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Any:
    """Run the CLI in-process; return click's Result (exit_code, stdout, stderr)."""
    return runner.invoke(app, list(args), catch_exceptions=False)


# -- moto ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto(moto_server: str) -> str:
    """A moto server emptied for this test."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return moto_server


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


@pytest.fixture
def node_sg(moto: str) -> str:
    """The cluster nodes' security group, in the default VPC (what k3s nodes would have)."""
    ec2 = client(moto, "ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    created = ec2.create_security_group(
        GroupName="k3s-nodes", Description="cluster nodes", VpcId=vpc["VpcId"]
    )
    group_id: str = created["GroupId"]
    return group_id


# -- a TLS PostgreSQL standing in for RDS ----------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="session")
def rds_stand_in() -> Iterator[str]:
    """A PostgreSQL reachable only over TLS, like RDS with rds.force_ssl: the embedded server
    behind a TLS-terminating proxy (the wheel's build has no TLS of its own).

    The server trusts the password: `up` generates the master password into (moto's) Secrets
    Manager and this server cannot know it in advance. Yields HOST:PORT for --db-endpoint.
    """
    root = Path(tempfile.mkdtemp(prefix="fraudctl-rds-"))
    server = local_postgres.EmbeddedPostgres(root / "postgres")
    port = local_postgres.free_port()
    server.init("fraudctl_admin", "unused-by-trust", port)
    (server.layout.data_dir / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    server.start()
    with psycopg.connect(host="127.0.0.1", port=port, user="fraudctl_admin", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute("CREATE DATABASE fraud")
    cert, key = _self_signed(root)
    proxy = TlsPostgresProxy(port, cert, key)
    proxy.start()
    yield f"127.0.0.1:{proxy.port}"
    proxy.stop()
    server.destroy()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def kubernetes(tmp_path: Path) -> Iterator[FakeKubernetes]:
    """A fake Kubernetes API on loopback (tests/k8s_fake.py); its kubeconfig is beside it."""
    fake = FakeKubernetes().start()
    fake.kubeconfig(tmp_path)
    yield fake
    fake.stop()


def fraudctl_executable() -> str:
    """The installed console script, as a user would run it."""
    found = shutil.which("fraudctl", path=str(Path(sys.executable).parent))
    assert found, "the fraudctl console script is not installed in this environment"
    return found
