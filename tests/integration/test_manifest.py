"""plugin.yaml manifests, and app.yaml components that point at a plug-in folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from cspm.errors import FormatError
from cspm.formats import app as app_format
from cspm.formats import manifest as manifest_format

MANIFEST = """\
name: acme/weather
version: 1.2.0
kind: tool
description: current weather for a city
abi: 1
wasm: build/weather.wasm
capabilities: {hosts: [api.weather.test], kv: true, memory_pages: 64, timeout_ms: 5000}
config:
  units: {type: string, default: metric, enum: [metric, imperial]}
  days: {type: integer, default: 1}
secrets:
  api_key: {description: weather API key, required: true, header: x-api-key}
  token: {query: token}
input_schema: {type: object, properties: {city: {type: string}}, required: [city]}
"""


def plugin_folder(tmp_path: Path, text: str = MANIFEST) -> Path:
    folder = tmp_path / "weather"
    (folder / "build").mkdir(parents=True)
    (folder / "plugin.yaml").write_text(text, encoding="utf-8")
    return folder


def app_with(tmp_path: Path, body: str) -> app_format.AppConfig:
    path = tmp_path / "app.yaml"
    path.write_text("entry: w\ntools:\n  - name: w\n    plugin_name: weather\n" + body, encoding="utf-8")
    return app_format.load(path)


def test_manifest_loads_typed(tmp_path: Path) -> None:
    m = manifest_format.load(plugin_folder(tmp_path))
    assert (m.name, str(m.version), m.kind, m.abi) == ("acme/weather", "1.2.0", "tool", 1)
    assert m.wasm == tmp_path / "weather" / "build" / "weather.wasm"
    assert m.config_defaults() == {"units": "metric", "days": 1}
    assert m.secrets["api_key"].header == "x-api-key" and m.secrets["api_key"].required


@pytest.mark.parametrize(("change", "message"), [
    (("name: acme/weather", "name: Acme/../x"), "name: a name is `namespace/name`"),
    (("version: 1.2.0", "version: one"), "'one' is not a PEP 440 version"),
    (("abi: 1", "abi: 2"), "ABI 2 is not supported"),
    (("wasm: build/weather.wasm", "wasm: ../../etc/passwd"), "inside the plug-in folder"),
    (("wasm: build/weather.wasm", "wasm: /etc/passwd"), "inside the plug-in folder"),
    (("kind: tool", "kind: gadget"), "kind: 'gadget' is not one of"),
    (("abi: 1", "abi: 1\nicon: x.png"), "icon: unknown field"),
])
def test_bad_manifests_name_line_and_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    folder = plugin_folder(tmp_path, MANIFEST.replace(*change))
    with pytest.raises(FormatError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        manifest_format.load(folder)
    assert f"{folder / 'plugin.yaml'}:" in str(info.value)


def test_app_component_from_folder_takes_defaults_from_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    plugin_folder(tmp_path)
    app = app_with(tmp_path, "    config: {days: 3}\n    secrets: {api_key: env:WEATHER_KEY, token: env:T}\n"
                             "    grant: {hosts: [api.other.test]}\n")
    w = app.components["w"]
    assert w.plugin_path == tmp_path / "weather" / "build" / "weather.wasm"
    assert w.description == "current weather for a city"
    assert w.config == {"units": "metric", "days": 3}
    # the app's grant overrides the manifest's capabilities key by key
    assert w.grant.hosts == ("https://api.other.test",) and w.grant.kv and w.grant.memory_pages == 64
    key, token = w.secrets
    assert (key.header, key.format, key.query) == ("x-api-key", "{}", None)
    assert token.query == "token"


def test_app_refuses_unknown_config_key_with_suggestion(tmp_path: Path) -> None:
    plugin_folder(tmp_path)
    with pytest.raises(FormatError, match=r"app.yaml:5: tools\[0\].config.unit: acme/weather has no config key "
                                          r"'unit' \(did you mean 'units'\?\)"):
        app_with(tmp_path, "    config: {unit: metric}\n    secrets: {api_key: env:K}\n")


def test_app_refuses_wrong_config_type_and_enum(tmp_path: Path) -> None:
    plugin_folder(tmp_path)
    with pytest.raises(FormatError, match="expects integer for 'days'"):
        app_with(tmp_path, "    config: {days: many}\n    secrets: {api_key: env:K}\n")
    with pytest.raises(FormatError, match="'units' must be one of"):
        app_with(tmp_path, "    config: {units: kelvin}\n    secrets: {api_key: env:K}\n")
    # a string that parses as the declared type is accepted (it may come from ${VAR})
    assert app_with(tmp_path, "    config: {days: '5'}\n    secrets: {api_key: env:K}\n").components["w"].config[
        "days"] == "5"


def test_app_requires_declared_secret_and_refuses_unknown(tmp_path: Path) -> None:
    plugin_folder(tmp_path)
    with pytest.raises(FormatError, match="needs the secret `api_key` \\(weather API key\\)") as info:
        app_with(tmp_path, "")
    assert "secrets: {api_key: env:" in (info.value.hint or "")
    with pytest.raises(FormatError, match="reads no secret 'apikey' \\(did you mean 'api_key'\\?\\)"):
        app_with(tmp_path, "    secrets: {apikey: env:K}\n")


def test_app_refuses_plugin_of_another_kind(tmp_path: Path) -> None:
    plugin_folder(tmp_path, MANIFEST.replace("kind: tool", "kind: llm"))
    with pytest.raises(FormatError, match="acme/weather is an llm plug-in, not a tool"):
        app_with(tmp_path, "    secrets: {api_key: env:K}\n")


def test_env_interpolation_in_config_and_grant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASE", "http://127.0.0.1:8123/v1")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    path = tmp_path / "app.yaml"
    path.write_text(
        "entry: x\nllms:\n  - name: x\n    plugin_name: x.wasm\n"
        "    config: {base_url: '${BASE}', model: '${UNSET_VAR:-small}', price: '$$5', list: ['${BASE}']}\n"
        "    grant: {hosts: ['${BASE}', 'api.example.com']}\n", encoding="utf-8")
    x = app_format.load(path).components["x"]
    assert x.config == {"base_url": "http://127.0.0.1:8123/v1", "model": "small", "price": "$5",
                        "list": ["http://127.0.0.1:8123/v1"]}
    assert x.grant.hosts == ("http://127.0.0.1:8123", "https://api.example.com")


def test_env_interpolation_unset_names_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    path = tmp_path / "app.yaml"
    path.write_text("entry: x\nllms:\n  - name: x\n    plugin_name: x.wasm\n"
                    "    config:\n      model: ${NOPE_NOT_SET}\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"app.yaml:6: llms\[0\].config.model: environment variable "
                                          r"NOPE_NOT_SET is not set"):
        app_format.load(path)


def test_secrets_and_names_are_never_interpolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIL", "x")
    path = tmp_path / "app.yaml"
    path.write_text("entry: x\nllms:\n  - name: x\n    plugin_name: ${EVIL}.wasm\n", encoding="utf-8")
    assert app_format.load(path).components["x"].plugin_path == tmp_path / "${EVIL}.wasm"


def _conformance_folder(tmp_path: Path, name: str, kind: str, extra: str = "") -> Path:
    from tests.conftest import conformance_wasm

    folder = tmp_path / name
    (folder / "build").mkdir(parents=True)
    (folder / "build" / "p.wasm").write_bytes(conformance_wasm("c").read_bytes())
    (folder / "plugin.yaml").write_text(
        f"name: test/{name}\nversion: 1.0.0\nkind: {kind}\ndescription: the {name} from its manifest\nabi: 1\n"
        f"wasm: build/p.wasm\nconfig: {{kind: {{type: string, default: {kind}}}}}\n{extra}", encoding="utf-8")
    return folder


def test_descriptors_carry_manifest_description_and_input_schema(tmp_path: Path) -> None:
    from cspm.planner import load_app

    _conformance_folder(tmp_path, "calc", "tool", "input_schema: {type: object, properties: {x: {type: number}}}\n")
    _conformance_folder(tmp_path, "boss", "agent")
    path = tmp_path / "app.yaml"
    path.write_text("entry: boss\ntools:\n  - {name: calc, plugin_name: calc}\n"
                    "agents:\n  - {name: boss, plugin_name: boss, tools: [calc]}\n", encoding="utf-8")
    with load_app(path) as rt:
        payload = rt._agent_payload(rt.nodes["boss"], "hi", rt.session)
        assert payload["tools"] == [{"name": "calc", "description": "the calc from its manifest",
                                     "input_schema": {"type": "object", "properties": {"x": {"type": "number"}}}}]
        # the conformance agent calls its first tool: proves the manifest's config default `kind` arrived
        assert rt.run("ping").output == "ping"


def test_tools_refused_to_llm_without_tool_calling(tmp_path: Path) -> None:
    import json

    from cspm.planner import load_app

    _conformance_folder(tmp_path, "plain", "llm")
    _conformance_folder(tmp_path, "smart", "llm", "features: [tool_calling]\n")
    _conformance_folder(tmp_path, "boss", "agent")
    path = tmp_path / "app.yaml"
    path.write_text("entry: boss\nllms:\n  - {name: plain, plugin_name: plain}\n  - {name: smart, plugin_name: smart}\n"
                    "agents:\n  - {name: boss, plugin_name: boss, llms: [plain, smart]}\n", encoding="utf-8")
    tools = [{"name": "calc", "description": "math", "input_schema": {"type": "object"}}]
    with load_app(path) as rt:
        for target, refused in (("plain", True), ("smart", False)):
            request = {"name": target, "messages": [{"role": "user", "content": "2+2"}], "tools": tools}
            answer = json.loads(rt.call_export("boss", "raw", b"call_llm\n" + json.dumps(request).encode()))
            if refused:
                assert answer["error"]["code"] == "unsupported"
                assert "does not do native tool calling" in answer["error"]["message"]
            else:
                assert answer["content"] == "echo: 2+2"
