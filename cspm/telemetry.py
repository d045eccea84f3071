"""Traces others can read: each request's call tree exported over OTLP as OpenTelemetry spans in the
GenAI semantic conventions (`invoke_agent`, `chat`, `execute_tool`; cspm.runtime.trace.Span.genai).

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; only then is
the OpenTelemetry SDK imported (~50 ms), so a plain `cspm run` never pays for it. The exporter is the
SDK's own OTLP/HTTP one, configured by the standard `OTEL_*` variables (headers, timeout,
compression); `service.name` defaults to `cspm`. Spans are made after a request ends, from the tree
the runtime already keeps (bounded: at most MAX_SPANS per request), with their real start and end
times; inputs and outputs are not exported (they may hold what a user typed), only names, kinds,
durations, token counts and errors.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cspm.runtime.trace import Span

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_exporter: Exporter | None = None


def enabled() -> bool:
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def export(root: Span) -> None:
    """Send one request's spans (no-op when OTLP is not configured)."""
    global _exporter
    if not enabled():
        return
    if _exporter is None:
        _exporter = Exporter()
    _exporter.export(root)


def flush() -> None:
    """Send what is buffered and stop (at the end of a command; bounded by the SDK's timeout)."""
    global _exporter
    if _exporter is not None:
        _exporter.shutdown()
        _exporter = None


class Exporter:
    def __init__(self, service_name: str | None = None) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": service_name or os.environ.get("OTEL_SERVICE_NAME", "cspm")})
        self._provider = TracerProvider(resource=resource)
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self._provider.get_tracer("cspm")

    def export(self, root: Span) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        offset = time.time_ns() - time.perf_counter_ns()  # perf_counter seconds -> epoch nanoseconds

        def ns(seconds: float) -> int:
            return int(seconds * 1e9) + offset

        def emit(span: Span, context: Any) -> None:
            if span.kind == "dropped":
                return
            name, attributes = span.genai()
            if not name:  # http, kv, emit: host calls inside a plug-in's turn
                name = f"{span.kind} {span.name}"
                attributes = {"cspm.span.kind": span.kind, **({"cspm.detail": span.detail} if span.detail else {})}
            kind = SpanKind.CLIENT if span.kind in ("llm", "http") else SpanKind.INTERNAL
            otel = self._tracer.start_span(name, context=context, kind=kind, start_time=ns(span.start),
                                           attributes=attributes)
            if span.error:
                otel.set_status(Status(StatusCode.ERROR, span.error[:200]))
            inner = trace.set_span_in_context(otel)
            for child in span.children:
                emit(child, inner)
            otel.end(end_time=ns(span.end if span.end is not None else span.start))

        emit(root, None)

    def shutdown(self) -> None:
        self._provider.shutdown()
