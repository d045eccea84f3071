"""Hostile registries and hand-edited lockfiles: bad index lines, a blob that is not what its line
says, and locks edited by hand. `cspm lock`/`install --frozen`/`run` refuse with what is wrong, and
the project, the store and the registry are left as they were."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.conftest import Snapshot, refused

NAME_PATTERN = "[a-z0-9]"  # shown in full: the message is text, not console markup


def _edit(line: dict, **changes: object) -> str:
    return json.dumps({**line, **changes})


INDEX_CASES: list[tuple[str, Callable[[dict], str], str]] = [
    ("bad-json", lambda line: '{"name": "test/echo", ', "index/test/echo:1: not JSON"),
    ("not-an-object", lambda line: "[1, 2, 3]", "index/test/echo:1: an index line is a JSON object"),
    ("newer-format", lambda line: _edit(line, v=2, surprise=1), "written in index format v2, newer than this cspm"),
    ("unknown-field-beside-a-bad-one", lambda line: _edit(line, surprise=1, size=-1), "size: -1 is less than"),
    ("absurd-size", lambda line: _edit(line, size=10**15), "size: 1000000000000000 is greater than the maximum"),
    ("negative-size", lambda line: _edit(line, size=-1), "size: -1 is less than the minimum of 1"),
    ("name-dotdot", lambda line: _edit(line, name="test/../echo"),
     f"name: 'test/../echo' does not match '^{NAME_PATTERN}"),
    ("name-extra-slash", lambda line: _edit(line, name="test/echo/x"), "name: 'test/echo/x' does not match"),
    ("name-nul", lambda line: _edit(line, name="test/echo\u0000"), "name: 'test/echo\\x00' does not match"),
    ("name-cyrillic-e", lambda line: _edit(line, name="test/\u0435cho"), "name: 'test/\u0435cho' does not match"),
    ("name-of-another-package", lambda line: _edit(line, name="test/other"),
     "line is for 'test/other', not 'test/echo'"),
    ("bad-digest", lambda line: _edit(line, digest="sha256:../../etc/passwd"), "digest: 'sha256:../../etc/passwd'"),
    ("huge-line", lambda line: _edit(line, description="x" * 300_000), "line longer than 262144 bytes"),
]


@pytest.mark.parametrize("make, expect", [c[1:] for c in INDEX_CASES], ids=[c[0] for c in INDEX_CASES])
def test_bad_index_lines_are_refused(folder_registry: Callable[..., Path], project: Path, own_dirs: Path,
                                     make: Callable[[dict], str], expect: str) -> None:
    registry = folder_registry()
    index = registry / "index" / "test" / "echo"
    index.write_text(make(json.loads(index.read_text())) + "\n")
    snap = Snapshot(project, own_dirs / "store", registry)
    stderr = refused("lock", str(project / "app.yaml"), code=1, expect=expect)
    assert "registry local has test/echo, but none of its index lines is valid" in stderr
    assert "tell the registry's operator" in stderr
    snap.assert_unchanged()  # no app.lock, nothing stored


def test_a_blob_whose_digest_does_not_match_its_line(folder_registry: Callable[..., Path], project: Path,
                                                     own_dirs: Path, app_lock: str) -> None:
    registry = folder_registry()
    (project / "app.lock").write_text(app_lock)
    [blob] = (registry / "blobs" / "sha256").iterdir()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    blob.write_bytes(bytes(data))
    snap = Snapshot(project, own_dirs / "store", registry)
    for command in (("install", "--frozen"), ("run", "--frozen", "-i", "x")):
        stderr = refused(command[0], str(project / "app.yaml"), *command[1:], code=1,
                         expect=f"test/echo 1.0.0: download of sha256:{blob.name} from registry local has digest")
        assert "discarded" in stderr and "tell its operator" in stderr
    snap.assert_unchanged()


def test_a_blob_larger_than_its_line_announces(folder_registry: Callable[..., Path], project: Path,
                                               own_dirs: Path, app_lock: str) -> None:
    registry = folder_registry()
    (project / "app.lock").write_text(app_lock)
    [blob] = (registry / "blobs" / "sha256").iterdir()
    size = blob.stat().st_size
    blob.write_bytes(blob.read_bytes() + b"\0" * 4096)
    snap = Snapshot(project, own_dirs / "store", registry)
    refused("install", str(project / "app.yaml"), "--frozen", code=1,
            expect=f"is larger than the {size} bytes announced")
    snap.assert_unchanged()


LOCK_CASES: list[tuple[str, Callable[[str, str], str], int, str]] = [
    ("garbage", lambda text, digest: "\x00\x01garbage: [", 2, "not valid YAML"),
    ("not-a-mapping", lambda text, digest: "- just\n- a list\n", 2, "expected a mapping with `lock-version`"),
    ("digest-removed", lambda text, digest: text.replace(f"  digest: {digest}\n", ""), 2,
     "'digest' is a required property"),
    ("digest-malformed", lambda text, digest: text.replace(digest, "sha256:xyz"), 2,
     "plugins[0].digest: 'sha256:xyz' does not match"),
    ("digest-changed", lambda text, digest: text.replace(digest, "sha256:" + "0" * 64), 1,
     "registry local has no blob sha256:" + "0" * 64),
    ("size-changed", lambda text, digest: re.sub(r"size: \d+", "size: 100", text), 1,
     "is larger than the 100 bytes announced"),
    ("version-garbage", lambda text, digest: text.replace("version: 1.0.0", "version: one"), 2,
     "'one' is not a version"),
    ("lock-version-2", lambda text, digest: text.replace("lock-version: 1", "lock-version: 2"), 2, "lock-version"),
    ("locked-twice", lambda text, digest: text + text[text.index("- name:"):], 2, "test/echo is locked twice"),
    ("name-lookalike", lambda text, digest: text.replace("name: test/echo", "name: test/\u0435cho"), 2,
     "plugins[0].name: 'test/\u0435cho' does not match"),
    ("yaml-bomb", lambda text, digest: BOMB, 2, "an alias bomb"),
]
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))


@pytest.mark.parametrize("edit, code, expect", [c[1:] for c in LOCK_CASES], ids=[c[0] for c in LOCK_CASES])
def test_hand_edited_locks_are_refused(folder_registry: Callable[..., Path], project: Path, own_dirs: Path,
                                       app_lock: str, edit: Callable[[str, str], str], code: int, expect: str
                                       ) -> None:
    folder_registry()
    app = project / "app.yaml"
    lock = project / "app.lock"
    lock.write_text(app_lock)
    digest = next(line.split()[1] for line in lock.read_text().splitlines() if "digest:" in line)
    lock.write_text(edit(lock.read_text(), digest))
    snap = Snapshot(project, own_dirs / "store")
    refused("install", str(app), "--frozen", code=code, expect=expect)
    refused("run", str(app), "--frozen", "-i", "x", code=code, expect=expect)
    snap.assert_unchanged()  # the lock is not rewritten, nothing is stored
