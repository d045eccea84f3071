"""One cache layout (issue 18 §5): every module places its files in a `Bucket`'s folder, and
`cspm cache ls|clean` iterate the buckets, so a full cache is emptied whole (the hard-linked GGUF
too, whose disk space once survived `clean`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cspm import cachedir, models, provenance
from cspm.cachedir import Bucket, Layout
from cspm.index.cache import IndexCache
from cspm.runtime import compiler
from cspm.store import Store
from tests.integration.test_cli import cspm


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("CSPM_CACHE_DIR", str(root))
    return root


def test_version_one_keeps_the_folder_names_users_have_and_later_versions_move() -> None:
    assert [b.layout.folder for b in Bucket] == ["store", "compiled", "index", "apps", "models", "data",
                                                 "verdicts", "call", "plans"]
    assert all(b.layout.legacy == () for b in Bucket)
    assert len({b.part for b in Bucket}) == len(Bucket) == len(cachedir.PARTS)
    bumped = Layout("models", "models", 3, "")
    assert bumped.folder == "models-v3" and bumped.legacy == ("models", "models-v2")


def test_every_module_that_writes_the_cache_asks_its_bucket(cache: Path) -> None:
    store = Store()
    assert store.root == Bucket.STORE.path() == cache / "store"
    assert IndexCache("r").root == Bucket.INDEX.path() / "r"
    assert provenance._verdict_path("sha256:" + "ab" * 32).parent == Bucket.VERDICTS.path()
    assert compiler._seen_dir().parent == Bucket.COMPILED.path()
    digest = store.put(b"GGUF weights")
    assert models.materialize(store, digest).parent == Bucket.MODELS.path()
    assert models.materialize(store, digest, "people.json").parent == Bucket.DATA.path()


def test_clean_frees_every_bucket_and_ls_lists_each(cache: Path) -> None:
    store = Store(Bucket.STORE.path(cache))
    digest = store.put(b"GGUF" + b"w" * 1000)
    (Bucket.MODELS.path(cache) / "m").mkdir(parents=True)
    os.link(store.path(digest), Bucket.MODELS.path(cache) / "m" / "model.gguf")  # as materialize links it
    for bucket in Bucket:
        if bucket not in (Bucket.STORE, Bucket.MODELS):
            (bucket.path(cache) / "sub").mkdir(parents=True)
            (bucket.path(cache) / "sub" / "file").write_text("x" * 10)
    assert store.path(digest).stat().st_nlink == 2

    listed = json.loads(cspm("cache", "ls", "--json").stdout)["parts"]
    assert [p["name"] for p in listed] == [b.part for b in Bucket]
    assert all(p["files"] == 1 and p["bytes"] > 0 and p["version"] == 1 for p in listed), listed

    result = cspm("cache", "clean", "--json")
    assert result.returncode == 0, result.stderr
    assert sorted(p["name"] for p in json.loads(result.stdout)["removed"]) == sorted(cachedir.PARTS)
    assert not store.path(digest).exists() and not Bucket.MODELS.path(cache).exists()
    assert all(p["files"] == 0 for p in json.loads(cspm("cache", "ls", "--json").stdout)["parts"])
    assert sorted(p.name for p in cache.iterdir()) == ["store"]  # only the store's empty tmp/ and locks/
    left = [p for p in cache.rglob("*") if p.is_file()]  # lock files stay: another process may hold one
    assert all(p.parent == store.locks and p.stat().st_size == 0 for p in left), left


def test_clean_removes_the_folders_of_earlier_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket whose format changed: its old folder counts in `ls` and goes with `clean`."""
    old = tmp_path / "verdicts" / "x.json"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    (tmp_path / "verdicts-v2").mkdir()
    (tmp_path / "verdicts-v2" / "y.json").write_text("{}")
    monkeypatch.setattr(Bucket.VERDICTS, "_value_", Layout("verdicts", "verdicts", 2, "signature verdicts"))
    assert Bucket.VERDICTS.path(tmp_path) == tmp_path / "verdicts-v2"
    part = next(p for p in cachedir.usage(tmp_path) if p.name == "verdicts")
    assert (part.files, part.version) == (2, 2)
    cachedir.clean(["verdicts"], tmp_path)
    assert not (tmp_path / "verdicts").exists() and not (tmp_path / "verdicts-v2").exists()


def test_an_unknown_part_is_refused_with_the_list() -> None:
    result = cspm("cache", "clean", "gguf")
    assert result.returncode != 0 and "no cache part 'gguf'" in result.stderr
    assert ", ".join(cachedir.PARTS) in result.stderr
    assert Bucket.named("models") is Bucket.MODELS
    with pytest.raises(KeyError):
        Bucket.named("gguf")
