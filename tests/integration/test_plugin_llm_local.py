"""plugins/llm-local: a llama forward pass in C/Wasm checked against numpy (tests/llm_reference.py) on small
random GGUF models written with llama.cpp's `gguf` package, its tokenizer, sampling, stop sequences, usage,
chat template and error answers, all through cspm's runtime with a read-only `paths` grant.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cspm.errors import PluginError
from cspm.planner import load_app
from cspm.runtime.engine import Runtime
from cspm.runtime.trace import Span
from tests import llm_reference as R
from tests.conftest import PLUGINS, ROOT, plugin_wasm, write_app

FOLDER = PLUGINS / "llm-local"
QT = R.QT
SMOLLM_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test model<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
DEFAULT_SYSTEM = "You are a tiny test model"

# name -> how the model file is written: weight type, and extras
MODELS: dict[str, dict[str, Any]] = {
    "f32": {"qtype": QT.F32},
    "f16": {"qtype": QT.F16},
    "bf16": {"qtype": QT.BF16},
    "q8_0": {"qtype": QT.Q8_0},
    "q4_0": {"qtype": QT.Q4_0},
    "q4_1": {"qtype": QT.Q4_1, "chat_template": SMOLLM_TEMPLATE},
    # SmolLM2's layout: Q4_1 layers, a Q8_0 embedding shared with the output layer
    "tied": {"qtype": QT.Q4_1, "tie": True, "embed_type": QT.Q8_0},
}
BROKEN = {
    "missing": "/models/nope.gguf",
    "not_gguf": "/models/not.gguf",
    "truncated": "/models/truncated.gguf",
    "header_cut": "/models/header_cut.gguf",
    "unsupported": "/models/q5_0.gguf",
    "ungranted": "/elsewhere/f32.gguf",
    "folder": "/models",
}


class Models:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.bpe = R.tiny_bpe()
        self.cfg: dict[str, R.Config] = {}
        self.weights: dict[str, dict[str, np.ndarray]] = {}
        for i, (name, spec) in enumerate(MODELS.items()):
            cfg, held, _ = R.make_model(folder / f"{name}.gguf", seed=i, bpe=self.bpe, **spec)
            self.cfg[name], self.weights[name] = cfg, held
        (folder / "not.gguf").write_text("this is a text file, not a model\n" * 4)
        data = (folder / "f32.gguf").read_bytes()
        (folder / "truncated.gguf").write_bytes(data[: len(data) // 2])
        (folder / "header_cut.gguf").write_bytes(data[:200])
        R.make_model(folder / "q5_0.gguf", QT.Q5_0, bpe=self.bpe)
        self.spm = R.tiny_spm()
        self.cfg["spm"], self.weights["spm"], _ = R.make_model(folder / "spm.gguf", QT.Q8_0, seed=9, spm=self.spm)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    plugin_wasm("llm-local")
    return Models(tmp_path_factory.mktemp("models"))


def llm_entry(name: str, model: str | None, grant: str, **config: Any) -> str:
    if model is not None:
        config = {"model": model, **config}
    return (f"  - name: {name}\n    plugin_name: {FOLDER}\n    config: {json.dumps(config)}\n"
            f"    grant: {{paths: {{{grant}: /models}}}}\n")


@pytest.fixture(scope="module")
def rt(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """One runtime with an llm per model file (same module and limits: compiled once) and per broken case."""
    folder = models.folder
    text = "entry: f32\nllms:\n"
    for name in MODELS:
        text += llm_entry(name, f"/models/{name}.gguf", str(folder), temperature=0)
    for name, path in BROKEN.items():
        text += llm_entry(name, path, str(folder))
    text += llm_entry("spm", "/models/spm.gguf", str(folder), temperature=0)
    text += llm_entry("no_model", None, str(folder))
    text += llm_entry("raw", "/models/f32.gguf", str(folder), chat_template="none", temperature=0)
    text += llm_entry("small_ctx", "/models/f32.gguf", str(folder), context=24, temperature=0)
    runtime = load_app(write_app(tmp_path_factory.mktemp("app"), text))
    yield runtime
    runtime.close()


def ask(rt: Runtime, name: str, content: str | list[dict[str, str]] = "hello there", **fields: Any) -> dict[str, Any]:
    """A full llm request, as an agent's call_llm sends it; the answer is schema-checked by the host."""
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    response, _ = rt.invoke(rt.nodes[name], {"messages": messages, **fields}, None, Span(name, "llm"), rt.session)
    return response


