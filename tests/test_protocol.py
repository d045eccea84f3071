"""cspm/protocol: what the client and the server must agree on, written once and imported by both."""

from __future__ import annotations

import json

import pytest

from cspm.protocol import publish_body


def test_what_cspm_publish_sends_is_what_the_server_reads() -> None:
    from cspm_registry import app as server_app

    from cspm.publish import frame

    assert server_app.framing is publish_body  # the server parses with this very module
    manifest = {"name": "acme/x", "version": "1.0.0", "kind": "tool"}
    body = frame(manifest, b"\0asm-bytes", b'{"bundle": 1}', "sigstore")
    reader = publish_body.Reader(publish_body.Limits(blob=1024))
    for i in range(0, len(body), 7):  # as it arrives, in pieces
        reader.feed(body[i:i + 7])
    parts = reader.finish()
    assert json.loads(parts.json) == {"manifest": manifest, "signature": {"kind": "sigstore"}}
    assert (parts.blob, parts.bundle) == (b"\0asm-bytes", b'{"bundle": 1}')
    unsigned = publish_body.Reader(publish_body.Limits(blob=1024))
    unsigned.feed(frame(manifest, b"x"))
    assert json.loads(unsigned.finish().json) == {"manifest": manifest}  # no bundle: no signature


def test_a_part_over_its_limit_is_refused_before_it_arrives() -> None:
    reader = publish_body.Reader(publish_body.Limits(blob=4))
    with pytest.raises(publish_body.FramingError, match="the module part") as refused:
        reader.feed(publish_body.encode(b"{}", b"12345")[:12])
    assert refused.value.status == 413
