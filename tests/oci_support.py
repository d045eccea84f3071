"""A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on loopback, with
htpasswd auth and deletes enabled, in a temp dir, stopped at the end.

Distribution 2.8 has no referrers API, so cspm's tag fallback is what these tests exercise; it
serves whatever bytes are on its disk (a tampered blob is the client's to catch). `.ci/setup`
installs the package; without it the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
USERNAME = "ci"
PASSWORD = "s3cret-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OciRegistry:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The registry as cspm's config names it: plain HTTP, since it is on loopback."""
        return f"oci://{self.host}/cspm"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def blob_file(self, digest: str) -> Path:
        """Where distribution keeps a blob on disk (to tamper with it)."""
        hexdigest = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"

    def start(self) -> None:
        import bcrypt

        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()  # cheap: checked per request
        (self.root / "htpasswd").parent.mkdir(parents=True, exist_ok=True)
        (self.root / "htpasswd").write_text(f"{USERNAME}:{hashed}\n")
        self.process = start_distribution(self.root, self.port,
                                          f"htpasswd:\n    realm: cspm-tests\n    path: {self.root / 'htpasswd'}\n")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def start_distribution(root: Path, port: int, auth: str) -> subprocess.Popen[bytes]:
    """docker-registry on 127.0.0.1:`port`, storing in `root/storage`, deletes enabled, with `auth` (the
    YAML under its `auth:` key); returns once it listens."""
    storage = root / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    (root / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\nauth:\n  {auth}")
    log = root / "registry.log"
    with open(log, "ab") as errors:
        process = subprocess.Popen([BINARY, "serve", str(root / "config.yml")], stdout=subprocess.DEVNULL,
                                   stderr=errors)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return process
        time.sleep(0.05)
    stop_process(process)
    raise RuntimeError("docker-registry did not start listening in 15 s")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def oci_registry(tmp_path: Path) -> Iterator[OciRegistry]:
    if not Path(BINARY).exists():
        pytest.skip("no `docker-registry` (Debian's CNCF distribution): .ci/setup installs it")
    registry = OciRegistry(tmp_path / "oci-registry", free_port())
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()
