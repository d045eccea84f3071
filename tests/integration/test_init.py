"""`cspm init` (issue 16): a working app from nothing. The offline template runs at once with no
server, key or network (the bundled registry and a model inside Wasm); the openai template declares
its secret and grant and runs against an OpenAI-compatible server (a scripted one on loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cspm import templates
from cspm.formats import app as app_format
from tests.integration.test_cli import cspm
from tests.scripted import openai_chat


@pytest.fixture(autouse=True)
def fresh_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new user: no config (so the bundled registry), an empty store."""
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))


def test_list_shows_the_templates() -> None:
    result = cspm("init", "--list")
    assert result.returncode == 0, result.stderr
    assert "offline (default)" in result.stdout and "openai" in result.stdout
    listed = json.loads(cspm("init", "--list", "--json").stdout)["templates"]
    assert {t["name"] for t in listed} >= {"offline", "openai"}
    assert [t["name"] for t in listed if t["default"]] == ["offline"]


def test_init_writes_a_locked_installed_app_that_runs_offline_at_once(tmp_path: Path) -> None:
    proj = tmp_path / "my-app"
    proj.mkdir()
    result = cspm("init", cwd=proj)
    assert result.returncode == 0, result.stderr
    assert "created app.yaml from template offline" in result.stderr and "cspm run app.yaml" in result.stderr
    app = app_format.load(proj / "app.yaml")
    assert app.name == "my-app" and app.entry_component.kind == "agent"
    kinds = {c.kind for c in app.components.values()}
    assert kinds == {"agent", "llm", "tool"}
    assert "chainsocket/selfask-tiny" in (proj / "app.lock").read_text()
    # installed: a run needs no registry at all (--offline), and asks no server
    ran = cspm("run", "app.yaml", "--offline", "--json", "--input",
               "Who was born first, Kogail Bagrol or Stolvle Thema?", cwd=proj)
    assert ran.returncode == 0, ran.stderr
    data = json.loads(ran.stdout)
    assert data["finish_reason"] == "final_answer" and data["output"]


def test_init_never_overwrites_an_app(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("name: mine\n")
    result = cspm("init", str(path))
    assert result.returncode == 2 and "already exists" in result.stderr and "cspm add" in result.stderr
    assert path.read_text() == "name: mine\n" and not (tmp_path / "app.lock").exists()


def test_unknown_template_says_which_exist(tmp_path: Path) -> None:
    result = cspm("init", str(tmp_path / "x"), "--template", "opnai")
    assert result.returncode == 2 and "did you mean 'openai'?" in result.stderr
    assert not (tmp_path / "x").exists()


def test_the_openai_template_declares_its_secret_and_grant_and_runs(  # type: ignore[no-untyped-def]
        tmp_path: Path, scripted) -> None:
    result = cspm("init", str(tmp_path / "proj"), "--template", "openai", "--name", "calc", "--json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert done["app"] == str(tmp_path / "proj" / "app.yaml") and done["name"] == "calc" and done["locked"] == 3
    app = app_format.load(tmp_path / "proj" / "app.yaml")
    openai = app.components["openai"]
    assert [(s.name, s.source) for s in openai.secrets] == [("api_key", "env:OPENAI_API_KEY")]
    assert openai.grant.hosts == ("https://api.openai.com",)
    llm = scripted()
    llm.reply(openai_chat("Let me compute.\nAction: calculator\nAction Input: (2340 * 0.17) ^ 2"))
    llm.reply(openai_chat("I now know the final answer\nFinal Answer: 158244.84"))
    env = {"OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-init-test"}
    ran = cspm("run", str(tmp_path / "proj" / "app.yaml"), "--json", "--trace", "--input",
               "What is 17% of 2,340, squared?", env=env)
    assert ran.returncode == 0, ran.stderr
    data = json.loads(ran.stdout)
    assert (data["output"], data["finish_reason"]) == ("158244.84", "final_answer")
    assert [c["name"] for c in data["trace"]["children"]] == ["openai", "calculator", "openai"]
    assert llm.seen[0].headers["authorization"] == "Bearer sk-init-test"  # the key goes to the granted origin
    assert "158244.84" in "\n".join(m["content"] for m in llm.seen[-1].json["messages"])


def test_every_template_is_a_valid_app_of_bundled_packages(tmp_path: Path) -> None:
    for template in templates.templates().values():
        path = tmp_path / template.name / "app.yaml"
        path.parent.mkdir()
        path.write_text(templates.render(template.name, "t"))
        app = app_format.load(path, env={})
        assert {c.kind for c in app.components.values()} == {"agent", "llm", "tool"}, template.name
        assert all(c.plugin_ref and c.plugin_ref.startswith("chainsocket/") for c in app.components.values())
