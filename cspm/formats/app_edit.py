"""Edit an app.yaml in place for `cspm add` / `cspm remove`, keeping the author's comments and layout.

Edits are text splices at the positions PyYAML's composer reports, so everything else in the file
stays byte for byte. The result is parsed again as an app before it replaces the file (atomically).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cspm import atomicfile
from cspm.errors import EditError
from cspm.formats import app as app_format
from cspm.formats import yamlsrc
from cspm.formats.app import SECTIONS, AppConfig


def _root(text: str, shown: str) -> yaml.MappingNode:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise EditError(f"{shown}: not valid YAML: {exc}") from None
    if not isinstance(node, yaml.MappingNode):
        raise EditError(f"{shown}: expected a mapping at the top")
    return node


def _section(root: yaml.MappingNode, section: str) -> tuple[yaml.Node, yaml.Node] | None:
    return next(((k, v) for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == section), None)


def _flow(item: dict[str, Any]) -> str:
    return yaml.safe_dump(item, default_flow_style=True, width=1 << 20, sort_keys=False,
                          allow_unicode=True).strip()


def add_component(text: str, section: str, item: dict[str, Any], shown: str) -> str:
    """`text` with `item` appended to the `section` list (llms, tools or agents)."""
    assert section in SECTIONS
    root = _root(text, shown)
    found = _section(root, section)
    line = _flow(item)
    if found is None:
        body = text if text.endswith("\n") or not text else text + "\n"
        return f"{body}{section}:\n  - {line}\n"
    key, value = found
    if isinstance(value, yaml.ScalarNode) and value.value in ("", "~", "null"):
        start, end = value.start_mark.index, value.end_mark.index
        return f"{text[:start]}{'' if text[start - 1:start] == ' ' else ' '}[{line}]{text[end:]}" \
            if start != end else f"{text[:key.end_mark.index]}:\n  - {line}{text[key.end_mark.index + 1:]}"
    if not isinstance(value, yaml.SequenceNode):
        raise EditError(f"{shown}: `{section}` is not a list")
    if value.flow_style:
        close = value.end_mark.index - 1
        separator = ", " if value.value else ""
        return f"{text[:close]}{separator}{line}{text[close:]}"
    indent = " " * value.start_mark.column
    end = value.end_mark.index
    # after the last item's own lines, before any comment or blank lines that follow it
    leaf_end = _last_leaf(value).end_mark.index
    newline = leaf_end - 1 if text[leaf_end - 1:leaf_end] == "\n" else text.find("\n", leaf_end)
    cut = min(newline + 1 if newline >= 0 else len(text), end or len(text))
    insert = f"{indent}- {line}\n"
    if cut == len(text) and text and not text.endswith("\n"):
        insert = "\n" + insert
    return text[:cut] + insert + text[cut:]


def is_blank(text: str, shown: str) -> bool:
    """No llm, tool or agent yet (a missing file, an empty one, only `name:`): `cspm add` starts it."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise EditError(f"{shown}: not valid YAML: {exc}") from None
    if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null")):
        return True
    if not isinstance(node, yaml.MappingNode):
        return False  # the app loader says what is wrong with it
    for section in SECTIONS:
        found = _section(node, section)
        if found is not None and isinstance(found[1], yaml.SequenceNode) and found[1].value:
            return False
        if found is not None and not isinstance(found[1], yaml.SequenceNode | yaml.ScalarNode):
            return False
    return True


def start_app(text: str, section: str, item: dict[str, Any], shown: str) -> str:
    """A blank app (see `is_blank`) with its first component, which becomes its `entry`."""
    name = item["name"]
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode):  # empty or comments only: keep the comments
        text = text if text.endswith("\n") or not text else text + "\n"
        return add_component(f"{text}entry: {name}\n", section, item, shown)
    found = _section(node, "entry")
    value = found[1] if found is not None else None
    if isinstance(value, yaml.ScalarNode) and value.end_mark.index > value.start_mark.index:
        text = f"{text[:value.start_mark.index]}{name}{text[value.end_mark.index:]}"
    elif found is not None:  # `entry:` with no value
        key = found[0]
        text = f"{text[:key.end_mark.index]}: {name}{text[key.end_mark.index + 1:]}"
    else:
        text = f"{text if text.endswith(chr(10)) or not text else text + chr(10)}entry: {name}\n"
    return add_component(text, section, item, shown)


