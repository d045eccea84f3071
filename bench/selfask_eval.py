"""The self-ask demo model on held-out questions, in the spirit of Table 1 of the self-ask paper (Press
et al. 2022): exact-match accuracy of the self-ask agent with the kb and calculator tools, beside a
direct-answer baseline (the same model asked the question without the tools), by real inference inside Wasm.

    python bench/selfask_eval.py                 # 200 held-out questions (people never seen in training)
    python bench/selfask_eval.py --quick 20      # the first 20 of them
    python bench/selfask_eval.py --json OUT.json --failures 5

The app is the real stack run by cspm's runtime: plugins/self-ask (prompt = the one the model was
trained after; `calculator: calculator`, `choices: true` as in examples/self-ask-demo) with
plugins/llm-local on models/selfask-tiny/selfask-tiny.gguf, plugins/kb on
models/selfask-people/people.json (each granted its folder read-only) and plugins/calculator; the baseline is the llm
alone, asked "Question: ...\\nAnswer:" (greedy, first line). The questions come from
training/selfask/selfask_common.py `eval_questions` (four kinds in turn, about held-out people only). No torch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "training" / "selfask"))

from make_kb import world  # noqa: E402
from selfask_common import (  # noqa: E402
    DIRECT,
    KB_FILE,
    KINDS,
    MODEL_FILE,
    PROMPT,
    SEED,
    Example,
    choices,
    direct_answer,
    eval_questions,
    normalize,
)

PLUGINS = ROOT / "plugins"
MAX_TOKENS = 128  # bytes of one llm turn: a follow-up line and the stop sequence fit with room


def plugin_folder(name: str) -> Path:
    """plugins/<name>, built from source when its .wasm is missing."""
    folder = PLUGINS / name
    if not list((folder / "build").glob("*.wasm")) if (folder / "build").is_dir() else True:
        done = subprocess.run(["bash", str(folder / "build.sh")], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"building {name} failed:\n{done.stdout}\n{done.stderr}")
    return folder


def app_yaml(model: Path, kb: Path) -> str:
    """The evaluation app: self-ask + kb + llm-local, and the llm alone for the baseline."""
    llm = plugin_folder("llm-local")
    grant_model = f"grant: {{paths: {{{json.dumps(str(model.parent))}: /models}}}}"
    model_path = json.dumps(f"/models/{model.name}")
    return f"""name: selfask-eval
entry: agent
llms:
  - name: tiny
    description: the self-ask demo model
    plugin_name: {json.dumps(str(llm))}
    config: {{model: {model_path}, temperature: 0, max_tokens: {MAX_TOKENS}}}
    {grant_model}
  - name: direct
    description: the same model, asked directly
    plugin_name: {json.dumps(str(llm))}
    config: {{model: {model_path}, temperature: 0, max_tokens: 48, stop: ["\\n"]}}
    {grant_model}
tools:
  - name: kb
    description: facts about the people of the archive (birth year, age at death, birth city, country of a city)
    plugin_name: {json.dumps(str(plugin_folder("kb")))}
    config: {{file: {json.dumps("/kb/" + kb.name)}}}
    grant: {{paths: {{{json.dumps(str(kb.parent))}: /kb}}}}
  - name: calculator
    description: arithmetic, exactly
    plugin_name: {json.dumps(str(plugin_folder("calculator")))}
agents:
  - name: agent
    description: self-ask over the knowledge base
    plugin_name: {json.dumps(str(plugin_folder("self-ask")))}
    prompt: {json.dumps(PROMPT)}
    config: {{max_steps: 6, temperature: 0, max_tokens: {MAX_TOKENS}, calculator: calculator, choices: true}}
    llms: [tiny]
    tools: [kb, calculator]
