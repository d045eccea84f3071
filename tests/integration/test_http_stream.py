"""The streaming HTTP extension (`http_open`/`http_read`/`http_close`, docs/abi.md) at the gateway: the
rules of http_fetch hold for a body read in pieces, and a secret split over two pieces is still redacted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cspm import conformance
from cspm.formats.plan import SecretRef
from cspm.runtime.engine import Runtime
from cspm.runtime.http import MAX_OPEN_STREAMS, FetchRefused, HttpGateway, HttpStream, Streams, _Holdback, _Redactor
from cspm.runtime.secrets import ResolvedSecret
from tests.conftest import ROOT, conformance_wasm
from tests.scripted import ScriptedServer

SECRET = "s3cr3t-key/value"


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def srv(server: ScriptedServer) -> ScriptedServer:
    server.replies.clear()
    server.seen.clear()
    return server


@pytest.fixture
def gateway() -> Iterator[HttpGateway]:
    gateway = HttpGateway()
    yield gateway
    gateway.close()


def secrets(srv: ScriptedServer) -> tuple[ResolvedSecret, ...]:
    ref = SecretRef("token", "env:X", "Authorization", "Bearer {}", (srv.url,), None)
    return (ResolvedSecret(ref, SECRET),)


def read_all(streams: Streams, number: int, max_bytes: int = 65536) -> list[str]:
    pieces = []
    while True:
        answer = streams.read(number, max_bytes)
        pieces.append(answer["data"])
        if answer["done"]:
            return pieces


def test_pieces_arrive_in_order_with_the_secret_injected_and_redacted_across_pieces(
        srv: ScriptedServer, gateway: HttpGateway) -> None:
    half = len(SECRET) // 2
    pad = "." * 40  # longer than the longest secret form, so each piece can pass the holdback
    srv.stream([f"data: one{pad}\n\n", f"data: {SECRET[:half]}", f"{SECRET[half:]} two{pad}\n\n",
                "data: é".encode()[:7], "é".encode()[1:] + "é".encode()], headers={"X-Echo": SECRET}, gap=0.05)
    stream = gateway.open({"method": "POST", "url": f"{srv.url}/v1/s", "body": "B"}, (srv.url,), secrets(srv),
                          deadline=time.monotonic() + 10)
    assert stream.status == 200 and stream.headers["x-echo"] == "[redacted]"
    streams = Streams()
    number = streams.add(stream)
    pieces = read_all(streams, number)
    body = "".join(pieces)
    assert body == f"data: one{pad}\n\ndata: [redacted] two{pad}\n\ndata: éé"
    assert len([p for p in pieces if p]) >= 3  # it streamed: not one read of the whole body
    assert srv.seen[0].headers["authorization"] == f"Bearer {SECRET}"
    with pytest.raises(FetchRefused) as refused:  # done: the stream is forgotten
        streams.read(number, 10)
    assert refused.value.code == "bad_request"


def test_max_bytes_cuts_on_a_character_boundary(srv: ScriptedServer, gateway: HttpGateway) -> None:
    srv.stream(["aé🦀b"])
    streams = Streams()
    number = streams.add(gateway.open({"url": f"{srv.url}/x"}, (srv.url,), (), deadline=time.monotonic() + 10))
    assert read_all(streams, number, max_bytes=2) == ["a", "é", "🦀", "b", ""]  # the end may come alone


def test_an_ungranted_origin_is_refused_before_anything_is_sent(srv: ScriptedServer, gateway: HttpGateway) -> None:
    with pytest.raises(FetchRefused) as refused:
        gateway.open({"url": f"{srv.url}/x"}, ("https://example.com",), (), deadline=time.monotonic() + 10)
    assert refused.value.code == "not_granted"
    assert srv.seen == []


def test_a_stream_cut_mid_way_is_an_http_error(srv: ScriptedServer, gateway: HttpGateway) -> None:
    srv.stream(["data: one\n\n", "data: tw"], cut=True)
    streams = Streams()
    number = streams.add(gateway.open({"url": f"{srv.url}/x"}, (srv.url,), (), deadline=time.monotonic() + 10))
    with pytest.raises(FetchRefused) as refused:
        read_all(streams, number)
    assert refused.value.code == "http_error" and "broke off" in str(refused.value)


def test_the_deadline_ends_a_slow_stream(srv: ScriptedServer, gateway: HttpGateway) -> None:
    srv.stream(["a", "b", "c"], gap=1.0)
    streams = Streams()
    start = time.monotonic()
    number = streams.add(gateway.open({"url": f"{srv.url}/x"}, (srv.url,), (), deadline=start + 0.5))
    with pytest.raises(FetchRefused) as refused:
        read_all(streams, number)
    assert refused.value.code == "timeout"
    assert time.monotonic() - start < 1.5


def test_open_streams_are_bounded_and_closed_together(srv: ScriptedServer, gateway: HttpGateway) -> None:
    streams = Streams()
    opened = []
    for _ in range(MAX_OPEN_STREAMS):
        srv.stream(["x"])
        opened.append(gateway.open({"url": f"{srv.url}/x"}, (srv.url,), (), deadline=time.monotonic() + 10))
        streams.add(opened[-1])
    assert not streams.room()
    srv.stream(["x"])
    extra = gateway.open({"url": f"{srv.url}/x"}, (srv.url,), (), deadline=time.monotonic() + 10)
    with pytest.raises(FetchRefused) as refused:
        streams.add(extra)
    assert refused.value.code == "too_large" and extra.ended
    streams.close_all()
    assert all(s.ended for s in opened) and streams.room()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_holdback_redacts_a_secret_split_at_any_point(size: int) -> None:
    redactor = _Redactor(())
    redactor.add([SECRET, "abc"])
    assert redactor.text_pattern is not None
    holdback = _Holdback(redactor.text_pattern, "[redacted]", redactor.longest_chars)
    text = f"x{SECRET}yabc{SECRET}{SECRET}z"
    out = "".join(holdback.feed(text[i:i + size], False) for i in range(0, len(text), size))
    out += holdback.feed("", True)
    assert out == "x[redacted]y[redacted][redacted][redacted]z"


# ---- through the host, from a plug-in (the Rust SDK's HttpStream, conformance-rust's `http_stream`) ----

@pytest.fixture
def sut(srv: ScriptedServer, tmp_path: Path) -> Iterator[Runtime]:
    """conformance/abi1.json's plan with the scripted server as the granted (secret-bound) origin."""
    from cspm.formats.plan import from_dict

    doc = conformance.load(ROOT / "conformance" / "abi1.json")
    (tmp_path / "secret").write_text(doc["files"]["secret_file"])
    values = {"module": conformance.module_of(conformance_wasm("rust")), "echo_url": srv.url,
              "secret_file": str(tmp_path / "secret")}
    runtime = Runtime(from_dict(conformance.fill(doc["plan"], values)), kv=None)
    yield runtime
    runtime.close()


