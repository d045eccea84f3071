"""bench/llm_local_bench.py's llama.cpp row: skipped with a message without llama-cpp-python, and,
with it, the same work as bench_run (prefill the given ids once, then greedy steps on the argmax)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_bench() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("llm_local_bench", ROOT / "bench" / "llm_local_bench.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skipped_with_a_message_when_not_installed(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp raises ImportError
    assert load_bench().run_llama_cpp(Path("m.gguf"), [1, 2], 4, 64, 1) is None
    assert "llama-cpp-python is not installed" in capsys.readouterr().out


class FakeLlama:
    """Records what the bench asks; its logits make token (last + 1) % 8 the argmax."""

    instances: ClassVar[list[FakeLlama]] = []

    def __init__(self, **kwargs: Any) -> None:
        FakeLlama.instances.append(self)
        self.kwargs = kwargs
        self.evals: list[list[int]] = []
        self.n_tokens = 0
        self.scores = np.zeros((64, 8), dtype=np.float32)

    def reset(self) -> None:
        self.n_tokens = 0
        self.evals.append([])

    def eval(self, tokens: list[int]) -> None:
        self.evals[-1].extend(tokens)
        self.n_tokens += len(tokens)
        self.scores[self.n_tokens - 1] = 0.0
        self.scores[self.n_tokens - 1, (tokens[-1] + 1) % 8] = 1.0


def test_same_work_as_bench_run(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("llama_cpp")
    fake.Llama = FakeLlama  # type: ignore[attr-defined]
    fake.__version__ = "0.test"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", fake)
    monkeypatch.setattr(FakeLlama, "instances", [])
    row = load_bench().run_llama_cpp(Path("m.gguf"), [5, 6, 3], 4, 64, 2)
    assert row is not None and row["version"] == "0.test"
    (llm,) = FakeLlama.instances
    assert llm.kwargs["n_threads"] == 1 and llm.kwargs["n_threads_batch"] == 1
    assert llm.kwargs["n_ctx"] == 64 and llm.kwargs["model_path"] == "m.gguf"
    # each rep: the prompt from an empty cache, then 4 greedy tokens (3 -> 4 -> 5 -> 6 -> 7)
    assert llm.evals == [[5, 6, 3, 4, 5, 6, 7]] * 2
    assert row["prefill_tok_s"] > 0 and row["decode_tok_s"] > 0