def export(rt: Runtime, name: str, fn: str, payload: dict[str, Any]) -> dict[str, Any]:
    return json.loads(rt.call_export(name, fn, json.dumps(payload).encode()))


def eog(bpe: R.Bpe) -> set[int]:
    return {bpe.ids["<|endoftext|>"], bpe.ids["<|im_end|>"]}


# ---- the forward pass ---------------------------------------------------------------------------

PROMPT = "the quick brown fox jumps over the lazy dog. hello world, it's 2024!"


@pytest.mark.parametrize("name", list(MODELS))
def test_logits_match_numpy(rt: Runtime, models: Models, name: str) -> None:
    tokens = models.bpe.encode(PROMPT)
    got = np.array(export(rt, name, "logits", {"tokens": tokens, "fresh": True})["logits"])
    cfg, w = models.cfg[name], models.weights[name]
    want = R.forward(cfg, w, tokens)[-1]
    assert got.shape == (cfg.vocab,)
    error = float(np.abs(got - want).max())
    quantised = MODELS[name]["qtype"] in (QT.Q8_0, QT.Q4_0, QT.Q4_1)
    # float kernels: rounding only; quantised ones: 16-bit activation blocks on top (logits are O(3))
    scale = float(np.abs(want).max())
    print(f"{name}: max |logit - numpy| = {error:.3g} (logits up to {scale:.3g})")
    assert error < (4e-4 if quantised else 1e-5) * scale, f"{name}: max |logit error| {error}"
    assert int(got.argmax()) == int(want.argmax())


def test_cache_reuses_a_common_prefix(rt: Runtime, models: Models) -> None:
    """A second evaluation that starts like the first computes only the new positions, and still agrees."""
    bpe, cfg, w = models.bpe, models.cfg["q8_0"], models.weights["q8_0"]
    first = bpe.encode(PROMPT)
    second = first[:9] + bpe.encode(" over the fox")
    export(rt, "q8_0", "logits", {"tokens": first, "fresh": True})
    got = np.array(export(rt, "q8_0", "logits", {"tokens": second})["logits"])
    assert export(rt, "q8_0", "info", {})["cached_tokens"] == len(second)
    want = R.forward(cfg, w, second)[-1]
    assert float(np.abs(got - want).max()) < 1e-3