def stream_call(runtime: Runtime, request: dict[str, Any]) -> dict[str, Any]:
    answer = runtime.call_export("sut", "host", json.dumps({"fn": "http_stream", "request": request}).encode())
    return json.loads(answer)


def test_a_plugin_reads_a_stream_in_pieces_with_the_secret_redacted(srv: ScriptedServer, sut: Runtime) -> None:
    key = "s3cr3t-key-value"
    srv.stream(["first piece ", f"has {key[:5]}", f"{key[5:]} split ", "and ends ✓"], gap=0.02)
    answer = stream_call(sut, {"url": f"{srv.url}/v1/s", "max_bytes": 8})
    assert answer["status"] == 200
    assert "".join(answer["chunks"]) == "first piece has [redacted] split and ends ✓"
    assert len(answer["chunks"]) > 4 and all(len(c.encode()) <= 8 for c in answer["chunks"])
    assert srv.seen[0].headers["authorization"] == f"Bearer {key}"


def test_a_plugin_sees_a_cut_stream_as_an_http_error(srv: ScriptedServer, sut: Runtime) -> None:
    srv.stream(["partial"], cut=True)
    answer = stream_call(sut, {"url": f"{srv.url}/v1/s"})
    assert answer["error"]["code"] == "http_error"


def test_an_ungranted_origin_is_refused_to_a_plugin(srv: ScriptedServer, sut: Runtime) -> None:
    answer = stream_call(sut, {"url": "http://127.0.0.2:9/"})
    assert answer["error"]["code"] == "not_granted"


def test_streams_left_open_are_closed_when_the_call_ends(srv: ScriptedServer, sut: Runtime,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[HttpStream] = []
    original = HttpStream.close
    monkeypatch.setattr(HttpStream, "close", lambda self: (closed.append(self), original(self))[1])
    srv.stream(["never read"])
    opened = json.loads(sut.call_export("sut", "raw", f'http_open\n{{"url": "{srv.url}/x"}}'.encode()))
    assert opened["stream"] == 1
    assert len(closed) == 1 and closed[0].ended
