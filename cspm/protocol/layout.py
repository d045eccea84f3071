"""The static registry layout: the one place that knows its paths and renders `config.json` and `names`.

```
config.json                    render_config: {"api", "dl", "name"[, "policy"]}, sorted keys, one "\\n"
index/<namespace>/<name>       index_path: one canonical JSON line per version, in publish order
names                          render_names: one row per package, sorted by name
blobs/sha256/<hex>             blob_path: the module (or app package, model, data file)
bundles/sha256/<hex>.<k>.json  bundle_path: a signature bundle, named by its own sha256
```

Every producer of the layout (`cspm index build`, the registry server's routes and its `export`)
and every reader of `names` (`cspm search`) goes through here, so a folder built by the client and
the same packages published to a server are the same bytes (tests/integration/test_protocol.py), but for the
two differences that are inherent and written here: a server's `config.json` has `api` (where its
write API is; a static folder has none, `null`), and a server's index lines carry `published`
(when it accepted the version; a build from sources has no such moment, and stays reproducible).
`comparable_line` is that normalization.

`names` shows, per package, the highest version that is not yanked, or the highest of all when
every version is yanked (docs/registry.md); its other fields come from that version's line. Where
an index file lists a version twice (a folder registry yanks by appending), the later line wins, as
in `cspm.formats.index_line.parse_file`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from cspm.formats.names import check_name

CONFIG_FILE = "config.json"
NAMES_FILE = "names"
INDEX_DIR = "index"
BLOBS_DIR = "blobs/sha256"
BUNDLES_DIR = "bundles/sha256"
DL_TEMPLATE = BLOBS_DIR + "/{hex}"  # config.json's `dl`: where blobs are, relative to the registry
API = "api/v1"  # config.json's `api` on a registry server: where its write API is
ENTRIES = frozenset({CONFIG_FILE, INDEX_DIR, NAMES_FILE, "blobs", "bundles"})  # what a registry folder holds
BUNDLE_SUFFIX = {"sigstore": "sigstore", "dsse-ed25519": "dsse"}  # signature kind -> bundle file suffix
MAX_BUNDLE = 1 << 20  # the largest signature bundle a client reads, a server accepts and a publish sends
BUNDLE_FILE_RE = re.compile(r"[0-9a-f]{64}\.(sigstore|dsse)\.json")  # use with fullmatch
SERVER_ONLY_FIELDS = ("published",)  # index line fields a server adds and a build from sources does not


def index_path(name: str) -> str:
    """`index/<namespace>/<name>` of a package; a name that is not `namespace/name` is a CspmError, so
    no path built here leaves the registry."""
    return f"{INDEX_DIR}/{check_name(name)}"


def blob_path(digest: str) -> str:
    """`blobs/sha256/<hex>` of a `sha256:<hex>` digest (checked)."""
    from cspm.store import check_digest  # the store (and filelock) only where a blob path is made

    return f"{BLOBS_DIR}/{check_digest(digest).split(':', 1)[1]}"


def bundle_path(bundle: bytes, kind: str) -> str:
    """Where a signature bundle is stored and served: named by its own sha256, so it never changes.

    (Not by the blob's digest: one blob can be published under several names or versions, each with
    its own bundle, and a DSSE envelope is bound to the name it was signed for.) KeyError for a kind
    that has no bundle file.
    """
    return f"{BUNDLES_DIR}/{hashlib.sha256(bundle).hexdigest()}.{BUNDLE_SUFFIX[kind]}.json"


def render_config(name: str, api: str | None = None, policy: dict[str, Any] | None = None,
                  dl: str = DL_TEMPLATE) -> bytes:
    """`config.json`: `api` is None for a static folder; `policy` only when some namespace has one; `dl`
    where blobs are downloaded (a public base URL in front of a bucket, or the registry's own path)."""
    config: dict[str, Any] = {"name": name, "dl": dl, "api": api}
    if policy:
        config["policy"] = policy
    return (json.dumps(config, sort_keys=True) + "\n").encode()


def render_index(lines: Iterable[str]) -> bytes:
    """An index file: each version's canonical line (`to_line`) and a newline, in publish order."""
    return "".join(line + "\n" for line in lines).encode()


def names_line(line: dict[str, Any]) -> str:
    """One package's row of `names` (without its newline), from the index line `names` shows."""
    return json.dumps({"name": line["name"], "kind": line["kind"], "description": line.get("description", ""),
                       "latest": line["version"]}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def names_row(line: dict[str, Any]) -> bytes:
    return (names_line(line) + "\n").encode()


def best_lines(lines: Iterable[str | dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each package's line `names` shows: its highest version not yanked (the highest at all if every
    one is). Lines come in file (publish) order; a version listed again replaces the earlier line."""
    versions: dict[str, dict[str, tuple[Version, dict[str, Any]]]] = {}
    for item in lines:
        line = json.loads(item) if isinstance(item, str) else item
        version = Version(line["version"])
        key = canonicalize_version(version, strip_trailing_zero=True)
        versions.setdefault(line["name"], {})[key] = (version, line)
    return {name: max(found.values(), key=lambda v: (not v[1].get("yanked"), v[0]))[1]
            for name, found in versions.items()}


def render_names(lines: Iterable[str | dict[str, Any]]) -> bytes:
    """`names`: one row per package, sorted by name."""
    best = best_lines(lines)
    return b"".join(names_row(best[name]) for name in sorted(best))


def readable_lines(body: bytes) -> list[dict[str, Any]]:
    """The lines of an index file a `names` row can be made from (best effort, as `cspm search` reads
    `names`: a malformed line is skipped, never a crash)."""
    found = []
    for raw in body.decode("utf-8", "replace").splitlines():
        try:
            line = json.loads(raw)
            if isinstance(line, dict) and isinstance(line.get("name"), str) and isinstance(line.get("kind"), str):
                Version(str(line["version"]))
                found.append(line)
        except (ValueError, KeyError, InvalidVersion):
            continue
    return found


def comparable_line(line: dict[str, Any]) -> dict[str, Any]:
    """An index line without the fields only a server adds (`published`): what a client's build and a
    server agree on byte for byte once written back with `to_line`."""
    return {key: value for key, value in line.items() if key not in SERVER_ONLY_FIELDS}
