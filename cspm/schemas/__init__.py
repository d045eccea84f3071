"""JSON Schemas of every format and message, loaded once and compiled to validators.

Files (app.yaml, plugin.yaml, …) are checked with `jsonschema` for its precise error paths; the
ABI messages on the hot path of every host call are checked with validators compiled to Python
by `fastjsonschema` (~5 µs a message against ~60 µs), from the same schema files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, validators
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

ABI_SCHEMA = "abi/v1.json"


@cache
def load(name: str) -> dict[str, Any]:
    """A schema file from this package, e.g. `app.json` or `abi/v1.json`."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


def _no_retrieval(uri: str) -> Resource:
    """Schemas refer to each other by `$id`; nothing is ever fetched from the network."""
    raise NoSuchResource(ref=uri)


@cache
def registry() -> Registry:
    """Every schema file of this package, by its `$id`."""
    found: list[tuple[str, Resource]] = []
    base = resources.files(__name__)
    for entry in [*base.iterdir(), *base.joinpath("abi").iterdir()]:
        if entry.name.endswith(".json"):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            if "$id" in contents:
                found.append((contents["$id"], Resource.from_contents(contents)))
    return Registry(retrieve=_no_retrieval).with_resources(found)  # type: ignore[call-arg]


@cache
def validator(name: str, definition: str | None = None) -> Draft202012Validator:
    """A `jsonschema` validator for a whole schema file or one of its `$defs`."""
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
    compiled = fastjsonschema.compile(root)

    def check(message: Any) -> None:
        try:
            compiled(message)
        except fastjsonschema.JsonSchemaException as exc:
            raise MessageInvalid(exc.message) from None

    return check


@cache
def fast_valid(name: str) -> Callable[[Any], bool]:
    """A compiled yes/no check of a whole schema file, for hot loops (an index of 100,000 lines).

    On "no", ask `validator(name)` for the message: jsonschema words errors better.
    """
    by_id = {}
    base = resources.files(__name__)
    for entry in base.iterdir():
        if entry.name.endswith(".json"):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            if "$id" in contents:
                by_id[contents["$id"]] = contents

    def local_only(uri: str) -> Any:
        found = by_id.get(uri.split("#", 1)[0])
        if found is None:
            raise KeyError(f"schema {uri} is not one of cspm's own")  # never fetched from the network
        return found

    compiled = fastjsonschema.compile(load(name), handlers={"https": local_only, "http": local_only})

    def valid(data: Any) -> bool:
        try:
            compiled(data)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return valid
