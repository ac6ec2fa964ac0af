"""The nodes' security group is found through IMDSv2 (a fake metadata server on loopback)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from fraudctl.aws import ec2


class FakeMetadata(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        assert self.path == "/latest/api/token"
        self._reply("token-123")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "token-123":
            self.send_response(401)
            self.end_headers()
            return
        answers = {
            "/latest/meta-data/mac": "0e:00:00:00:00:01",
            "/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/security-group-ids":
                "sg-0123456789abcdef0\nsg-0fedcba9876543210",
        }
        self._reply(answers[self.path])

    def _reply(self, text: str) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metadata_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), FakeMetadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_node_group_from_imdsv2(metadata_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata_server)
    assert ec2.node_group_from_metadata() == "sg-0123456789abcdef0"


def test_off_ec2_there_is_no_node_group(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ec2.node_group_from_metadata() is None          # disabled by the test environment
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
    assert ec2.node_group_from_metadata() is None          # nothing answers
