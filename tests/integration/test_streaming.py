"""Streaming (issue 16): the conversational agent asks its llm for chunks (`stream: true`), llm-local emits
them as it generates, and `cspm run` prints them as they arrive, once. Offline: llm-local on a random
GGUF model written with llama.cpp's `gguf` package (tests/llm_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cspm.cli.output import plain
from cspm.planner import load_app
from tests import llm_reference as R
from tests.conftest import PLUGINS, plugin_wasm, write_app
from tests.integration.test_cli import cspm

CHAT_APP = """name: chat
entry: agent
llms:
  - name: llm
    plugin_name: {llm_local}
    config: {{model: /models/chat.gguf, temperature: 0, max_tokens: {max_tokens}}}
    grant: {{paths: {{{models}: /models}}}}
agents:
  - name: agent
    plugin_name: {conversational}
    grant: {{kv: true}}
    llms: [llm]
"""


def chat_model(path: Path, *, slow: bool = False) -> None:
    """A random model whose end-of-turn tokens never win a greedy pick (their logits are 0, below the
    largest random one), so every answer runs to max_tokens: long enough to stream, and to cancel.
    `slow`: ~100 tokens/s on one core, against ~1,000 for the small one."""
    bpe = R.tiny_bpe()
    cfg = R.Config(vocab=len(bpe.tokens), ctx=2048)
    if slow:
        cfg = R.Config(dim=512, hidden=1024, layers=6, heads=8, kv_heads=4, vocab=len(bpe.tokens), ctx=2048)
    weights = R.random_weights(cfg, seed=1)
    for token in ("<|endoftext|>", "<|im_end|>", "<|im_start|>"):
        weights["lm_head"][bpe.ids[token]] = 0
    R.write_gguf(path, cfg, weights, bpe, R.QT.Q8_0)


def chat_app(folder: Path, *, slow: bool = False, max_tokens: int = 60) -> Path:
    """The conversational agent on llm-local, as examples/local/pirate-smollm2.yaml, offline."""
    plugin_wasm("llm-local")
    plugin_wasm("conversational")
    models = folder / "models"
    models.mkdir(exist_ok=True)
    chat_model(models / "chat.gguf", slow=slow)
    return write_app(folder, CHAT_APP.format(llm_local=PLUGINS / "llm-local", conversational=PLUGINS / "conversational",
                                             models=models, max_tokens=max_tokens))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chat_app(tmp_path_factory.mktemp("chat"))


def test_the_conversational_agent_streams_its_answer(app: Path) -> None:
    """The answer arrives in many chunks while it is generated, and they add up to the answer."""
    chunks: list[tuple[str, str]] = []
    with load_app(app, session="s", on_chunk=lambda name, text: chunks.append((name, text))) as runtime:
        result = runtime.run("hello there")
    assert result.finish_reason == "final_answer" and result.output
    assert len(chunks) > 10, chunks
    assert {name for name, _ in chunks} == {"llm"}
    assert "".join(text for _, text in chunks) == result.output


def test_cspm_run_prints_a_streamed_answer_once(app: Path) -> None:
    """The chunks are the answer on stdout: it is not printed a second time when it is done."""
    as_json = cspm("run", str(app), "-i", "hello there", "--session", "a", "--json")
    assert as_json.returncode == 0, as_json.stderr
    output = json.loads(as_json.stdout)["output"]
    shown = cspm("run", str(app), "-i", "hello there", "--session", "b")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == plain(output) + "\n", (shown.stdout, output)
