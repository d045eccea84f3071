"""What the self-ask demo's scripts share: the prompt, the question templates, the scratchpad format
plugins/self-ask builds, and the answers plugins/kb gives to our follow-up questions.

No torch here: bench/selfask_eval.py and tests/integration/test_selfask_demo.py import this module.

The scratchpad (plugins/self-ask/src/prompt.c and self_ask.c): the prompt with trailing whitespace
trimmed, "\\n\\nQuestion: {question}\\nAre follow up questions needed here:", then the model's text
through each "Follow up: ..." line (the llm is stopped at "\\nIntermediate answer:"), then
"\\nIntermediate answer: {tool output}\\n" appended by the agent, until the model writes
"So the final answer is: ...".

With `calculator=True` (make_corpus.py's default, the shipped model's format) arithmetic is the
calculator's: each comparison and the age question end with "Follow up: Calculate
X - Y", which the agent sends to its `calculator` tool (plugins/calculator, "1867 - 1821" -> "46"); a
comparison's answer is then one of the question's two names (the sign says which), the age is the
difference itself. The agent's `choices` (llm_input `choices`) keeps a comparison's answer to the
question's two names in either format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KB_FILE = ROOT / "models" / "selfask-people" / "people.json"  # the data package chainsocket/selfask-people
MODEL_FILE = ROOT / "models" / "selfask-tiny" / "selfask-tiny.gguf"  # the model package chainsocket/selfask-tiny

SEED = 7  # the one seed: knowledge base, corpus, evaluation questions, training

# The agent's `prompt:` (config `prompt` of plugins/self-ask). The model is trained after exactly
# this prefix (short: every byte of it is computed in every step); the paper's four default
# examples would not fit the model's 512-byte context.
PROMPT = "Use the knowledge base."
ASK = "\nAre follow up questions needed here:"
STOP = "\nIntermediate answer:"
FINAL = "So the final answer is:"

# The direct-answer baseline: the same model, no tool (the llm alone, completion style).
DIRECT = "Question: {question}\nAnswer:"

# The kb plug-in's field synonyms (the {"fields": ...} of the knowledge file): our follow-up
# questions select exactly one field each.
FIELDS = {
    "born": ["born", "birth year", "year of birth", "when was … born"],
    "age_at_death": ["age at death", "how old … died"],
    "city": ["city", "birth city", "birthplace", "where was … born"],
    "country": ["country", "which country"],
}

FOLLOW_UPS = {
    "born": "When was {name} born?",
    "age_at_death": "How old was {name} when they died?",
    "city": "Where was {name} born?",
    "country": "In which country is {name}?",
}

# Compositional questions: template, and the follow-ups each needs.
CALCULATE = "Calculate {x} - {y}"  # the arithmetic follow-up; the agent sends "X - Y" to the calculator

QUESTIONS = {
    "born_first": "Who was born first, {a} or {b}?",
    "lived_longer": "Who lived longer, {a} or {b}?",
    "country": "In which country was {a} born?",
    "age_when": "How old was {a} when {b} was born?",
}
KINDS = list(QUESTIONS)


@dataclass(frozen=True)
class Person:
    name: str
    born: int
    age_at_death: int
    city: str


@dataclass(frozen=True)
class World:
    people: list[Person]
    train: list[Person]
    heldout: list[Person]
    country_of: dict[str, str]  # city -> country


def kb_answer(name: str, field: str, value: object) -> str:
    """What plugins/kb answers when a question names one record and one of its fields
    (plugins/kb/main.go `describe`): "Name — field: value"."""
    return f"{name} — {field}: {value}"


@dataclass(frozen=True)
class Example:
    kind: str
    question: str
    answer: str
    steps: tuple[tuple[str, str], ...]  # (follow-up question, kb answer)
    names: tuple[str, ...] = ()  # the people, city and country the model copies


def example(world: World, kind: str, a: Person, b: Person | None = None, calculator: bool = False) -> Example:
    """The question of `kind` about a (and b), its follow-ups with the kb's (and with `calculator`, the
    calculator's) answers, and the answer."""
    def ask(field: str, who: Person) -> tuple[str, str]:
        return FOLLOW_UPS[field].format(name=who.name), kb_answer(who.name, field, getattr(who, field))

    if kind == "country":
        country = world.country_of[a.city]
        steps = (ask("city", a), (FOLLOW_UPS["country"].format(name=a.city), kb_answer(a.city, "country", country)))
        return Example(kind, QUESTIONS[kind].format(a=a.name), country, steps, (a.name, a.city, country))
    assert b is not None
    def calculate(x: int, y: int) -> tuple[tuple[str, str], ...]:
        return ((CALCULATE.format(x=x, y=y), str(x - y)),) if calculator else ()  # plugins/calculator's answer

    if kind == "born_first":  # a - b < 0: a was born first
        answer = a.name if a.born < b.born else b.name
        steps = (ask("born", a), ask("born", b), *calculate(a.born, b.born))
        copied = (str(a.born), str(b.born))
    elif kind == "lived_longer":  # a - b > 0: a lived longer
        answer = a.name if a.age_at_death > b.age_at_death else b.name
        steps = (ask("age_at_death", a), ask("age_at_death", b), *calculate(a.age_at_death, b.age_at_death))
        copied = (str(a.age_at_death), str(b.age_at_death))
    elif kind == "age_when":  # b's birth year - a's
        answer = str(b.born - a.born)
        steps = (ask("born", a), ask("born", b), *calculate(b.born, a.born))
        copied = (str(b.born), str(a.born), answer)
    else:
        raise ValueError(kind)
    names = (a.name, b.name, *copied) if calculator else (a.name, b.name)
    return Example(kind, QUESTIONS[kind].format(a=a.name, b=b.name), answer, steps, names)


