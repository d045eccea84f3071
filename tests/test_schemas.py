"""The ahead-of-time validators of cspm/schemas/compiled/: current with the schema files, and in
agreement with jsonschema (the reference) on the repo's real documents and thousands of mutations
of them. A valid file is checked by the compiled validator alone, so "yes" must mean yes."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
import yaml

from cspm import schemas
from cspm.schemas import compile as compile_schemas
from tests.conftest import ROOT

ODDITIES: list[Any] = [None, -1, 0, 2**40, "", "x" * 5000, "../..", "a\0b", "ЕXAMPLE", [], {}, {"x": 1}, True,
                       1.5, ["call"] * 3, "sha256:" + "0" * 64]


def documents(name: str) -> list[Any]:
    """Real documents of each format, from the repo."""
    if name == "app.json":  # as the schema sees them: after ${VAR:-default} interpolation
        from cspm.formats import yamlsrc
        from cspm.formats.interpolate import interpolate_app

        apps = []
        for path in sorted(ROOT.glob("examples/**/*.yaml")):
            if path.name != "plugin.yaml":
                located = yamlsrc.load_file(path)
                interpolate_app(located.data, located, str(path))
                apps.append(located.data)
        return apps
    if name == "lock.json":
        return [yaml.safe_load(p.read_text()) for p in sorted(ROOT.glob("examples/**/*.lock"))]
    if name == "plugin.json":
        return [yaml.safe_load(p.read_text()) for p in sorted(ROOT.glob("plugins/*/plugin.yaml"))]
    if name == "config.json":
        return [{"registries": [{"name": "corp", "url": "https://registry.corp.example", "namespaces": ["corp"]},
                                {"name": "chainsocket", "url": "file:///srv/index"}]}]
    lines = [json.loads(line) for p in sorted((ROOT / "index").rglob("*")) if p.is_file() and p.parent.name != "sha256"
             and p.name not in ("config.json", "names") and "blobs" not in p.parts
             for line in p.read_text().splitlines() if line.strip()]
    return lines


def mutate(doc: Any, rng: random.Random) -> Any:
    data = copy.deepcopy(doc)
    target = data
    while True:
        if isinstance(target, dict) and target:
            key = rng.choice([*sorted(target), "unknown"])
            if key in target and isinstance(target[key], dict | list) and target[key] and rng.random() < 0.7:
                target = target[key]
                continue
            if rng.random() < 0.15 and key in target:
                del target[key]
            else:
                target[key] = rng.choice(ODDITIES)
            return data
        if isinstance(target, list) and target:
            i = rng.randrange(len(target))
            if isinstance(target[i], dict | list) and target[i] and rng.random() < 0.7:
                target = target[i]
                continue
            target[i] = rng.choice(ODDITIES)
            return data
        return rng.choice(ODDITIES)


@pytest.mark.parametrize("name", sorted(schemas.COMPILED))
def test_compiled_validators_are_current(name: str) -> None:
    path = compile_schemas.OUT / f"{schemas.COMPILED[name]}.py"
    assert path.read_text(encoding="utf-8") == compile_schemas.generate(name), \
        f"{path} is stale: run `python -m cspm.schemas.compile`"


@pytest.mark.parametrize("name", sorted(schemas.COMPILED))
def test_compiled_validators_agree_with_jsonschema(name: str) -> None:
    fast, slow = schemas.fast_valid(name), schemas.validator(name)
    docs = documents(name)
    assert docs, f"no real documents for {name}"
    for doc in docs:
        assert fast(doc) and not list(slow.iter_errors(doc)), doc
    rng = random.Random(name)
    rejected = 0
    for i in range(1500):
        data = mutate(docs[i % len(docs)], rng)
        verdict = not list(slow.iter_errors(data))
        assert fast(data) == verdict, data
        rejected += not verdict
        if not verdict:
            assert schemas.problem(name, data) is not None
    assert rejected > 300  # the mutations do reach the schema's rules
