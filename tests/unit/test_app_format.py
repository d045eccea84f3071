"""app.yaml loading: valid configs load; bad ones name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from cspm.errors import FormatError
from cspm.formats import app as app_format

GOOD = """\
name: demo
entry: boss
llms:
  - name: gpt
    description: chat
    plugin_name: llm.wasm
    config: {model: m, temperature: 0.2}
    secrets:
      api_key: env:OPENAI_API_KEY
      other: {from: "file:key.txt", header: x-api-key, format: "{}", hosts: [api.example.com]}
    grant: {hosts: [api.example.com]}
tools:
  - {name: search, description: web search, plugin_name: /abs/search.wasm}
agents:
  - name: boss
    description: the entry
    plugin_name: agent.wasm
    prompt: be brief
    llms: [gpt]
    tools: [search]
"""


def load(tmp_path: Path, text: str) -> app_format.AppConfig:
    path = tmp_path / "app.yaml"
    path.write_text(text, encoding="utf-8")
    return app_format.load(path)


def error_of(tmp_path: Path, text: str) -> FormatError:
    with pytest.raises(FormatError) as info:
        load(tmp_path, text)
    return info.value


def test_good_config_loads_with_types_and_paths(tmp_path: Path) -> None:
    app = load(tmp_path, GOOD)
    assert app.name == "demo" and app.entry == "boss"
    gpt = app.components["gpt"]
    assert gpt.kind == "llm" and gpt.plugin_path == tmp_path / "llm.wasm"
    assert gpt.config == {"model": "m", "temperature": 0.2}
    assert gpt.grant.hosts == ("https://api.example.com",) and gpt.grant.kv is False
    assert [s.name for s in gpt.secrets] == ["api_key", "other"]
    assert gpt.secrets[0].header == "Authorization" and gpt.secrets[0].format == "Bearer {}"
    assert gpt.secrets[1].header == "x-api-key" and gpt.secrets[1].hosts == ("https://api.example.com",)
    assert app.components["search"].plugin_path == Path("/abs/search.wasm")
    boss = app.components["boss"]
    assert boss.prompt == "be brief" and boss.llms == ("gpt",) and boss.tools == ("search",)
    assert boss.line == 15


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, "entry: a\nagents:\n  - name: [unclosed\n")
    assert err.line == 4 or err.line == 3
    assert "not valid YAML" in str(err) and str(err).startswith(str(tmp_path / "app.yaml"))


def test_unknown_field_is_named_with_suggestion(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("    prompt: be brief", "    promt: be brief"))
    assert err.line == 18 and err.field == "agents[0].promt"
    assert "did you mean 'prompt'" in str(err)


def test_reference_to_undeclared_tool(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("tools: [search]", "tools: [serch]"))
    assert err.field == "agents[0].tools[0]" and err.line == 20
    assert "'serch' is not a tool of this app (did you mean 'search'?)" in str(err)


def test_reference_of_the_wrong_kind(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("tools: [search]", "tools: [gpt]"))
    assert "'gpt' is an llm, not a tool" in str(err)


def test_missing_entry(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("entry: boss", "entry: bos"))
    assert err.field == "entry" and err.line == 2 and "did you mean 'boss'" in str(err)


def test_duplicate_names_across_kinds(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("name: search", "name: gpt"))
    assert "already used by the llm on line 4" in str(err)


def test_plugin_source_is_required_and_exclusive(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("plugin_name: /abs/search.wasm", "description2: x").replace(
        "description2: x", "config: {}"))
    assert "needs one of `plugin_name`" in str(err) and err.field == "tools[0]"
    err = error_of(tmp_path, GOOD.replace("plugin_name: agent.wasm", "plugin_name: a.wasm\n    plugin: ns/a@1"))
    assert "has both" in str(err)


def test_bad_name_and_bad_secret(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("name: search", "name: ../etc"))
    assert err.field == "tools[0].name"
    err = error_of(tmp_path, GOOD.replace("env:OPENAI_API_KEY", "OPENAI_API_KEY"))
    assert err.field == "llms[0].secrets.api_key" and "env:NAME" in str(err)


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    lines.append("entry: x")
    err = error_of(tmp_path, "\n".join(lines) + "\n")
    assert "alias bomb" in str(err)


def test_not_utf8_missing_file_and_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_bytes(b"entry: \xff\xfe\n")
    with pytest.raises(FormatError, match="not UTF-8"):
        app_format.load(path)
    with pytest.raises(FormatError, match="no such file") as info:
        app_format.load(tmp_path / "missing.yaml")
    assert info.value.hint
    assert "expected a mapping" in str(error_of(tmp_path, "- just\n- a list\n"))


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    err = error_of(tmp_path, "entry: a\nentry: b\n")
    assert "duplicate key 'entry'" in str(err) and err.line == 2
