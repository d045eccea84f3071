"""The react agent end to end: the real openai-chat llm against a scripted OpenAI server, the real
calculator and http-get tools, a loopback web page. Asserts what the LLM was prompted with and what
the tools were sent, not only the final answer (docs/plugins.md, react)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cspm.planner import load_app
from cspm.runtime.engine import RunResult
from tests.conftest import PLUGINS, ROOT, conformance_wasm, plugin_wasm, write_app
from tests.scripted import ScriptedServer, openai_chat, openai_error

HTTP_TOOL = "http-get"
CALC_DESCRIPTION = "Evaluates arithmetic such as 2 * (3 + 4)"
HTTP_DESCRIPTION = "Fetches a web page by its URL and returns its text"
PERSONA = "You are a careful shopping assistant."


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for name in ("react", "openai-chat", "calculator", HTTP_TOOL):
        plugin_wasm(name)


@pytest.fixture
def llm(scripted: Callable[[], ScriptedServer], monkeypatch: pytest.MonkeyPatch) -> ScriptedServer:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    return scripted()


@pytest.fixture
def web(scripted: Callable[[], ScriptedServer]) -> ScriptedServer:
    return scripted()


def make_app(folder: Path, llm: ScriptedServer, web: ScriptedServer, *, agent_config: str = "{max_steps: 4}",
             prompt: str = PERSONA, sub_agents: str = "") -> Path:
    """openai-chat `gpt`, calculator and http_get, and the react agent `shopper` using them all."""
    return write_app(folder, f"""
name: react-test
entry: shopper
llms:
  - name: gpt
    description: OpenAI chat completions
    plugin_name: {PLUGINS / "openai-chat"}
    config: {{base_url: "{llm.url}/v1", model: gpt-4o-mini}}
    secrets: {{api_key: env:OPENAI_API_KEY}}
    grant: {{hosts: ["{llm.url}"]}}
tools:
  - name: calculator
    description: {CALC_DESCRIPTION}
    plugin_name: {PLUGINS / "calculator"}
  - name: http_get
    description: {HTTP_DESCRIPTION}
    plugin_name: {PLUGINS / HTTP_TOOL}
    grant: {{hosts: ["{web.url}"]}}
agents:{sub_agents}
  - name: shopper
    description: answers shopping questions with tools
    plugin_name: {PLUGINS / "react"}
    prompt: "{prompt}"
    llms: [gpt]
    tools: [calculator, http_get]
    agents: [{"echo" if sub_agents else ""}]
    config: {agent_config}
""")


def say(llm: ScriptedServer, *texts: str) -> None:
    """Queue one chat completion per text, as the model's turns."""
    for text in texts:
        llm.reply(openai_chat(text))


def prompts(llm: ScriptedServer) -> list[str]:
    """The single user message of each chat request the agent made, in order."""
    out = []
    for seen in llm.seen:
        messages = seen.json["messages"]
        assert [m["role"] for m in messages] == ["user"], messages
        out.append(messages[0]["content"])
    return out


def run(app: Path, question: str, logs: list[tuple[str, str]] | None = None) -> RunResult:
    """One run of the app; the agent's log lines (level, message) go to `logs`."""
    with load_app(app) as rt:
        result = rt.run(question)
        rt.drain_logs()
        if logs is not None:
            logs.extend((line.level, line.message) for line in rt.nodes["shopper"].logs)
        return result


# ---- the happy path -----------------------------------------------------------------------------

STEP1 = ' I need the total price first.\nAction: calculator\nAction Input: {"expression": "12 * 7"}'
STEP3 = " I now know the final answer\nFinal Answer: The page says 84 dollars, which matches 12 * 7."


