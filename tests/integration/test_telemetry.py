"""Traces others can read: `cspm run` exports each request's spans over OTLP/HTTP (the OpenTelemetry
SDK's own exporter) in the GenAI semantic conventions, to a real receiver on loopback that decodes the
protobuf with opentelemetry-proto; `--trace --json` shows the same attributes; without an endpoint the
SDK is never imported."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.integration.test_cli import cspm
from tests.integration.test_selfask_demo import DEMO_ANSWER, DEMO_QUESTION


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An OTLP/HTTP trace receiver: every span it is sent, as {name, parent, attributes, status, start, end}."""
    spans: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        attributes = {a.key: (a.value.string_value or a.value.int_value) for a in span.attributes}
                        spans.append({"name": span.name, "id": span.span_id, "parent": span.parent_span_id,
                                      "trace": span.trace_id, "attributes": attributes, "service": service,
                                      "error": span.status.code == 2, "start": span.start_time_unix_nano,
                                      "end": span.end_time_unix_nano})
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", spans
    server.shutdown()


def test_a_run_exports_genai_spans_over_otlp(tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, spans = receiver
    env = {f"CSPM_{k}_DIR": str(tmp_path / k.lower()) for k in ("CACHE", "DATA", "CONFIG")}
    env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "demo-test"}
    ran = cspm("run", "chainsocket/self-ask-demo", "--offline", "--input", DEMO_QUESTION, "--json", "--trace",
               env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["output"] == DEMO_ANSWER
    [root] = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "invoke_agent"]
    assert root["name"] == "invoke_agent self_ask_agent"
    assert root["parent"] == b"" and root["service"] == "demo-test"
    assert root["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    chats = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "chat"]
    tools = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "execute_tool"]
    assert len(chats) == 6 and len(tools) == 3, [s["name"] for s in spans]
    assert {t["attributes"]["gen_ai.tool.name"] for t in tools} == {"kb", "calculator"}
    for span in chats + tools:  # one tree, one trace, children inside their parent's time
        assert span["parent"] == root["id"] and span["trace"] == root["trace"]
        assert root["start"] <= span["start"] <= span["end"] <= root["end"]
    assert all(c["attributes"]["gen_ai.usage.output_tokens"] > 0 for c in chats)
    assert {c["attributes"]["gen_ai.request.model"] for c in chats} == {"selfask"}  # llm-local's `model` config
    assert {c["name"] for c in chats} == {"chat selfask"}
    # the same names and attributes in the JSON trace
    trace = json.loads(ran.stdout)["trace"]
    assert trace["gen_ai"] == {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "cspm",
                               "gen_ai.agent.name": "self_ask_agent"}
    assert [c["gen_ai"]["gen_ai.operation.name"] for c in trace["children"]].count("execute_tool") == 3


def test_no_endpoint_no_sdk() -> None:
    code = ("import sys; from cspm import telemetry; from cspm.runtime.trace import Span; "
            "telemetry.export(Span('a', 'agent')); telemetry.flush(); "
            "print(any(m.startswith('opentelemetry') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
