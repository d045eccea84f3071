"""The publish body: three parts, each a 4-byte little-endian length and that many bytes (like Cargo's):
the JSON head (`{"manifest": …, "signature"?: {"kind"}}`), the blob, the signature bundle. One module
for both sides: `cspm publish` encodes with `encode`/`head`, `cspm-registry` parses with `read`.

Parsed while it arrives, so an upload over a limit is refused (413) as soon as its `Content-Length`
or a part's length says so, without reading the rest; a body that ends early, or goes on after the
third part, is refused (400) with where it went wrong.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from cspm.protocol.layout import MAX_BUNDLE  # what cspm reads of a signature bundle

PART_NAMES = ("the JSON part (1)", "the module part (2)", "the signature bundle part (3)")
MAX_JSON = 1 << 20
_LENGTH = struct.Struct("<I")


class FramingError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status  # 400 malformed, 413 too large
        self.message = message


@dataclass(frozen=True)
class Limits:
    blob: int
    json: int = MAX_JSON
    bundle: int = MAX_BUNDLE

    @property
    def parts(self) -> tuple[int, int, int]:
        return self.json, self.blob, self.bundle

    @property
    def total(self) -> int:
        return 3 * _LENGTH.size + self.json + self.blob + self.bundle


@dataclass(frozen=True)
class PublishBody:
    json: bytes
    blob: bytes
    bundle: bytes


def head(manifest: dict[str, Any], signature_kind: str | None = None) -> bytes:
    """The JSON part: the manifest, and the signature's kind when a bundle is sent."""
    data: dict[str, Any] = {"manifest": manifest}
    if signature_kind is not None:
        data["signature"] = {"kind": signature_kind}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def encode(json_part: bytes, blob: bytes, bundle: bytes = b"") -> bytes:
    """The body a client sends (the reference for the format)."""
    return b"".join(_LENGTH.pack(len(part)) + part for part in (json_part, blob, bundle))


class Reader:
    """Feed chunks as they arrive; `finish()` when the body has ended."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.parts: list[bytes] = []
        self._buffer = bytearray()
        self._want: int | None = None  # length of the part being read; None while reading a length
        self._received = 0

    def feed(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > self.limits.total:
            raise FramingError(413, f"the upload is larger than this registry accepts "
                                    f"({self.limits.total:,} bytes at most)")
        self._buffer += chunk
        while True:
            if len(self.parts) == 3:
                if self._buffer:
                    raise FramingError(400, "the publish body goes on after its third part")
                return
            if self._want is None:
                if len(self._buffer) < _LENGTH.size:
                    return
                (self._want,) = _LENGTH.unpack_from(self._buffer)
                del self._buffer[:_LENGTH.size]
                index = len(self.parts)
                if self._want > self.limits.parts[index]:
                    raise FramingError(413, f"{PART_NAMES[index]} is {self._want:,} bytes; this registry accepts "
                                            f"at most {self.limits.parts[index]:,}")
            if len(self._buffer) < self._want:
                return
            self.parts.append(bytes(self._buffer[:self._want]))
            del self._buffer[:self._want]
            self._want = None

    def finish(self) -> PublishBody:
        if len(self.parts) < 3:
            name = PART_NAMES[len(self.parts)]
            if self._want is None:
                raise FramingError(400, f"the publish body ends before the 4-byte length of {name} "
                                        f"(three length-prefixed parts are expected)")
            raise FramingError(400, f"the publish body ends inside {name}: {len(self._buffer):,} of "
                                    f"{self._want:,} bytes arrived")
        return PublishBody(*self.parts)


async def read(chunks: AsyncIterator[bytes], limits: Limits, content_length: str | None) -> PublishBody:
    """Read and split a publish body, stopping at the first byte that makes it unacceptable."""
    if content_length is not None:
        try:
            announced = int(content_length)
        except ValueError:
            raise FramingError(400, "Content-Length is not a number") from None
        if announced > limits.total:
            raise FramingError(413, f"the upload is {announced:,} bytes; this registry accepts at most "
                                    f"{limits.total:,} (the module at most {limits.blob:,})")
    reader = Reader(limits)
    async for chunk in chunks:
        if chunk:
            reader.feed(chunk)
    return reader.finish()