def add_reference(text: str, agent: str, section: str, name: str, shown: str) -> str:
    """`text` with `name` appended to the `section` list (llms, tools, agents) of the agent `agent`."""
    root = _root(text, shown)
    found = _section(root, "agents")
    items = found[1].value if found is not None and isinstance(found[1], yaml.SequenceNode) else []
    target = next((i for i in items if isinstance(i, yaml.MappingNode) and _names(i) == [agent]), None)
    if target is None:
        raise EditError(f"{shown}: there is no agent called {agent!r}")
    refs = _section(target, section)
    if refs is None:
        if target.flow_style:
            close = target.end_mark.index - 1
            return f"{text[:close]}, {section}: [{name}]{text[close:]}"
        indent = " " * target.value[0][0].start_mark.column
        return _insert_after(text, target, f"{indent}{section}: [{name}]\n")
    value = refs[1]
    if isinstance(value, yaml.ScalarNode) and value.value in ("", "~", "null"):
        if value.end_mark.index > value.start_mark.index:
            return f"{text[:value.start_mark.index]}[{name}]{text[value.end_mark.index:]}"
        key = refs[0]
        return f"{text[:key.end_mark.index]}: [{name}]{text[key.end_mark.index + 1:]}"
    if not isinstance(value, yaml.SequenceNode):
        raise EditError(f"{shown}: `{section}` of agent {agent!r} is not a list")
    if value.flow_style:
        close = value.end_mark.index - 1
        return f"{text[:close]}{', ' if value.value else ''}{name}{text[close:]}"
    return _insert_after(text, value, f"{' ' * value.start_mark.column}- {name}\n")


def _names(item: yaml.MappingNode) -> list[str]:
    return [v.value for k, v in item.value if isinstance(k, yaml.ScalarNode) and k.value == "name"]


def _insert_after(text: str, node: yaml.Node, insert: str) -> str:
    """`insert` (whole lines) after the last line of the block collection `node`."""
    leaf_end = _last_leaf(node).end_mark.index
    newline = leaf_end - 1 if text[leaf_end - 1:leaf_end] == "\n" else text.find("\n", leaf_end)
    cut = newline + 1 if newline >= 0 else len(text)
    if cut == len(text) and text and not text.endswith("\n"):
        insert = "\n" + insert
    return text[:cut] + insert + text[cut:]


def _last_leaf(node: yaml.Node) -> yaml.Node:
    """The node that ends a block collection in the text (block collections end at the next token)."""
    while not getattr(node, "flow_style", True) and node.value:
        node = node.value[-1][1] if isinstance(node, yaml.MappingNode) else node.value[-1]
    return node


def remove_component(text: str, name: str, shown: str) -> tuple[str, str]:
    """`text` without the component called `name`; returns (new text, its section)."""
    root = _root(text, shown)
    for section in SECTIONS:
        found = _section(root, section)
        if found is None or not isinstance(found[1], yaml.SequenceNode):
            continue
        items = found[1].value
        for index, item in enumerate(items):
            if not isinstance(item, yaml.MappingNode):
                continue
            names = [v.value for k, v in item.value if isinstance(k, yaml.ScalarNode) and k.value == "name"]
            if names != [name]:
                continue
            if found[1].flow_style:
                raise EditError(f"{shown}: `{section}` is written as a [flow] list; remove {name!r} by hand")
            start = text.rfind("\n", 0, item.start_mark.index) + 1  # the line of its "- "
            if index + 1 < len(items):
                end = text.rfind("\n", 0, items[index + 1].start_mark.index) + 1
            else:
                end = item.end_mark.index
                end = end if text[end - 1:end] == "\n" else text.find("\n", end - 1) + 1 or len(text)
            new = text[:start] + text[end:]
            if len(items) == 1:  # the section is empty now: leave `section: []`
                key = found[0]
                line_start = text.rfind("\n", 0, key.start_mark.index) + 1
                new = text[:line_start] + f"{section}: []\n" + text[end:]
            return new, section
    raise EditError(f"{shown}: there is no llm, tool or agent called {name!r}")


def users_of(app: AppConfig, name: str) -> list[str]:
    """The agents that list `name` among their llms, tools or agents."""
    return sorted(c.name for c in app.components.values()
                  if any(name in refs for refs in c.declared.values()))


def write_checked(path: Path, text: str) -> AppConfig:
    """Replace the app file with `text` only if it still loads as an app."""
    try:
        located = yamlsrc.load_text(text)
    except yamlsrc.YamlError as exc:
        raise EditError(f"{path}: the edit would break the file ({exc.message}); it was left unchanged") from None
    app = app_format.parse(located, path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644  # the user's file keeps its mode
    atomicfile.write(path, text, mode=mode)
    return app
