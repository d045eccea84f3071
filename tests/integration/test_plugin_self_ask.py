"""plugins/self-ask end to end: the real openai-chat and serpapi-search plug-ins against scripted servers.

The LLM is scripted turn by turn, so each test pins what self-ask sent (the growing scratchpad, the
stop sequence), what it asked the search tool, and how it ends (final answer, error, step limit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cspm.planner import load_app
from cspm.runtime.engine import RunResult, Runtime
from tests.conftest import PLUGINS, ROOT, plugin_wasm, write_app
from tests.scripted import ScriptedServer, openai_chat, openai_error, serpapi_search

OPENAI_KEY = "sk-test-123"
SERP_KEY = "serp-test-456"
STOP = ["\nIntermediate answer:"]
QUESTION = "Are the directors of Jaws and Psycho from the same country?"
ASK = "\nAre follow up questions needed here:"

APP = """
name: self-ask-test
entry: agent
llms:
  - name: gpt
    description: chat completions
    plugin_name: {openai}
    config: {{base_url: "{llm_url}/v1"}}
    secrets: {{api_key: env:OPENAI_API_KEY}}
    grant: {{hosts: ["{llm_url}"]}}
tools:
  - name: search
    description: web search
    plugin_name: {serpapi}
    config: {{base_url: "{serp_url}", max_chars: 9000}}
    secrets: {{api_key: env:SERPAPI_API_KEY}}
    grant: {{hosts: ["{serp_url}"]}}
agents:
  - name: agent
    description: self-ask with search
    plugin_name: {self_ask}
    prompt: {prompt}
    config: {config}
    llms: [gpt]
    tools: [{tools}]
