"""The host checks a tool's `arguments` against its `input_schema` before calling it (issue 17): an
agent's `call_tool` gets `bad_request` naming the field; a broken or oversized schema (a plug-in
author's text) is refused as invalid, never crashes the host; and a tool input that is neither
`input` nor `arguments` is worded as such instead of "0 matches found"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cspm import planner
from cspm.errors import InputError
from cspm.formats import app as app_format
from cspm.runtime.engine import Runtime
from tests.conftest import PLUGINS, conformance_wasm, plugin_wasm, write_app


def runtime(tmp_path: Path, schema: Any = None) -> Runtime:
    """An agent (`sut`) that may call the calculator (`calc`) and a conformance tool (`echo`) whose
    schema comes from its config (a bare .wasm has no manifest)."""
    plugin_wasm("calculator")
    wasm = conformance_wasm("rust")
    config = f", config: {{input_schema: {json.dumps(schema)}}}" if schema is not None else ""
    return Runtime(planner.build(app_format.load(write_app(tmp_path, f"""
entry: sut
tools:
  - {{name: calc, plugin_name: {PLUGINS / 'calculator'}}}
  - {{name: echo, description: echo, plugin_name: {wasm}{config}}}
agents:
  - {{name: sut, plugin_name: {wasm}, config: {{kind: agent}}, tools: [calc, echo]}}
"""))))


def call_tool(rt: Runtime, request: dict[str, Any]) -> dict[str, Any]:
    return json.loads(rt.call_export("sut", "raw", b"call_tool\n" + json.dumps(request).encode()))


def test_arguments_that_fit_reach_the_tool(tmp_path: Path) -> None:
    with runtime(tmp_path) as rt:
        assert call_tool(rt, {"name": "calc", "arguments": {"expression": "1+2"}}) == {"output": "3",
                                                                                      "is_error": False}


@pytest.mark.parametrize("arguments, expect", [
    ({"expression": 3}, "arguments.expression: 3 is not of type 'string'"),
    ({}, "arguments: 'expression' is a required property"),
    ({"expression": "1", "extra": 1}, "('extra' was unexpected)"),
    ({"expression": "1" * 5000}, "arguments.expression: "),
])
def test_arguments_that_do_not_fit_name_the_field(tmp_path: Path, arguments: dict, expect: str) -> None:
    with runtime(tmp_path) as rt:
        error = call_tool(rt, {"name": "calc", "arguments": arguments})["error"]
    assert error["code"] == "bad_request" and "tool `calc`" in error["message"] and expect in error["message"]


@pytest.mark.parametrize("arguments, expect", [
    ({"expression": 3}, "arguments.expression: 3 is not of type 'string'"),
    ({}, "arguments: 'expression' is a required property"),
])
def test_a_host_that_sends_arguments_itself_gets_the_same_check(tmp_path: Path, arguments: dict,
                                                                 expect: str) -> None:
    """Runtime.run_message (cspm call --args, cspm serve's MCP tools) checks a tool's arguments as an
    agent's `call_tool` is checked, before the tool runs."""
    with runtime(tmp_path) as rt:
        with pytest.raises(InputError, match="bad_request") as info:
            rt.run_message("calc", {"arguments": arguments})
        assert expect in info.value.message
        assert rt.run_message("calc", {"arguments": {"expression": "1+2"}}).output == "3"


@pytest.mark.parametrize("request_", [
    {"name": "calc"}, {"name": "calc", "input": "1", "arguments": {}}, {"name": "calc", "input": 1},
    {"name": "calc", "arguments": "1+2"},
])
def test_a_tool_input_that_is_neither_is_worded(tmp_path: Path, request_: dict) -> None:
    with runtime(tmp_path) as rt:
        error = call_tool(rt, request_)["error"]
    assert error["code"] == "bad_request"
    assert error["message"] == "call_tool: a tool input needs `input` (text) or `arguments` (an object), not both"


def test_other_bad_requests_keep_their_message(tmp_path: Path) -> None:
    with runtime(tmp_path) as rt:
        error = call_tool(rt, {"input": "x"})["error"]
    assert error["code"] == "bad_request" and "name" in error["message"]


def deep(levels: int) -> dict:
    schema: dict = {"type": "object"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@pytest.mark.parametrize("schema, expect", [
    ({"type": "nonsense"}, "is invalid: schema.type: "),
    ({"type": "object", "properties": {"a": {"pattern": "("}}}, "is invalid"),
    ({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}, "is invalid"),
    ({"$ref": "https://example.com/schema.json"}, "is invalid"),
    (deep(40), "is invalid: nested more than 32 levels deep"),
    ({"type": "object", "description": "x" * 70_000}, "is invalid: "),
])
def test_a_broken_schema_is_refused_as_invalid(tmp_path: Path, schema: Any, expect: str) -> None:
    with runtime(tmp_path, schema) as rt:
        error = call_tool(rt, {"name": "echo", "arguments": {"a": 1}})["error"]
        assert error["code"] == "bad_request" and "input_schema of tool `echo`" in error["message"], error
        assert expect in error["message"], error
        # the text path does not use the schema, and the host is still whole
        assert call_tool(rt, {"name": "echo", "input": "still here"}) == {"output": "still here", "is_error": False}


def test_a_config_schema_is_checked_too(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}
    with runtime(tmp_path, schema) as rt:
        assert call_tool(rt, {"name": "echo", "arguments": {"n": 2}}) == {"output": '{"n":2}', "is_error": False}
        error = call_tool(rt, {"name": "echo", "arguments": {"n": 0}})["error"]
    assert "arguments.n: 0 is less than the minimum of 1" in error["message"]
