"""`cspm cache ls|clean` know every folder of the cache dir, and clean only the parts named."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import cspm


def test_every_cache_folder_is_a_part_that_clean_removes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for part in ("models/ab/model.gguf", "data/cd/people.json", "verdicts/ef.json", "call/x/app.yaml",
                 "apps/12/a.b/app.yaml"):
        (cache / part).parent.mkdir(parents=True, exist_ok=True)
        (cache / part).write_text("x")
    env = {"CSPM_CACHE_DIR": str(cache)}
    listed = json.loads(cspm("cache", "ls", "--json", env=env).stdout)
    files = {p["name"]: p["files"] for p in listed["parts"]}
    assert {k: files[k] for k in ("models", "data", "verdicts", "call", "apps")} == dict.fromkeys(
        ("models", "data", "verdicts", "call", "apps"), 1)
    assert cspm("cache", "clean", "models", "verdicts", env=env).returncode == 0
    assert not (cache / "models").exists() and not (cache / "verdicts").exists()
    assert (cache / "data/cd/people.json").exists() and (cache / "apps/12/a.b/app.yaml").exists()
    assert cspm("cache", "clean", env=env).returncode == 0
    assert not any((cache / part).exists() for part in ("data", "call", "apps"))