"""


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for name in ("self-ask", "openai-chat", "serpapi-search"):
        plugin_wasm(name)


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("SERPAPI_API_KEY", SERP_KEY)


@pytest.fixture
def llm(scripted: Callable[[], ScriptedServer]) -> ScriptedServer:
    return scripted()


@pytest.fixture
def serp(scripted: Callable[[], ScriptedServer]) -> ScriptedServer:
    return scripted()


@pytest.fixture
def app_file(tmp_path: Path, llm: ScriptedServer, request: pytest.FixtureRequest) -> Callable[..., Path]:
    """Writes the app; keyword arguments become the agent's config. Tests that never search get no
    SerpAPI server (each idle server costs ~0.5 s to shut down) but a closed port."""
    serp_url = request.getfixturevalue("serp").url if "serp" in request.fixturenames else "http://127.0.0.1:9"

    def make(prompt: str = '""', tools: str = "search", **config: Any) -> Path:
        return write_app(tmp_path, APP.format(
            openai=PLUGINS / "openai-chat", serpapi=PLUGINS / "serpapi-search", self_ask=PLUGINS / "self-ask",
            llm_url=llm.url, serp_url=serp_url, prompt=prompt, tools=tools, config=json.dumps(config)))
    return make


@pytest.fixture
def app(app_file: Callable[..., Path]) -> Iterator[Callable[..., Runtime]]:
    runtimes: list[Runtime] = []

    def make(**kwargs: Any) -> Runtime:
        runtimes.append(load_app(app_file(**kwargs)))
        return runtimes[-1]

    yield make
    for rt in runtimes:
        rt.close()


def say(llm: ScriptedServer, *outputs: str) -> None:
    for text in outputs:
        llm.reply(openai_chat(text))


def found(serp: ScriptedServer, *answers: str) -> None:
    for text in answers:
        serp.reply(serpapi_search(answer_box={"type": "organic_result", "answer": text}))


def prompts(llm: ScriptedServer) -> list[str]:
    """The scratchpad of each LLM call: self-ask sends it as the only (user) message."""
    out = []
    for seen in llm.seen:
        messages = seen.json["messages"]
        assert [m["role"] for m in messages] == ["user"]
        out.append(messages[0]["content"])
    return out


def logs(rt: Runtime) -> list[str]:
    return [line.message for line in rt.nodes["agent"].logs]


def run(rt: Runtime, question: str = QUESTION) -> RunResult:
    return rt.run(question)


# ---- the whole loop -------------------------------------------------------------------------------

def test_two_follow_ups_then_the_final_answer(app: Callable[..., Runtime], llm: ScriptedServer,
                                              serp: ScriptedServer) -> None:
    say(llm, " Yes.\nFollow up: Who directed Jaws?",
        "Follow up: Who directed Psycho?",
        "Follow up: Where are Steven Spielberg and Alfred Hitchcock from?\n",
        "So the final answer is: No")
    found(serp, "Steven Spielberg", "Alfred Hitchcock", "The United States and England.")
    rt = app()
    result = run(rt)
    assert (result.output, result.finish_reason) == ("No", "final_answer")

    sent = prompts(llm)
    assert len(sent) == 4
    first = sent[0]
    assert first.startswith("Question: Who lived longer, Muhammad Ali or Alan Turing?\n")
    for example in ("When was the founder of craigslist born?", "maternal grandfather of George Washington",
                    "directors of Jaws and Casino Royale", "So the final answer is: Joseph Ball\n"):
        assert example in first
    assert first.endswith(f"\n\nQuestion: {QUESTION}{ASK}")
    # The scratchpad grows by the model's own text and one intermediate answer per follow-up.
    assert sent[1] == first + " Yes.\nFollow up: Who directed Jaws?\nIntermediate answer: Steven Spielberg\n"
    assert sent[2] == sent[1] + "Follow up: Who directed Psycho?\nIntermediate answer: Alfred Hitchcock\n"
    assert sent[3] == sent[2] + ("Follow up: Where are Steven Spielberg and Alfred Hitchcock from?\n"
                                 "Intermediate answer: The United States and England.\n")
    for seen in llm.seen:
        body = seen.json
        assert body["stop"] == STOP and "max_tokens" not in body and "temperature" not in body
        assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert [s.query["q"] for s in serp.seen] == [
        "Who directed Jaws?", "Who directed Psycho?", "Where are Steven Spielberg and Alfred Hitchcock from?"]
    assert all(s.query["api_key"] == SERP_KEY for s in serp.seen)
    assert "step 1/8: follow up: Who directed Jaws?" in logs(rt)
    assert "step 1/8: intermediate answer: Steven Spielberg" in logs(rt)
    assert "step 4/8: final answer: No" in logs(rt)


def test_cspm_run_json_trace_verbose(app_file: Callable[..., Path], llm: ScriptedServer,
                                     serp: ScriptedServer) -> None:
    say(llm, " Yes.\nFollow up: Who directed Jaws?", "So the final answer is: Steven Spielberg")
    found(serp, "Steven Spielberg")
    path = app_file()
    result = subprocess.run([sys.executable, "-m", "cspm.cli.main", "run", str(path), "--input", "Who directed Jaws?",
                             "--json", "--trace", "-v"], capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ), timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["output"], data["finish_reason"]) == ("Steven Spielberg", "final_answer")
    trace = data["trace"]
    assert trace["name"] == "agent"
    assert [child["name"] for child in trace["children"]] == ["gpt", "search", "gpt"]
    assert "step 1/8: follow up: Who directed Jaws?" in result.stderr
    assert prompts(llm)[1].endswith("Follow up: Who directed Jaws?\nIntermediate answer: Steven Spielberg\n")


def test_the_app_prompt_replaces_the_examples_and_llm_options_are_sent(
        app: Callable[..., Runtime], llm: ScriptedServer, serp: ScriptedServer) -> None:
    say(llm, " No.\nSo the final answer is: 4")
    rt = app(prompt='"Answer questions. Question: 1+1?\\nAre follow up questions needed here: No.\\n'
                    'So the final answer is: 2\\n"', max_tokens=64, temperature=0.5)
    result = run(rt, "  2+2?  ")
    assert (result.output, result.finish_reason) == ("4", "final_answer")
    body = llm.seen[0].json
    assert body["messages"][0]["content"] == (
        "Answer questions. Question: 1+1?\nAre follow up questions needed here: No.\n"
        f"So the final answer is: 2\n\nQuestion: 2+2?{ASK}")
    assert (body["max_tokens"], body["temperature"], body["stop"]) == (64, 0.5, STOP)
    assert serp.seen == []


# ---- tolerant parsing --------------------------------------------------------------------------

@pytest.mark.parametrize(("output", "query"), [
    (" Yes.\nfollow up:Who directed Jaws?", "Who directed Jaws?"),
    (" Yes.\nFollow-up: Who directed Jaws?  ", "Who directed Jaws?"),
    (" Yes.\nFOLLOWUP : Who directed Jaws?", "Who directed Jaws?"),
    (" Yes.\nFollow up question: Who directed Jaws?", "Who directed Jaws?"),
    (" Yes. Follow up: Who directed Jaws?\r\n", "Who directed Jaws?"),
], ids=["lower-no-space", "hyphen", "upper-joined", "question-word", "same-line-crlf"])
def test_follow_up_markers_are_read_tolerantly(app: Callable[..., Runtime], llm: ScriptedServer,
                                               serp: ScriptedServer, output: str, query: str) -> None:
    say(llm, output, "So the final answer is: Spielberg")
    found(serp, "Steven Spielberg")
    result = run(app())
    assert (result.output, result.finish_reason) == ("Spielberg", "final_answer")
    assert [s.query["q"] for s in serp.seen] == [query]
    assert prompts(llm)[1].endswith(f"{output.rstrip()}\nIntermediate answer: Steven Spielberg\n")


@pytest.mark.parametrize(("output", "answer"), [
    ("So the final answer is: Steven Spielberg.", "Steven Spielberg"),
    ("so the final answer is Steven Spielberg", "Steven Spielberg"),
    ("SO THE FINAL ANSWER IS:Steven Spielberg", "Steven Spielberg"),
    (" No.\nSo the final answer is:\nSteven Spielberg\n", "Steven Spielberg"),
    ("So the final answer is: the U.S.", "the U.S."),
], ids=["period", "no-colon", "upper-no-space", "next-line", "abbreviation"])
def test_final_answer_markers_are_read_tolerantly(app: Callable[..., Runtime], llm: ScriptedServer,
                                                  output: str, answer: str) -> None:
    say(llm, output)
    result = run(app())
    assert (result.output, result.finish_reason) == (answer, "final_answer")


def test_text_past_an_invented_intermediate_answer_is_ignored(app: Callable[..., Runtime], llm: ScriptedServer,
                                                              serp: ScriptedServer) -> None:
    """A server that ignores `stop` lets the model answer its own question: only the search counts."""
    say(llm, " Yes.\nFollow up: Who directed Jaws?\nIntermediate answer: George Lucas\nSo the final answer is: Lucas",
        "So the final answer is: Spielberg")
    found(serp, "Steven Spielberg")
    result = run(app())
    assert (result.output, result.finish_reason) == ("Spielberg", "final_answer")
    assert prompts(llm)[1].endswith("Follow up: Who directed Jaws?\nIntermediate answer: Steven Spielberg\n")
    assert "Lucas" not in prompts(llm)[1]


def test_a_follow_up_before_a_final_answer_wins(app: Callable[..., Runtime], llm: ScriptedServer,
                                                serp: ScriptedServer) -> None:
    """A final answer written before the evidence is in is a guess: the follow-up is asked first."""
    say(llm, " Yes.\nFollow up: Who directed Jaws?\nSo the final answer is: Lucas", "So the final answer is: Spielberg")
    found(serp, "Steven Spielberg")
    assert run(app()).output == "Spielberg"
    assert [s.query["q"] for s in serp.seen] == ["Who directed Jaws?"]


# ---- malformed output -----------------------------------------------------------------------------

def test_malformed_output_gets_a_format_reminder_and_recovers(app: Callable[..., Runtime], llm: ScriptedServer,
                                                              serp: ScriptedServer) -> None:
    say(llm, " I believe it was Spielberg.", "So the final answer is: Spielberg")
    result = run(app())
    assert (result.output, result.finish_reason) == ("Spielberg", "final_answer")
    first, second = prompts(llm)
    assert second.startswith(first + " I believe it was Spielberg.\n(Format reminder: ")
    assert '"Follow up: <question>"' in second and second.endswith('"So the final answer is: <answer>" to answer.)\n')
    assert serp.seen == []


def test_malformed_output_three_times_is_an_error_quoting_it(app: Callable[..., Runtime], llm: ScriptedServer,
                                                             serp: ScriptedServer) -> None:
    say(llm, "Hmm.", "Let me think.", "I really cannot say")
    result = run(app())
    assert result.finish_reason == "error"
    assert '"I really cannot say"' in result.output
    assert "neither \"Follow up:\" nor \"So the final answer is:\" (3 tries)" in result.output
    assert len(llm.seen) == 3 and serp.seen == []
    assert prompts(llm)[2].count("(Format reminder:") == 2


# ---- failures and limits --------------------------------------------------------------------------

def test_a_tool_error_becomes_the_intermediate_answer(app: Callable[..., Runtime], llm: ScriptedServer,
                                                      serp: ScriptedServer) -> None:
    say(llm, " Yes.\nFollow up: Who directed Jaws?", "Follow up: Jaws director", "So the final answer is: Spielberg")
    serp.reply({"error": "Invalid API key. Your API key should be here: https://serpapi.com/manage-api-key"},
               status=401)
    found(serp, "Steven Spielberg")
    result = run(app())
    assert (result.output, result.finish_reason) == ("Spielberg", "final_answer")
    observation = prompts(llm)[1].rsplit("Intermediate answer: ", 1)[1]
    assert observation.startswith("Error: ") and "401" in observation and observation.endswith("\n")
    assert "\n" not in observation[:-1]
    assert prompts(llm)[2].endswith("Follow up: Jaws director\nIntermediate answer: Steven Spielberg\n")


def test_the_step_limit_stops_with_the_last_intermediate_answer(app: Callable[..., Runtime], llm: ScriptedServer,
                                                                serp: ScriptedServer) -> None:
    say(llm, " Yes.\nFollow up: Who directed Jaws?", "Follow up: Where is Steven Spielberg from?")
    found(serp, "Steven Spielberg", "Cincinnati, Ohio")
    result = run(app(max_steps=2))
    assert result.finish_reason == "max_steps"
    assert result.output == ("No final answer after 2 steps (config `max_steps`). Last follow up: "
                             "Where is Steven Spielberg from? Intermediate answer: Cincinnati, Ohio")
    assert len(llm.seen) == 2 and len(serp.seen) == 2


def test_an_llm_error_stops_with_its_reason(app: Callable[..., Runtime], llm: ScriptedServer,
                                            serp: ScriptedServer) -> None:
    llm.reply(openai_error("Incorrect API key provided: sk-test***123.", "invalid_request_error", "invalid_api_key"),
              status=401)
    result = run(app())
    assert result.finish_reason == "error"
    assert result.output.startswith("llm `gpt` failed: ")
    assert "Incorrect API key provided" in result.output
    assert len(llm.seen) == 1 and serp.seen == []


def test_an_llm_error_after_a_step_stops_too(app: Callable[..., Runtime], llm: ScriptedServer,
                                             serp: ScriptedServer) -> None:
    say(llm, " Yes.\nFollow up: Who directed Jaws?")
    llm.reply(openai_error("The server had an error while processing your request.", "server_error"), status=500)
    found(serp, "Steven Spielberg")
    result = run(app())
    assert result.finish_reason == "error" and result.output.startswith("llm `gpt` failed: ")
    assert len(serp.seen) == 1


def test_the_scratchpad_is_bounded(app: Callable[..., Runtime], llm: ScriptedServer, serp: ScriptedServer) -> None:
    """Long tool answers are cut to 4000 bytes each, and past 64 KiB of scratchpad the run stops."""
    steps = 17
    say(llm, *[f"Follow up: question {i}?" for i in range(steps)])
    found(serp, *["é" * 2500 for _ in range(steps)])  # 5000 bytes of UTF-8 each
    result = run(app(max_steps=40))
    assert result.finish_reason == "error"
    assert result.output.startswith("the scratchpad grew past 64 KiB after 16 steps")
    sent = prompts(llm)
    assert len(sent) == 16 and len(serp.seen) == 16
    observation = sent[1].rsplit("Intermediate answer: ", 1)[1]
    assert observation == "é" * 2000 + "…\n"


# ---- configuration ----------------------------------------------------------------------------------

def test_config_tool_picks_among_the_given_tools(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    say(llm, "So the final answer is: x")
    result = run(app(tool="web"))
    assert result.finish_reason == "error"
    assert result.output == ("config `tool` names tool 'web', which is not among the tools given to this agent "
                             "(search): list it under the agent's `tools:` in app.yaml or fix the name")
    assert llm.seen == []


def test_no_tool_and_bad_config_are_explained(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    result = run(app(tools=""))
    assert result.finish_reason == "error" and "needs a tool" in result.output
    result = run(app(max_steps=0))
    assert result.finish_reason == "error"
    assert result.output == "config `max_steps` must be an integer from 1 to 100, not '0'"
    result = run(app(), "   ")
    assert result.finish_reason == "error" and "empty" in result.output
    assert llm.seen == []


def test_a_tool_that_fails_in_the_host_becomes_an_error_answer(app_file: Callable[..., Path], llm: ScriptedServer,
                                                               serp: ScriptedServer) -> None:
    """A tool that times out reaches the agent as a host error document (callee_failed), not as a tool
    answer: self-ask still shows it to the model as the intermediate answer."""
    say(llm, " Yes.\nFollow up: Who directed Jaws?", "So the final answer is: unknown")
    serp.reply(serpapi_search(answer_box={"answer": "Steven Spielberg"}), delay=0.5)
    path = app_file()
    grant = f'grant: {{hosts: ["{serp.url}"]'
    path.write_text(path.read_text().replace(grant + "}", grant + ", timeout_ms: 100}"))
    with load_app(path) as rt:
        result = run(rt)
    assert (result.output, result.finish_reason) == ("unknown", "final_answer")
    observation = prompts(llm)[1].rsplit("Intermediate answer: ", 1)[1]
    assert observation.startswith("Error: tool `search` failed (callee_failed): "), observation


# ---- calculator, choices, empty replies (issue 16) ------------------------------------------------

CALCULATOR = f"""  - name: calculator
    description: arithmetic
    plugin_name: {PLUGINS / "calculator"}