def test_native_build_agrees_with_wasm(rt: Runtime, models: Models, tmp_path: Path) -> None:
    """The same C compiled natively (bench/llm_local_bench.py compares its speed) gives the same logits."""
    if shutil.which("clang-14") is None and shutil.which("cc") is None:
        pytest.skip("no native C compiler")
    built = subprocess.run(["bash", str(FOLDER / "build.sh"), "--native"], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    tokens = models.bpe.encode(PROMPT)
    out = subprocess.run([built.stdout.strip().splitlines()[-1], str(models.folder / "q4_1.gguf"), "--logits",
                          "--tokens", ",".join(map(str, tokens))], capture_output=True, text=True, check=True)
    native = np.array(json.loads(out.stdout)["logits"])
    wasm = np.array(export(rt, "q4_1", "logits", {"tokens": tokens, "fresh": True})["logits"])
    assert float(np.abs(native - wasm).max()) < 1e-5


# ---- tokenizer ----------------------------------------------------------------------------------

TEXTS = [
    "hello world", "the quick brown fox", "it's they're we've you'll I'd", "numbers 12345 and 2024",
    "  two leading spaces and trailing  ", "a\n\n\nb   \n c\t\td", "naïve café — 東京 🚀 ok", "x = [1, 2, 3]  # c\r\n",
    "Ünïcödé ½ ² ١٢٣ ❤️ 𝔘𝔫𝔦", "", " ", "\n", "'s", "hello<|im_end|>there",
]


def test_tokenizer_matches_the_reference_bpe(rt: Runtime, models: Models) -> None:
    for text in TEXTS:
        assert export(rt, "f32", "tokenize", {"text": text})["tokens"] == models.bpe.encode(text), text


def test_tokenizer_known_encodings(rt: Runtime, models: Models) -> None:
    bpe = models.bpe

    def pieces(text: str) -> list[str]:
        tokens = export(rt, "f32", "tokenize", {"text": text})["tokens"]
        return export(rt, "f32", "detokenize", {"tokens": tokens})["pieces"]

    # merges learnt from the tiny corpus: whole words with their leading space
    assert "Ġthe" in bpe.tokens and "Ġfox" in bpe.tokens and "hello" in bpe.tokens
    assert pieces("hello the fox") == ["hello", " the", " fox"]
    assert pieces("numbers 123") == [*pieces("numbers "), "1", "2", "3"]  # smollm: one digit per token
    assert "'s" in bpe.tokens and pieces("it's the dog's") == ["it", "'s", " the", " dog", "'s"]
    assert pieces("a  b") == ["a", " ", " b"]  # \s+(?!\S) leaves the last space to the word
    accent = export(rt, "f32", "tokenize", {"text": "é"})["tokens"]  # no merge: its two bytes
    assert accent == [bpe.ids[R.BYTE_CHAR[0xC3]], bpe.ids[R.BYTE_CHAR[0xA9]]]
    assert export(rt, "f32", "detokenize", {"tokens": accent})["text"] == "é"


def test_tokenizer_round_trip(rt: Runtime) -> None:
    for text in TEXTS:
        tokens = export(rt, "f32", "tokenize", {"text": text})["tokens"]
        assert export(rt, "f32", "detokenize", {"tokens": tokens})["text"] == text


def test_special_tokens_only_when_asked(rt: Runtime, models: Models) -> None:
    ids = models.bpe.ids
    text = "<|im_start|>user\nhi<|im_end|>"
    special = export(rt, "f32", "tokenize", {"text": text, "special": True})["tokens"]
    assert special[0] == ids["<|im_start|>"] and special[-1] == ids["<|im_end|>"]
    assert special == models.bpe.encode(text, special=True)
    plain = export(rt, "f32", "tokenize", {"text": text})["tokens"]
    assert ids["<|im_start|>"] not in plain and len(plain) > len(special)
    # control tokens are not text: detokenize drops them unless asked
    assert export(rt, "f32", "detokenize", {"tokens": special})["text"] == "user\nhi"
    assert export(rt, "f32", "detokenize", {"tokens": special, "special": True})["text"] == text


def test_chat_template_is_chatml(rt: Runtime, models: Models) -> None:
    bpe = models.bpe
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hello there"}, {"role": "user", "content": " two  spaces"}]
    got = export(rt, "f32", "tokenize", {"messages": chat})["tokens"]
    assert got == bpe.chatml(chat)
    assert export(rt, "f32", "detokenize", {"tokens": got, "special": True})["text"] == (
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
        "<|im_start|>assistant\nhello there<|im_end|>\n<|im_start|>user\n two  spaces<|im_end|>\n"
        "<|im_start|>assistant\n")
    # the model's own template carries a default system prompt: used when the chat has none
    user = [{"role": "user", "content": "hello"}]
    assert export(rt, "q4_1", "info", {})["system_prompt"] == DEFAULT_SYSTEM
    assert export(rt, "q4_1", "tokenize", {"messages": user})["tokens"] == bpe.chatml(user, system=DEFAULT_SYSTEM)
    assert export(rt, "q4_1", "tokenize", {"messages": chat})["tokens"] == bpe.chatml(chat)
    # chat_template: none is completion style
    raw = export(rt, "raw", "tokenize", {"messages": [*user, {"role": "user", "content": "again"}]})["tokens"]
    assert raw == bpe.encode("hello\nagain")


SPM_TEXTS = ["hello world", "the world", "hello  world", "héllo wörld", "hello\nthe end", "x"]


def test_sentencepiece_tokenizer(rt: Runtime, models: Models) -> None:
    """tokenizer.ggml.model = llama: U+2581 for spaces (one in front), merges by score, <0xXX> byte fallback."""
    spm = models.spm
    ids = spm.ids
    assert export(rt, "spm", "tokenize", {"text": "hello world"})["tokens"] == [ids["\u2581hello"], ids["\u2581world"]]
    accent = export(rt, "spm", "tokenize", {"text": "é"})["tokens"]
    assert accent == [ids["\u2581"], ids["<0xC3>"], ids["<0xA9>"]]
    for text in SPM_TEXTS:
        tokens = export(rt, "spm", "tokenize", {"text": text})["tokens"]
        assert tokens == spm.encode(text), text
        assert export(rt, "spm", "detokenize", {"tokens": tokens})["text"] == text
    info = export(rt, "spm", "info", {})
    assert (info["tokenizer"], info["chat_template"], info["add_bos"]) == ("llama", "none", True)


def test_sentencepiece_model_logits_and_prompt(rt: Runtime, models: Models) -> None:
    spm = models.spm
    tokens = [1, *spm.encode("hello world the world")]
    got = np.array(export(rt, "spm", "logits", {"tokens": tokens, "fresh": True})["logits"])
    want = R.forward(models.cfg["spm"], models.weights["spm"], tokens)[-1]
    assert float(np.abs(got - want).max()) < 4e-4 * float(np.abs(want).max())
    # no ChatML tokens: completion style, <s> first (add_bos_token)
    answer = ask(rt, "spm", "hello world", max_tokens=3, ignore_eos=True)
    assert answer["usage"] == {"input_tokens": 1 + len(spm.encode("hello world")), "output_tokens": 3}


# ---- generation ---------------------------------------------------------------------------------

def reference_greedy(models: Models, name: str, prompt: list[int], n: int) -> list[int]:
    out: list[int] = []
    for token in R.greedy(models.cfg[name], models.weights[name], prompt, n):
        if token in eog(models.bpe):
            break
        out.append(token)
    return out


def test_greedy_answer_matches_numpy(rt: Runtime, models: Models) -> None:
    bpe = models.bpe
    prompt = bpe.chatml([{"role": "user", "content": "hello there"}])
    want = reference_greedy(models, "f32", prompt, 12)
    answer = ask(rt, "f32", "hello there", max_tokens=12)
    assert answer["content"] == bpe.decode(want)
    assert answer["usage"] == {"input_tokens": len(prompt), "output_tokens": len(want)}
    assert answer["finish_reason"] == ("length" if len(want) == 12 else "stop")
    assert "error" not in answer
    again = ask(rt, "f32", "hello there", max_tokens=12)
    assert again == answer


def test_seeded_sampling_is_deterministic(rt: Runtime) -> None:
    def sample(seed: int) -> str:
        return ask(rt, "q4_1", "the fox", temperature=1.0, top_p=0.95, seed=seed, max_tokens=24,
                   ignore_eos=True)["content"]

    first = sample(7)
    assert first == sample(7)
    assert sample(8) != first
    assert sample(7) == first  # no state leaks from one call to the next


def test_max_tokens_gives_length(rt: Runtime) -> None:
    answer = ask(rt, "q8_0", "hello", max_tokens=5, ignore_eos=True)
    assert answer["finish_reason"] == "length"
    assert answer["usage"]["output_tokens"] == 5


def test_stop_sequences_cut_the_answer(rt: Runtime) -> None:
    full = ask(rt, "q8_0", "hello", max_tokens=40, ignore_eos=True, temperature=1.0, seed=3)["content"]
    assert len(full) > 12
    stop = full[8:11]  # a random model's text: any bytes, U+FFFD where they are not UTF-8
    cut = ask(rt, "q8_0", "hello", max_tokens=40, ignore_eos=True, temperature=1.0, seed=3, stop=["\x00none", stop])
    assert cut["content"] == full[: full.index(stop)]
    assert cut["finish_reason"] == "stop"
    assert cut["usage"]["output_tokens"] < 40


def test_stream_emits_the_answer_in_chunks(rt: Runtime) -> None:
    full = ask(rt, "q8_0", "hello", max_tokens=30, ignore_eos=True, temperature=1.0, seed=5)["content"]
    stop = full[20:23]
    chunks: list[str] = []
    rt.on_chunk = lambda name, text: chunks.append(text)
    try:
        answer = ask(rt, "q8_0", "hello", max_tokens=30, ignore_eos=True, temperature=1.0, seed=5, stop=[stop],
                     stream=True)
    finally:
        rt.on_chunk = None
    assert len(chunks) > 1
    assert "".join(chunks) == answer["content"] == full[: full.index(stop)]


def test_context_limits(rt: Runtime) -> None:
    long = ask(rt, "small_ctx", "hello " * 30)
    assert long["finish_reason"] == "error" and "context holds 24" in long["error"]
    full = ask(rt, "small_ctx", "hi", max_tokens=100, ignore_eos=True)
    assert full["finish_reason"] == "length"
    assert full["usage"]["input_tokens"] + full["usage"]["output_tokens"] == 24 + 1  # the last one needs no slot


def test_tools_are_refused(rt: Runtime) -> None:
    answer = ask(rt, "f32", "hi", tools=[{"name": "calc", "description": "adds"}])
    assert answer["finish_reason"] == "error" and "tool calling" in answer["error"]


# ---- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "says"), [
    ("missing", "/models/nope.gguf does not exist in the plug-in's sandbox"),
    ("not_gguf", "is not a GGUF file"),
    ("truncated", "the file is truncated"),
    ("header_cut", "ends inside its header"),
    ("unsupported", "is Q5_0; llm-local computes with F32, F16, BF16, Q8_0, Q4_0 and Q4_1"),
    ("ungranted", "outside every folder granted"),
    ("folder", "is a folder"),
    ("no_model", "config `model` is not set"),
])
def test_bad_model_files_are_error_answers(rt: Runtime, name: str, says: str) -> None:
    answer = ask(rt, name)
    assert answer["finish_reason"] == "error", answer
    assert says in answer["error"]
    assert answer["content"] == "" and answer["usage"] == {"input_tokens": 0, "output_tokens": 0}
    with pytest.raises(PluginError, match=r"llm `.*` failed"):  # the debug exports fail plainly
        rt.call_export(name, "info", b"{}")


