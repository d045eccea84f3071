"""A tool's `arguments` checked against the `input_schema` its plug-in declares, before the tool runs.

The schema is a plug-in author's text, so it is bounded like any untrusted JSON (size and nesting,
cspm/formats/bounded_json) and a broken one is refused as invalid instead of crashing the host; it
is never fetched from or resolved against anything but itself. jsonschema is imported only when a
tool with a schema is called with `arguments`: a run that never does so does not pay for it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cspm.formats import bounded_json

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from cspm.formats.plan import PlanComponent

MAX_SCHEMA_BYTES = 64 * 1024  # a tool's input schema as JSON; the largest bundled one is under 2 KiB
MAX_SCHEMA_DEPTH = 32


class ArgumentsInvalid(ValueError):
    """The arguments do not fit the schema, or the schema itself is unusable; `str()` says which."""


def check(component: PlanComponent, arguments: Any) -> None:
    """ArgumentsInvalid naming the field and what is wrong; nothing when the tool declares no schema."""
    schema = component.input_schema
    if schema is None:
        return
    try:
        text = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        raise ArgumentsInvalid(f"the input_schema of tool `{component.name}` is invalid: not JSON") from None
    validator = _validator(text)
    if isinstance(validator, str):
        raise ArgumentsInvalid(f"the input_schema of tool `{component.name}` is invalid: {validator}")
    from jsonschema.exceptions import best_match

    try:
        error = best_match(validator.iter_errors(arguments))
    except RecursionError:  # a `$ref` that refers to itself
        raise ArgumentsInvalid(f"the input_schema of tool `{component.name}` is invalid: "
                               f"it refers to itself without end") from None
    except Exception as exc:  # a `$ref` to nowhere, a bad regex: the author's schema, not the caller
        raise ArgumentsInvalid(f"the input_schema of tool `{component.name}` is invalid: "
                               f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise ArgumentsInvalid(f"tool `{component.name}`: arguments{where}: {error.message[:300]}")


@lru_cache(maxsize=64)
def _validator(text: str) -> Validator | str:
    """A validator for one schema (by its JSON text), or why there can be none."""
    try:
        schema = bounded_json.loads(text, max_bytes=MAX_SCHEMA_BYTES, max_depth=MAX_SCHEMA_DEPTH)
    except bounded_json.JsonRejected as exc:
        return str(exc)
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import SchemaError
    from referencing import Registry

    from cspm.schemas import _no_retrieval

    try:
        cls = validators.validator_for(schema, default=Draft202012Validator)
        cls.check_schema(schema)
        return cls(schema, registry=Registry(retrieve=_no_retrieval))  # type: ignore[call-arg]
    except SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.absolute_path)
        return f"schema{where}: {exc.message[:300]}"
    except Exception as exc:  # an unknown `$schema`, anything else jsonschema refuses
        return f"{type(exc).__name__}: {str(exc)[:200]}"
