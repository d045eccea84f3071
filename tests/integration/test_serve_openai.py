"""`cspm serve` (issue 19) as a real subprocess on loopback, driven by the official `openai` SDK: chat
with and without streaming, sessions keeping kv memory, errors as the SDK's exception types, auth,
limits, health and metrics, a client that goes away, and 64 conversations at once on a small pool.

Apps: `echo-chat` is the conversational agent (per-session memory in kv) on the Rust conformance
plug-in as its llm, which answers "echo: <last message>" and reports as input tokens the number of
messages it got, so the usage of an answer shows how much history its session had. `slow` is the
conversational agent on llm-local with a random model that always runs to max_tokens (streams for
seconds, and can be cut off). `scripted` is the openai-chat plug-in pointed at a scripted server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import PLUGINS, ROOT, conformance_wasm, echo_chat_app, plugin_wasm, write_app
from tests.integration.test_streaming import chat_app
from tests.scripted import ScriptedServer, openai_chat, openai_stream

KEY = "sk-serve-test-key-1"
ENV_KEY = "sk-serve-test-key-2"


class Served:
    """A `cspm serve APP --port 0` subprocess; its URL is read from the line it prints."""

    def __init__(self, app: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cspm.cli.main", "serve", str(app), "--port", "0", "--mcp", "off", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        try:
            self.line = lines.get(timeout=120)
        except queue.Empty:
            self.stop()
            pytest.fail(f"cspm serve printed nothing: {self.stderr}")
        match = re.fullmatch(r"cspm serve: (\S+) at (http://127\.0\.0\.1:\d+/)\n", self.line)
        assert match, self.line
        self.app_name, self.url = match.groups()
        self.stderr = ""

    def client(self, key: str | None = None, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}v1", api_key=key or "unused", max_retries=0, **options)

    def async_client(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}v1", api_key=key or "unused", max_retries=0, timeout=120)

    def get(self, path: str, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(f"{self.url}{path.lstrip('/')}", headers=headers, timeout=30)

    def metrics(self, key: str | None = None) -> dict[str, float]:
        response = self.get("/metrics", key)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return parse_metrics(response.text)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()
        assert "Traceback" not in self.stderr, self.stderr
        return code


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus' text format: every sample line `name{labels} value`; HELP and TYPE for each name."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
            base = re.sub(r"(_bucket|_sum|_count)$", "", name.split("{", 1)[0])
            assert base in typed or name.split("{", 1)[0] in typed, f"{name} has no TYPE"
    return samples


@pytest.fixture(scope="module")
def echo_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return echo_chat_app(tmp_path_factory.mktemp("echo"))


@pytest.fixture(scope="module")
def echo(echo_app: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("echo-data")
    served = Served(echo_app, "--pool", "4", "--queue", "64", env={"CSPM_DATA_DIR": str(data)})
    yield served
    assert served.stop() == 0


@pytest.fixture(scope="module")
def slow_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chat_app(tmp_path_factory.mktemp("slow"), slow=True, max_tokens=1900)


# ---- chat -----------------------------------------------------------------------------------------

def test_chat_on_local_modules(echo: Served) -> None:
    raw = echo.client().chat.completions.with_raw_response.create(
        model="echo-chat", messages=[{"role": "user", "content": "hello there"}])
    session = raw.headers["x-cspm-session"]
    assert re.fullmatch(r"[0-9a-f]{32}", session)
    answer = raw.parse()
    assert answer.object == "chat.completion" and answer.model == "echo-chat" and answer.id.startswith("chatcmpl-")
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == "echo: hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (2, 1, 3)


def test_streamed_chat_on_local_modules(echo: Served) -> None:
    """The conformance llm emits no chunks: the answer comes as one delta, then the finish and usage."""
    stream = echo.client().chat.completions.create(
        model="echo-chat", messages=[{"role": "user", "content": "stream me"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.model == "echo-chat" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 2


def test_a_session_keeps_its_memory(echo: Served) -> None:
    """The header X-Cspm-Session, or `metadata.session`, names the conversation: the agent's history
    grows (2 messages to its llm, then 4); without one, each request is a new conversation."""
    client = echo.client()

    def ask(text: str, **options: Any) -> tuple[str, int, str]:
        raw = client.chat.completions.with_raw_response.create(
            model="echo-chat", messages=[{"role": "user", "content": text}], **options)
        answer = raw.parse()
        assert answer.usage is not None
        return answer.choices[0].message.content or "", answer.usage.prompt_tokens, raw.headers["x-cspm-session"]

    by_header = {"extra_headers": {"X-Cspm-Session": "conv-header"}}
    assert ask("one", **by_header) == ("echo: one", 2, "conv-header")
    assert ask("two", **by_header) == ("echo: two", 4, "conv-header")
    by_metadata = {"metadata": {"session": "conv-metadata"}}
    assert ask("one", **by_metadata)[1:] == (2, "conv-metadata")
    assert ask("two", **by_metadata)[1:] == (4, "conv-metadata")
    assert ask("three", **by_header)[1] == 6
    first, second = ask("fresh"), ask("fresh")
    assert first[1] == second[1] == 2 and first[2] != second[2]


def test_a_conversation_with_an_llm_entry_on_the_scripted_openai_server(
        tmp_path: Path, scripted: Any) -> None:
    """The entry is openai-chat itself: it gets the whole conversation (the client's history, system
    prompt first), and its usage and finish reason come back mapped."""
    plugin_wasm("openai-chat")
    srv: ScriptedServer = scripted()
    app = write_app(tmp_path, f"name: scripted\nentry: gpt\nllms:\n  - name: gpt\n"
                              f"    plugin_name: {PLUGINS / 'openai-chat'}\n"
                              f"    config: {{base_url: {srv.url}/v1, model: gpt-4o-mini}}\n"
                              f"    grant: {{hosts: [\"{srv.url}\"]}}\n"
                              f"    secrets: {{api_key: env:OPENAI_API_KEY}}\n")
    served = Served(app, env={"OPENAI_API_KEY": "sk-upstream"})
    try:
        client = served.client()
        conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "How are you?"}]
        srv.reply(openai_chat("Fine, thanks.", prompt_tokens=7, completion_tokens=3))
        answer = client.chat.completions.create(model="scripted", messages=conversation, max_tokens=20)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "Fine, thanks."
        assert answer.choices[0].finish_reason == "stop"
        assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (7, 3)
        sent = srv.seen[-1].json
        assert sent["messages"] == conversation and sent["max_tokens"] == 20
        assert srv.seen[-1].headers["authorization"] == "Bearer sk-upstream"

        srv.reply(openai_chat("Cut sh", finish_reason="length"))
        cut = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "long"}])
        assert cut.choices[0].finish_reason == "length"

        # streamed: the entry llm is asked for a stream; a build of the plug-in that can read one (issue 19
        # §4) asks the server for SSE, an older one for a whole body. A first request finds out which.
        srv.reply(openai_chat("probe"))
        with contextlib.suppress(openai.APIError):
            list(client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "probe"}],
                                                stream=True))
        if srv.seen[-1].json.get("stream"):
            srv.stream(openai_stream(["Stre", "amed ", "answer."], prompt_tokens=4, completion_tokens=3))
        else:
            srv.reply(openai_chat("Streamed answer.", prompt_tokens=4, completion_tokens=3))
        chunks = list(client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "stream"}], stream=True,
            stream_options={"include_usage": True}))
        deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert "".join(deltas) == "Streamed answer."
        if srv.seen[-1].json.get("stream"):  # the plug-in's chunks arrive as they are, not as one answer
            assert len(deltas) >= 2
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3

        srv.reply({"error": {"message": "upstream exploded", "type": "server_error"}}, status=500)
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "x"}])
        assert failed.value.status_code == 500 and "upstream" in failed.value.message
    finally:
        assert served.stop() == 0


def test_chunks_stream_as_the_llm_emits_them(slow_app: Path, tmp_path: Path) -> None:
    """llm-local emits each token: they reach the client as separate chunks, in order, and add up."""
    served = Served(_short(slow_app, tmp_path))
    try:
        chunks = list(served.client().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "tell me"}], stream=True))
        deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert len(deltas) > 10
        assert chunks[-1].choices[0].finish_reason == "stop"
    finally:
        assert served.stop() == 0


def _short(app: Path, folder: Path) -> Path:
    """The slow app with max_tokens 40: a whole streamed answer in a moment."""
    return write_app(folder, app.read_text().replace("max_tokens: 1900", "max_tokens: 40"), "short.yaml")


def freed(metrics: dict[str, float]) -> bool:
    """A cancelled request is counted at once; its instance is back once its plug-ins have stopped."""
    return metrics["cspm_serve_cancelled_total"] >= 1 and metrics["cspm_serve_pool_in_use"] == 0


# ---- errors, auth, limits -------------------------------------------------------------------------

def test_bad_requests_are_answered_in_openais_error_shape(echo: Served) -> None:
    client = echo.client()
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model="echo-chat", messages=[])
    assert empty.value.body["param"] == "messages"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="last message must be the user's"):
        client.chat.completions.create(model="echo-chat", messages=[{"role": "assistant", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="session id"):
        client.chat.completions.create(model="echo-chat", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"X-Cspm-Session": "no spaces allowed"})
    with pytest.raises(openai.BadRequestError, match="at most 256 messages"):
        client.chat.completions.create(model="echo-chat", messages=[{"role": "user", "content": "x"}] * 257)
    with pytest.raises(openai.NotFoundError, match="does not exist") as model:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert model.value.code == "model_not_found"
    with pytest.raises(openai.APIStatusError) as large:
        client.chat.completions.create(model="echo-chat", messages=[{"role": "user", "content": "x" * 1_100_000}])
    assert large.value.status_code == 413 and large.value.code == "request_too_large"
    raw = httpx.post(f"{echo.url}v1/chat/completions", content=b"{not json", timeout=30)
    assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}
    missing = echo.get("/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_models_health_and_metrics(echo: Served) -> None:
    models = echo.client().models.list()
    assert [m.id for m in models.data] == ["echo-chat"]
    health = echo.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["pool"]["size"] == 4
    echo.client().chat.completions.create(model="echo-chat", messages=[{"role": "user", "content": "count me"}])
    metrics = echo.metrics()
    assert metrics['cspm_serve_http_requests_total{route="/v1/chat/completions",status="200"}'] >= 1
    assert metrics['cspm_serve_http_requests_total{route="/healthz",status="200"}'] >= 1
    assert metrics["cspm_serve_request_duration_seconds_count"] >= 1
    assert metrics['cspm_serve_request_duration_seconds_bucket{le="+Inf"}'] == \
        metrics["cspm_serve_request_duration_seconds_count"]
    assert metrics['cspm_serve_tokens_total{direction="in"}'] >= 2
    assert metrics['cspm_serve_tokens_total{direction="out"}'] >= 1
    assert metrics["cspm_serve_pool_size"] == 4 and metrics["cspm_serve_queue_depth"] == 64
    assert 1 <= metrics["cspm_serve_pool_loaded"] <= 4 and metrics["cspm_serve_pool_in_use"] == 0
    for name in ("refused", "timeouts", "cancelled"):
        assert f"cspm_serve_{name}_total" in metrics


def test_api_keys_from_a_file_and_the_environment(echo_app: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# served to the tests\n{KEY}\n\n")
    served = Served(echo_app, "--api-key-file", str(keys), env={"CSPM_SERVE_API_KEYS": f"other,{ENV_KEY}"})
    try:
        ask = [{"role": "user", "content": "hi"}]
        for key in (KEY, ENV_KEY):
            answer = served.client(key).chat.completions.create(model="echo-chat", messages=ask)  # type: ignore[arg-type]
            assert answer.choices[0].message.content == "echo: hi"
        for wrong in ("sk-wrong", KEY[:-1], KEY + "x"):
            with pytest.raises(openai.AuthenticationError) as refused:
                served.client(wrong).chat.completions.create(model="echo-chat", messages=ask)  # type: ignore[arg-type]
            assert refused.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            served.client(KEY).models.list(extra_headers={"Authorization": ""})
        assert served.get("/healthz").status_code == 200  # a probe needs no key
        assert served.get("/metrics").status_code == 401
        assert served.get("/v1/models", KEY).status_code == 200
        assert served.metrics(KEY)['cspm_serve_http_requests_total{route="/v1/chat/completions",status="401"}'] == 3
    finally:
        assert served.stop() == 0


def test_cors_only_when_an_origin_is_given(echo: Served, echo_app: Path) -> None:
    preflight = {"Origin": "https://chat.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    closed = httpx.options(f"{echo.url}v1/chat/completions", headers=preflight, timeout=30)
    assert "access-control-allow-origin" not in closed.headers
    served = Served(echo_app, "--cors-origin", "https://chat.example")
    try:
        opened = httpx.options(f"{served.url}v1/chat/completions", headers=preflight, timeout=30)
        assert opened.status_code == 200
        assert opened.headers["access-control-allow-origin"] == "https://chat.example"
        other = httpx.options(f"{served.url}v1/chat/completions",
                              headers={**preflight, "Origin": "https://evil.example"}, timeout=30)
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"
    finally:
        assert served.stop() == 0


def test_a_full_pool_answers_429_and_a_client_that_leaves_frees_its_instance(slow_app: Path) -> None:
    """--pool 1 --queue 0: while a long streamed answer holds the one instance, another request is
    refused at once (RateLimitError, Retry-After); when the streaming client hangs up, its request is
    cancelled and the instance is stopped and released (in_use back to 0)."""
    served = Served(slow_app, "--pool", "1", "--queue", "0")
    try:
        client = served.client(timeout=60)
        stream = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "go"}],
                                                stream=True)
        received = 0
        for chunk in stream:
            received += bool(chunk.choices and chunk.choices[0].delta.content)
            if received >= 5:
                break
        assert served.metrics()["cspm_serve_pool_in_use"] == 1
        with pytest.raises(openai.RateLimitError) as busy:
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "me too"}])
        assert busy.value.code == "serve.busy" and int(busy.value.response.headers["retry-after"]) >= 1
        stream.close()  # the client goes away mid-answer
        deadline = time.monotonic() + 30
        while not freed(metrics := served.metrics()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert metrics["cspm_serve_cancelled_total"] == 1
        assert metrics["cspm_serve_pool_in_use"] == 0 and metrics["cspm_serve_refused_total"] == 1
        assert metrics["cspm_serve_runs_completed_total"] == 0
        assert metrics['cspm_serve_http_requests_total{route="/v1/chat/completions",status="429"}'] == 1
    finally:
        assert served.stop() == 0


def test_a_non_streamed_request_is_cancelled_when_its_client_leaves(slow_app: Path) -> None:
    served = Served(slow_app, "--pool", "1")
    try:
        with pytest.raises(openai.APITimeoutError):
            served.client(timeout=1.5).chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "long"}])
        deadline = time.monotonic() + 30
        while not freed(metrics := served.metrics()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert metrics["cspm_serve_cancelled_total"] == 1 and metrics["cspm_serve_pool_in_use"] == 0
    finally:
        assert served.stop() == 0


def test_a_request_past_its_deadline_is_504(slow_app: Path) -> None:
    served = Served(slow_app, "--pool", "1", "--timeout", "1")
    try:
        with pytest.raises(openai.InternalServerError) as late:
            served.client().chat.completions.create(model="chat", messages=[{"role": "user", "content": "long"}])
        assert late.value.status_code == 504 and late.value.code == "serve.timeout"
        metrics = served.metrics()
        assert metrics["cspm_serve_timeouts_total"] == 1 and metrics["cspm_serve_pool_in_use"] == 0
    finally:
        assert served.stop() == 0


# ---- load -----------------------------------------------------------------------------------------

def test_64_concurrent_conversations_each_keep_their_own_session(echo_app: Path, tmp_path: Path) -> None:
    """64 conversations of three turns at once on a pool of 4: every answer is its own conversation's
    (its text, and the history its session has: 2, 4, 6 messages), none is lost or refused, and no
    more than 4 instances are ever loaded."""
    served = Served(echo_app, "--pool", "4", "--queue", "64", env={"CSPM_DATA_DIR": str(tmp_path / "data")})
    peaks = {"loaded": 0.0, "in_use": 0.0}
    try:
        client = served.async_client()

        async def conversation(i: int) -> list[tuple[str, int]]:
            answers = []
            for turn in range(1, 4):
                answer = await client.chat.completions.create(
                    model="echo-chat", messages=[{"role": "user", "content": f"conversation {i} turn {turn}"}],
                    extra_headers={"X-Cspm-Session": f"load-{i}"})
                assert answer.usage is not None
                answers.append((answer.choices[0].message.content or "", answer.usage.prompt_tokens))
            return answers

        async def watch(stop: asyncio.Event) -> None:
            async with httpx.AsyncClient() as http:
                while not stop.is_set():
                    metrics = parse_metrics((await http.get(f"{served.url}metrics")).text)
                    peaks["loaded"] = max(peaks["loaded"], metrics["cspm_serve_pool_loaded"])
                    peaks["in_use"] = max(peaks["in_use"], metrics["cspm_serve_pool_in_use"])
                    await asyncio.sleep(0.02)

        async def load() -> list[list[tuple[str, int]]]:
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch(stop))
            try:
                return await asyncio.gather(*(conversation(i) for i in range(64)))
            finally:
                stop.set()
                await watcher
                await client.close()

        results = asyncio.run(load())
        for i, answers in enumerate(results):
            assert answers == [(f"echo: conversation {i} turn {t}", 2 * t) for t in range(1, 4)]
        metrics = served.metrics()
        assert metrics["cspm_serve_runs_completed_total"] == 64 * 3
        assert metrics["cspm_serve_refused_total"] == metrics["cspm_serve_runs_failed_total"] == 0
        assert metrics["cspm_serve_pool_in_use"] == 0 and metrics["cspm_serve_pool_loaded"] <= 4
        assert 1 <= peaks["loaded"] <= 4 and peaks["in_use"] <= 4
    finally:
        assert served.stop() == 0


# ---- the command ----------------------------------------------------------------------------------

def test_cspm_run_imports_no_server_code() -> None:
    """`cspm run` start-up pays for none of the server's libraries (imported by `cspm serve` only)."""
    conformance_wasm("rust")
    conformance_wasm("c")
    conformance_wasm("zig")
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "cspm.cli.main", "run",
                             str(ROOT / "examples" / "hello-conformance.yaml"), "--input", "hi", "--json"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == "hi"
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "cspm" in imported
    assert not imported & {"starlette", "uvicorn", "mcp", "openai", "anyio", "h11", "httptools"}, imported


def test_json_listening_line_and_a_port_in_use(echo_app: Path) -> None:
    served = Served(echo_app)
    try:
        port = served.url.rsplit(":", 1)[1].rstrip("/")
        taken = subprocess.run([sys.executable, "-m", "cspm.cli.main", "serve", str(echo_app), "--port", port,
                                "--mcp", "off", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert taken.returncode == 2
        assert json.loads(taken.stdout)["error"]["message"].startswith(f"cannot listen on 127.0.0.1:{port}")
    finally:
        assert served.stop() == 0
    process = subprocess.Popen([sys.executable, "-m", "cspm.cli.main", "serve", str(echo_app), "--port", "0",
                                "--mcp", "off", "--json"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        assert line["app"] == "echo-chat" and line["mcp"] is None
        assert json.load(urllib.request.urlopen(f"{line['url']}healthz", timeout=30))["status"] == "ok"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
