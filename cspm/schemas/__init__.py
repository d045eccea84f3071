"""JSON Schemas of every format and message, loaded once and compiled to validators.

Files (app.yaml, plugin.yaml, …) are first checked by validators that `fastjsonschema` compiled
to Python ahead of time (`compiled/`, written by `python -m cspm.schemas.compile`); only a file
that fails is checked again by `jsonschema`, for its precise error paths. A valid file so never
imports jsonschema (about 40 ms of every start). The ABI messages on the hot path of every host
call are checked with validators compiled at run time (~5 µs a message against ~60 µs).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cspm.schemas.mismatch import Mismatch

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError
    from referencing import Registry, Resource

ABI_SCHEMA = "abi/v1.json"
# the schema files, beside this module: read as files, not through importlib.resources, which costs
# ~8 ms of every warm `cspm run` (cspm is installed as files; nothing loads it from a zip)
HERE = Path(__file__).resolve().parent
# the file schemas with validators compiled ahead of time, as cspm/schemas/compiled/<module>.py
COMPILED = {"app.json": "app", "lock.json": "lock", "plugin.json": "plugin", "config.json": "config",
            "index-line.json": "index_line", "plan.json": "plan"}


@cache
def load(name: str) -> dict[str, Any]:
    """A schema file from this package, e.g. `app.json` or `abi/v1.json`."""
    text = HERE.joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


def _no_retrieval(uri: str) -> Resource:
    """Schemas refer to each other by `$id`; nothing is ever fetched from the network."""
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # its stubs lack the attrs-made argument


@cache
def registry() -> Registry:
    """Every schema file of this package, by its `$id`."""
    from referencing import Registry, Resource

    found: list[tuple[str, Resource]] = []
    base = HERE
    for entry in [*base.iterdir(), *base.joinpath("abi").iterdir()]:
        if entry.name.endswith(".json"):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            if "$id" in contents:
                found.append((contents["$id"], Resource.from_contents(contents)))
    return Registry(retrieve=_no_retrieval).with_resources(found)  # type: ignore[call-arg]


@cache
def validator(name: str, definition: str | None = None) -> Draft202012Validator:
    """A `jsonschema` validator for a whole schema file or one of its `$defs`."""
    from jsonschema import Draft202012Validator, validators

    root = load(name)
    cls = validators.validator_for(root, default=Draft202012Validator)
    if definition is None:
        return cls(root, registry=registry())
    if definition not in root.get("$defs", {}):
        raise KeyError(f"{name} has no definition {definition!r}")
    return cls({"$ref": f"{root['$id']}#/$defs/{definition}"}, registry=registry())


class MessageInvalid(ValueError):
    """An ABI message that does not match its schema; `str()` names the field."""


@cache
def message_check(definition: str) -> Callable[[Any], None]:
    """A fast checker for one ABI message; raises MessageInvalid."""
    root = dict(load(ABI_SCHEMA))
    if definition not in root["$defs"]:
        raise KeyError(f"{ABI_SCHEMA} has no definition {definition!r}")
    root.pop("$id", None)
    root["$ref"] = f"#/$defs/{definition}"
    import fastjsonschema

    compiled = fastjsonschema.compile(root)

    def check(message: Any) -> None:
        try:
            compiled(message)
        except fastjsonschema.JsonSchemaException as exc:
            raise MessageInvalid(str(exc)) from None

    return check


def problem(name: str, data: Any) -> ValidationError | None:
    """The most relevant way `data` breaks schema file `name` (jsonschema's `best_match`), or None.

    The compiled check decides; jsonschema, the reference, words the error (tests/unit/test_schemas.py
    keeps the two in agreement). Should they ever disagree, the document is refused all the same
    (fail closed).
    """
    if fast_valid(name)(data):
        return None
    from jsonschema.exceptions import ValidationError, best_match

    found = best_match(validator(name).iter_errors(data))
    if found is None:
        return ValidationError(f"does not match {name} (its two checks disagree: please report it)")
    return found


def handlers() -> dict[str, Callable[[str], Any]]:
    """`$ref` resolution for fastjsonschema: cspm's own schema files only, never the network."""
    by_id = {}
    for entry in HERE.iterdir():
        if entry.name.endswith(".json"):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            if "$id" in contents:
                by_id[contents["$id"]] = contents

    def local_only(uri: str) -> Any:
        found = by_id.get(uri.split("#", 1)[0])
        if found is None:
            raise KeyError(f"schema {uri} is not one of cspm's own")
        return found

    return {"https": local_only, "http": local_only}


@cache
def fast_valid(name: str) -> Callable[[Any], bool]:
    """A compiled yes/no check of a whole schema file, for hot loops (an index of 100,000 lines) and
    every start (app.yaml, app.lock). On "no", ask `problem` or `validator(name)` for the message."""
    refused: tuple[type[Exception], ...] = (Mismatch,)  # what the ahead-of-time ones raise
    if name in COMPILED:
        compiled = importlib.import_module(f"{__name__}.compiled.{COMPILED[name]}").validate
    else:
        import fastjsonschema

        compiled = fastjsonschema.compile(load(name), handlers=handlers())
        refused = (fastjsonschema.JsonSchemaException,)

    def valid(data: Any) -> bool:
        try:
            compiled(data)
        except refused:
            return False
        return True

    return valid
