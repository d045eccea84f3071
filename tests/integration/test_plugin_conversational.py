"""plugins/conversational end to end: the real openai-chat plug-in against a scripted OpenAI server.

Memory lives in the host's kv (SQLite), so a new `load_app` or a new `cspm run` process with the same
session continues the conversation; each test asserts the exact messages the LLM received.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cspm.planner import load_app
from cspm.runtime.engine import Runtime
from tests.conftest import PLUGINS, ROOT, conformance_wasm, plugin_wasm, write_app
from tests.scripted import ScriptedServer, openai_chat, openai_error

KEY = "sk-test-123"
PIRATE = "You are a pirate. Answer like one."
DEFAULT_PROMPT = "You are a helpful assistant."

APP = """
name: chat-test
entry: agent
llms:
  - name: gpt
    description: chat completions
    plugin_name: {openai}
    config: {{base_url: "{url}/v1"}}
    secrets: {{api_key: env:OPENAI_API_KEY}}
    grant: {{hosts: ["{url}"]}}
tools:
  - {{name: calc, description: arithmetic, plugin_name: {calculator}}}
agents:
  - name: agent
    description: a chat with memory
    plugin_name: {conversational}
    prompt: {prompt}
    config: {config}
    llms: [gpt]
    tools: [calc]
"""


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for name in ("conversational", "openai-chat", "calculator"):
        plugin_wasm(name)


@pytest.fixture
def llm(scripted: Callable[[], ScriptedServer], monkeypatch: pytest.MonkeyPatch) -> ScriptedServer:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return scripted()


@pytest.fixture
def app_file(tmp_path: Path, llm: ScriptedServer) -> Callable[..., Path]:
    """Writes the app; keyword arguments become the agent's config."""
    def make(prompt: str | None = PIRATE, **config: Any) -> Path:
        return write_app(tmp_path, APP.format(
            openai=PLUGINS / "openai-chat", calculator=PLUGINS / "calculator",
            conversational=PLUGINS / "conversational", url=llm.url, prompt=json.dumps(prompt or ""),
            config=json.dumps(config)))
    return make


@pytest.fixture
def app(app_file: Callable[..., Path]) -> Iterator[Callable[..., Runtime]]:
    """load_app(app, session=...); every runtime is closed at teardown."""
    runtimes: list[Runtime] = []

    def make(session: str = "s1", **config: Any) -> Runtime:
        runtimes.append(load_app(app_file(**config), session=session))
        return runtimes[-1]

    yield make
    for rt in runtimes:
        rt.close()


def say(llm: ScriptedServer, *outputs: str) -> None:
    for text in outputs:
        llm.reply(openai_chat(text))


def received(llm: ScriptedServer, i: int = -1) -> list[tuple[str, str]]:
    """(role, content) of the messages of the LLM's i-th request."""
    return [(m["role"], m["content"]) for m in llm.seen[i].json["messages"]]


def turns(*pairs: tuple[str, str]) -> list[tuple[str, str]]:
    return [m for user, assistant in pairs for m in (("user", user), ("assistant", assistant))]


def stored(rt: Runtime, session: str = "s1") -> Any:
    return rt.kv.get(("chat-test", "agent", session), "history")


def tokens(text: str) -> int:
    """The documented estimate: ceil(chars / 4) + 4 per message."""
    return math.ceil(len(text) / 4) + 4


# ---- memory across turns and restarts -------------------------------------------------------------

