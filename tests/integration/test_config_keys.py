"""Config keys are checked against every manifest (issue 16, item 12): a plug-in that declares no
config takes none, so a typo is never accepted silently; plugin.yaml's own unknown keys get a
"did you mean" as app.yaml's do; every shipped plug-in and example still loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from cspm.errors import FormatError
from cspm.formats import app as app_format
from cspm.formats import manifest as manifest_format
from cspm.project import Project
from tests.conftest import ROOT
from tests.integration.test_cli import cspm

PLAIN = "name: acme/plain\nversion: 1.0.0\nkind: tool\nabi: 1\nwasm: m.wasm\ndescription: reads no config\n"


def app_over(tmp_path: Path, manifest: str, config: str) -> Path:
    folder = tmp_path / "plain"
    folder.mkdir(parents=True)
    (folder / "plugin.yaml").write_text(manifest)
    path = tmp_path / "app.yaml"
    path.write_text(f"entry: t\ntools:\n  - name: t\n    plugin_name: plain\n    config: {config}\n")
    return path


def test_a_plugin_that_declares_no_config_takes_none(tmp_path: Path) -> None:
    path = app_over(tmp_path, PLAIN, "{unitt: metric}")
    with pytest.raises(FormatError) as info:
        app_format.load(path)
    assert info.value.line == 5 and info.value.field == "tools[0].config.unitt"
    assert "acme/plain takes no config (its plugin.yaml declares none); remove 'unitt'" in str(info.value)
    result = cspm("run", str(path), "-i", "x")
    assert result.returncode == 2 and f"{path}:5: tools[0].config.unitt: acme/plain takes no config" in result.stderr
    assert app_format.load(app_over(tmp_path / "empty", PLAIN, "{}")).components["t"].config == {}


def test_a_typo_in_a_declared_config_gets_did_you_mean(tmp_path: Path) -> None:
    path = app_over(tmp_path, PLAIN + "config: {units: {type: string}}\n", "{unitt: metric}")
    with pytest.raises(FormatError, match=r"acme/plain has no config key 'unitt' \(did you mean 'units'\?\)"):
        app_format.load(path)


@pytest.mark.parametrize(("change", "message"), [
    ("descripton: x\n", r"descripton: unknown field \(did you mean 'description'\?\)"),
    ("capabilites: {}\n", r"capabilites: unknown field \(did you mean 'capabilities'\?\)"),
    ("config: {u: {type: string, defualt: x}}\n", r"config.u.defualt: unknown field \(did you mean 'default'\?\)"),
    ("secrets: {k: {enviroment: X}}\n", r"secrets.k.enviroment: unknown field"),
    ("xyz: 1\n", r"xyz: unknown field$"),
])
def test_plugin_yaml_unknown_keys_get_did_you_mean(tmp_path: Path, change: str, message: str) -> None:
    (tmp_path / "plugin.yaml").write_text(PLAIN + change)
    with pytest.raises(FormatError, match=message):
        manifest_format.load(tmp_path)


def test_secret_declarations_name_their_variable_and_origins() -> None:
    expected = {"openai-chat": ("OPENAI_API_KEY", ("api.openai.com",)),
                "anthropic": ("ANTHROPIC_API_KEY", ("api.anthropic.com",)),
                "serpapi-search": ("SERPAPI_API_KEY", ("serpapi.com",))}
    for folder, (env, hosts) in expected.items():
        decl = manifest_format.load(ROOT / "plugins" / folder).secrets["api_key"]
        assert (decl.env, decl.hosts) == (env, hosts)


def test_every_shipped_plugin_and_example_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))  # the bundled registry only
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))
    manifests = [*ROOT.glob("plugins/*/plugin.yaml"), *ROOT.glob("examples/*/plugin.yaml"),
                 *ROOT.glob("models/*/plugin.yaml")]
    assert len(manifests) >= 15
    for path in manifests:
        manifest_format.load(path)
    apps = [*ROOT.glob("examples/*/app.yaml"), *ROOT.glob("examples/*.yaml")]
    assert len(apps) >= 5
    for path in apps:  # installed from the bundled registry by their committed locks, bound as `cspm run` does
        with Project(path) as project:
            app = project.prepare(frozen=True)
        assert all(c.manifest is not None for c in app.components.values() if c.plugin_ref), path
    assert app_format.load(ROOT / "examples" / "local" / "pirate-smollm2.yaml")  # its model is the user's


def test_a_missing_required_secret_hints_the_declared_variable(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(f"entry: s\ntools:\n  - {{name: s, plugin_name: {ROOT / 'plugins' / 'serpapi-search'}}}\n")
    with pytest.raises(FormatError, match="needs the secret `api_key`") as info:
        app_format.load(path)
    assert info.value.hint == "add `secrets: {api_key: env:SERPAPI_API_KEY}`"