def test_calculator_then_web_page_then_final_answer(tmp_path: Path, llm: ScriptedServer,
                                                     web: ScriptedServer) -> None:
    web.reply(raw="The basket costs 84 dollars.", headers={"Content-Type": "text/plain"})
    step2 = f" Now check the shop's page.\nAction: http_get\nAction Input: \"{web.url}/basket\""
    say(llm, STEP1, step2, STEP3)
    logs: list[tuple[str, str]] = []
    result = run(make_app(tmp_path, llm, web), "What do 12 items at 7 dollars cost?", logs)

    assert (result.output, result.finish_reason) == ("The page says 84 dollars, which matches 12 * 7.",
                                                      "final_answer")
    assert [s.path for s in llm.seen] == ["/v1/chat/completions"] * 3
    assert all(s.headers["authorization"] == "Bearer sk-test-123" for s in llm.seen)
    bodies = [s.json for s in llm.seen]
    assert all(b["stop"] == ["\nObservation:"] and b["model"] == "gpt-4o-mini" for b in bodies)
    first, second, third = prompts(llm)

    # The prompt lists the tools the app gave, with the app's descriptions and the calculator's schema.
    assert first.startswith(PERSONA + "\n\nAnswer the following questions as best you can.")
    assert f'\ncalculator: {CALC_DESCRIPTION} Action Input as JSON: {{"expression": string}}\n' in first
    assert f'\nhttp_get: {HTTP_DESCRIPTION} Action Input as JSON: {{"url": string}}\n' in first
    assert "Action: the action to take, should be one of [calculator, http_get]" in first
    assert first.endswith("Begin!\n\nQuestion: What do 12 items at 7 dollars cost?\nThought:")

    # The scratchpad grows by each turn and its Observation: the calculator got the JSON arguments,
    # the http tool got the unquoted URL.
    assert second == first + STEP1 + "\nObservation: 84\nThought:"
    assert third.startswith(second + step2 + "\nObservation: ")
    assert "The basket costs 84 dollars." in third[len(second):] and third.endswith("\nThought:")
    assert [(s.method, s.path) for s in web.seen] == [("GET", "/basket")]

    tree = result.trace.to_dict()
    assert [(c["name"], c["kind"]) for c in tree["children"]] == [
        ("gpt", "llm"), ("calculator", "tool"), ("gpt", "llm"), ("http_get", "tool"), ("gpt", "llm")]
    assert ("info", "Thought: I need the total price first.") in logs
    assert ("info", 'Action: calculator | Action Input: {"expression": "12 * 7"}') in logs
    assert ("info", "Observation: 84") in logs
    assert ("info", f"Action: http_get | Action Input: {web.url}/basket") in logs


def test_text_input_to_a_schema_tool_and_config_passthrough(tmp_path: Path, llm: ScriptedServer,
                                                           web: ScriptedServer) -> None:
    say(llm, " Compute it.\nAction 1: `Calculator`\nAction 1 Input: `2 ^ 10`",
        " I now know the final answer\nFinal Answer: 1024")
    app = make_app(tmp_path, llm, web, prompt="",
                   agent_config="{max_steps: 3, max_tokens: 200, temperature: 0.2, llm: GPT}")
    result = run(app, "2 to the 10th?")
    assert (result.output, result.finish_reason) == ("1024", "final_answer")
    first, second = prompts(llm)
    assert first.startswith("Answer the following questions")  # no persona: nothing prepended
    assert second.endswith("Action 1 Input: `2 ^ 10`\nObservation: 1024\nThought:")  # unquoted, any case
    body = llm.seen[0].json
    assert body["max_tokens"] == 200 and body["temperature"] == 0.2


def test_sub_agents_are_actions_too(tmp_path: Path, llm: ScriptedServer, web: ScriptedServer) -> None:
    echo = conformance_wasm("rust")  # an agent with nothing to call answers its input
    sub = f"\n  - {{name: echo, description: repeats what it is told, plugin_name: {echo}, config: {{kind: agent}}}}"
    say(llm, " Ask the echo agent.\nAction: echo\nAction Input: hello there",
        " I now know the final answer\nFinal Answer: it said hello there")
    result = run(make_app(tmp_path, llm, web, sub_agents=sub), "what does echo say?")
    assert result.finish_reason == "final_answer"
    first, second = prompts(llm)
    assert "\necho: repeats what it is told\n" in first and "one of [calculator, http_get, echo]" in first
    assert second.endswith("\nObservation: hello there\nThought:")
    assert [(c["name"], c["kind"]) for c in result.trace.to_dict()["children"]][1] == ("echo", "agent")


# ---- recovering from the model's mistakes ---------------------------------------------------------

def test_malformed_output_is_fed_back_and_the_run_recovers(tmp_path: Path, llm: ScriptedServer,
                                                         web: ScriptedServer) -> None:
    say(llm,
        " I will just think about it.",                           # no Action at all
        " Use the calculator.\nAction: calculator",               # Action without Action Input
        " Compute.\nAction: calculator\nAction Input: 6*7\nFinal Answer: 42",  # both: refused
        " Compute.\nAction: calculator\nAction Input: 6*7\nObservation: 41\nThought: hallucinated",
        " I now know the final answer\nFinal Answer: 42")
    result = run(make_app(tmp_path, llm, web, agent_config="{max_steps: 5}"), "6 times 7?")
    assert (result.output, result.finish_reason) == ("42", "final_answer")
    pads = [p.split("Question: 6 times 7?\nThought:", 1)[1] for p in prompts(llm)]
    assert pads[1] == " I will just think about it.\nObservation: Invalid Format: Missing 'Action:' after " \
                      "'Thought:'\nThought:"
    assert pads[2].endswith("Action: calculator\nObservation: Invalid Format: Missing 'Action Input:' after "
                            "'Action:'\nThought:")
    assert "Final Answer: 42\nObservation: Invalid Format: found both an 'Action:' and a 'Final Answer:'" in pads[3]
    # The invented observation is cut off: the real calculator answers 42.
    assert pads[4].endswith("Action Input: 6*7\nObservation: 42\nThought:") and "41" not in pads[4]