agents:"""


@pytest.fixture
def calc_app(app_file: Callable[..., Path]) -> Iterator[Callable[..., Runtime]]:
    """The app with chainsocket/calculator as a second tool of the agent."""
    plugin_wasm("calculator")
    runtimes: list[Runtime] = []

    def make(**config: Any) -> Runtime:
        path = app_file(tools="search, calculator", **config)
        path.write_text(path.read_text().replace("agents:", CALCULATOR, 1))
        runtimes.append(load_app(path))
        return runtimes[-1]

    yield make
    for rt in runtimes:
        rt.close()


def test_calculate_follow_ups_go_to_the_calculator(calc_app: Callable[..., Runtime], llm: ScriptedServer,
                                                   serp: ScriptedServer) -> None:
    """Arithmetic is a tool's job (Press et al. 2022 hand the facts to search; the sums go to a
    calculator): "Follow up: Calculate X" goes to config `calculator`, every other follow-up to `tool`."""
    question = "How old was Ada Lovelace when Charles Babbage died?"
    say(llm, " Yes.\nFollow up: When was Ada Lovelace born?", "Follow up: Calculate: 1871 - 1815",
        "So the final answer is: 56")
    found(serp, "1815")
    result = run(calc_app(calculator="calculator"), question)
    assert (result.output, result.finish_reason) == ("56", "final_answer")
    assert [s.query["q"] for s in serp.seen] == ["When was Ada Lovelace born?"]
    assert prompts(llm)[2].endswith("Follow up: Calculate: 1871 - 1815\nIntermediate answer: 56\n")
    tools = [s for s in result.trace.children if s.kind == "tool"]
    assert [(s.name, s.input) for s in tools][1] == ("calculator", "1871 - 1815")


def test_with_choices_the_operands_are_chosen_among_the_tools_answers(calc_app: Callable[..., Runtime],
                                                                        llm: ScriptedServer,
                                                                        serp: ScriptedServer) -> None:
    """config `calculator` with `choices`: a small model copies a number from lines back less reliably
    than it knows which fact comes first, so "Calculate X - Y" is asked again with llm_input `choices`:
    the ordered pairs of the numbers the tools answered (never the question's), the model's operator."""
    question = "How old was Ada Lovelace in 1848 when Charles Babbage was 56?"
    say(llm, " Yes.\nFollow up: When was Ada Lovelace born?", "Follow up: When was Charles Babbage born?",
        "Follow up: Calculate 1815 - 1797x", " 1791 - 1815", "So the final answer is: -24")
    found(serp, "Ada Lovelace — born: 1815 (London)", "Charles Babbage — born: 1791")
    result = run(calc_app(calculator="calculator", choices=True), question)
    assert (result.output, result.finish_reason) == ("-24", "final_answer")
    assert prompts(llm)[3] == prompts(llm)[2] + "Follow up: Calculate"
    tools = [s for s in result.trace.children if s.kind == "tool"]
    assert [(s.name, s.input) for s in tools][2] == ("calculator", "1791 - 1815")
    assert prompts(llm)[4].endswith("Follow up: Calculate 1791 - 1815\nIntermediate answer: -24\n")
    # an answer outside the choices (an llm that ignores them, or a number of the question's) leaves the
    # model's own expression
    for outside in (" 42", " 1848 - 1815", " 1815 + 1791"):
        say(llm, " Yes.\nFollow up: When was Ada Lovelace born?", "Follow up: When was Charles Babbage born?",
            "Follow up: Calculate 1815 - 1791", outside, "So the final answer is: 24")
        found(serp, "1815", "1791")
        run(calc_app(calculator="calculator", choices=True), question)
        assert prompts(llm)[-1].endswith("Follow up: Calculate 1815 - 1791\nIntermediate answer: 24\n")
    # one number seen, or an expression that is not "X op Y": no choice is asked
    say(llm, " Yes.\nFollow up: When was Ada Lovelace born?", "Follow up: Calculate 1815 - 1791",
        "Follow up: Calculate sqrt(16)", "So the final answer is: 4")
    found(serp, "1815")
    calls = len(llm.seen)
    run(calc_app(calculator="calculator", choices=True), question)
    assert all("choices" not in seen.json for seen in llm.seen[calls:])
    assert len(llm.seen) == calls + 4


def test_without_config_calculator_everything_goes_to_the_tool(calc_app: Callable[..., Runtime],
                                                               llm: ScriptedServer, serp: ScriptedServer) -> None:
    say(llm, " Yes.\nFollow up: Calculate 2 + 2", "So the final answer is: 4")
    found(serp, "4")
    assert run(calc_app()).output == "4"
    assert [s.query["q"] for s in serp.seen] == ["Calculate 2 + 2"]


def test_config_calculator_must_be_one_of_the_tools(app: Callable[..., Runtime], llm: ScriptedServer) -> None:
    result = run(app(calculator="calc"))
    assert result.finish_reason == "error"
    assert result.output.startswith("config `calculator` names tool 'calc', which is not among the tools")
    assert llm.seen == []


def test_choices_keep_the_final_answer_to_the_question_s_names(app: Callable[..., Runtime], llm: ScriptedServer,
                                                               serp: ScriptedServer) -> None:
    """config `choices`: for "…, A or B?" the final answer is asked again with llm_input `choices`
    (A and B), so a misspelt or invented name never comes out. openai-chat ignores `choices`: its free
    answer counts only when it is one of them, else the first answer stands."""
    question = "Who was born first, Vlile Soszher or Kogail Bagrol?"
    say(llm, "So the final answer is: Vliler Dezhim", " Kogail Bagrol")
    result = run(app(choices=True), question)
    assert (result.output, result.finish_reason) == ("Kogail Bagrol", "final_answer")
    first, second = prompts(llm)
    assert second == first + "So the final answer is:"
    assert llm.seen[1].json["stop"] == ["\n"]
    say(llm, "So the final answer is: Kogail Bagrol.", "Someone else")
    assert run(app(choices=True), question).output == "Kogail Bagrol"
    say(llm, "So the final answer is: Vliler Dezhim")
    assert run(app(), question).output == "Vliler Dezhim"  # without `choices`: one call, as before
    assert len(llm.seen) == 5


def test_repeated_empty_replies_stop_with_a_clear_reason(app: Callable[..., Runtime], llm: ScriptedServer,
                                                         serp: ScriptedServer) -> None:
    """Empty replies stop the run after the second in a row, before reminders fill the context (issue 16:
    it went on until the context overflowed, then advised a context larger than the model's)."""
    say(llm, "", "  \n")
    result = run(app())
    assert result.finish_reason == "error"
    assert result.output.startswith("the llm `gpt` gave an empty reply 2 times in a row (finish_reason stop)")
    assert "context" not in result.output.split(";", 1)[1]
    assert len(llm.seen) == 2 and serp.seen == []
