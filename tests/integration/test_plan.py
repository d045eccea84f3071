"""The run plan (issue 18): `cspm plan` for every example app validates against plan.json, reads back
to the same document, is the same bytes when planned again, and holds secrets by reference only; the
checks refuse what the schema cannot say (an entry or a callee the plan does not hold)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cspm import planner
from cspm.errors import CapabilityError
from cspm.formats import app as app_format
from cspm.formats import plan as plan_format
from cspm.formats.app import Origin
from cspm.store import digest_of
from tests.conftest import ROOT, conformance_wasm, write_app
from tests.integration.test_cli import cspm

EXAMPLES = ["examples/hello-conformance.yaml", "examples/self-ask-demo/app.yaml", "examples/pirate/app.yaml",
            "examples/react-calculator/app.yaml", "examples/self-ask-search/app.yaml"]


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for lang in ("rust", "c", "zig"):
        conformance_wasm(lang)


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_plans_to_a_valid_document_twice_the_same(example: str, tmp_path: Path) -> None:
    app = tmp_path / Path(example).parent.name / Path(example).name
    shutil.copytree(ROOT / Path(example).parent, app.parent, dirs_exist_ok=True)
    if example == "examples/hello-conformance.yaml":  # local .wasm paths are relative to the app file
        app = ROOT / example
    env = {"OPENAI_API_KEY": "sk-not-in-the-plan-123", "SERPAPI_API_KEY": "serp-not-in-the-plan-456"}
    first = cspm("plan", str(app), "--offline", "--json", env=env)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    plan_format.check(data)
    assert plan_format.from_dict(data).to_dict() == data
    assert "not-in-the-plan" not in first.stdout  # secrets by reference (env:NAME), never a value
    again = cspm("plan", str(app), "--offline", "--json", env=env)
    assert again.stdout == first.stdout
    for name, component in data["components"].items():
        module = Path(component["module"]["path"])
        assert module.is_absolute() and digest_of(module.read_bytes()) == component["module"]["digest"], name
        assert all(Path(m["host"]).is_absolute() for m in component["grant"]["mounts"])
    human = cspm("plan", str(app), "--offline", env=env)
    assert human.returncode == 0 and data["entry"] in human.stderr + human.stdout


def test_a_local_module_is_planned_by_its_digest_and_packages_as_read_only_mounts(tmp_path: Path) -> None:
    wasm = conformance_wasm("c")
    app = write_app(tmp_path, f"""
entry: echo
tools:
  - name: echo
    description: echoes
    plugin_name: {wasm}
    config: {{n: 3, unit: words}}
    secrets: {{api_key: env:SOME_KEY}}
    grant: {{hosts: ["https://api.example.com"], paths: {{{tmp_path}: /work}}, kv: true}}
""")
    made = planner.build(app_format.load(app))
    echo = made.components["echo"]
    assert echo.module.digest == digest_of(wasm.read_bytes()) and echo.module.size == wasm.stat().st_size
    assert echo.config == {"n": "3", "unit": "words"}  # exactly what config_get reads
    assert [(s.name, s.source) for s in echo.secrets] == [("api_key", "env:SOME_KEY")]
    assert echo.grant.hosts == ("https://api.example.com",) and echo.grant.kv
    assert [(m.host, m.guest, m.writable, m.digest) for m in echo.grant.mounts] == [
        (str(tmp_path.resolve()), "/work", False, None)]
    text = made.to_json()
    assert json.loads(text) == made.to_dict() and text == planner.build(app_format.load(app)).to_json()


def test_a_published_app_is_planned_only_once_approved(tmp_path: Path) -> None:
    app = app_format.load(write_app(tmp_path, f"entry: echo\ntools:\n  - {{name: echo, description: e, "
                                               f"plugin_name: {conformance_wasm('c')}}}\n"))
    app.origin = Origin("acme/app", "1.0.0", "acme", "https://registry.acme.example")
    with pytest.raises(CapabilityError, match="were not approved"):
        planner.build(app)
    app.approved = True
    made = planner.build(app)
    assert made.origin is not None and made.kv_scope == "pkg:acme/app@https://registry.acme.example"


def test_check_names_what_is_wrong(tmp_path: Path) -> None:
    app = write_app(tmp_path, f"""
entry: agent
tools:
  - {{name: echo, description: e, plugin_name: {conformance_wasm("c")}}}
agents:
  - {{name: agent, description: a, plugin_name: {conformance_wasm("c")}, tools: [echo]}}
""")
    good = planner.build(app_format.load(app)).to_dict()
    plan_format.check(good)

    def refused(change, words: str) -> None:
        bad = copy.deepcopy(good)
        change(bad)
        with pytest.raises(plan_format.PlanInvalid, match=words):
            plan_format.from_dict(bad)

    refused(lambda d: d.update(plan_version=2), "plan_version")
    refused(lambda d: d.update(entry="nobody"), "'nobody' is not one of the plan's components")
    refused(lambda d: d["components"]["agent"]["calls"].update(tools=["ghost"]), "'ghost' is not a tool of the plan")
    refused(lambda d: d["components"]["agent"]["calls"].update(llms=["echo"]), "'echo' is not a llm of the plan")
    refused(lambda d: d["components"]["echo"]["module"].update(digest="md5:abc"), "components/echo/module/digest")
    refused(lambda d: d["components"]["echo"].update(secret_value="sk-1"), "secret_value")
    refused(lambda d: d["components"]["echo"]["secrets"].append(
        {"name": "k", "source": "literal:sk-1", "header": "h", "format": "{}", "hosts": None, "query": None}),
        "components/echo/secrets/0/source")
    refused(lambda d: d["components"]["echo"]["config"].update(n=3), "components/echo/config/n")


def test_the_runtime_takes_a_plan_and_imports_nothing_of_the_package_manager() -> None:
    """A run is app + lock + store → plan → runtime: the runtime's modules load none of app.yaml's
    format, the lock, the index, the project or the planner (what a host in another language lacks)."""
    code = ("import sys, cspm.runtime.engine, cspm.runtime.guest_output, cspm.runtime.arguments\n"
            "print('\\n'.join(m for m in sys.modules if m.startswith('cspm')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = set(done.stdout.split())
    assert "cspm.formats.plan" in loaded
    for forbidden in ("cspm.formats.app", "cspm.formats.lock", "cspm.install", "cspm.project", "cspm.planner",
                      "cspm.index", "cspm.resolver", "cspm.fetch", "cspm.formats.manifest"):
        assert forbidden not in loaded, forbidden


def test_a_plan_read_back_from_json_runs(tmp_path: Path) -> None:
    """The plan is the whole hand-off: written to JSON and read back, it runs the same."""
    from cspm.runtime.engine import Runtime

    wasm = conformance_wasm("c")
    app = write_app(tmp_path, f"""
entry: agent
tools:
  - {{name: echo, description: echoes, plugin_name: {wasm}}}
agents:
  - {{name: agent, description: routes, plugin_name: {wasm}, config: {{kind: agent}}, tools: [echo]}}
""")
    text = planner.build(app_format.load(app)).to_json()
    with Runtime(plan_format.from_dict(json.loads(text))) as rt:
        result = rt.run("ahoy")
    assert result.output == "ahoy" and [c.name for c in result.trace.children] == ["echo"]
    # a module that is not the bytes the plan names is refused before anything is compiled
    data = json.loads(text)
    data["components"]["echo"]["module"]["digest"] = "sha256:" + "0" * 64
    with pytest.raises(Exception, match="is not the module sha256:0000"):
        Runtime(plan_format.from_dict(data))
