"""`cspm model list|remove` (issue 16): the models `cspm model add` put in the local registry, listed,
and removed with their bytes (registry blob, store blob, mounted copy) once no version uses them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from cspm import models
from cspm.store import Store
from tests.integration.test_cli import cspm

GGUF = b"GGUF" + struct.pack("<I", 3) + b"\0" * 16


@pytest.fixture(autouse=True)
def own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))


def add(tmp_path: Path, name: str, version: str, weights: bytes) -> dict:
    model = tmp_path / f"{weights[:8].hex()}.gguf"
    model.write_bytes(GGUF + weights)
    result = cspm("model", "add", str(model), "--name", name, "--version", version, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def listed() -> list[tuple[str, str]]:
    result = cspm("model", "list", "--json")
    assert result.returncode == 0, result.stderr
    return [(m["name"], m["version"]) for m in json.loads(result.stdout)["models"]]


def test_list_shows_what_model_add_added(tmp_path: Path) -> None:
    assert listed() == []
    empty = cspm("model", "list")
    assert empty.returncode == 0 and "cspm model add" in empty.stderr
    first = add(tmp_path, "local/tiny", "1.0.0", b"one" * 50)
    add(tmp_path, "local/tiny", "1.1.0", b"two" * 50)
    add(tmp_path, "other/big", "2.0.0", b"three" * 50)
    assert listed() == [("local/tiny", "1.0.0"), ("local/tiny", "1.1.0"), ("other/big", "2.0.0")]
    table = cspm("model", "list").stdout.splitlines()
    assert table[0].split()[:2] == ["local/tiny", "1.0.0"] and first["digest"][:19] in table[0]


def test_remove_one_version_then_the_rest_and_free_the_bytes(tmp_path: Path) -> None:
    old = add(tmp_path, "local/tiny", "1.0.0", b"one" * 50)
    new = add(tmp_path, "local/tiny", "1.1.0", b"two" * 50)
    same = add(tmp_path, "local/same", "1.0.0", b"two" * 50)  # the same bytes as local/tiny 1.1.0
    registry = Path(old["registry_dir"])
    mounted = models.materialize(Store(), old["digest"])
    assert (mounted / "model.gguf").exists()

    result = cspm("model", "remove", "local/tiny@1.0.0")
    assert result.returncode == 0 and "removed model local/tiny 1.0.0" in result.stderr, result.stderr
    assert listed() == [("local/same", "1.0.0"), ("local/tiny", "1.1.0")]
    hexdigest = old["digest"].split(":", 1)[1]
    assert not (registry / "blobs" / "sha256" / hexdigest).exists()
    assert not Store().has(old["digest"]) and not mounted.exists()
    info = json.loads(cspm("info", "local/tiny", "--json").stdout)
    assert info["selected"]["version"] == "1.1.0"

    removed = json.loads(cspm("model", "remove", "local/tiny", "--json").stdout)["removed"]
    assert [m["version"] for m in removed] == ["1.1.0"]
    assert listed() == [("local/same", "1.0.0")]
    assert Store().has(new["digest"]) and Store().has(same["digest"])  # local/same still uses them
    assert (registry / "blobs" / "sha256" / new["digest"].split(":", 1)[1]).exists()
    names = (registry / "names").read_text()
    assert "local/tiny" not in names and "local/same" in names
    assert cspm("info", "local/tiny").returncode != 0


def test_removing_what_is_not_there_says_so(tmp_path: Path) -> None:
    add(tmp_path, "local/tiny", "1.0.0", b"one" * 50)
    for target in ("local/nope", "local/tiny@2.0.0"):
        result = cspm("model", "remove", target)
        assert result.returncode == 2 and "no model" in result.stderr and "cspm model list" in result.stderr
    assert listed() == [("local/tiny", "1.0.0")]


def test_a_folder_registry_of_ones_own(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(GGUF + b"x" * 100)
    folder = tmp_path / "models-registry"
    assert cspm("model", "add", str(model), "--name", "team/m", "--registry-dir", str(folder)).returncode == 0
    assert listed() == []
    result = cspm("model", "list", "--registry-dir", str(folder), "--json")
    assert [m["name"] for m in json.loads(result.stdout)["models"]] == ["team/m"]
    assert cspm("model", "remove", "team/m", "--registry-dir", str(folder)).returncode == 0
    assert not any((folder / "blobs" / "sha256").iterdir())
