"""The hostile-input corpus: shared helpers.

Every case runs the real CLI (a subprocess) or the real registry server (on loopback), asserts the
exact error, and asserts that nothing was written: the file trees it could have touched (project,
store, registry folder or data dir) are hashed before and after and must be identical.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import conformance_wasm
from tests.integration.test_cli import cspm

HERE = Path(__file__).resolve().parent
WAT = HERE.parent / "wat"


def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `root` ({} when it is missing).

    Empty folders do not count: the store creates its layout on first use, and that holds nothing.
    """
    if not root.exists():
        return {}
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or (path.parent.name == "locks" and path.suffix == ".lock"):
            continue  # the store's `filelock` files carry nothing
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


class Snapshot:
    """The trees of some folders, to compare after a refused operation."""

    def __init__(self, *roots: Path) -> None:
        self.roots = roots
        self.before = [tree(root) for root in roots]

    def assert_unchanged(self) -> None:
        for root, before in zip(self.roots, self.before, strict=True):
            after = tree(root)
            added = sorted(set(after) - set(before))
            removed = sorted(set(before) - set(after))
            changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
            assert not (added or removed or changed), f"{root} changed: +{added} -{removed} ~{changed}"


def refused(*args: str, code: int | tuple[int, ...], expect: str, cwd: Path | None = None) -> str:
    """Run `cspm ARGS`, which must fail with `code` and say `expect` on stderr (never a traceback)."""
    result = cspm(*args, **({"cwd": cwd} if cwd else {}))
    codes = code if isinstance(code, tuple) else (code,)
    assert result.returncode in codes, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert expect in result.stderr, result.stderr
    assert "internal error" not in result.stderr
    return result.stderr


@pytest.fixture(autouse=True)
def own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each case gets its own config and cache: what one writes is never seen by the next."""
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def wat_modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """tests/wat/*.wat and tests/hostile/wat/*.wat compiled with wat2wasm, by stem."""
    tool = shutil.which("wat2wasm")
    if tool is None:
        pytest.fail("wat2wasm (Debian package wabt) is required: .ci/setup installs it")
    out = tmp_path_factory.mktemp("hostile-wat")
    found = {}
    for source in [*WAT.glob("*.wat"), *(HERE / "wat").glob("*.wat")]:
        target = out / f"{source.stem}.wasm"
        subprocess.run([tool, str(source), "-o", str(target)], check=True)
        found[source.stem] = target.read_bytes()
    return found


@pytest.fixture(scope="session")
def echo_wasm() -> bytes:
    """A real plug-in (the C SDK's conformance plug-in): the base the corpus corrupts."""
    return conformance_wasm("c").read_bytes()


@pytest.fixture(scope="session")
def built_registry(tmp_path_factory: pytest.TempPathFactory, echo_wasm: bytes) -> Path:
    """A folder registry built once by `cspm index build` (test/echo 1.0.0); tests get copies."""
    src = tmp_path_factory.mktemp("hostile-src") / "echo"
    src.mkdir()
    (src / "m.wasm").write_bytes(echo_wasm)
    (src / "plugin.yaml").write_text("name: test/echo\nversion: 1.0.0\nkind: tool\nabi: 1\nwasm: m.wasm\n"
                                     "description: says it back\nconfig: {kind: {type: string}}\n")
    out = tmp_path_factory.mktemp("hostile-registry") / "registry"
    result = cspm("index", "build", str(src.parent), "--out", str(out), "--name", "local")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def folder_registry(tmp_path: Path, built_registry: Path) -> Callable[[], Path]:
    """A copy of the built registry, first in this test's config (as `cspm registry add --first` writes it)."""

    def make() -> Path:
        out = tmp_path / "registry"
        shutil.copytree(built_registry, out)
        config = tmp_path / "config"
        config.mkdir(exist_ok=True)
        (config / "config.yaml").write_text(f"registries:\n- name: local\n  url: {out.as_uri()}\n")
        return out

    return make


APP = 'entry: t\ntools:\n  - {name: t, description: echo, plugin: "test/echo@1"}\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with an app.yaml that uses test/echo from the registry."""
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "app.yaml").write_text(APP)
    return folder


@pytest.fixture(scope="session")
def app_lock(tmp_path_factory: pytest.TempPathFactory, built_registry: Path) -> str:
    """The app.lock `cspm lock` writes for APP against the built registry (it names no path)."""
    root = tmp_path_factory.mktemp("hostile-lock")
    (root / "config").mkdir()
    (root / "config" / "config.yaml").write_text(f"registries:\n- name: local\n  url: {built_registry.as_uri()}\n")
    (root / "app.yaml").write_text(APP)
    result = cspm("lock", str(root / "app.yaml"), env={"CSPM_CONFIG_DIR": str(root / "config"),
                                                       "CSPM_CACHE_DIR": str(root / "cache")})
    assert result.returncode == 0, result.stderr
    return (root / "app.lock").read_text()
