"""`POST /v1/responses` (Open Responses) on `cspm serve`, through the official `openai` SDK's
`client.responses`: whole and streamed answers, sessions, instructions, message items, and refusals
in OpenAI's error shape. The app is the echo app of test_serve_openai (conversational agent + the
conformance plug-in as its llm, which answers `echo: <last message>` and counts the messages it got)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.integration.test_serve_openai import Served, _short, echo_app, slow_app  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def echo(echo_app: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:  # noqa: F811
    served = Served(echo_app, env={"CSPM_DATA_DIR": str(tmp_path_factory.mktemp("responses-data"))})
    yield served
    assert served.stop() == 0


def test_a_whole_response_with_its_usage_and_session(echo: Served) -> None:
    client = echo.client()
    session = {"extra_headers": {"X-Cspm-Session": "resp-1"}}
    first = client.responses.create(model="echo-chat", input="one", **session)
    assert first.object == "response" and first.status == "completed" and first.id.startswith("resp_")
    assert first.output_text == "echo: one"
    assert first.usage is not None and first.usage.input_tokens == 2 and first.usage.total_tokens >= 2
    second = client.responses.create(model="echo-chat", input="two", **session)  # the session remembers
    assert second.output_text == "echo: two" and second.usage is not None and second.usage.input_tokens == 4
    other = client.responses.create(model="echo-chat", input="alone", metadata={"session": "resp-2"})
    assert other.usage is not None and other.usage.input_tokens == 2


def test_message_items_and_instructions_become_the_conversation(echo: Served) -> None:
    answer = echo.client().responses.create(
        model="echo-chat", instructions="be brief",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hel"}, {"type": "input_text",
                                                                                   "text": "lo"}]}])
    assert answer.output_text == "echo: hello"


def test_a_streamed_response_sends_deltas_then_completed(slow_app: Path, tmp_path: Path) -> None:  # noqa: F811
    served = Served(_short(slow_app, tmp_path), env={"CSPM_DATA_DIR": str(tmp_path / "data")})
    try:
        events = list(served.client(timeout=120).responses.create(model="chat", input="tell me", stream=True))
    finally:
        assert served.stop() == 0
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 5  # llm-local emits token by token
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    last = events[-1]
    assert last.type in ("response.completed", "response.incomplete")
    assert last.response.output_text == "".join(deltas)
    assert last.response.usage is not None and last.response.usage.output_tokens > 0


def test_refusals_are_openai_errors(echo: Served) -> None:
    client = echo.client()
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model="echo-chat", input="x", previous_response_id="resp_123")
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="other", input="x")
    with pytest.raises(openai.BadRequestError, match="only message items"):
        client.responses.create(model="echo-chat", input=[{"type": "function_call_output", "call_id": "c",
                                                           "output": "x"}])
