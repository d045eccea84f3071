"""`cspm new`: a plug-in project that builds and runs at once, outside any checkout of cspm.

A project is made of three layers of files under cspm/scaffolds/ (later ones win): `common/<kind>/`
(plugin.yaml, app.yaml, README.md: the same plug-in whatever its language), `<lang>/common/` (the
build and test scripts, the toolchain's files) and `<lang>/<kind>/` (the code). `{{name}}`,
`{{namespace}}`, `{{short}}` and `{{ident}}` are replaced in every file. The language's SDK is copied
into the project's `sdk/` folder from the one shipped with cspm (cspm/sdk), so a project needs
neither a clone of this repository nor a package registry the machine may not reach, and still builds
when moved (every path in it is relative).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cspm.errors import InputError
from cspm.formats.names import NameInvalid, check_name
from cspm.wording import did_you_mean

FOLDER = Path(__file__).resolve().parent / "scaffolds"
SDKS = Path(__file__).resolve().parent / "sdk"
LANGS = ("rust", "c", "zig", "go", "assemblyscript")
KINDS = ("tool", "llm", "agent")
DEFAULT_NAMESPACE = "local"
# never copied from an SDK folder: what its own builds leave behind
SKIP = {"node_modules", "target", "build", ".cache", "example", "__pycache__"}
EXECUTABLE = {"build.sh", "test.sh"}


@dataclass(frozen=True)
class Created:
    folder: Path
    name: str
    lang: str
    kind: str
    files: list[str]


def package_name(name: str) -> str:
    """`ns/name`, or a bare `name` in the `local` namespace (a name for publishing comes later)."""
    full = name if "/" in name else f"{DEFAULT_NAMESPACE}/{name}"
    try:
        return check_name(full)
    except NameInvalid as exc:
        raise InputError(str(exc), hint="e.g. `cspm new acme/word-count --lang rust --kind tool`") from None


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value in allowed:
        return value
    raise InputError(f"there is no {what} {value!r}{did_you_mean(value, allowed)}",
                     hint=f"the {what}s: {', '.join(allowed)}")


def values(name: str) -> dict[str, str]:
    namespace, short = name.split("/")
    return {"name": name, "namespace": namespace, "short": short, "ident": re.sub(r"[^a-z0-9]", "_", short)}


def _layers(lang: str, kind: str) -> list[Path]:
    return [FOLDER / "common" / kind, FOLDER / lang / "common", FOLDER / lang / kind]


def _render(text: str, subs: dict[str, str]) -> str:
    return re.sub(r"\{\{(name|namespace|short|ident)\}\}", lambda m: subs[m.group(1)], text)


def _copy_sdk(lang: str, into: Path) -> list[str]:
    source = SDKS / lang
    if not source.is_dir():
        raise InputError(f"the {lang} SDK is missing from this cspm installation ({source})",
                         hint="this cspm is installed without its SDKs: install it again from its package")
    copied = []
    for root, dirs, files in os.walk(source, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIP)
        for file in sorted(files):
            src = Path(root) / file
            rel = src.relative_to(source)
            dest = into / "sdk" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            copied.append(f"sdk/{rel.as_posix()}")
    return copied


def new(folder: Path, name: str, lang: str, kind: str) -> Created:
    """Writes the project into `folder` (which must not exist, or be empty): all of it or nothing."""
    name = package_name(name)
    lang = _choice(lang, LANGS, "language")
    kind = _choice(kind, KINDS, "kind")
    folder = folder.expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"{folder} already exists and is not empty: cspm new never writes over files",
                         hint="name a new folder with --dir")
    subs = values(name)
    files: dict[str, bytes] = {}
    for layer in _layers(lang, kind):
        for path in sorted(p for p in layer.rglob("*") if p.is_file()):
            rel = path.relative_to(layer).as_posix()
            files[rel.removesuffix(".tmpl")] = _render(path.read_text(encoding="utf-8"), subs).encode()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would become the project's mode
        for rel, data in files.items():
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            if dest.name in EXECUTABLE:
                dest.chmod(0o755)
        written = sorted([*files, *_copy_sdk(lang, staging)])
        if folder.exists():
            folder.rmdir()  # empty (checked above); rename cannot replace a folder
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Created(folder, name, lang, kind, written)
