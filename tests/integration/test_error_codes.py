"""One error taxonomy (cspm.errors): every user-facing error class lives there, has a stable code of its
own, is drawn in the module's tree and listed in docs/cli.md; `--json` errors carry the code."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import cspm_registry

import cspm
from cspm import errors
from cspm.errors import CspmError
from tests.conftest import ROOT
from tests.integration.test_cli import cspm as run_cspm


def _all_classes() -> list[type[CspmError]]:
    for package in (cspm, cspm_registry):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name.startswith(("cspm.cli.main", "cspm.__main__", "cspm.schemas.compile",
                                       "cspm_registry.__main__")):
                continue
            importlib.import_module(module.name)
    found, todo = [], [CspmError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: c.__name__)


def test_every_error_class_is_in_the_one_module_with_a_code_of_its_own() -> None:
    classes = _all_classes()
    elsewhere = [f"{c.__module__}.{c.__name__}" for c in classes if c.__module__ != "cspm.errors"]
    assert not elsewhere, f"define these in cspm.errors (the one taxonomy): {elsewhere}"
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    for cls in classes:
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)?", cls.code), cls


def test_the_tree_and_the_docs_list_every_code() -> None:
    tree = errors.__doc__ or ""
    table = (ROOT / "docs" / "cli.md").read_text().split("### Error codes", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_.]+)`", table))
    for cls in _all_classes():
        assert re.search(rf"\b{cls.__name__}\s+{re.escape(cls.code)}\s+{int(cls.exit_code)}\b", tree), cls
        assert cls.code in documented, f"{cls.code} is not in docs/cli.md's error codes"


def test_a_json_error_carries_its_code(tmp_path: Path) -> None:
    result = run_cspm("run", str(tmp_path / "missing.yaml"), "--json", cwd=tmp_path)
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"].startswith("input") and "missing.yaml" in error["message"]
    (tmp_path / "app.yaml").write_text("entry: x\ntools: [{name: x, plugin: 'Bad Name@1'}]\n")
    result = run_cspm("lock", "--json", cwd=tmp_path)
    error = json.loads(result.stdout)["error"]
    assert result.returncode == 2 and error["code"] in ("input.format", "input.name"), error


def test_a_refusal_keeps_the_registry_api_code() -> None:
    refused = errors.Refused("too big", None, 413, "too_large")
    assert refused.as_json() == {"code": "publish.refused", "message": "too big", "status": 413,
                                 "api_code": "too_large"}
