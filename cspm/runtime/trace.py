"""Spans of one run: every routed call with its kind, duration, tokens and error (`--trace`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Span:
    name: str
    kind: str  # llm | tool | agent | http | kv | emit
    start: float = field(default_factory=time.perf_counter)
    end: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    detail: str | None = None
    input: str | None = None  # what the call was asked (a tool's or agent's input; an llm's is its prompt)
    output: str | None = None  # what it answered
    children: list[Span] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return ((self.end or time.perf_counter()) - self.start) * 1000

    def finish(self, error: str | None = None) -> None:
        self.end = time.perf_counter()
        if error is not None:
            self.error = error

    def child(self, name: str, kind: str, detail: str | None = None) -> Span:
        span = Span(name, kind, detail=detail)
        self.children.append(span)
        return span

    def record(self, payload: dict[str, Any], response: dict[str, Any]) -> None:
        """Keep the text of the call (up to TEXT_LIMIT each way) so a trace shows each step, not only
        its timing: a tool's input and output, an llm's reply (its prompt is the caller's business)."""
        if self.kind in ("tool", "agent") and isinstance(payload.get("input"), str):
            self.input = _clip(payload["input"])
        answer = response.get("content") if self.kind == "llm" else response.get("output")
        if isinstance(answer, str):
            self.output = _clip(answer)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "duration_ms": round(self.duration_ms, 3)}
        if self.input_tokens is not None or self.output_tokens is not None:
            out["tokens"] = {"input": self.input_tokens or 0, "output": self.output_tokens or 0}
        if self.detail:
            out["detail"] = self.detail
        if self.input is not None:
            out["input"] = self.input
        if self.output is not None:
            out["output"] = self.output
        if self.error:
            out["error"] = self.error
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out


TEXT_LIMIT = 2000  # characters of a call's input or output kept in a trace


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "…"
