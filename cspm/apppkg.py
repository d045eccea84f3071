"""App packages (kind `app`): an app.yaml and its lock, published and resolved like a plug-in.

The blob is one canonical JSON document, `{"cspm-app": 1, "app.yaml": TEXT, "app.lock": TEXT}`:
no archive, so nothing to extract and no path inside it to trust. To run one, it is written out
under the cache (`apps/<hex>/<ns>.<name>/`) and from there it is an ordinary locked app.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cspm.cachedir import Bucket
from cspm.errors import BadAppPackage, CspmError
from cspm.formats import app as app_format
from cspm.formats import lock as lock_format
from cspm.formats import yamlsrc
from cspm.formats.app import AppConfig
from cspm.formats.index_line import from_dict
from cspm.formats.lock import Lock
from cspm.formats.manifest import Manifest
from cspm.formats.names import parse_requirement
from cspm.store import check_digest, digest_of

BUNDLE_VERSION = 1
MAX_BUNDLE = 1 << 20  # an app.yaml and a lock; a megabyte is already absurd
APP_FILE = "app.yaml"
LOCK_FILE = "app.lock"


def pack(app: AppConfig, lock: Lock) -> bytes:
    """The canonical bundle of a locked app whose components all come from registries."""
    local = [c.name for c in app.components.values() if c.plugin_ref is None]
    if local:
        raise BadAppPackage(f"{app.path}: an app package can only use registry plug-ins (`plugin: ns/name@spec`); "
                            f"{', '.join(local)} use a local `plugin_name`")
    document = {"cspm-app": BUNDLE_VERSION, APP_FILE: app.path.read_text(encoding="utf-8"),
                LOCK_FILE: lock_format.dump(lock)}
    return (json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def unpack(data: bytes, what: str) -> tuple[str, str]:
    """(app.yaml text, app.lock text), or BadAppPackage saying what is wrong."""
    if len(data) > MAX_BUNDLE:
        raise BadAppPackage(f"{what}: the app package is larger than {MAX_BUNDLE} bytes")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadAppPackage(f"{what}: the app package is not JSON") from None
    if not isinstance(document, dict) or document.get("cspm-app") != BUNDLE_VERSION:
        raise BadAppPackage(f"{what}: not an app package of format {BUNDLE_VERSION}",
                            hint="a newer cspm may read it; upgrade cspm")
    texts = (document.get(APP_FILE), document.get(LOCK_FILE))
    if set(document) != {"cspm-app", APP_FILE, LOCK_FILE} or not all(isinstance(t, str) for t in texts):
        raise BadAppPackage(f"{what}: an app package holds exactly `{APP_FILE}` and `{LOCK_FILE}` as text")
    return texts[0], texts[1]  # type: ignore[return-value]


def check(data: bytes, what: str) -> None:
    """Refuse a bundle whose app or lock would not load, before it is stored."""
    app_text, lock_text = unpack(data, what)
    folder = Path(tempfile.mkdtemp(prefix="cspm-app-check-"))
    try:
        _write_pair(folder / "app", app_text, lock_text)
        app = app_format.load(folder / "app" / APP_FILE, untrusted=True)  # as `cspm run ns/app` will load it
        lock = lock_format.load(folder / "app" / LOCK_FILE)
        _check_consistent(app, lock, what)
    except CspmError as exc:
        message = exc.message.replace(f"{folder / 'app'}{os.sep}", "")  # the temporary folder means nothing
        raise BadAppPackage(f"{what}: the app package is broken: {message}", hint=exc.hint) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_consistent(app: AppConfig, lock: Lock, what: str) -> None:
    for component in app.components.values():
        if component.plugin_ref is None:
            raise BadAppPackage(f"{what}: component `{component.name}` is a local file, not a registry plug-in")
        if lock.for_component(component.name) is None:
            raise BadAppPackage(f"{what}: its lock has no plug-in for `{component.name}`")


def index_line(manifest: Manifest, bundle: bytes, *, published: str | None = None) -> dict[str, Any]:
    """The index line of an app package: its dependencies are its app's registry references."""
    what = f"{manifest.name} {manifest.version}"
    app_text, _ = unpack(bundle, what)
    check(bundle, what)
    located = yamlsrc.load_text(app_text)
    specs: dict[str, set[str]] = {}
    for section in ("llms", "tools", "agents"):
        for raw in located.data.get(section) or []:
            refs = [raw["plugin"], *(raw.get("models") or {}).values(), *(raw.get("data") or {}).values()]
            for ref in refs:  # models and data are dependencies too: the app runs only with them
                requirement = parse_requirement(ref)
                specs.setdefault(requirement.name, set())
                if str(requirement.specifier):
                    specs[requirement.name].add(str(requirement.specifier))
    line: dict[str, Any] = {
        "name": manifest.name, "version": str(manifest.version), "kind": "app", "abi": manifest.abi,
        "digest": digest_of(bundle), "size": len(bundle), "exports": [], "imports": [], "capabilities": {},
        "dependencies": {name: ",".join(sorted(found)) for name, found in sorted(specs.items())},
        "signature": None, "yanked": False,
    }
    if manifest.description:
        line["description"] = manifest.description
    if published:
        line["published"] = published
    from_dict(line, manifest.name, "index line")
    return line


def materialize(data: bytes, digest: str, name: str) -> Path:
    """Write the app out under the cache once per digest; returns the app.yaml path."""
    hex_digest = check_digest(digest).split(":", 1)[1]
    folder = Bucket.APPS.path() / hex_digest / name.replace("/", ".")
    app_file = folder / APP_FILE
    if app_file.is_file() and (folder / LOCK_FILE).is_file():
        return app_file
    app_text, lock_text = unpack(data, name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        _write_pair(staging, app_text, lock_text)
        try:
            os.rename(staging, folder)  # atomic: a reader sees the whole app or none
        except OSError:
            if not app_file.is_file():  # not another process that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return app_file


def _write_pair(folder: Path, app_text: str, lock_text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / APP_FILE).write_text(app_text, encoding="utf-8")
    (folder / LOCK_FILE).write_text(lock_text, encoding="utf-8")
