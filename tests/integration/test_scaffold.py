"""`cspm new`: every language × kind scaffold, created in a folder outside the repository, passes its own
test.sh (build, `cspm call`, `cspm run` of its app.yaml), builds the same bytes when moved to another
folder, and embeds no path of the machine it was built on (issue 17)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cspm import scaffold
from tests.integration.test_cli import cspm

ALL_HOST_FUNCTIONS = {"call_llm", "call_tool", "call_agent", "http_fetch", "kv_get", "kv_set", "emit",
                      "http_open", "http_read", "http_close"}  # with the streaming extension (docs/abi.md)
FOLLOW_USE = {"rust", "c", "go", "zig"}  # AssemblyScript's hostCall looks a function up by name: all ten


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that is not inside the checkout (tmp_path may be configured under it)."""
    folder = tmp_path_factory.mktemp("scaffold")
    assert not str(folder.resolve()).startswith(str(Path(__file__).resolve().parents[2]) + os.sep)
    return folder


def run_test_sh(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["./test.sh"], cwd=project, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("kind", scaffold.KINDS)
@pytest.mark.parametrize("lang", scaffold.LANGS)
def test_a_new_project_builds_runs_and_passes_its_own_test(lang: str, kind: str, outside: Path) -> None:
    if not (scaffold.FOLDER / lang / kind).is_dir():
        pytest.fail(f"no {lang} {kind} scaffold")
    made = cspm("new", f"acme/my-{kind}", "--lang", lang, "--kind", kind, "--dir", str(outside / "a"), "--json")
    assert made.returncode == 0, made.stderr
    project = Path(json.loads(made.stdout)["folder"])
    done = run_test_sh(project)
    assert done.returncode == 0 and "all passed" in done.stdout, done.stdout + done.stderr
    wasm = project / "build" / f"my-{kind}.wasm"
    first = wasm.read_bytes()
    inspected = cspm("inspect", str(wasm), "--json")
    assert inspected.returncode == 0, inspected.stderr
    user = {i.split("::")[1] for i in json.loads(inspected.stdout)["imports"] if i.startswith("extism:host/user::")}
    # docs/sdk/README.md: which SDKs import only the host functions a plug-in calls
    uses = {"tool": set(), "llm": set(), "agent": {"call_tool"}}[kind]
    assert user == (uses if lang in FOLLOW_USE or not uses else ALL_HOST_FUNCTIONS), user
    for needle in (str(outside).encode(), b"/usr/share/cargo", b"/root/", str(Path.home()).encode() + b"/"):
        assert needle not in first, f"{wasm} embeds {needle!r}"
    # moved one folder deeper (relative paths only): it still builds, to the same bytes
    moved = outside / "deeper" / "b"
    moved.parent.mkdir()
    shutil.copytree(project, moved, symlinks=True, ignore=shutil.ignore_patterns("build", "target", "node_modules"))
    shutil.rmtree(project)
    rebuilt = subprocess.run(["./build.sh"], cwd=moved, capture_output=True, text=True, timeout=600)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert (moved / "build" / f"my-{kind}.wasm").read_bytes() == first


def test_new_refuses_a_folder_with_files_and_leaves_nothing_half_written(outside: Path) -> None:
    taken = outside / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    refused = cspm("new", "acme/x", "--lang", "c", "--dir", str(taken))
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]
    for args, words in ((["--lang", "rusty"], "did you mean 'rust'"), (["--lang", "c", "--kind", "tol"], "'tool'"),
                        (["--lang", "c", "--kind", "tool"], None)):
        name = "Bad_Name" if words is None else "acme/y"
        result = cspm("new", name, *args, "--dir", str(outside / "y"))
        assert result.returncode == 2, result.stderr
        assert (words or "namespace and name use lowercase") in result.stderr
        assert not (outside / "y").exists()
    assert not [p for p in outside.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    made = scaffold.new(outside / "fresh", "acme/x", "c", "tool")
    umask = os.umask(0)
    os.umask(umask)
    assert made.folder.stat().st_mode & 0o777 == 0o777 & ~umask  # a folder like any other, not mkdtemp's 0700


def test_every_scaffold_file_is_rendered_and_the_sdk_is_a_copy(outside: Path) -> None:
    for lang in scaffold.LANGS:
        if not (scaffold.FOLDER / lang).is_dir():
            continue
        done = scaffold.new(outside / lang, "acme/word-count", lang, "tool")
        for rel in done.files:
            path = done.folder / rel
            assert not path.is_symlink(), rel
            if not rel.startswith("sdk/"):
                assert "{{" not in path.read_text(encoding="utf-8"), rel
        assert (done.folder / "plugin.yaml").read_text().startswith("# ")
        assert "name: acme/word-count" in (done.folder / "plugin.yaml").read_text()
        assert os.access(done.folder / "build.sh", os.X_OK) and os.access(done.folder / "test.sh", os.X_OK)
