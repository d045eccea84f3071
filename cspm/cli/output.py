"""Printing shared by every command: errors, JSON, trees."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.tree import Tree

from cspm.cli.plainout import plain, print_json
from cspm.runtime.trace import Span

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def shown(text: str) -> str:
    """`plain`, and escaped for rich markup: for untrusted text inside a markup string."""
    return escape(plain(text))


def print_error(message: str, hint: str | None = None, as_json: bool = False, *, code: str = "error",
                extra: dict[str, Any] | None = None) -> None:
    """Messages quote untrusted text (names, index lines, plug-in errors): escaped, never markup.
    `code` is the error's stable code (cspm.errors), shown in JSON only, with `extra` fields."""
    if as_json:
        print_json({"error": {"code": code, "message": message, **({"hint": hint} if hint else {}),
                              **(extra or {})}})
        return
    err.print(f"[bold red]error:[/] {shown(message)}", markup=True, highlight=False)
    if hint:
        err.print(f"[dim]hint:[/] {shown(hint)}")


def _label(span: Span) -> str:
    parts = [f"[bold]{shown(span.name)}[/] [dim]{span.kind}[/]", f"{span.duration_ms:.1f} ms"]
    if span.detail:
        parts.append(shown(span.detail))
    if span.input_tokens is not None or span.output_tokens is not None:
        parts.append(f"tokens {span.input_tokens or 0}→{span.output_tokens or 0}")
    if span.error:
        parts.append(f"[red]error: {shown(span.error)}[/]")
    else:
        if span.input is not None and span.kind == "tool":
            parts.append(f"[cyan]{shown(_one_line(span.input))}[/] →")
        if span.output is not None:
            parts.append(f"[green]{shown(_one_line(span.output))}[/]")
    return "  ".join(parts)


def _one_line(text: str, limit: int = 100) -> str:
    """A step's text on one line of the tree: newlines shown as ⏎, long text cut."""
    flat = text.strip().replace("\n", " ⏎ ")
    return json.dumps(flat if len(flat) <= limit else flat[:limit] + "…", ensure_ascii=False)


def trace_tree(span: Span) -> Tree:
    def label(node: Span) -> Text:  # folded, not cut, at the terminal's width: the text is the point
        return Text.from_markup(_label(node), overflow="fold")

    tree = Tree(label(span))
    stack = [(span, tree)]
    while stack:
        node, branch = stack.pop()
        for child in node.children:
            stack.append((child, branch.add(label(child))))
    return tree


def columns(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table as plain aligned lines on stdout: names, versions and URLs are never wrapped or cut (a
    rich Table folds them at 80 columns when stdout is not a terminal, and they could not be copied).
    Only the last column may be long; the terminal wraps it. Cells are untrusted text: shown plainly."""
    cells = [tuple(plain(str(c)) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header) - 1)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()

    out.print(Text(line(header), style="bold"), soft_wrap=True)
    for row in cells:
        out.print(line(row), markup=False, highlight=False, soft_wrap=True)


def fields(rows: list[tuple[str, str | Text]]) -> None:
    """`key  value` lines (cspm info): a value's later lines are indented under its first; nothing is
    wrapped or cut, so a digest, name or URL can be copied whole. String values are untrusted text."""
    width = max((len(k) for k, _ in rows), default=0) + 2
    for key, value in rows:
        text = value if isinstance(value, Text) else Text(plain(value))
        lines = text.split("\n", allow_blank=True) if text.plain else [Text("-")]
        for i, part in enumerate(lines):
            head = Text(key.ljust(width), style="bold") if i == 0 else Text(" " * width)
            out.print(head + part, soft_wrap=True)


def warner(into: list[str] | None = None) -> Callable[[str], None]:
    """Warnings go to stderr in both modes, so --json output on stdout stays one document; `into`
    also keeps them for a --json document's `warnings` (a script reads stdout only)."""
    def warn(message: str) -> None:
        err.print(f"[yellow]warning:[/] {shown(message)}", markup=True, highlight=False)
        if into is not None:
            into.append(message)
    return warn
