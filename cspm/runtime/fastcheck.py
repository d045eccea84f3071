"""Quick acceptance of the common ABI message shapes, in front of the compiled schema checks.

A routed hop checks two untrusted messages (the caller's request, the callee's answer); the compiled
schema checks (cspm.schemas.message_check) cost ~1-5 µs each, `call_tool_request`'s `oneOf` the most.
Each predicate here answers True only for a message that the schema accepts too: it tests a narrower
shape (exact types, the fields the schema constrains, a name the schema's own check already passed).
Anything else (False) goes through the full check, which decides and words the error; so the set of
accepted messages is exactly the schema's (tests/unit/test_runtime_fastcheck.py compares them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from functools import cache
from typing import Any

AGENT_REASONS = frozenset(("final_answer", "max_steps", "error"))  # abi/v1.json agent_output.finish_reason
LLM_REASONS = frozenset(("stop", "length", "error", "tool_calls"))  # abi/v1.json llm_output.finish_reason
MAX_SESSION_CHARS = 128  # abi/v1.json call_agent_request.session.maxLength


@cache
def _name_pattern() -> re.Pattern[str]:
    """The ABI schema's own `name` pattern (abi/v1.json `$defs/name`), matched as JSON Schema does
    (a search; its `$(?!\\n)` ends the text): the same check as the compiled schema's, without
    compiling a schema validator at the first routed request (~10 ms of a warm `cspm run`)."""
    from cspm import schemas

    return re.compile(schemas.load(schemas.ABI_SCHEMA)["$defs"]["name"]["pattern"])


def name_passes(name: object) -> bool:
    """abi/v1.json's `name`: a string matching its pattern (tests/unit/test_runtime_fastcheck.py
    compares it with the compiled check)."""
    return type(name) is str and _name_pattern().search(name) is not None


def tool_request(message: Any, names: Collection[str]) -> bool:
    """call_tool_request with `input` text: object; `name` one the name check passed; `input` a str
    and no `arguments` (so exactly one `oneOf` branch holds)."""
    return (type(message) is dict and type(message.get("input")) is str and "arguments" not in message
            and type(message.get("name")) is str and message["name"] in names)


def agent_request(message: Any, names: Collection[str]) -> bool:
    """call_agent_request: `name` one the name check passed, `input` a str, `session` absent or a
    str of at most MAX_SESSION_CHARS characters."""
    if type(message) is not dict or type(message.get("input")) is not str:
        return False
    name, session = message.get("name"), message.get("session", "")
    return type(name) is str and name in names and type(session) is str and len(session) <= MAX_SESSION_CHARS


def tool_output(message: Any) -> bool:
    return type(message) is dict and type(message.get("output")) is str and type(message.get("is_error")) is bool


def agent_output(message: Any) -> bool:
    if type(message) is not dict or type(message.get("output")) is not str:
        return False
    reason = message.get("finish_reason")
    return type(reason) is str and reason in AGENT_REASONS


def llm_output(message: Any) -> bool:
    """Without `tool_calls` (their items have a schema of their own: the full check reads those)."""
    if type(message) is not dict or type(message.get("content")) is not str or "tool_calls" in message:
        return False
    reason, usage, error = message.get("finish_reason"), message.get("usage"), message.get("error", "")
    if type(reason) is not str or reason not in LLM_REASONS or type(error) is not str or type(usage) is not dict:
        return False
    given, taken = usage.get("input_tokens"), usage.get("output_tokens")
    return type(given) is int and type(taken) is int and given >= 0 and taken >= 0


ANSWERS: dict[str, Callable[[Any], bool]] = {"tool": tool_output, "agent": agent_output, "llm": llm_output}
REQUESTS: dict[str, Callable[[Any, Collection[str]], bool]] = {"call_tool": tool_request,
                                                                "call_agent": agent_request}
