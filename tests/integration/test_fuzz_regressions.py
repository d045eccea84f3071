"""Inputs the fuzz harnesses (fuzz/harnesses/) crashed on, kept as regression tests: each must now be
refused with the module's documented error type, quickly, with a message a user can act on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cspm.errors import CspmError, FormatError
from cspm.formats import app, userconfig, yamlsrc
from cspm.formats.plan import SecretRef

# `? [...]`: a mapping key that is a sequence of nested aliases. The key was built without the node
# budget and then printed with repr() in the error: a 580 MB message and 10 s for these 200 bytes,
# ten times more for each further level.
KEY_BOMB = "? [&l0 [x,x,x,x,x,x,x,x,x,x], " + ", ".join(
    f"&l{i} [{','.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 8)) + "]\n: 1\n"


def test_a_mapping_key_that_is_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(yamlsrc.YamlError) as info:
        yamlsrc.load_text(KEY_BOMB)
    assert info.value.message == "a mapping key is a sequence, not a string" and info.value.line == 1
    assert time.monotonic() - started < 1
    path = tmp_path / "app.yaml"
    path.write_text(KEY_BOMB)
    with pytest.raises(FormatError, match=r"app\.yaml:1: a mapping key is a sequence, not a string$"):
        app.load(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("? {a: 1}\n: 2\n", "a mapping key is a mapping, not a string"),
    ("? 12\n: 2\n", "mapping key 12 is not a string"),
])
def test_other_keys_that_are_not_strings(text: str, expected: str) -> None:
    with pytest.raises(yamlsrc.YamlError, match=expected):
        yamlsrc.load_text(text)


@pytest.mark.parametrize(("text", "line", "expected"), [
    # YAML 1.1 reads these as timestamps, and datetime refused them with a bare ValueError
    ("entry: a\ntools:\n  - {name: a, plugin: acme/calc@1, config: {since: 2001-13-45}}\n", 3,
     "not valid YAML: '2001-13-45' cannot be read as timestamp: month must be in 1..12 (quote it to keep it "
     "as text)"),
    ("2001-01-01 25:00:00: x\n", 1, "cannot be read as timestamp: hour must be in 0..23"),
])
def test_a_scalar_that_is_not_a_valid_timestamp(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(text)
    with pytest.raises(FormatError) as info:
        app.load(path)
    assert info.value.line == line and expected in info.value.message


@pytest.mark.parametrize(("value", "expected"), [
    # found by fuzz/harnesses/formats.py: PyYAML's constructor raised AttributeError on it
    ("!!timestamp https://registry.corp", "'https://registry.corp' cannot be read as timestamp"),
    ("!!bool maybe", "'maybe' cannot be read as bool"),  # KeyError
    ("!!int x", "'x' cannot be read as int: invalid literal"),  # ValueError
])
def test_an_explicit_tag_that_does_not_fit_its_value(tmp_path: Path, value: str, expected: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"registries:\n  - {{name: {value}, url: \"com/x/*\"}}\n")
    with pytest.raises(FormatError, match=rf"config\.yaml:2: not valid YAML: {expected}"):
        userconfig.load(config)


def test_the_user_config_reads_through_the_same_loader(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("registries: []\nwhen: 2001-13-45\n")
    with pytest.raises(FormatError, match=r"config\.yaml:2: not valid YAML: '2001-13-45' cannot be read as timestamp"):
        userconfig.load(config)


def test_plugin_name_in_the_home_of_a_user_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("entry: a\ntools:\n  - name: a\n    plugin_name: ~nosuchuser-cspm/calc.wasm\n")
    with pytest.raises(FormatError) as info:  # was: RuntimeError("Could not determine home directory.")
        app.load(path)
    assert str(info.value) == (f"{path}:4: tools[0].plugin_name: '~nosuchuser-cspm/calc.wasm': no such user's "
                               f"home folder")


def test_a_secret_file_in_the_home_of_a_user_that_does_not_exist(tmp_path: Path) -> None:
    from cspm.runtime.secrets import resolve

    with pytest.raises(CspmError, match=r"secret `key` of tool a: cannot read ~nosuchuser-cspm/key: "):
        resolve("tool a", SecretRef("key", "file:~nosuchuser-cspm/key", "Authorization", "Bearer {}", None, None))


def test_a_granted_path_in_the_home_of_a_user_that_does_not_exist(tmp_path: Path) -> None:
    from tests.conftest import conformance_wasm
    from tests.integration.test_cli import cspm

    path = tmp_path / "app.yaml"
    path.write_text(f"entry: a\ntools:\n  - name: a\n    plugin_name: {conformance_wasm('c')}\n"
                    f"    grant: {{paths: {{'~nosuchuser-cspm/data': /data}}}}\n")
    result = cspm("run", str(path), "-i", "x")  # asserts that there is no traceback
    assert result.returncode == 1, result.stderr
    assert "granted path '~nosuchuser-cspm/data': no such user's home folder" in result.stderr
