"""Package-manager formats: index lines, app.lock, the user config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version

from cspm.errors import FormatError
from cspm.formats import lock as lock_format
from cspm.formats import userconfig
from cspm.formats.index_line import BadIndexLine, parse_file, parse_line, to_line

DIGEST = "sha256:" + "ab" * 32
LINE = {"name": "acme/calc", "version": "1.2.0", "kind": "tool", "abi": 1, "digest": DIGEST, "size": 1234,
        "exports": ["call"], "imports": ["extism:host/env/input_load_u8"], "capabilities": {"hosts": []},
        "dependencies": {}, "signature": None, "yanked": False, "published": "2026-11-24T00:00:00Z"}


def line(**changes: object) -> str:
    return to_line({**LINE, **changes})


def test_good_line() -> None:
    entry = parse_line(line(), "acme/calc", "reg:1")
    assert (entry.version, entry.digest, entry.is_yanked) == (Version("1.2.0"), DIGEST, False)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not JSON"),
    ("[1]", "a JSON object"),
    (line(v=2, extra=1), "newer than this cspm reads"),
    (line(extra=1, size=-1), "size"),
    (line(size=10**12), "size"),
    (line(size=-1), "size"),
    (line(name="acme/../etc"), "name"),
    (line(name="acme/c\u0430lc"), "name"),
    (line(name="acme/other"), "not 'acme/calc'"),
    (line(version="one"), "not a PEP 440 version"),
    (line(digest="sha256:xyz"), "digest"),
    (line(dependencies={"acme/x": ">>1"}), "not a version specifier"),
    ("x" * 300_000, "longer than"),
])
def test_bad_lines_are_refused_with_place(text: str, message: str) -> None:
    with pytest.raises(BadIndexLine, match="reg:7") as info:
        parse_line(text, "acme/calc", "reg:7")
    assert message in str(info.value)


def test_file_keeps_good_lines_and_refuses_digest_swaps() -> None:
    swapped = line(digest="sha256:" + "cd" * 32)
    content = "\n".join([line(), line(version="1.3.0"), "garbage", swapped, line(yanked="broken build")]).encode()
    entries, problems = parse_file(content, "acme/calc", "reg/acme/calc")
    assert [str(e.version) for e in entries] == ["1.2.0", "1.3.0"]
    assert entries[0].yanked == "broken build" and entries[0].digest == DIGEST
    assert len(problems) == 2 and "reg/acme/calc:3" in problems[0] and "second digest is refused" in problems[1]


def test_lock_roundtrip_and_atomic_write(tmp_path: Path) -> None:
    path = tmp_path / "app.lock"
    plugin = lock_format.LockedPlugin("acme/calc", Version("1.2.0"), "chainsocket", DIGEST, 1234, "tool", 1,
                                      {"hosts": ["x.test"]}, ["calc"], {"issuer": "i", "identity": "me"},
                                      {"description": "calculator"})
    lock_format.write(lock_format.Lock(path, [plugin]))
    assert path.read_text().startswith("# This file is written by `cspm lock`")
    loaded = lock_format.load(path)
    assert loaded.by_name()["acme/calc"] == plugin and loaded.for_component("calc") == plugin
    assert [p.name for p in tmp_path.iterdir()] == ["app.lock"]  # no temp file left


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("lock-version: 1", "lock-version: 9"), "1 was expected"),
    (lambda t: t.replace(DIGEST, "sha256:short"), "does not match"),
    (lambda t: t.replace("registry: chainsocket", "registry: https://evil.test/"), "does not match"),
    (lambda t: t + "extra: 1\n", "Additional properties"),
    (lambda t: "[: bad yaml", "app.lock"),
])
def test_hand_edited_lock_is_refused_with_line_and_fix(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.lock"
    plugin = lock_format.LockedPlugin("acme/calc", Version("1.2.0"), "chainsocket", DIGEST, 1234, "tool", 1, {},
                                      ["calc"])
    lock_format.write(lock_format.Lock(path, [plugin]))
    path.write_text(edit(path.read_text()))
    with pytest.raises(FormatError, match=message) as info:
        lock_format.load(path)
    assert str(path) in str(info.value)


def test_user_config_defaults_and_routing(tmp_path: Path) -> None:
    missing = userconfig.load(tmp_path / "none.yaml")
    assert not missing.exists and missing.registries[0].name == "chainsocket"
    assert missing.registries[0].url.startswith("file://") and missing.registries[0].url.endswith("/index")
    path = tmp_path / "config.yaml"
    path.write_text("registries:\n  - {name: corp, url: https://reg.corp.test/, namespaces: [corp]}\n"
                    "  - {name: local, url: ./mirror}\n")
    config = userconfig.load(path)
    assert [(r.name, r.url, r.namespaces) for r in config.registries] == [
        ("corp", "https://reg.corp.test", ("corp",)), ("local", (tmp_path / "mirror").as_uri(), ())]
    userconfig.save(config)
    assert userconfig.load(path).registries == config.registries


@pytest.mark.parametrize(("text", "message"), [
    ("registries:\n  - {name: a, url: ftp://x}\n", "does not match"),
    ("registries:\n  - {name: a, url: https://x}\n  - {name: a, url: https://y}\n", "listed twice"),
    ("registries:\n  - {name: a, url: https://x, namespaces: [../x]}\n", "does not match"),
    ("mirrors: []\n", "Additional properties"),
])
def test_bad_user_config(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(FormatError, match=message):
        userconfig.load(path)


def test_to_line_is_canonical() -> None:
    assert to_line(json.loads(line())) == line() and " " not in line()


def test_the_fast_index_line_check_agrees_with_jsonschema() -> None:
    """The compiled check may only say yes where jsonschema says yes (it decides alone on the hot path)."""
    import copy
    import random

    from cspm import schemas

    fast, slow = schemas.fast_valid("index-line.json"), schemas.validator("index-line.json")
    base = json.loads(line(capabilities={"hosts": ["a.example"], "paths": {"/d": "/g"}, "kv": True},
                           dependencies={"acme/x": ">=1"}, description="d", features=["tool_calling"],
                           secrets={"api_key": {"required": True, "header": "X-Key"}},
                           config={"n": {"type": "integer", "default": 3}}))
    oddities = [None, -1, 0, 2**40, "", "x" * 5000, "../..", "a\0b", [], {}, {"x": 1}, True, 1.5, ["call"] * 3]
    rng = random.Random(7)
    checked = 0
    for _ in range(3000):
        data = copy.deepcopy(base)
        target, path = data, []
        while isinstance(target, dict) and target and rng.random() < 0.6:
            key = rng.choice(sorted(target))
            path.append(key)
            if not isinstance(target[key], dict):
                break
            target = target[key]
        if isinstance(target, dict):
            key = rng.choice([*sorted(target), "unknown"]) if target else "unknown"
            target[key] = rng.choice(oddities)
        agree = fast(data) == (not list(slow.iter_errors(data)))
        assert agree or not fast(data), (path, data)  # fast "yes" must never be jsonschema "no"
        checked += 1
    assert checked == 3000 and fast(base) and not fast({**base, "size": -1})


def test_a_component_s_module_is_never_its_data_or_model_package() -> None:
    """Lock.for_component: a data or model package used by the same component, first in the lock (a name
    that sorts first), is not the module the component runs."""
    import dataclasses

    from tests.conftest import ROOT

    lock = lock_format.load(ROOT / "examples" / "self-ask-demo" / "app.lock")
    data_first = dataclasses.replace(lock, plugins=sorted(lock.plugins, key=lambda p: p.kind != "data"))
    assert data_first.plugins[0].kind == "data" and "kb" in data_first.plugins[0].used_by
    assert data_first.for_component("kb").name == "chainsocket/kb"
    model_first = dataclasses.replace(lock, plugins=sorted(lock.plugins, key=lambda p: p.kind != "model"))
    assert model_first.for_component("tiny").name == "chainsocket/llm-local"


def test_a_registry_name_is_one_rule_in_the_file_and_in_registry_add(tmp_path: Path) -> None:
    """`registry add` refused `corp_eu`, which config.yaml and app.lock accept: now one rule for both."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "CSPM_CONFIG_DIR": str(tmp_path / "config")}

    def cspm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cspm.cli.main", *args], capture_output=True, text=True,
                              cwd=ROOT, env=env, timeout=60)

    added = cspm("registry", "add", "corp_eu", "https://registry.corp.example", "--namespace", "corp")
    assert added.returncode == 0, added.stderr
    config = userconfig.load(tmp_path / "config" / "config.yaml")
    assert "corp_eu" in [r.name for r in config.registries]
    for bad in ("Corp", "_corp", "corp eu", "c" * 65):
        refused = cspm("registry", "add", bad, "https://registry.corp.example")
        assert refused.returncode == 2 and "registry name" in refused.stderr, (bad, refused.stderr)