def test_final_answer_before_an_invented_action_wins(tmp_path: Path, llm: ScriptedServer,
                                                    web: ScriptedServer) -> None:
    say(llm, " I know it.\nFinal Answer: 42\n\nThought: more\nAction: calculator\nAction Input: 1")
    result = run(make_app(tmp_path, llm, web), "6 times 7?")
    assert (result.output, result.finish_reason) == ("42", "final_answer") and len(llm.seen) == 1


def test_unknown_tool_gets_the_list_of_valid_ones(tmp_path: Path, llm: ScriptedServer, web: ScriptedServer) -> None:
    say(llm, " Search.\nAction: google_search\nAction Input: price of milk",
        " I now know the final answer\nFinal Answer: unknown")
    result = run(make_app(tmp_path, llm, web), "milk?")
    assert result.finish_reason == "final_answer"
    assert prompts(llm)[1].endswith("\nObservation: google_search is not a valid tool, try one of "
                                    "[calculator, http_get].\nThought:")
    assert [c["name"] for c in result.trace.to_dict()["children"]] == ["gpt", "gpt"]  # no tool was called


def test_tool_errors_become_observations(tmp_path: Path, llm: ScriptedServer, web: ScriptedServer) -> None:
    web.reply(raw="no such page", status=404, headers={"Content-Type": "text/plain"})
    say(llm, " Compute.\nAction: calculator\nAction Input: 2 +* 3",
        f' Fetch.\nAction: http_get\nAction Input: ```json\n{{"url": "{web.url}/missing"}}\n```',
        " I now know the final answer\nFinal Answer: both failed")
    result = run(make_app(tmp_path, llm, web), "broken?")
    assert (result.output, result.finish_reason) == ("both failed", "final_answer")
    _, second, third = prompts(llm)
    calc_observation = second.rsplit("\nObservation: ", 1)[1]
    assert calc_observation.startswith("Error: syntax error at position 4") and calc_observation.endswith("\nThought:")
    web_observation = third.rsplit("\nObservation: ", 1)[1]
    assert web_observation.startswith("Error: HTTP 404") and "no such page" in web_observation
    assert [s.path for s in web.seen] == ["/missing"]  # the fenced JSON went as {"arguments": {"url": ...}}
    children = result.trace.to_dict()["children"]
    assert [c.get("error") is not None for c in children if c["kind"] == "tool"] == [True, True]


# ---- limits and failures --------------------------------------------------------------------------

def test_step_limit_stops_with_the_last_thought(tmp_path: Path, llm: ScriptedServer, web: ScriptedServer) -> None:
    say(llm, *[f" Try again {i}.\nAction: calculator\nAction Input: {i} + 1" for i in range(2)])
    result = run(make_app(tmp_path, llm, web, agent_config="{max_steps: 2}"), "loop forever")
    assert result.finish_reason == "max_steps"
    assert result.output == "Agent stopped due to iteration limit. Last thought: Try again 1."
    assert len(llm.seen) == 2


def test_llm_error_ends_the_run_with_the_reason(tmp_path: Path, llm: ScriptedServer, web: ScriptedServer) -> None:
    say(llm, STEP1)
    llm.reply(openai_error("The server had an error while processing your request.", "server_error"), status=500)
    result = run(make_app(tmp_path, llm, web), "12 * 7?")
    assert result.finish_reason == "error"
    assert result.output.startswith("llm gpt failed at step 2")
    assert "server had an error" in result.output
    assert len(llm.seen) == 2


def test_bad_config_and_missing_llm_are_errors_not_traps(tmp_path: Path, llm: ScriptedServer,
                                                        web: ScriptedServer) -> None:
    result = run(make_app(tmp_path, llm, web, agent_config="{llm: claude}"), "q")
    assert result.finish_reason == "error"
    assert 'config llm "claude" is not one of this agent\'s llms [gpt]' in result.output
    result = run(make_app(tmp_path, llm, web, agent_config="{max_steps: 0}"), "q")
    assert result.finish_reason == "error" and "max_steps must be an integer from 1 to 100" in result.output
    assert llm.seen == []