"""


@dataclass
class Outcome:
    example: Example
    self_ask: str
    finish_reason: str
    direct: str
    follow_ups: list[str] = field(default_factory=list)

    @property
    def self_ask_ok(self) -> bool:
        return normalize(self.self_ask) == normalize(self.example.answer)

    @property
    def invented(self) -> bool:
        """A comparison's final answer that is not one of the question's two names (an error is no answer)."""
        options = choices(self.example.question)
        return (bool(options) and self.finish_reason == "final_answer"
                and normalize(self.self_ask) not in {normalize(o) for o in options})

    @property
    def direct_ok(self) -> bool:
        return normalize(self.direct) == normalize(self.example.answer)


def evaluate(examples: list[Example], model: Path = MODEL_FILE, kb: Path = KB_FILE,
             progress: Callable[[int, Outcome], None] | None = None) -> tuple[list[Outcome], dict[str, float]]:
    """Runs every example through the agent and the baseline; the outcomes and the seconds each took."""
    from cspm.planner import load_app

    seconds = {"self-ask": 0.0, "direct": 0.0}
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="selfask-eval-") as tmp:
        app = Path(tmp) / "app.yaml"
        app.write_text(app_yaml(model.resolve(), kb.resolve()), encoding="utf-8")
        with load_app(app) as rt:
            for i, ex in enumerate(examples):
                t = time.perf_counter()
                result = rt.run(ex.question)
                seconds["self-ask"] += time.perf_counter() - t
                agent = rt.nodes["agent"]
                follow_ups = [line.message.split(": follow up: ", 1)[1] for line in agent.logs
                              if ": follow up: " in line.message]
                agent.logs.clear()
                t = time.perf_counter()
                direct = rt.run(DIRECT.format(question=ex.question), entry="direct")
                seconds["direct"] += time.perf_counter() - t
                outcome = Outcome(ex, result.output, result.finish_reason, direct_answer(direct.output), follow_ups)
                outcomes.append(outcome)
                if progress:
                    progress(i, outcome)
    return outcomes, seconds


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    def rate(items: list[Outcome], attr: str) -> float:
        return sum(getattr(o, attr) for o in items) / len(items) if items else 0.0

    kinds = {k: [o for o in outcomes if o.example.kind == k] for k in KINDS}
    rows = {k: {"n": len(v), "direct": rate(v, "direct_ok"), "self_ask": rate(v, "self_ask_ok")}
            for k, v in kinds.items() if v}
    rows["all"] = {"n": len(outcomes), "direct": rate(outcomes, "direct_ok"),
                   "self_ask": rate(outcomes, "self_ask_ok")}
    reasons: dict[str, int] = {}
    for o in outcomes:
        reasons[o.finish_reason] = reasons.get(o.finish_reason, 0) + 1
    return {"accuracy": rows, "finish_reasons": reasons, "invented_names": sum(o.invented for o in outcomes)}


def table(stats: dict[str, Any]) -> str:
    lines = ["| question | n | direct answer | self-ask + kb + calculator |", "|---|---:|---:|---:|"]
    for kind, row in stats["accuracy"].items():
        label = f"**{kind}**" if kind == "all" else kind
        lines.append(f"| {label} | {row['n']} | {100 * row['direct']:.1f}% | {100 * row['self_ask']:.1f}% |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", type=int, metavar="N", help="only the first N questions")
    ap.add_argument("--n", type=int, default=200, help="held-out questions (default 200)")
    ap.add_argument("--seed", type=int, default=SEED,
                    help="another seed draws other held-out questions (the default set is the README's)")
    ap.add_argument("--model", type=Path, default=MODEL_FILE)
    ap.add_argument("--kb", type=Path, default=KB_FILE)
    ap.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    ap.add_argument("--failures", type=int, default=0, metavar="K", help="print K wrong self-ask answers")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per question")
    args = ap.parse_args()

    examples = eval_questions(world(), args.n, args.seed)
    if args.quick:
        examples = examples[: args.quick]

    def progress(i: int, o: Outcome) -> None:
        if args.verbose:
            mark = "ok " if o.self_ask_ok else "BAD"
            print(f"{i + 1:3d} {mark} {o.example.question} -> {o.self_ask!r} (want {o.example.answer!r}; "
                  f"direct {o.direct!r})", flush=True)

    start = time.perf_counter()
    outcomes, seconds = evaluate(examples, args.model, args.kb, progress)
    wall = time.perf_counter() - start
    stats = summary(outcomes)
    print(f"self-ask demo: {len(outcomes)} held-out questions, model {args.model.name} "
          f"({args.model.stat().st_size} bytes), exact match")
    print(table(stats))
    print(f"answers naming a person absent from the question: {stats['invented_names']}")
    print(f"finish reasons (self-ask): {stats['finish_reasons']}; time: self-ask {seconds['self-ask']:.1f}s, "
          f"direct {seconds['direct']:.1f}s, total {wall:.1f}s")
    bad = [o for o in outcomes if not o.self_ask_ok]
    for o in bad[: args.failures]:
        print(f"  wrong: {o.example.question} -> {o.self_ask!r} ({o.finish_reason}), want {o.example.answer!r}; "
              f"follow-ups: {o.follow_ups}")
    if args.json:
        stats |= {"model": str(args.model), "model_bytes": args.model.stat().st_size, "questions": len(outcomes),
                  "seconds": seconds | {"total": wall},
                  "outcomes": [{"kind": o.example.kind, "question": o.example.question, "answer": o.example.answer,
                                "self_ask": o.self_ask, "finish_reason": o.finish_reason, "direct": o.direct,
                                "follow_ups": o.follow_ups} for o in outcomes]}
        args.json.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
