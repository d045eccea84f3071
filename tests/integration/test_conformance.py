"""Every SDK's conformance plug-in through the cases of conformance/abi1.json on the real host
(docs/sdk/conformance.md): one test per language and case, run by cspm.conformance, the runner the
JavaScript host mirrors. Then the runner itself: the file matches its schema, and a wrong expectation
of each kind is reported as a failure (a runner that cannot fail proves nothing)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cspm import conformance
from tests.conftest import LANGUAGES, ROOT, conformance_wasm

CASES_FILE = ROOT / "conformance" / "abi1.json"
DOC = conformance.load(CASES_FILE)


def values(lang: str, echo_url: str) -> dict[str, Any]:
    return {"module": conformance.module_of(conformance_wasm(lang)), "echo_url": echo_url}


@pytest.mark.parametrize("case", [c["id"] for c in DOC["cases"]])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_case(lang: str, case: str, echo_server: tuple[str, list[dict]], tmp_path: Path) -> None:
    base, seen = echo_server
    result = conformance.run_case(DOC, case, values(lang, base), echo_seen=lambda: seen, workdir=tmp_path)
    assert result.passed, result.reason


# ---- the file and the runner ------------------------------------------------------------------

APP_YAML = """
name: conformance
entry: sut
llms:
  - {{name: echo_llm, description: an llm, plugin_name: {wasm}, config: {{kind: llm}}}}
tools:
  - {{name: echo_tool, description: a tool, plugin_name: {wasm}, config: {{kind: tool}},
     grant: {{hosts: ["{base}"]}}}}
agents:
  - name: sub_agent
    description: an agent with nothing to call
    plugin_name: {wasm}
    config: {{kind: agent}}
  - name: sut
    description: the plug-in under test
    plugin_name: {wasm}
    config: {{kind: agent, greeting: "héllo wörld ✓ 🦀 中文", numbers: [1, 2], flag: true}}
    prompt: be nice
    llms: [echo_llm]
    tools: [echo_tool]
    agents: [sub_agent]
    secrets:
      token: {{from: "file:key.txt", hosts: ["{base}"]}}
    grant: {{hosts: ["{base}"], kv: true, timeout_ms: 20000}}
"""


def test_the_plan_template_is_what_the_planner_makes_of_its_app(tmp_path: Path) -> None:
    """The file's plan is `cspm plan` of this app.yaml (the one these tests were written on), so the
    planner's config strings (a list as JSON text, `true`, the prompt) stay covered."""
    from cspm import planner
    from cspm.formats import app as app_format

    wasm, base = conformance_wasm("rust"), "http://127.0.0.1:8123"
    (tmp_path / "key.txt").write_text(DOC["files"]["secret_file"])
    (tmp_path / "app.yaml").write_text(APP_YAML.format(wasm=wasm, base=base), encoding="utf-8")
    planned = planner.build(app_format.load(tmp_path / "app.yaml")).to_dict()
    filled = conformance.fill(DOC["plan"], {**values("rust", base), "secret_file": str(tmp_path / "key.txt")})
    for plan in (planned, filled):
        plan["app"]["source"] = "-"
        for component in plan["components"].values():
            component["where"] = "-"
    assert filled == planned


def test_the_file_matches_its_schema_by_both_validators() -> None:
    from jsonschema import Draft202012Validator

    schema = json.loads((CASES_FILE.parent / "cases.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    raw = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    assert list(Draft202012Validator(schema).iter_errors(raw)) == []
    conformance.check(raw, schema)  # fastjsonschema, ids, placeholders


def _broken(edit: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    edit(doc)
    return doc


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(format=2), "format"),
    (lambda d: d["cases"].append(copy.deepcopy(d["cases"][0])), "used more than once: echo-empty"),
    (lambda d: d["cases"][0]["steps"][0].update(export="echo ${nowhere}"), "export"),
    (lambda d: d["cases"][0]["steps"][0]["input"].update(text="${nowhere}"), "undeclared placeholders: nowhere"),
    (lambda d: d["cases"][0]["steps"][0].update(expect={}), "expect"),
    (lambda d: d["cases"][0]["steps"][0]["expect"].update(fails={}), "steps/0"),
    (lambda d: d["cases"][-1]["steps"][0]["expect"].update(output={"text": "q"}), "steps/0"),
    (lambda d: d["cases"][0]["steps"][0]["expect"].update(error={"code": "no_such_code"}), "no_such_code"),
], ids=["format", "repeated-id", "bad-export", "undeclared", "empty-expect", "fails-and-output", "run-output",
        "unknown-code"])
def test_a_broken_file_is_refused_naming_the_problem(edit: Any, message: str) -> None:
    schema = json.loads((CASES_FILE.parent / "cases.schema.json").read_text(encoding="utf-8"))
    with pytest.raises(conformance.CasesInvalid, match=message.replace("$", r"\$")):
        conformance.check(_broken(edit), schema)


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (conformance.MAX_FILE_BYTES + 1))
    with pytest.raises(conformance.CasesInvalid, match="larger than"):
        conformance.load(big, CASES_FILE.parent / "cases.schema.json")


def test_placeholders_fill_whole_values_and_text() -> None:
    filled = conformance.fill({"a": "${m}", "b": ["x ${u}/y"], "c": 3}, {"m": {"digest": "d"}, "u": "http://h"})
    assert filled == {"a": {"digest": "d"}, "b": ["x http://h/y"], "c": 3}
    with pytest.raises(conformance.CasesInvalid, match="must be a string"):
        conformance.fill("in ${m}", {"m": {"digest": "d"}})
    with pytest.raises(conformance.CasesInvalid, match=r"no value for the placeholder \$\{u\}"):
        conformance.fill("${u}", {})


