"""One table of package kinds (cspm.protocol.kinds): it names exactly the kinds the schemas accept,
and the facts the code branches on agree with the schemas' own rules."""

from __future__ import annotations

import pytest

from cspm import schemas
from cspm.protocol import kinds


@pytest.mark.parametrize("schema,path", [
    ("plugin.json", ("properties", "kind")), ("index-line.json", ("properties", "kind")),
    ("lock.json", ("$defs", "locked", "properties", "kind")),
])
def test_the_table_is_every_kind_a_schema_accepts(schema: str, path: tuple[str, ...]) -> None:
    node = schemas.load(schema)
    for key in path:
        node = node[key]
    assert list(node["enum"]) == list(kinds.KINDS)


def test_module_kinds_are_what_a_plan_and_a_plugin_manifest_call_modules() -> None:
    plan_kinds = schemas.load("plan.json")["$defs"]["component"]["properties"]["kind"]["enum"]
    assert set(plan_kinds) == kinds.MODULE_KINDS
    wasm_rule = schemas.load("plugin.json")["allOf"][2]["if"]["properties"]["kind"]["enum"]
    assert set(wasm_rule) == kinds.MODULE_KINDS
    assert kinds.SECTIONS == {"llms": "llm", "tools": "tool", "agents": "agent"}
    assert all(kinds.of(k).payload == "wasm" for k in kinds.MODULE_KINDS)
    assert {"model", "data"} == kinds.MOUNTED_KINDS


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'widget' is not a package kind"):
        kinds.of("widget")