def test_loaded_once_and_a_failed_load_is_retried(models: Models, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    app = write_app(tmp_path, "entry: local\nllms:\n" + llm_entry("local", "/models/late.gguf", str(folder)))
    with load_app(app) as rt:
        assert "does not exist" in ask(rt, "local")["error"]
        shutil.copy(models.folder / "q4_1.gguf", folder / "late.gguf")
        first = ask(rt, "local", max_tokens=4)
        assert first["finish_reason"] in ("stop", "length")
        (folder / "late.gguf").unlink()
        assert ask(rt, "local", max_tokens=4) == first  # the model stayed in memory
        rt.drain_logs()
        loads = [line.message for line in rt.nodes["local"].logs if line.message.startswith("loaded")]
        assert len(loads) == 1 and "Q4_1 x" in loads[0]


def test_a_bare_model_name_is_a_package_key(models: Models, tmp_path: Path) -> None:
    """`model: key` reads /models/key/model.gguf, where the host mounts an app's model packages."""
    (tmp_path / "tiny").mkdir()
    shutil.copy(models.folder / "q8_0.gguf", tmp_path / "tiny" / "model.gguf")
    app = write_app(tmp_path, "entry: local\nllms:\n" + llm_entry("local", "tiny", str(tmp_path))
                    + llm_entry("other", "nope", str(tmp_path)))
    with load_app(app) as rt:
        assert export(rt, "local", "info", {})["types"].startswith("Q8_0")
        assert "/models/nope/model.gguf does not exist" in ask(rt, "other")["error"]


def test_the_module_and_manifest(rt: Runtime) -> None:
    node = rt.nodes["f32"]
    assert node.component.package == "chainsocket/llm-local"
    assert node.component.grant.memory_pages == 65536
    exports = set(node.interface.exports)
    assert {"call", "logits", "tokenize", "detokenize", "info", "bench"} <= exports
    modules = {module for module, _, _ in node.interface.imports}
    assert modules == {"extism:host/env", "extism:host/user", "wasi_snapshot_preview1"}


def test_bench_quick_smoke(tmp_path: Path) -> None:
    """bench/llm_local_bench.py at its smallest: both builds run and the ratio is printed."""
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "llm_local_bench.py"), "--quick", "--smoke",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "wasm/native" in done.stdout
    result = json.loads(out.read_text())
    assert result["wasm"]["decode_tok_s"] > 0 and result["native"]["decode_tok_s"] > 0 and result["ratio"] > 0