def choices(question: str) -> list[str]:
    """The alternatives a question offers ("..., A or B?" -> [A, B]), as plugins/self-ask finds them
    (src/choices.c): the final answer is then one of them; [] for other questions."""
    q = question.strip()
    if not q.endswith("?") or " or " not in q:
        return []
    head, b = q[:-1].rsplit(" or ", 1)
    a = head.rsplit(", ", 1)[1] if ", " in head else ""
    return [a.strip(), b.strip()] if a.strip() and b.strip() else []


def valid_pair(kind: str, a: Person, b: Person) -> bool:
    """A pair whose question has one clear answer."""
    if a.name == b.name:
        return False
    if kind == "born_first":
        return a.born != b.born
    if kind == "lived_longer":
        return a.age_at_death != b.age_at_death
    if kind == "age_when":  # a was alive when b was born
        return 1 <= b.born - a.born < a.age_at_death
    return True


def draw(world: World, rng, people: list[Person], kind: str, calculator: bool = False,
         facts: Callable[[Person], Person] | None = None) -> Example:
    """One random question of `kind` about `people` (rng: random.Random); `facts` gives each person
    drawn other facts (make_corpus.py --fresh-facts)."""
    def pick() -> Person:
        who = rng.choice(people)
        return facts(who) if facts else who

    while True:
        a = pick()
        if kind == "country":
            return example(world, kind, a)
        b = pick()
        if valid_pair(kind, a, b):
            return example(world, kind, a, b, calculator)


COPY_WEIGHT = 4.0  # loss weight of a name the model copies (from the question or a kb answer)


def _weighted(text: str, names: tuple[str, ...], weight: float, copy: float) -> list[tuple[str, float]]:
    """text as segments of `weight`, the names in it at weight * copy."""
    out: list[tuple[str, float]] = []
    i = 0
    while i < len(text):
        hits = sorted((at, -len(n), n) for n in names if n and (at := text.find(n, i)) >= 0)
        if not hits or not weight:
            out.append((text[i:], weight))
            break
        at, _, name = hits[0]
        if at > i:
            out.append((text[i:at], weight))
        out.append((name, weight * copy))
        i = at + len(name)
    return out


def scratchpad_segments(ex: Example, prompt: str = PROMPT, copy: float = COPY_WEIGHT) -> list[tuple[str, float]]:
    """The whole self-ask scratchpad of a correct run, as (text, loss weight) segments: 0 for the
    context (prompt, question, facts), 1 for what the model writes, and the name the kb's answer
    repeats; names copied from earlier lines weigh `copy` (copying is what takes long to learn)."""
    segs = [(prompt.rstrip() + "\n\nQuestion: " + ex.question.strip() + ASK, 0.0), (" Yes.\n", 1.0)]
    for question, observation in ex.steps:
        segs += _weighted("Follow up: " + question + STOP, ex.names, 1.0, copy)
        if ": " not in observation:  # the calculator's result: not predicted (the tool's job)
            segs.append((" " + observation + "\n", 0.0))
            continue
        # the kb's answer repeats the name just asked about: predicting it is copying practice; the
        # fact itself is not predicted (held-out people's facts cannot be known)
        head, value = observation.rsplit(": ", 1)
        segs += _weighted(" " + head + ": ", ex.names, 1.0, copy)
        segs.append((value + "\n", 0.0))
    segs += _weighted(f"{FINAL} {ex.answer}\n", ex.names, 1.0, copy)
    return segs


def direct_segments(ex: Example) -> list[tuple[str, float]]:
    return [(DIRECT.format(question=ex.question), 0.0), (f" {ex.answer}\n", 1.0)]


def eval_questions(world: World, n: int = 200, seed: int = SEED) -> list[Example]:
    """n held-out questions (people never seen in training), the kinds in turn, no repeats."""
    import random

    rng = random.Random(seed * 1000 + 1)
    seen: set[str] = set()
    out: list[Example] = []
    while len(out) < n:
        ex = draw(world, rng, world.heldout, KINDS[len(out) % len(KINDS)])
        if ex.question not in seen:
            seen.add(ex.question)
            out.append(ex)
    return out


def normalize(answer: str) -> str:
    """Exact match after trimming, case folding and a trailing full stop (as self-ask strips it)."""
    answer = answer.strip()
    if answer.endswith("."):
        answer = answer[:-1].rstrip()
    return " ".join(answer.split()).casefold()


def direct_answer(content: str) -> str:
    """The baseline's answer: its first line."""
    return content.strip().split("\n", 1)[0] if content.strip() else ""
