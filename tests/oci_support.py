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

        self.storage.mkdir(parents=True, exist_ok=True)
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()  # cheap: checked per request
        (self.root / "htpasswd").write_text(f"{USERNAME}:{hashed}\n")
        (self.root / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: test-secret\n"
            f"auth:\n  htpasswd:\n    realm: cspm-tests\n    path: {self.root / 'htpasswd'}\n")
        self.process = subprocess.Popen([BINARY, "serve", str(self.root / "config.yml")], stdout=subprocess.DEVNULL,
                                        stderr=open(self.root / "registry.log", "ab"))  # noqa: SIM115
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.root / 'registry.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not start listening in 15 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


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
