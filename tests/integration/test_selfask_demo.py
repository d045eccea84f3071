"""The self-ask demo (training/selfask/, models/, examples/self-ask-demo/): the shipped knowledge base is
what make_kb.py writes; the kb plug-in answers every kind of follow-up question exactly as the training corpus
says it does; the shipped model loads in llm-local with the byte-level tokenizer and metadata train.py
writes; and on held-out questions the real stack (self-ask + kb + llm-local, inside Wasm) beats the same
model answering directly. No torch: the model file is shipped, not trained here.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cspm.planner import load_app
from cspm.runtime.engine import Runtime
from tests.conftest import PLUGINS, ROOT, plugin_wasm, write_app

sys.path.insert(0, str(ROOT / "training" / "selfask"))

import make_kb
import selfask_common as common

# Measured on the shipped model (bench/selfask_eval.py, table in training/selfask/README.md): on the first
# 40 of the 200 held-out questions (ten of each kind) self-ask + kb answers 70% (45% before the agent's
# `choices`), the model alone 7.5%; the comparisons 80% and 100%; no answer names anyone else.
QUICK = 40
MIN_SELF_ASK = 0.9  # the issue-16 goal, per form; the full 200 measured 100/98/100/100 % (README)
MIN_GAP = 0.5
# The README's question (two people of the knowledge base; the model answers it right)
DEMO_QUESTION = "Who was born first, Kogail Bagrol or Stolvle Thema?"
DEMO_ANSWER = "Kogail Bagrol"


@pytest.fixture(scope="module")
def world() -> common.World:
    return make_kb.world()


def test_the_knowledge_base_is_what_make_kb_writes(world: common.World) -> None:
    assert common.KB_FILE.read_text(encoding="utf-8") == make_kb.kb_text(world)
    assert common.KB_FILE.stat().st_size < 200_000
    names = {p.name for p in world.people}
    assert len(names) == len(world.people)
    assert not {p.name for p in world.train} & {p.name for p in world.heldout}
    records = json.loads(common.KB_FILE.read_text(encoding="utf-8"))["entries"]
    assert len(records) == len(world.people) + len(world.country_of)


def test_the_corpus_uses_train_people_only(world: common.World) -> None:
    sys.path.insert(0, str(ROOT / "training" / "selfask"))
    import make_corpus

    rows = make_corpus.corpus(300, 0.2)
    text = "\n".join("".join(t for t, _ in row["segments"]) for row in rows)
    assert not [p.name for p in world.heldout if p.name in text]
    assert sum(p.name in text for p in world.train) > 100
    # exactly the scratchpad self-ask builds: prompt, question, " Yes.", follow-ups, final answer; arithmetic
    # ends with a "Calculate" follow-up (the shipped format)
    for kind in common.KINDS:
        first = next(row for row in rows if row["mode"] == "self-ask" and row["kind"] == kind)
        pad = "".join(t for t, _ in first["segments"])
        assert pad.startswith(common.PROMPT + "\n\nQuestion: ")
        assert "\nAre follow up questions needed here: Yes.\n" in pad
        assert pad.count("\nIntermediate answer: ") == (2 if kind == "country" else 3)
        assert ("\nFollow up: Calculate " in pad) == (kind != "country") and "\nSo the final answer is: " in pad
        # the calculator's result is never a training target (held-out arithmetic cannot be guessed)
        result = pad.split("\nIntermediate answer: ")[-1].split("\n")[0]
        assert kind == "country" or [t for t, w in first["segments"] if t == f" {result}\n" and w == 0]
    # fresh facts: a self-ask example's years are not the kb's (only copying predicts them, never recall),
    # a direct answer's are (the baseline recalls)
    born = {p.name: p.born for p in world.train}
    def years(kind: str, mode: str) -> list[tuple[int, int]]:
        out = []
        for row in rows:
            if row["kind"] == kind and row["mode"] == mode:
                pad = "".join(t for t, _ in row["segments"])
                a = next(n for n in born if n in pad)
                if mode == "self-ask":
                    out.append((int(pad.split(f"{a} — born: ")[1][:4]), born[a]))
                else:
                    b = next(n for n in born if n in pad and n != a)
                    answer = pad.rsplit("Answer: ", 1)[1].strip()
                    out.append((0 if born[a] < born[b] else 1, 0 if answer == a else 1) if answer in (a, b) else (0, 1))
        return out
    asked = years("born_first", "self-ask")
    assert asked and sum(mine != kb for mine, kb in asked) > 0.9 * len(asked)
    recalled = years("born_first", "direct")
    assert recalled and all(mine == kb for mine, kb in recalled)
    # the first two training stages' corpora (training/selfask/README.md)
    assert "Calculate" not in "".join(t for row in make_corpus.corpus(50, 0.2, calculator=False, fresh_facts=False)
                                      for t, _ in row["segments"])


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    plugin_wasm("kb")
    app = write_app(tmp_path_factory.mktemp("kb-app"), (
        f"entry: kb\ntools:\n  - name: kb\n    plugin_name: {PLUGINS / 'kb'}\n"
        f"    config: {{file: /kb/{common.KB_FILE.name}}}\n    grant: {{paths: {{{common.KB_FILE.parent}: /kb}}}}\n"))
    with load_app(app) as rt:
        yield rt


def test_the_kb_answers_follow_ups_as_the_corpus_says(world: common.World, kb: Runtime) -> None:
    """The intermediate answers the model was trained on are the real plug-in's, byte for byte (a sample
    of people, train and held out, every field; every city)."""
    rng = random.Random(0)
    people = rng.sample(world.train, 15) + rng.sample(world.heldout, 15)
    asked = [(common.FOLLOW_UPS[f].format(name=p.name), common.kb_answer(p.name, f, getattr(p, f)))
             for p in people for f in ("born", "age_at_death", "city")]
    asked += [(common.FOLLOW_UPS["country"].format(name=c), common.kb_answer(c, "country", k))
              for c, k in world.country_of.items()]
    wrong = [(q, got, want) for q, want in asked if (got := kb.run(q).output) != want]
    assert not wrong


def test_the_calculator_answers_as_the_corpus_says(world: common.World, tmp_path: Path) -> None:
    """The "Calculate X - Y" follow-ups: the real chainsocket/calculator, given the expression the agent
    sends, answers what the corpus wrote after it (negative differences too)."""
    plugin_wasm("calculator")
    app = write_app(tmp_path, "entry: calculator\ntools:\n  - name: calculator\n"
                              f"    plugin_name: {PLUGINS / 'calculator'}\n")
    rng = random.Random(1)
    kinds = [k for k in common.KINDS if k != "country"]
    examples = [common.draw(world, rng, world.heldout, kind, calculator=True) for kind in kinds for _ in range(10)]
    steps = [step for ex in examples for step in ex.steps if step[0].startswith("Calculate ")]
    assert len(steps) == 30 and any(out.startswith("-") for _, out in steps)
    with load_app(app) as rt:
        wrong = [(q, got, want) for q, want in steps if (got := rt.run(q[len("Calculate "):]).output) != want]
    assert not wrong


def test_the_model_file_loads_with_its_metadata() -> None:
    import gguf

    path = common.MODEL_FILE
    assert path.stat().st_size < 4 * 1024 * 1024
    reader = gguf.GGUFReader(str(path))

    def value(key: str) -> object:
        return reader.fields[key].contents()

    assert value("general.architecture") == "llama"
    assert value("tokenizer.ggml.model") == "gpt2"
    tokens = value("tokenizer.ggml.tokens")
    assert len(tokens) == 258 and tokens[256:] == ["<s>", "</s>"]
    assert (value("tokenizer.ggml.bos_token_id"), value("tokenizer.ggml.eos_token_id")) == (256, 257)
    assert value("selfask.prompt") == common.PROMPT
    meta = json.loads(value("selfask.training"))
    assert meta["seed"] == common.SEED and 500_000 < meta["params"] < 1_500_000
    params = sum(int(t.n_elements) for t in reader.tensors)
    assert params == meta["params"] - 0  # tied embeddings: no output.weight
    assert "output.weight" not in {t.name for t in reader.tensors}


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    plugin_wasm("llm-local")
    folder = tmp_path_factory.mktemp("llm-app")
    app = write_app(folder, (
        f"entry: tiny\nllms:\n  - name: tiny\n    plugin_name: {PLUGINS / 'llm-local'}\n"
        f"    config: {{model: /models/{common.MODEL_FILE.name}, temperature: 0}}\n"
        f"    grant: {{paths: {{{common.MODEL_FILE.parent}: /models}}}}\n"))
    with load_app(app) as rt:
        yield rt


def test_llm_local_reads_it_as_a_byte_level_model(llm: Runtime) -> None:
    info = json.loads(llm.call_export("tiny", "info", b"{}"))
    text = json.dumps(info)
    assert "258" in text or info.get("vocab") == 258
    tokens = json.loads(llm.call_export("tiny", "tokenize", json.dumps({"text": "Zé 1837?"}).encode()))["tokens"]
    assert tokens[-len("Zé 1837?".encode()):] == list("Zé 1837?".encode())
    back = json.loads(llm.call_export("tiny", "detokenize", json.dumps({"tokens": tokens}).encode()))["text"]
    assert back.endswith("Zé 1837?")


def test_self_ask_beats_the_direct_answer_on_held_out_questions(tmp_path: Path) -> None:
    """bench/selfask_eval.py on the first held-out questions, through the real stack."""
    for name in ("self-ask", "kb", "llm-local"):
        plugin_wasm(name)
    out = tmp_path / "eval.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "selfask_eval.py"), "--quick", str(QUICK),
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "self-ask + kb" in done.stdout
    result = json.loads(out.read_text())
    assert result["questions"] == QUICK
    overall = result["accuracy"]["all"]
    assert overall["self_ask"] >= MIN_SELF_ASK, done.stdout
    assert overall["self_ask"] - overall["direct"] >= MIN_GAP, done.stdout
    for kind in common.KINDS:
        assert result["accuracy"][kind]["self_ask"] >= MIN_SELF_ASK, done.stdout
    # a comparison's answer is one of the question's two names, spelt as there (config `choices`)
    assert result["invented_names"] == 0, done.stdout
    # the agent really asked: two kb follow-ups per question, and the calculator for all but the country
    asked = [q for o in result["outcomes"] for q in o["follow_ups"]]
    assert len(asked) >= 2 * QUICK * MIN_SELF_ASK
    calculated = [o for o in result["outcomes"] if any(q.startswith("Calculate ") for q in o["follow_ups"])]
    assert len(calculated) >= 3 / 4 * QUICK * MIN_SELF_ASK


def test_the_published_demo_runs_offline_with_a_trace(tmp_path: Path, world: common.World) -> None:
    """The README's main command: the app package from the bundled registry, fresh folders, no network;
    the trace shows each llm reply and each kb lookup."""
    from tests.integration.test_cli import cspm

    env = {f"CSPM_{k}_DIR": str(tmp_path / k.lower()) for k in ("CACHE", "DATA", "CONFIG")}
    ran = cspm("run", "chainsocket/self-ask-demo", "--offline", "--input", DEMO_QUESTION, "--json", "--trace",
               env=env)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert (result["output"], result["finish_reason"]) == (DEMO_ANSWER, "final_answer")
    steps = result["trace"]["children"]
    # two kb lookups; "Calculate X - Y" with its operands chosen among the facts, the calculator; the
    # model's final answer, then its choice between the question's two names
    assert [(s["kind"], s["name"]) for s in steps] == [
        ("llm", "tiny"), ("tool", "kb"), ("llm", "tiny"), ("tool", "kb"), ("llm", "tiny"), ("llm", "tiny"),
        ("tool", "calculator"), ("llm", "tiny"), ("llm", "tiny")]
    people = {p.name: p for p in world.people}
    a, b = (people[n] for n in DEMO_QUESTION[:-1].split(", ")[1].split(" or "))
    for step in steps[1:4:2]:  # each lookup is a real answer of the kb, about a person of the question
        name = next(n for n in people if n in step["input"])
        assert step["output"].startswith(f"{name} — born: {people[name].born}")
    assert steps[4]["output"].strip().startswith("Follow up: Calculate ")
    assert (steps[6]["input"], steps[6]["output"]) == (f"{a.born} - {b.born}", str(a.born - b.born))
    assert steps[7]["output"].strip().startswith("So the final answer is:")
    assert steps[8]["output"] == f" {DEMO_ANSWER}"
    # the same run for a person: answer on stdout, the trace tree on stderr
    shown = cspm("run", "chainsocket/self-ask-demo", "--offline", "--input", DEMO_QUESTION, "--trace", env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == DEMO_ANSWER
    assert "kb tool" in shown.stderr and "tiny llm" in shown.stderr and "Follow up:" in shown.stderr
