"""Spans of one run: every routed call with its kind, duration, tokens and error (`--trace`).

Plug-ins decide how many spans a run makes (each call, each refused `http_fetch`) and much of their
text, so a trace is bounded: at most MAX_SPANS spans under a run's root, and each text field cut
(TEXT_LIMIT, NAME_LIMIT) when it is set. Past MAX_SPANS a span is counted, not kept: the root says
how many were dropped (`dropped_spans`, and a last child of kind `dropped`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

MAX_SPANS = 1000  # spans kept under one run's root
TEXT_LIMIT = 2000  # characters of a call's input, output or error kept in a trace
NAME_LIMIT = 200  # characters of a span's name or detail (a URL, a method and status)


class _Budget:
    """The span count of one run, shared by every span of its tree."""

    __slots__ = ("dropped", "kept", "marker", "root")

    def __init__(self, root: Span) -> None:
        self.root, self.kept, self.dropped = root, 0, 0
        self.marker: Span | None = None

    def drop(self) -> None:
        self.dropped += 1
        if self.marker is None:
            self.marker = Span("", "dropped", detail=f"at most {MAX_SPANS} spans are kept per run")
            self.marker.end = self.marker.start
            self.root.children.append(self.marker)
        self.marker.name = f"{self.dropped} more spans dropped"


@dataclass(init=False)
class Span:
    name: str
    kind: str  # llm | tool | agent | http | kv | emit | dropped
    start: float
    # the fields below start as None: read from these class defaults until set on the span itself
    end: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    detail: str | None = None
    model: str | None = None  # an llm's `model` config, when it has one (gen_ai.request.model)
    input: str | None = None  # what the call was asked (a tool's or agent's input; an llm's is its prompt)
    output: str | None = None  # what it answered
    children: list[Span] = field(default_factory=list)
    budget: _Budget | None = field(default=None, repr=False, compare=False)

    def __init__(self, name: str, kind: str, *, detail: str | None = None, model: str | None = None,
                 budget: _Budget | None = None) -> None:
        """Written out (not generated) so that making a span, once per routed call, does not go through
        `__setattr__` for each of its fields; the text ones are cut here instead, and the ones that
        start as None are left to the class defaults (half the cost of a span)."""
        fields = self.__dict__
        fields["name"] = _clip(name, NAME_LIMIT)
        fields["kind"] = kind
        fields["start"] = time.perf_counter()
        fields["children"] = []
        fields["budget"] = budget
        if detail is not None:
            fields["detail"] = _clip(detail, NAME_LIMIT)
        if model is not None:
            fields["model"] = _clip(model, NAME_LIMIT)

    def __setattr__(self, key: str, value: Any) -> None:
        """Every text field is cut as it is set, whoever sets it."""
        limit = _LIMITS.get(key)
        if limit is not None and isinstance(value, str):
            value = _clip(value, limit)
        object.__setattr__(self, key, value)

    @property
    def duration_ms(self) -> float:
        return ((self.end or time.perf_counter()) - self.start) * 1000

    @property
    def dropped_spans(self) -> int:
        """How many spans of this run were counted, not kept (on the root; 0 elsewhere)."""
        return self.budget.dropped if self.budget is not None and self.budget.root is self else 0

    def finish(self, error: str | None = None) -> None:
        self.__dict__["end"] = time.perf_counter()  # a float: nothing for __setattr__ to cut (hot path)
        if error is not None:
            self.error = error

    def child(self, name: str, kind: str, detail: str | None = None) -> Span:
        """A new span under this one; past MAX_SPANS in the run, a span that is counted, not kept."""
        if self.budget is None:
            self.budget = _Budget(self)
        span = Span(name, kind, detail=detail, budget=self.budget)
        if self.budget.kept >= MAX_SPANS:
            self.budget.drop()
        else:
            self.budget.kept += 1
            self.children.append(span)
        return span

    def record(self, payload: dict[str, Any], response: dict[str, Any]) -> None:
        """Keep the text of the call (up to TEXT_LIMIT each way) so a trace shows each step, not only
        its timing: a tool's input and output, an llm's reply (its prompt is the caller's business)."""
        fields = self.__dict__  # set as __setattr__ would, cut to TEXT_LIMIT (once per routed call)
        kind = fields["kind"]
        text = payload.get("input")
        if isinstance(text, str) and kind in ("tool", "agent"):
            fields["input"] = _clip(text, TEXT_LIMIT)
        answer = response.get("content") if kind == "llm" else response.get("output")
        if isinstance(answer, str):
            fields["output"] = _clip(answer, TEXT_LIMIT)

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
        if self.dropped_spans:
            out["dropped_spans"] = self.dropped_spans
        operation, attributes = self.genai()
        if operation:
            out["gen_ai"] = attributes
        return out

    def genai(self) -> tuple[str, dict[str, str | int]]:
        """The span's name and attributes in OpenTelemetry's GenAI semantic conventions (`invoke_agent`,
        `chat`, `execute_tool`): what `--trace --json` shows and what OTLP export sends (cspm.telemetry).
        Plain-text fields (inputs, outputs) are not attributes: they may hold what a user typed."""
        operation = GENAI_OPERATIONS.get(self.kind)
        if operation is None:
            return "", {}
        attributes: dict[str, str | int] = {"gen_ai.operation.name": operation, "gen_ai.provider.name": "cspm"}
        if self.kind == "agent":
            attributes["gen_ai.agent.name"] = self.name
        elif self.kind == "tool":
            attributes["gen_ai.tool.name"] = self.name
        elif self.kind == "llm":
            attributes["gen_ai.request.model"] = self.model or self.name
        if self.input_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = self.input_tokens
        if self.output_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = self.output_tokens
        if self.error:
            attributes["error.type"] = "plugin_error"
        target = attributes.get("gen_ai.request.model", self.name)
        return f"{operation} {target}", attributes


GENAI_OPERATIONS = {"agent": "invoke_agent", "llm": "chat", "tool": "execute_tool"}
_LIMITS = {"name": NAME_LIMIT, "detail": NAME_LIMIT, "model": NAME_LIMIT, "error": TEXT_LIMIT, "input": TEXT_LIMIT,
           "output": TEXT_LIMIT}


def _clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
