"""`fraudctl image build [--push]`: the container tool's calls, and ECR against moto.

This machine has a docker client and no engine (no container can be built here), so the tool
is a stand-in script on PATH that records its arguments and stdin. What is checked is what
fraudctl owns: which tool it finds, the build/login/tag/push calls and their order, the
password on stdin only, the ECR repository it creates, and the image `up` will then deploy.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from fraudctl import image
from tests.conftest import client, invoke

RECORDING_TOOL = """#!/bin/sh
# a container tool stand-in: one JSON line per call (arguments, and stdin for login)
input=""
case "$1" in login) input="$(cat)";; esac
python3 -c 'import json, sys; print(json.dumps({"stdin": sys.argv[1], "argv": sys.argv[2:]}))' \\
    "$input" "$@" >> "$TOOL_LOG"
exit "${TOOL_EXIT:-0}"
"""


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "docker"
    tool.write_text(RECORDING_TOOL)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "tool.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TOOL_LOG", str(log))
    return log


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_build_and_push_to_the_stacks_ecr_repository(cli: Any, moto: str, docker: Path,
                                                     isolated_env: Path) -> None:
    result = invoke(cli, "image", "build", "--push", "--endpoint-url", moto)
    assert result.exit_code == 0, result.stderr
    tag = f"{image.__version__}-{image.source_digest(image.source_root())}"
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraudctl-fraud"
    assert result.stdout.strip() == f"{uri}:{tag}"

    build, login, retag, push = calls(docker)
    assert build["argv"][:2] == ["build", "--file"]
    assert build["argv"][2].endswith("fraudctl/templates/Dockerfile")
    assert build["argv"][3:5] == ["--tag", f"fraudctl:{tag}"]
    assert login["argv"][:4] == ["login", "--username", "AWS", "--password-stdin"]
    password = login["stdin"]
    assert password and all(password not in " ".join(c["argv"]) for c in calls(docker))
    assert retag["argv"] == ["tag", f"fraudctl:{tag}", f"{uri}:{tag}"]
    assert push["argv"] == ["push", f"{uri}:{tag}"]

    ecr = client(moto, "ecr")
    [repository] = ecr.describe_repositories(repositoryNames=["fraudctl-fraud"])["repositories"]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"]["scanOnPush"] is True
    tags = ecr.list_tags_for_resource(resourceArn=repository["repositoryArn"])["tags"]
    assert {"Key": "fraudctl:stack", "Value": "fraud"} in tags

    # what `up` and `render` now deploy, without --image
    rendered = invoke(cli, "render")
    assert rendered.exit_code == 0 and f"image: {uri}:{tag}" in rendered.stdout
    again = invoke(cli, "image", "build", "--push", "--endpoint-url", moto)
    assert again.exit_code == 0, again.stderr               # the repository exists: reused


def test_a_failing_tool_is_one_error_with_a_hint(cli: Any, docker: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOL_EXIT", "1")
    result = invoke(cli, "image", "build")
    assert result.exit_code == 12
    assert "`docker build` failed (exit 1)" in result.stderr
    assert "docker info" in result.stderr


def test_no_container_tool_is_a_clear_error(cli: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = invoke(cli, "image", "build", "--tool", "podman")
    assert result.exit_code == 2 and "no container tool found (podman)" in result.stderr
