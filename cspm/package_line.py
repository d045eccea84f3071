"""The index line of any package, dispatched on its kind's payload (cspm.protocol.kinds): the one
place `cspm publish`, `cspm index build` and the registry server turn a manifest and its file into
the line a registry serves, so the three can never describe one package differently."""

from __future__ import annotations

from typing import Any

from cspm.formats.manifest import Manifest
from cspm.protocol import kinds


def line_of(manifest: Manifest, blob: bytes, *, published: str | None = None) -> dict[str, Any]:
    """Checks the file as an install would (a module's interface, a GGUF header, an app bundle) and
    returns its line; `published` is the time a registry accepted it (None: a reproducible build)."""
    payload = kinds.of(manifest.kind).payload
    if payload == "app":
        from cspm import apppkg

        return apppkg.index_line(manifest, blob, published=published)
    if payload == "file":
        from cspm import models

        return models.package_line(manifest, blob, published=published)
    from cspm.index.build import index_line

    return index_line(manifest, blob, published=published)
