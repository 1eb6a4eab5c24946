"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks (stdlib only).

``initdb`` into a temporary directory as a non-root user (PostgreSQL refuses
to run as root), ``pg_ctl start`` on a free port, trust authentication for
the one local user, ``fsync=off`` (data is disposable). ``.ci/run`` uses the
command line, the test fixture the class::

    python3 kpihub/testing/postgres.py start /tmp/pg   # prints postgresql://kpihub@127.0.0.1:PORT/postgres
    python3 kpihub/testing/postgres.py stop /tmp/pg

Stdlib only, so ``.ci/run`` can start the server before kpihub is installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "find_bin"]

USER = "kpihub"


def find_bin(name: str) -> str | None:
    """``initdb``/``pg_ctl`` on PATH or in Debian's /usr/lib/postgresql/<version>/bin (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version, reverse=True)
    return candidates[0] if candidates else None


def _version(path: str) -> float:
    try:
        return float(Path(path).parent.parent.name)
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in ``directory`` (a new temporary one by default)."""

    def __init__(self, directory: str | Path | None = None, port: int | None = None) -> None:
        self.directory = Path(directory or tempfile.mkdtemp(prefix="kpihub-pg-"))
        self.data = self.directory / "data"
        self.port = port or _free_port()
        self.run_as = self._os_user()

    @property
    def uri(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def available() -> bool:
        return find_bin("initdb") is not None and find_bin("pg_ctl") is not None

    def start(self) -> str:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL is not installed (initdb not found); apt-get install postgresql")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            uid, gid = pwd.getpwnam(self.run_as).pw_uid, pwd.getpwnam(self.run_as).pw_gid
            os.chown(self.directory, uid, gid)
        self._run([initdb, "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-locale"])
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        options += " -c full_page_writes=off -c synchronous_commit=off"
        log = self.directory / "server.log"
        self._run([pg_ctl, "-D", str(self.data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"])
        (self.directory / "uri").write_text(self.uri)
        return self.uri

    def stop(self) -> None:
        pg_ctl = find_bin("pg_ctl")
        if pg_ctl and (self.data / "postmaster.pid").exists():
            self._run([pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, argv: list[str], check: bool = True) -> None:
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {(result.stderr or result.stdout).strip()[-500:]}")

    @staticmethod
    def _os_user() -> str | None:
        """The user PostgreSQL runs as: ourselves, or (as root) Debian's ``postgres`` or ``nobody``."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: postgres.py start|stop DIRECTORY", file=sys.stderr)
        return 2
    command, directory = argv
    if command == "start":
        print(PostgresServer(directory).start())
    else:
        uri = Path(directory, "uri")
        port = int(uri.read_text().rsplit(":", 1)[1].split("/")[0]) if uri.exists() else None
        PostgresServer(directory, port).stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
