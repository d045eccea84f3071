"""A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` in a temp dir, listening only on a unix
socket in that dir (no TCP port to collide with another run), trust auth, torn down at the end.

Debian puts the server binaries in /usr/lib/postgresql/<version>/bin (not on PATH); `.ci/setup`
installs the `postgresql` package. `initdb` refuses to run as root, so as root the cluster runs as
the `postgres` user (made by that package) or else `nobody`, through util-linux's `setpriv`.

Use the `postgres_url` fixture (a fresh, empty database of a cluster shared by the session) or
`Cluster` directly for a cluster a test may stop and start (`pg_cluster` is the session's).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PORT = 5432  # only names the socket file in the cluster's own dir: no TCP listener
NO_BINARIES = ("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin: "
               "install Debian's `postgresql` package (.ci/setup does)")


def bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: PATH first, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return versions[-1].parent if versions else None


def _run_as() -> pwd.struct_passwd | None:
    """The user the cluster runs as: None for ourselves, unless we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail("running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as")


class Cluster:
    """One cluster in its own temp dir; `url(db)` reaches it over the unix socket as superuser `cspm`."""

    _names = itertools.count()

    def __init__(self) -> None:
        found = bin_dir()
        if found is None:
            pytest.skip(NO_BINARIES)
        self.bin = found
        self.user = _run_as()
        self.dir = Path(tempfile.mkdtemp(prefix="cspm-pg-", dir="/tmp"))  # short: a socket path is <108 bytes
        self.data = self.dir / "data"
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._pg("initdb", "-D", str(self.data), "-U", "cspm", "--auth=trust", "-E", "UTF8", "--locale=C",
                 "--no-sync", "--no-instructions")
        self.start()

    def _pg(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / tool), *args]
        if self.user is not None:
            command = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--clear-groups",
                       *command]
        result = subprocess.run(command, cwd=self.dir, capture_output=True, text=True, timeout=120,
                                env={**os.environ, "LC_ALL": "C"})
        if result.returncode != 0:
            log = self.dir / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({result.returncode}): {result.stderr}{result.stdout}"
                               f"\n{tail}")
        return result

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60", "-o",
                 f"-k {self.dir} -p {PORT} -c listen_addresses='' -c fsync=off -c max_connections=200", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://cspm@/{db}?host={self.dir}&port={PORT}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}".encode())
        return self.url(name)

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    yield cluster
    cluster.remove()


@pytest.fixture
def postgres_url(pg_cluster: Cluster) -> str:
    """The URL of a fresh, empty database (`postgresql://cspm@/tN?host=/tmp/cspm-pg-…&port=5432`)."""
    return pg_cluster.new_database()