def test_a_missing_placeholder_value_fails_the_case(tmp_path: Path) -> None:
    result = conformance.run_case(DOC, "echo-empty", {"module": conformance.module_of(conformance_wasm("rust"))},
                                  workdir=tmp_path)
    assert not result.passed and "no value for the placeholder ${echo_url}" in result.reason


def test_data_forms() -> None:
    assert conformance.data_bytes({"text": "é"}) == "é".encode()
    assert conformance.data_bytes({"base64": "AAH/"}) == b"\x00\x01\xff"
    assert conformance.data_bytes({"json": {"s": "é🦀"}}) == b'{"s": "\\u00e9\\ud83e\\udd80"}'
    assert conformance.data_bytes({"repeat": {"text": "ab"}, "times": 3}) == b"ababab"
    with pytest.raises(conformance.CasesInvalid, match="over"):
        conformance.data_bytes({"repeat": {"text": "ab"}, "times": conformance.MAX_DATA_BYTES})


@pytest.mark.parametrize(("actual", "pattern", "matches"), [
    ({"a": 1, "b": 2}, {"a": 1}, True),
    ({"a": 1}, {"a": 1, "b": 2}, False),
    ({"a": True}, {"a": 1}, False),  # a boolean is never a number
    ({"a": 1.0}, {"a": 1}, True),
    ([1, 2], [1], False),
    ({"m": "did not declare x"}, {"m": {"$contains": "declare"}}, True),
    ({"m": "x"}, {"m": {"$contains": "declare"}}, False),
    ({"b": '{"h": {"A": "v"}}'}, {"b": {"$json": {"h": {"A": "v"}}}}, True),
    ({"b": '{"h": {"A": "w"}}'}, {"b": {"$json": {"h": {"A": "v"}}}}, False),
    ({"b": "not json"}, {"b": {"$json": {}}}, False),
    ({"Authorization": "x"}, {"$headers": {"authorization": "x"}}, True),
    ({"Authorization": "y"}, {"$headers": {"authorization": "x"}}, False),
    ({"a": 1}, {"$nope": 1}, False),
])
def test_patterns(actual: Any, pattern: Any, matches: bool) -> None:
    assert (conformance.mismatch(actual, pattern) is None) is matches


def _wrong(case_id: str, step: int, expect: dict[str, Any]) -> dict[str, Any]:
    """DOC with one step of one case expecting something else."""
    doc = copy.deepcopy(DOC)
    case = next(c for c in doc["cases"] if c["id"] == case_id)
    case["steps"][step]["expect"] = expect
    return doc


@pytest.mark.parametrize(("case", "step", "expect", "reason"), [
    ("echo-utf8", 0, {"output": {"text": "something else"}}, "step 1 (call sut.echo): output was"),
    ("config-values-reach-the-plugin", 1, {"json": [1, 2, 3]}, "step 2 (call sut.config_get): output was"),
    ("call-tool-and-agent", 0, {"json_contains": {"is_error": True}}, "/is_error is false, expected true"),
    ("undeclared-names-get-a-json-error", 0, {"error": {"code": "not_granted"}}, "code 'not_granted'"),
    ("undeclared-names-get-a-json-error", 0, {"error": {"code": "not_declared", "message_contains": "nope"}},
     "not containing 'nope'"),
    ("echo-empty", 0, {"fails": {}}, "expected it to fail"),
    ("error-reporting", 0, {"output": {"text": ""}}, "the call failed"),
    ("error-reporting", 0, {"fails": {"message_contains": "bang"}}, "does not contain 'bang'"),
    ("logs-are-captured-per-plugin", 0, {"logs": {"sut": {"includes": [{"level": "error", "message": "hello log"}]}}},
     "which lacks"),
    ("logs-are-captured-per-plugin", 0, {"logs": {"sut": {"equals": []}}}, "expected exactly []"),
    ("emit", 0, {"chunks": []}, "chunks emitted were"),
    ("http-fetch-injects-secret-and-redacts-it", 0,
     {"echo_requests": [{"headers": {"$headers": {"authorization": "Bearer [redacted]"}}}]},
     "echo server got a request"),
    ("http-fetch-injects-secret-and-redacts-it", 0, {"output_excludes": ["Bearer"]}, "output contains 'Bearer'"),
    ("http-fetch-injects-secret-and-redacts-it", 0, {"echo_requests": []}, "got 1 requests, expected 0"),
    ("run-by-kind", 1, {"json_contains": {"content": "q"}}, "step 2 (run echo_llm)"),
    ("kv-persists-across-restarts-and-is-scoped", 6, {"json": {"value": "k"}}, "step 7"),
])
def test_a_wrong_expectation_is_a_failure(case: str, step: int, expect: dict[str, Any], reason: str,
                                          echo_server: tuple[str, list[dict]], tmp_path: Path) -> None:
    base, seen = echo_server
    result = conformance.run_case(_wrong(case, step, expect), case, values("rust", base), echo_seen=lambda: seen,
                                  workdir=tmp_path)
    assert not result.passed
    assert reason in result.reason


def test_a_plan_the_host_refuses_fails_every_case(echo_server: tuple[str, list[dict]], tmp_path: Path) -> None:
    module = conformance.module_of(conformance_wasm("rust"))
    wrong = {**module, "digest": "sha256:" + "0" * 64}
    results = conformance.run_all(DOC, {"module": wrong, "echo_url": echo_server[0]}, workdir=tmp_path)
    assert len(results) == len(DOC["cases"])
    assert all(not r.passed and "the host refused the plan" in r.reason for r in results)
