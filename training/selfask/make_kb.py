"""The self-ask demo's knowledge base: fictional people (names made of generated syllables) with a
birth year, an age at death and a birth city, and the country of each city; written in the format
plugins/kb reads ({"fields": ..., "entries": [...]}, docs/plugins.md#kb) to
models/selfask-people/people.json.

    python training/selfask/make_kb.py [--out FILE] [--check]

Deterministic (random.Random(SEED)). The people are split into train people (the corpus is made of
them only) and held-out people (the evaluation asks about them only); the split is recomputed from the
seed by `world()`, not stored.

Names are chosen so that the kb answers each follow-up question with exactly one line, "Name — field:
value": every name word is unique and no English word of the questions; every person's name has the
same number of letters (the kb adds "close names that did not match exactly" only for longer names);
no name is a near miss (plugins/kb/match.go `closeness` >= 0.75) of another record's question.

Every name of a kind has the same length (people 12 letters, cities 8, countries 9; years have 4
digits and ages 2): a name is then copied from the question or an answer into the next line from
the same distance back in every example of a kind, which a ~1M-parameter model learns in minutes
(a copy from a varying distance needs an induction mechanism that takes it far longer).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from selfask_common import FIELDS, FOLLOW_UPS, KB_FILE, QUESTIONS, SEED, Person, World

N_PEOPLE = 600
N_HELDOUT = 120
N_COUNTRIES = 8
CITIES_PER_COUNTRY = 4
NAME_LETTERS = 12  # letters of every person's name (first + last)
CITY_LETTERS = 8
COUNTRY_LETTERS = 9
YEARS = (1800, 1949)
AGES = (30, 95)

ONSETS = ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
          "br", "dr", "gr", "kr", "tr", "st", "sh", "th", "ch", "vl", "zh"]
VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou"]
CODAS = ["", "", "", "", "n", "r", "l", "s", "m", "k"]


def _english_words() -> set[str]:
    text = " ".join([*QUESTIONS.values(), *FOLLOW_UPS.values(), *(p for ps in FIELDS.values() for p in ps),
                     "question answer follow up needed here yes no so the final is intermediate knowledge base"])
    return {w.strip("?,.…{}").lower() for w in text.replace("_", " ").split() if w.strip("?,.…{}")}


ENGLISH = _english_words()


def singular(w: str) -> str:
    """plugins/kb/match.go singular (it tolerates plurals of words of 4+ letters)."""
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def similarity(a: str, b: str) -> float:
    """plugins/kb/match.go similarity: 1 - edit distance / length of the longer string."""
    longer = max(len(a), len(b))
    if longer == 0:
        return 1.0
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
        prev = cur
    return 1 - prev[len(b)] / longer


def _may_reach(a: str, b: str, score: float) -> bool:
    """Whether similarity(a, b) can reach score: the edit distance is at least the length difference
    and at least half the letters the two strings do not share (a cheap bound before the DP)."""
    longer = max(len(a), len(b))
    if abs(len(a) - len(b)) > (1 - score) * longer:
        return False
    diff = Counter(a)
    diff.subtract(Counter(b))
    return sum(abs(v) for v in diff.values()) / 2 <= (1 - score) * longer


def closeness(name: list[str], q: list[str]) -> float:
    """plugins/kb/match.go closeness (the close-name score of a record's name for question words q)."""
    target = " ".join(name)
    best = 0.0
    for n in range(len(name) - 1, len(name) + 2):
        for i in range(len(q) - n + 1 if n > 0 else 0):
            # only strings within 25% in length can reach 0.75
            run = " ".join(q[i:i + n])
            if _may_reach(target, run, 0.75):
                best = max(best, similarity(target, run))
    for w in name:
        if len(w) >= 4 and w in q and best < 0.8:
            best = 0.8
    return best


def words(text: str) -> list[str]:
    """plugins/kb/match.go words, for ASCII text."""
    out, cur = [], []
    for ch in text.lower():
        if ch.isalnum():
            cur.append(ch)
        elif cur:
            out.append("".join(cur))
            cur = []
    if cur:
        out.append("".join(cur))
    return out


def word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables))


def world(seed: int = SEED) -> World:
    rng = random.Random(seed)
    used: set[str] = set()

    def fresh(make) -> str:
        while True:
            w = make()
            if w not in used and singular(w) not in used and w not in ENGLISH and singular(w) not in ENGLISH:
                used.add(w)
                used.add(singular(w))
                return w

    countries = [fresh(lambda: _sized(rng, COUNTRY_LETTERS - 2) + "ia").capitalize() for _ in range(N_COUNTRIES)]
    cities: list[str] = []
    country_of: dict[str, str] = {}
    for country in countries:
        for _ in range(CITIES_PER_COUNTRY):
            while True:
                city = fresh(lambda: _sized(rng, CITY_LETTERS)).capitalize()
                if all(
                        closeness(words(c), words(FOLLOW_UPS["country"].format(name=city))) < 0.75
                        and closeness(words(city), words(FOLLOW_UPS["country"].format(name=c))) < 0.75
                        for c in cities):
                    break
            cities.append(city)
            country_of[city] = country

    city_questions = [words(FOLLOW_UPS["country"].format(name=c)) for c in cities]
    people: list[Person] = []
    while len(people) < N_PEOPLE:
        first_len = rng.randint(4, 7)
        first = fresh(lambda n=first_len: _sized(rng, n))
        last = fresh(lambda n=NAME_LETTERS - first_len: _sized(rng, n))
        name = f"{first.capitalize()} {last.capitalize()}"
        if any(closeness(words(name), q) >= 0.75 for q in city_questions):
            continue  # a near miss of a city's question: the kb would name this person there
        people.append(Person(name, rng.randint(*YEARS), rng.randint(*AGES), rng.choice(cities)))
    order = people[:]
    rng.shuffle(order)
    heldout = set(p.name for p in order[:N_HELDOUT])
    return World(people, [p for p in people if p.name not in heldout], [p for p in people if p.name in heldout],
                 country_of)


def _sized(rng: random.Random, n: int) -> str:
    """A word of whole syllables, exactly n letters long."""
    while True:
        w = ""
        while len(w) < n:
            w += rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
        if len(w) == n:
            return w


def kb_text(w: World) -> str:
    """The knowledge file: one record per line, people then cities (stable, diff-friendly)."""
    lines = ['{"fields": ' + json.dumps(FIELDS, ensure_ascii=False) + ',', ' "entries": [']
    records = [{"name": p.name, "born": p.born, "age_at_death": p.age_at_death, "city": p.city} for p in w.people]
    records += [{"name": city, "country": country} for city, country in w.country_of.items()]
    lines += ["  " + json.dumps(r, ensure_ascii=False) + ("," if i + 1 < len(records) else "")
              for i, r in enumerate(records)]
    lines.append(" ]}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=KB_FILE)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = ap.parse_args()
    w = world()
    text = kb_text(w)
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'matches' if same else 'DIFFERS from'} a fresh build")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(w.people)} people ({len(w.train)} train, {len(w.heldout)} held out), "
          f"{len(w.country_of)} cities in {len(set(w.country_of.values()))} countries, {len(text.encode())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