def test_two_turns_then_a_restart_continues_the_session(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    say(llm, "Ahoy Ada!", "Ye be Ada, matey.", "Ye said ye be Ada.")
    rt = app()
    first = rt.run("I am Ada.")
    assert (first.output, first.finish_reason, first.session) == ("Ahoy Ada!", "final_answer", "s1")
    assert rt.run("Who am I?").output == "Ye be Ada, matey."
    assert received(llm, 0) == [("system", PIRATE), ("user", "I am Ada.")]
    assert received(llm, 1) == [("system", PIRATE), *turns(("I am Ada.", "Ahoy Ada!")), ("user", "Who am I?")]
    rt.close()

    restarted = app()  # a new load of the same app: only kv remembers
    assert restarted.run("What did I say?").output == "Ye said ye be Ada."
    assert received(llm) == [("system", PIRATE), *turns(("I am Ada.", "Ahoy Ada!"), ("Who am I?", "Ye be Ada, matey.")),
                             ("user", "What did I say?")]
    assert stored(restarted) == [{"role": r, "content": c} for r, c in turns(
        ("I am Ada.", "Ahoy Ada!"), ("Who am I?", "Ye be Ada, matey."), ("What did I say?", "Ye said ye be Ada."))]
    assert llm.seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert [t["function"]["name"] for t in llm.seen[0].json["tools"]] == ["calc"]  # offered, not called
    assert any("history: 2 turns stored, 2 sent" in line.message for line in restarted.nodes["agent"].logs)


def test_cspm_run_session_continues_in_a_new_process(app_file: Callable[..., Path], llm: ScriptedServer) -> None:
    say(llm, "Noted, Ada.", "You are Ada.")
    path = app_file(prompt=None)

    def cspm(text: str) -> dict[str, Any]:
        result = subprocess.run([sys.executable, "-m", "cspm.cli.main", "run", str(path), "--input", text,
                                 "--session", "cli-1", "--json"], capture_output=True, text=True, cwd=ROOT,
                                env=dict(os.environ), timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    assert cspm("My name is Ada.")["output"] == "Noted, Ada."
    second = cspm("What is my name?")
    assert (second["output"], second["session"]) == ("You are Ada.", "cli-1")
    assert received(llm) == [("system", DEFAULT_PROMPT), *turns(("My name is Ada.", "Noted, Ada.")),
                             ("user", "What is my name?")]


def test_sessions_are_isolated(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    say(llm, "Hello Ada.", "Hello Bob.", "You are Ada.")
    ada, bob = app(session="ada"), app(session="bob")
    ada.run("I am Ada.")
    bob.run("I am Bob.")
    ada.run("Who am I?")
    assert received(llm, 1) == [("system", PIRATE), ("user", "I am Bob.")]
    assert received(llm, 2) == [("system", PIRATE), *turns(("I am Ada.", "Hello Ada.")), ("user", "Who am I?")]


# ---- trimming --------------------------------------------------------------------------------------

def test_history_is_trimmed_to_the_token_budget(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    """40-character messages cost 14 tokens each: with the 14-token persona and the new message, a budget
    of 90 leaves room for two whole past turns (56 tokens), not three (84)."""
    prompt = "P" * 40
    said = [(f"question {i} ".ljust(40, "q"), f"answer {i} ".ljust(40, "a")) for i in range(4)]
    assert {tokens(t) for pair in said for t in pair} | {tokens(prompt)} == {14}
    say(llm, *[a for _, a in said])
    rt = app(prompt=prompt, max_history_tokens=90)
    for question, _ in said:
        rt.run(question)
    assert received(llm, 2) == [("system", prompt), *turns(said[0], said[1]), ("user", said[2][0])]
    assert received(llm, 3) == [("system", prompt), *turns(said[1], said[2]), ("user", said[3][0])]
    # What is stored is trimmed the same way (persona + turns within budget), so kv stays bounded.
    assert stored(rt) == [{"role": r, "content": c} for r, c in turns(said[2], said[3])]


def test_max_turns_caps_the_history(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    say(llm, "one", "two", "three")
    rt = app(max_turns=1)
    for text in ("a", "b", "c"):
        rt.run(text)
    assert received(llm) == [("system", PIRATE), *turns(("b", "two")), ("user", "c")]
    assert stored(rt) == [{"role": "user", "content": "c"}, {"role": "assistant", "content": "three"}]


def test_the_newest_message_is_sent_even_over_the_budget(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    say(llm, "short", "long one noted")
    rt = app(max_history_tokens=30)
    rt.run("hi")
    long_message = "x" * 400
    assert rt.run(long_message).output == "long one noted"
    assert received(llm) == [("system", PIRATE), ("user", long_message)]
    assert stored(rt) == []


# ---- errors and /reset -----------------------------------------------------------------------------

def test_an_llm_error_is_reported_and_not_remembered(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    say(llm, "Ahoy.")
    llm.reply(openai_error("Incorrect API key provided: sk-test***123.", "invalid_request_error", "invalid_api_key"),
              status=401)
    say(llm, "Ahoy again.")
    rt = app()
    rt.run("hello")
    failed = rt.run("this turn fails")
    assert failed.finish_reason == "error"
    assert failed.output.startswith("llm `gpt` failed: ") and "Incorrect API key provided" in failed.output
    assert stored(rt) == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Ahoy."}]
    assert rt.run("hello again").output == "Ahoy again."
    assert received(llm) == [("system", PIRATE), *turns(("hello", "Ahoy.")), ("user", "hello again")]


def test_reset_clears_only_this_session(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    say(llm, "Hello Ada.", "Hello Bob.", "Who are you?", "You are Bob.")
    ada, bob = app(session="ada"), app(session="bob")
    ada.run("I am Ada.")
    bob.run("I am Bob.")
    reset = ada.run("  /RESET ")
    assert (reset.output, reset.finish_reason) == ("The conversation history of this session is cleared.",
                                                   "final_answer")
    assert len(llm.seen) == 2  # /reset never reaches the model
    ada.run("Who am I?")
    bob.run("Who am I?")
    assert received(llm, 2) == [("system", PIRATE), ("user", "Who am I?")]
    assert received(llm, 3) == [("system", PIRATE), *turns(("I am Bob.", "Hello Bob.")), ("user", "Who am I?")]


def test_options_and_config_problems(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    say(llm, "ok")
    rt = app(max_tokens=50, temperature=0.2)
    assert rt.run("hi").output == "ok"
    assert (llm.seen[0].json["max_tokens"], llm.seen[0].json["temperature"]) == (50, 0.2)

    wrong = app(llm="claude").run("hi")
    assert wrong.finish_reason == "error"
    assert wrong.output == ("config `llm` names 'claude', which is not among the llms given to this agent (gpt): "
                            "list it under the agent's `llms:` in app.yaml or fix the name")
    empty = app().run("   ")
    assert empty.finish_reason == "error" and "empty" in empty.output
    assert len(llm.seen) == 1


def test_without_kv_it_says_to_grant_it(app_file: Callable[..., Path], llm: ScriptedServer) -> None:
    path = app_file()
    path.write_text(path.read_text() + "    grant: {kv: false}\n")
    with load_app(path) as rt:
        result = rt.run("hello")
    assert result.finish_reason == "error"
    assert result.output.startswith("cannot read the conversation memory (kv): not_granted: ")
    assert "grant: {kv: true}" in result.output
    assert llm.seen == []


# ---- tools -------------------------------------------------------------------------------------------

def calls(*pairs: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """An OpenAI reply asking for tool calls (id, name, arguments)."""
    return openai_chat(None, finish_reason="tool_calls",
                       tool_calls=[{"id": i, "name": n, "arguments": a} for i, n, a in pairs])


def test_tools_are_called_and_only_the_answer_is_remembered(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    llm.reply(calls(("call_1", "calc", {"expression": "6*7"}), ("call_2", "web", {"q": "x"}),
                    ("call_3", "calc", {"expression": "1/"})))
    say(llm, "It be 42, matey.", "Aye.")
    rt = app()
    assert rt.run("What is 6 times 7?").output == "It be 42, matey."
    offered = llm.seen[0].json["tools"]
    assert [(t["type"], t["function"]["name"], t["function"]["description"]) for t in offered] == [
        ("function", "calc", "arithmetic")]
    assert offered[0]["function"]["parameters"]["required"] == ["expression"]
    second = llm.seen[1].json["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool", "tool", "tool"]
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in second[2]["tool_calls"]] == [("call_1", "calc", {"expression": "6*7"}),
                                                   ("call_2", "web", {"q": "x"}),
                                                   ("call_3", "calc", {"expression": "1/"})]
    results = {m["tool_call_id"]: m["content"] for m in second[3:]}
    assert results["call_1"] == "42"
    assert results["call_2"] == "Error: there is no tool named 'web'; the tools are: calc"
    assert results["call_3"].startswith("Error: ")
    # The tool round trip stays inside the turn: the history keeps the question and the answer.
    assert stored(rt) == [{"role": "user", "content": "What is 6 times 7?"},
                          {"role": "assistant", "content": "It be 42, matey."}]
    rt.run("Thanks")
    assert received(llm) == [("system", PIRATE), *turns(("What is 6 times 7?", "It be 42, matey.")),
                             ("user", "Thanks")]


def test_tool_rounds_are_bounded_and_not_remembered(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    llm.reply(calls(("call_1", "calc", {"expression": "1+1"})))
    llm.reply(calls(("call_2", "calc", {"expression": "2+2"})))
    rt = app(max_tool_rounds=1)
    result = rt.run("count")
    assert result.finish_reason == "max_steps"
    assert result.output.startswith("the model still asked for tools after 1 rounds of tool calls")
    assert len(llm.seen) == 2 and stored(rt) is None


def test_use_tools_false_offers_none(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    say(llm, "ok")
    assert app(use_tools=False).run("hi").output == "ok"
    assert "tools" not in llm.seen[0].json


def test_an_llm_without_tool_calling_is_asked_without_tools(tmp_path: Path) -> None:
    """The host refuses `tools` for an llm whose plugin.yaml lacks the tool_calling feature (`unsupported`);
    the agent then asks again without them. The llm is the C conformance plug-in (it echoes), packaged
    here as an llm folder without that feature."""
    folder = tmp_path / "echo-llm"
    (folder / "build").mkdir(parents=True)
    shutil.copy(conformance_wasm("c"), folder / "build" / "echo-llm.wasm")
    (folder / "plugin.yaml").write_text("name: test/echo-llm\nversion: 1.0.0\nkind: llm\nabi: 1\n"
                                        "wasm: build/echo-llm.wasm\nconfig: {kind: {type: string}}\n")
    path = write_app(tmp_path, f"""
name: chat-test
entry: agent
llms: [{{name: echo, description: echoes, plugin_name: {folder}, config: {{kind: llm}}}}]
tools: [{{name: calc, description: arithmetic, plugin_name: {PLUGINS / "calculator"}}}]
agents:
  - {{name: agent, description: chat, plugin_name: {PLUGINS / "conversational"}, llms: [echo], tools: [calc]}}
""")
    with load_app(path) as rt:
        result = rt.run("hello")
        assert (result.output, result.finish_reason) == ("echo: hello", "final_answer")
        assert any("cannot call tools" in line.message for line in rt.nodes["agent"].logs)
