"""Printing shared by every command: errors, JSON, trees."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.tree import Tree

from cspm.runtime.trace import Span

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def print_error(message: str, hint: str | None = None, as_json: bool = False) -> None:
    """Messages quote untrusted text (names, index lines, plug-in errors): escaped, never markup."""
    if as_json:
        print_json({"error": {"message": message, **({"hint": hint} if hint else {})}})
        return
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}")


def _label(span: Span) -> str:
    parts = [f"[bold]{span.name}[/] [dim]{span.kind}[/]", f"{span.duration_ms:.1f} ms"]
    if span.detail:
        parts.append(span.detail)
    if span.input_tokens is not None or span.output_tokens is not None:
        parts.append(f"tokens {span.input_tokens or 0}→{span.output_tokens or 0}")
    if span.error:
        parts.append(f"[red]error: {escape(span.error)}[/]")
    else:
        if span.input is not None and span.kind == "tool":
            parts.append(f"[cyan]{escape(_one_line(span.input))}[/] →")
        if span.output is not None:
            parts.append(f"[green]{escape(_one_line(span.output))}[/]")
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


def warner() -> Callable[[str], None]:
    """Warnings go to stderr in both modes, so --json output on stdout stays one document."""
    def warn(message: str) -> None:
        err.print(f"[yellow]warning:[/] {escape(message)}", markup=True, highlight=False)
    return warn
