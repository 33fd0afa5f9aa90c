"""A throwaway PostgreSQL server for tests: its own data folder, a free loopback TCP port and
password (SCRAM) authentication, started from a given bin folder.

Postgres refuses to run as root, and CI runs as root: there the server runs as an unprivileged
system user (the `postgres` user of Debian's packages, or `pgserver`, which the embedded server
creates). pytest-postgresql cannot run the server as another user, hence these few lines.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

PASSWORD = "s3cret-Test-pw"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "pgserver"], check=True)
    return "pgserver"


def _let_others_traverse(path: Path) -> None:
    """Let the server user reach `path` through folders only root may enter (a checkout under /root),
    as the embedded server's library does for its own binaries."""
    for folder in Path(path).resolve().parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


class PostgresServer:
    """initdb + pg_ctl start on 127.0.0.1; `url` connects as the superuser `postgres` with PASSWORD."""

    def __init__(self, bin_dir: Path, *, env: dict[str, str] | None = None, reads: tuple[str, ...] = (),
                 options: str = ""):
        """`reads`: folders the server must read besides its binaries (PYTHONPATH entries);
        `options`: more server settings, as postgres command-line arguments (`-c name=value ...`)."""
        self.bin_dir = Path(bin_dir)
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="pgask-test-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.env = {**os.environ, **(env or {})}
        self.options = options
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.env["HOME"] = str(self.root)  # the server user's own home may not exist
            for path in (self.bin_dir, *map(Path, reads)):
                _let_others_traverse(path)

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def give(self, path: Path) -> None:
        """Make a file in the server's folder the server user's."""
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        subprocess.run([str(self.bin_dir / args[0]), *args[1:]], check=True, env=self.env, user=self.user,
                       cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def start(self) -> "PostgresServer":
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD)
        self.give(pwfile)
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
                      f"--pwfile={pwfile}", "--encoding=UTF8", "--no-sync")
            self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.root / "log"), "-o",
                      f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off {self.options}",
                      "start")
        except subprocess.CalledProcessError as exc:
            log = self.root / "log"
            raise RuntimeError(f"{exc.cmd[0]} failed: {exc.output}\n{log.read_text() if log.exists() else ''}") from exc
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