# ---- choices (constrained answers) -----------------------------------------------------------------

def test_choices_answer_the_likeliest_continuation(rt: Runtime, models: Models) -> None:
    """llm_input `choices`: the answer is the choice whose tokens the model finds likeliest after the
    prompt (summed log-probabilities, checked here against the `logits` export), spelt as given."""
    prompt = export(rt, "f32", "tokenize", {"messages": [{"role": "user", "content": "hello there"}]})["tokens"]
    options = [" world", " Vlile Soszher", "2024!", export(rt, "f32", "detokenize", {"tokens": [
        int(np.argmax(export(rt, "f32", "logits", {"tokens": prompt})["logits"]))]})["text"]]

    def score(text: str) -> float:
        ids = export(rt, "f32", "tokenize", {"text": text})["tokens"]
        total = 0.0
        for j, tok in enumerate(ids):
            logits = np.array(export(rt, "f32", "logits", {"tokens": prompt + ids[:j]})["logits"], dtype=np.float64)
            total += float(logits[tok] - logits.max() - np.log(np.exp(logits - logits.max()).sum()))
        return total

    want = max(options, key=score)
    for order in (options, options[::-1]):
        answer = ask(rt, "f32", "hello there", choices=order)
        assert (answer["content"], answer["finish_reason"]) == (want, "stop")
        assert "error" not in answer
    chunks: list[str] = []
    rt.on_chunk = lambda name, text: chunks.append(text)
    try:
        assert ask(rt, "f32", "hello there", choices=options, stream=True)["content"] == want
    finally:
        rt.on_chunk = None
    assert chunks == [want]


def test_bad_choices_are_error_answers(rt: Runtime) -> None:
    for bad in ([], [""], ["a", 3], "one", ["x"] * 65):
        answer = ask(rt, "f32", "hi", choices=bad)
        assert answer["finish_reason"] == "error" and "choices" in answer["error"], bad
    long = ask(rt, "small_ctx", "hi", choices=["hello " * 40])
    assert long["finish_reason"] == "error" and "no choice fits" in long["error"]


def test_a_full_context_advises_only_what_can_be_done(rt: Runtime, models: Models) -> None:
    """A prompt over the context advises a larger `context` only up to the model's own; at the model's
    own length it says to send less (issue 16: it used to advise raising 512 to 512)."""
    small = ask(rt, "small_ctx", "hello " * 30)["error"]
    assert f"raise the config `context`, up to the model's {models.cfg['f32'].ctx}" in small
    full = ask(rt, "f32", "hello " * 3000)
    assert full["finish_reason"] == "error"
    assert "raise" not in full["error"] and "this model's most: send a shorter conversation" in full["error"]
