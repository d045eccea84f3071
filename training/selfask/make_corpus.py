"""The training corpus of the self-ask demo model: compositional questions about the TRAIN people of
the knowledge base (make_kb.py), written exactly as plugins/self-ask's scratchpad grows in a correct
run, with the intermediate answers exactly as plugins/kb gives them (checked against the real plug-in
by tests/integration/test_selfask_demo.py), plus a share of direct answers ("Question: ...\\nAnswer: X") so that
the baseline of the evaluation is the same model asked without the tool.

    python training/selfask/make_corpus.py [--n 40000] [--direct 0.15] [--copy-weight 4] [--no-calculator]
        [--no-fresh-facts] [--out FILE]

Each line is {"kind", "mode", "segments": [[text, weight], ...]}: the loss weight of each piece of
text. 0: context only (the prompt, the question, the facts the kb answers); 1: what the model writes
(" Yes.", the "Follow up: ..." lines with the "\nIntermediate answer:" that stops it, the final
answer) and the name the kb's answer repeats; --copy-weight: a name copied from an earlier line.
train.py adds the begin/end-of-text tokens. Deterministic (random.Random(SEED)).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_kb import AGES, YEARS, world
from selfask_common import COPY_WEIGHT, KINDS, SEED, Person, direct_segments, draw, scratchpad_segments

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "build" / "corpus.jsonl"


def corpus(n: int, direct: float, copy: float = COPY_WEIGHT, seed: int = SEED, calculator: bool = True,
           fresh_facts: bool = True) -> list[dict]:
    """n examples; with `fresh_facts` every self-ask example gives its people a new birth year and age
    (the kb's answers in its scratchpad say so), so that a year can only be copied from the scratchpad,
    never recalled: a model that memorised the train people's years copies nothing for held-out ones."""
    w = world(seed)
    rng = random.Random(seed * 1000 + 2)

    def fresh(p: Person) -> Person:
        return Person(p.name, rng.randint(*YEARS), rng.randint(*AGES), p.city)

    out = []
    for _ in range(n):
        kind = rng.choice(KINDS)
        if fresh_facts:  # the mode first: a direct answer keeps the kb's facts (the baseline recalls them)
            mode = "direct" if rng.random() < direct else "self-ask"
            ex = draw(w, rng, w.train, kind, calculator, fresh if mode == "self-ask" else None)
        else:  # this order of draws reproduces the corpora of the first two training stages (README)
            ex = draw(w, rng, w.train, kind, calculator)
            mode = "direct" if rng.random() < direct else "self-ask"
        segs = direct_segments(ex) if mode == "direct" else scratchpad_segments(ex, copy=copy)
        out.append({"kind": kind, "mode": mode, "segments": [[t, m] for t, m in segs]})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40000, help="examples")
    ap.add_argument("--direct", type=float, default=0.15, help="share of direct-answer examples")
    ap.add_argument("--copy-weight", type=float, default=COPY_WEIGHT, help="loss weight of copied names")
    ap.add_argument("--calculator", action=argparse.BooleanOptionalAction, default=True,
                    help='end comparisons and ages with "Follow up: Calculate X - Y" (the shipped format)')
    ap.add_argument("--fresh-facts", action=argparse.BooleanOptionalAction, default=True,
                    help="new years and ages in every self-ask example (copying, not recall, predicts them)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    rows = corpus(args.n, args.direct, args.copy_weight, calculator=args.calculator, fresh_facts=args.fresh_facts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    lengths = [len("".join(t for t, _ in r["segments"]).encode()) for r in rows]
    modes = Counter(r["mode"] for r in rows)
    print(f"wrote {args.out}: {len(rows)} examples ({dict(modes)}), {sum(lengths)} bytes, "
          f"longest {max(lengths)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
