"""The workloads' container image: built from fraudctl's source tree with the container tool
found on the machine (docker, nerdctl or podman), and pushed to the stack's ECR repository.

The tag is the version and a digest of the sources, so the same tree always gives the same tag
and ECR's immutable tags never refuse a rebuild of it. The registry password goes to the tool
on stdin, never in its arguments (where `ps` would show it).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fraudctl import __version__, errors

TOOLS = ("docker", "nerdctl", "podman")
REPOSITORY = "fraudctl"
# where `image build --push` records the pushed image for `up` and `render` (the stack state)
STATE_KEY = "image"


@dataclass(frozen=True)
class BuiltImage:
    tool: str
    reference: str          # REGISTRY/REPOSITORY:TAG, or fraudctl:TAG before a push
    tag: str


def container_tool(preferred: str | None = None) -> str:
    for name in (preferred,) if preferred else TOOLS:
        found = shutil.which(name) if name else None
        if found:
            return found
    wanted = preferred or ", ".join(TOOLS)
    raise errors.ConfigError(f"no container tool found ({wanted})",
                             "install one of docker, nerdctl or podman, or give --tool PATH")


def source_root() -> Path:
    """The checkout fraudctl runs from: the image is built from its sources."""
    root = Path(str(resources.files("fraudctl"))).resolve().parent
    pyproject = root / "pyproject.toml"
    if not pyproject.exists() or 'name = "fraudctl"' not in pyproject.read_text():
        raise errors.ConfigError("`image build` needs fraudctl's source tree",
                                 "run it from a checkout installed with `pip install -e .`, "
                                 "or give an existing image with --image")
    return root


def source_digest(root: Path) -> str:
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", root / "README.md",
             *sorted(p for p in (root / "fraudctl").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts)]
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _run(argv: list[str], what: str, *, stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, text=True, check=False)
    if done.returncode != 0:
        raise errors.CloudError(f"`{what}` failed (exit {done.returncode})",
                                "its output is above; is the container engine running "
                                f"(`{Path(argv[0]).name} info`)?")


def build(tool: str, root: Path, repository: str = REPOSITORY) -> BuiltImage:
    tag = f"{__version__}-{source_digest(root)}"
    reference = f"{repository}:{tag}"
    dockerfile = root / "fraudctl" / "templates" / "Dockerfile"
    _run([tool, "build", "--file", str(dockerfile), "--tag", reference, str(root)],
         f"{Path(tool).name} build")
    return BuiltImage(tool, reference, tag)


def push(image: BuiltImage, repository_uri: str, registry: str, username: str,
         password: str) -> BuiltImage:
    target = f"{repository_uri}:{image.tag}"
    name = Path(image.tool).name
    _run([image.tool, "login", "--username", username, "--password-stdin", registry],
         f"{name} login {registry}", stdin=password)
    _run([image.tool, "tag", image.reference, target], f"{name} tag")
    _run([image.tool, "push", target], f"{name} push {target}")
    return BuiltImage(image.tool, target, image.tag)
