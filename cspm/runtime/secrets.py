"""Resolve `secrets:` (env:NAME, file:PATH) once at load; values live only in the host."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cspm.errors import CspmError
from cspm.formats.plan import SecretRef

MAX_SECRET_BYTES = 16 * 1024


@dataclass(frozen=True)
class ResolvedSecret:
    spec: SecretRef
    value: str

    def __repr__(self) -> str:  # never print a value, even by accident
        return f"ResolvedSecret({self.spec.name!r}, <redacted>)"

    @property
    def header_value(self) -> str:
        return self.spec.format.replace("{}", self.value)


def local_path(ref: str, base_dir: Path) -> Path:
    """A path an app names (a `file:` secret, a granted folder): `~` expanded, relative to the app's folder."""
    try:
        path = Path(ref).expanduser()
    except RuntimeError:  # `~user` of no such user: kept as written, so reading it says "no such file"
        return Path(ref)
    return path if path.is_absolute() else base_dir / path


def _read_file(path: Path, what: str) -> str:
    """At most MAX_SECRET_BYTES of a regular file, whatever `stat` claims: /dev/zero, /proc files and
    FIFOs report a size of 0 and never end (or never start). O_NONBLOCK so a FIFO cannot hang the open."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CspmError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CspmError(f"{what}: {path} is not a regular file")
        data = b""
        while len(data) <= MAX_SECRET_BYTES:
            chunk = os.read(fd, MAX_SECRET_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise CspmError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_BYTES:
        raise CspmError(f"{what}: {path} is larger than {MAX_SECRET_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CspmError(f"{what}: {path} is not UTF-8 text") from None


def resolve(owner: str, spec: SecretRef) -> ResolvedSecret:
    """The value of a plan's secret reference (`file:` paths in a plan are absolute, cspm.planner)."""
    kind, _, ref = spec.source.partition(":")
    if kind == "env":
        value = os.environ.get(ref)
        if value is None:
            raise CspmError(f"secret `{spec.name}` of {owner}: environment variable {ref} is not set",
                            hint=f"export {ref}=... before `cspm run`")
    else:
        path = local_path(ref, Path.cwd())  # absolute in a plan (cspm.planner); `~nosuchuser` as written
        value = _read_file(path, f"secret `{spec.name}` of {owner}").strip()
    if not value or any(ch in value for ch in "\r\n\0"):
        raise CspmError(f"secret `{spec.name}` of {owner} is empty or spans several lines")
    return ResolvedSecret(spec, value)
