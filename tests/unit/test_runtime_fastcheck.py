"""The routed hop's quick paths agree with what they stand in for.

cspm.runtime.fastcheck accepts common ABI message shapes before the compiled schema checks: "yes"
must mean the schema says yes too (it is compared here on seeds and thousands of mutations), and
the common shapes must take it (else it gains nothing). engine._plugin_call stands in for
extism.Plugin.call: same output, same errors."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from cspm.runtime import fastcheck
from cspm.schemas import MessageInvalid, message_check
from tests.conftest import ROOT

NAMES = ["t", "calc", "web_search", "a.b-c", "x" * 64, "x" * 65, "a\n", "", "../x", "-lead", "é", "a b", "_"]
ODD: list[Any] = [None, True, False, 0, -1, 1.5, 2**40, "", "x" * 300, "t", "a\n", [], {}, ["t"], {"k": "v"},
                  "final_answer", "stop", "error", "tool_calls", "max_steps"]
SEEDS: dict[str, list[Any]] = {
    "call_tool_request": [{"name": "t", "input": "hello"}, {"name": "calc", "input": ""},
                          {"name": "t", "input": "x", "extra": 1}],
    "call_agent_request": [{"name": "t", "input": "hi"}, {"name": "t", "input": "hi", "session": "s" * 128}],
    "tool_output": [{"output": "hello", "is_error": False}, {"output": "", "is_error": True, "extra": [1]}],
    "agent_output": [{"output": "done", "finish_reason": "final_answer"},
                     {"output": "", "finish_reason": "max_steps", "steps": 3}],
    "llm_output": [{"content": "hi", "finish_reason": "stop", "usage": {"input_tokens": 1, "output_tokens": 0}},
                   {"content": "", "finish_reason": "error", "usage": {"input_tokens": 0, "output_tokens": 0},
                    "error": "down"}],
}


def schema_accepts(definition: str, message: Any) -> bool:
    try:
        message_check(definition)(message)
    except MessageInvalid:
        return False
    return True


def checked_names() -> frozenset[str]:
    """As the runtime makes them: the names that pass the ABI's own `name` check."""
    return frozenset(name for name in NAMES if schema_accepts("name", name))


def quick(definition: str) -> Any:
    names = checked_names()
    if definition == "call_tool_request":
        return lambda m: fastcheck.tool_request(m, names)
    if definition == "call_agent_request":
        return lambda m: fastcheck.agent_request(m, names)
    return fastcheck.ANSWERS[definition.removesuffix("_output")]


def mutations(seed: dict[str, Any], rng: random.Random, count: int) -> list[Any]:
    """The seed with fields dropped, added, or set to odd values (nested ones too), one to three edits each."""
    out: list[Any] = []
    keys = sorted({*seed, "name", "input", "arguments", "session", "output", "is_error", "finish_reason",
                   "content", "usage", "error", "tool_calls"})
    for _ in range(count):
        message = copy.deepcopy(seed)
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(keys)
            edit = rng.random()
            if edit < 0.25:
                message.pop(key, None)
            elif edit < 0.5:
                message[key] = rng.choice(NAMES)
            elif edit < 0.65 and isinstance(message.get("usage"), dict):
                message["usage"][rng.choice(["input_tokens", "output_tokens", "other"])] = rng.choice(ODD)
            else:
                message[key] = copy.deepcopy(rng.choice(ODD))
        out.append(message)
    out += [None, [], "x", 1, [seed]]
    return out


@pytest.mark.parametrize("definition", sorted(SEEDS))
def test_the_quick_check_takes_the_common_shapes(definition: str) -> None:
    for seed in SEEDS[definition]:
        assert quick(definition)(seed), seed
        assert schema_accepts(definition, seed), seed


@pytest.mark.parametrize("definition", sorted(SEEDS))
def test_the_quick_check_never_accepts_what_the_schema_refuses(definition: str) -> None:
    rng = random.Random(f"fastcheck {definition}")
    taken = refused = 0
    for seed in SEEDS[definition]:
        for message in mutations(seed, rng, 3000):
            if quick(definition)(message):
                taken += 1
                assert schema_accepts(definition, message), message
            elif not schema_accepts(definition, message):
                refused += 1
    assert taken > 50 and refused > 50  # the mutations reach both sides


def test_only_names_the_schema_passes_are_taken() -> None:
    names = checked_names()
    assert "t" in names and "x" * 64 in names
    assert not names & {"x" * 65, "a\n", "", "../x", "-lead", "é", "a b"}
    for name in NAMES:
        message = {"name": name, "input": "x"}
        assert fastcheck.tool_request(message, names) == schema_accepts("call_tool_request", message), name
        assert fastcheck.agent_request(message, names) == schema_accepts("call_agent_request", message), name


def test_the_name_check_is_the_schemas() -> None:
    rng = random.Random(7)
    alphabet = "aZ09_.-/ \n\té\x00$^"
    samples = [*NAMES, "x" * 64, "x" * 65, "a\n", "a\nb", "\n", "", None, 3, ["a"],
               *("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70))) for _ in range(2000))]
    for name in samples:
        assert fastcheck.name_passes(name) == schema_accepts("name", name), repr(name)


def test_a_session_past_its_limit_goes_to_the_full_check() -> None:
    message = {"name": "t", "input": "x", "session": "s" * 129}
    assert not fastcheck.agent_request(message, checked_names())
    assert not schema_accepts("call_agent_request", message)


CONFORMANCE_C = ROOT / "plugins/conformance-c/build/conformance-c.wasm"


@pytest.mark.skipif(not CONFORMANCE_C.exists(), reason="plugins/conformance-c is not built")
def test_the_direct_call_answers_and_fails_as_extism_does() -> None:
    import extism

    from cspm.runtime import engine

    plugin = extism.Plugin(Path(CONFORMANCE_C).read_bytes(), functions=engine.hostfns.FUNCTIONS,
                           config={"kind": "tool"})
    context = object()
    for export, data in [("echo", b"hello"), ("echo", b""), ("call", b'{"input":"hi"}'), ("echo", "text")]:
        assert engine._plugin_call(plugin, export, data, context) == plugin.call(export, data, host_context=context)  # type: ignore[arg-type]
    for export, data in [("fail", b"boom"), ("no_such_export", b"")]:
        with pytest.raises(extism.Error) as theirs:
            plugin.call(export, data, host_context=context)
        with pytest.raises(extism.Error) as ours:
            engine._plugin_call(plugin, export, data, context)  # type: ignore[arg-type]
        assert str(ours.value) == str(theirs.value)
