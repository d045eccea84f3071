"""Several `cspm serve` replicas behind one PostgreSQL (`--kv postgresql://…`): one conversation that
alternates between them keeps its memory; PostgreSQL restarted mid-run makes requests fail cleanly (503,
OpenAI's error shape) and then recover; a replica killed mid-stream leaves its client a closed stream and
the other replica unaffected. Real processes, the official `openai` client, a throwaway cluster."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.integration.test_serve_openai import Served, echo_app, slow_app  # noqa: F401  (fixtures)
from tests.postgres_support import Cluster, pg_cluster, postgres_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def replicas(echo_app: Path, postgres_url: str, tmp_path: Path) -> Iterator[list[Served]]:  # noqa: F811
    started = [Served(echo_app, "--kv", postgres_url, env={"CSPM_DATA_DIR": str(tmp_path / f"data{i}")})
               for i in range(2)]
    yield started
    for served in started:
        served.stop()


def ask(served: Served, text: str, session: str) -> tuple[str, int]:
    answer = served.client().chat.completions.create(
        model="echo-chat", messages=[{"role": "user", "content": text}],
        extra_headers={"X-Cspm-Session": session})
    assert answer.usage is not None
    return answer.choices[0].message.content or "", answer.usage.prompt_tokens


def test_one_conversation_across_two_replicas_keeps_its_memory(replicas: list[Served]) -> None:
    a, b = replicas
    # the conversational agent sends its llm the whole history: 2, 4, 6, 8 messages as turns alternate
    assert ask(a, "one", "shared") == ("echo: one", 2)
    assert ask(b, "two", "shared") == ("echo: two", 4)
    assert ask(a, "three", "shared") == ("echo: three", 6)
    assert ask(b, "four", "shared") == ("echo: four", 8)
    assert ask(b, "alone", "other")[1] == 2  # another session is another memory


def test_postgres_restarted_mid_run_fails_cleanly_then_recovers(replicas: list[Served],
                                                                pg_cluster: Cluster) -> None:  # noqa: F811
    a, b = replicas
    assert ask(a, "before", "outage")[1] == 2
    pg_cluster.stop()
    try:
        for served in (a, b):
            with pytest.raises(openai.InternalServerError) as info:
                ask(served, "during", "outage")
            assert info.value.status_code == 503
            body: Any = info.value.body
            assert body["code"] == "kv.unavailable" and "password" not in str(body)
            assert served.process.poll() is None  # the replica lives on
    finally:
        pg_cluster.start()
    assert ask(b, "after", "outage") == ("echo: after", 4)  # the failed turns were not kept


def test_a_replica_killed_mid_stream_closes_its_stream_and_spares_the_other(slow_app: Path, postgres_url: str,  # noqa: F811
                                                                           tmp_path: Path) -> None:
    slow = Served(slow_app, "--kv", postgres_url, env={"CSPM_DATA_DIR": str(tmp_path / "slow")})
    other = Served(slow_app, "--kv", postgres_url, env={"CSPM_DATA_DIR": str(tmp_path / "other")})
    try:
        stream = slow.client(timeout=60).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "count"}], stream=True)
        chunks = iter(stream)
        text = ""
        while not text:  # the role chunk, then the first words: the answer is under way
            chunk = next(chunks)
            text = (chunk.choices[0].delta.content or "") if chunk.choices else ""
        slow.process.send_signal(signal.SIGKILL)
        with pytest.raises(openai.APIError):  # the connection ends without [DONE]
            for _ in chunks:
                pass
        assert slow.process.wait(timeout=30) == -signal.SIGKILL
        answer = other.client(timeout=120).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "count"}])
        assert answer.choices[0].message.content
    finally:
        other.stop()
        slow.process.kill()
        slow.process.wait()