def test_scratchpad_stays_bounded(tmp_path: Path, llm: ScriptedServer, web: ScriptedServer) -> None:
    page = "x" * 3000
    for _ in range(5):
        web.reply(raw=page, headers={"Content-Type": "text/plain"})
    fetch = f" Fetch.\nAction: http_get\nAction Input: {web.url}/big"
    say(llm, *[fetch] * 5, " I now know the final answer\nFinal Answer: big")
    # Each observation is cut to 1 KiB (a quarter of the bound): three steps fit, five do not.
    app = make_app(tmp_path, llm, web, agent_config="{max_steps: 6, max_scratchpad_bytes: 4096}")
    assert run(app, "how big?").output == "big"
    last = prompts(llm)[-1]
    assert "(2 earlier steps omitted to keep the prompt short)\nThought: Fetch." in last
    assert last.count("[truncated: 1976 more bytes]") == 3
    assert len(last.split("Question: how big?", 1)[1]) < 4096 + 100


# ---- native tool calling ---------------------------------------------------------------------------

def test_tool_calling_mode_uses_native_tool_calls(tmp_path: Path, llm: ScriptedServer, web: ScriptedServer) -> None:
    llm.reply(openai_chat(None, finish_reason="tool_calls",
                          tool_calls=[{"id": "call_1", "name": "calculator", "arguments": {"expression": "12*7"}}]))
    llm.reply(openai_chat("It costs 84."))
    result = run(make_app(tmp_path, llm, web, agent_config="{mode: tool_calling}"), "12 items at 7?")
    assert (result.output, result.finish_reason) == ("It costs 84.", "final_answer")
    first, second = (s.json for s in llm.seen)
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["messages"][0]["content"] == PERSONA and "stop" not in first
    tools = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert tools["calculator"]["description"] == CALC_DESCRIPTION
    assert tools["calculator"]["parameters"]["required"] == ["expression"]
    assert set(tools) == {"calculator", "http_get"}
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "84"}


def test_tool_calling_mode_falls_back_to_text_without_native_support(tmp_path: Path) -> None:
    """An llm whose manifest lacks `tool_calling` is refused `tools` by the host (`unsupported`)."""
    plain = tmp_path / "plain-llm"
    (plain / "build").mkdir(parents=True)
    shutil.copy(conformance_wasm("rust"), plain / "build" / "plain.wasm")  # echoes the last message
    (plain / "plugin.yaml").write_text("name: test/plain-llm\nversion: 1.0.0\nkind: llm\nabi: 1\n"
                                       "wasm: build/plain.wasm\nconfig: {kind: {type: string}}\n")
    app = write_app(tmp_path, f"""
entry: agent
llms: [{{name: plain, plugin_name: {plain}, config: {{kind: llm}}}}]
tools: [{{name: calculator, plugin_name: {PLUGINS / "calculator"}}}]
agents:
  - {{name: agent, plugin_name: {PLUGINS / "react"}, llms: [plain], tools: [calculator],
     config: {{mode: tool_calling, max_steps: 1}}}}
""")
    with load_app(app) as rt:
        result = rt.run("hi")
        rt.drain_logs()
        logs = [line.message for line in rt.nodes["agent"].logs]
    assert result.finish_reason == "max_steps"
    assert result.output.startswith("Agent stopped due to iteration limit. Last thought: echo: Answer the following")
    assert "llm plain has no native tool calling: using the ReAct text format" in logs


# ---- through the CLI --------------------------------------------------------------------------------

def test_cli_run_json_trace(tmp_path: Path, llm: ScriptedServer, web: ScriptedServer) -> None:
    say(llm, STEP1, " I now know the final answer\nFinal Answer: 84")
    app = make_app(tmp_path, llm, web)
    done = subprocess.run([sys.executable, "-m", "cspm.cli.main", "run", str(app), "--input", "12 * 7?", "--json",
                           "--trace"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "OPENAI_API_KEY": "sk-test-123"})
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    assert (data["output"], data["finish_reason"], data["entry"]) == ("84", "final_answer", "shopper")
    assert [(c["name"], c["kind"]) for c in data["trace"]["children"]] == [
        ("gpt", "llm"), ("calculator", "tool"), ("gpt", "llm")]
    assert prompts(llm)[1].endswith(STEP1 + "\nObservation: 84\nThought:")
