"""Printing shared by every command: errors, JSON, trees."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.tree import Tree

from cspm.runtime.trace import Span

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def print_error(message: str, hint: str | None = None, as_json: bool = False) -> None:
    if as_json:
        print_json({"error": {"message": message, **({"hint": hint} if hint else {})}})
        return
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    if hint:
        err.print(f"[dim]hint:[/] {hint}")


def _label(span: Span) -> str:
    parts = [f"[bold]{span.name}[/] [dim]{span.kind}[/]", f"{span.duration_ms:.1f} ms"]
    if span.detail:
        parts.append(span.detail)
    if span.input_tokens is not None or span.output_tokens is not None:
        parts.append(f"tokens {span.input_tokens or 0}→{span.output_tokens or 0}")
    if span.error:
        parts.append(f"[red]error: {span.error}[/]")
    return "  ".join(parts)


def trace_tree(span: Span) -> Tree:
    tree = Tree(_label(span))
    stack = [(span, tree)]
    while stack:
        node, branch = stack.pop()
        for child in node.children:
            stack.append((child, branch.add(_label(child))))
    return tree


def warner() -> Callable[[str], None]:
    """Warnings go to stderr in both modes, so --json output on stdout stays one document."""
    def warn(message: str) -> None:
        err.print(f"[yellow]warning:[/] {message}", markup=True, highlight=False)
    return warn
