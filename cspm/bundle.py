"""Bundles: a run plan with every file it names, in one folder a host runs with nothing else
(docs/formats.md#bundle; `cspm bundle`).

    DIR/bundle.json                       {"bundle_version", "plan", "files"}
    DIR/blobs/<sha256 hex>                every module, named by its digest
    DIR/mounts/<sha256 hex>/<file>        every model and data package, named by the mount digest

The plan inside holds paths relative to DIR (`blobs/<hex>`, `mounts/<hex>`) and no path of the machine
that built it; `files` lists the sha256 and size of every other file. `load` checks all of it before
it returns a plan, so a host compiles nothing from a folder it did not verify. The same plan and store
give the same bytes: files are copied (never linked to the store, which an edit would corrupt) with
fixed modes, and bundle.json is canonical text.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cspm import atomicfile
from cspm.errors import BundleError, BundleInvalid
from cspm.formats import bounded_json
from cspm.formats import plan as plan_format
from cspm.formats.plan import MAX_MODULE_BYTES, Plan

BUNDLE_VERSION = 1
MANIFEST = "bundle.json"
BLOBS = "blobs"
MOUNTS = "mounts"
MAX_MANIFEST_BYTES = 16 << 20  # a plan of 256 components with their schemas and configs fits many times
MAX_FILES = 4096  # modules and mount files: 256 components, each a module and a few packages
MAX_MOUNT_FILE_BYTES = 16 << 30  # one model's weights
CHUNK = 1 << 20
FILE_MODE, DIR_MODE = 0o644, 0o755  # fixed, so two builds are the same folder, not just the same bytes

_HEX = r"[0-9a-f]{64}"
_FILE_NAME = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}"
LAYOUT = re.compile(rf"({BLOBS}/{_HEX}|{MOUNTS}/{_HEX}/{_FILE_NAME})(?!\n)")


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    app: str
    files: int  # besides bundle.json
    bytes: int
    modules: int
    mounts: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "app": self.app, "files": self.files, "bytes": self.bytes,
                "modules": self.modules, "mounts": self.mounts}


@dataclass(frozen=True)
class _Copy:
    rel: str
    source: Path
    sha256: str  # the hex the bytes must have
    max_bytes: int


# --- writing ------------------------------------------------------------------------------------

def write(plan: Plan, out_dir: Path) -> BundleInfo:
    """Copy the plan's modules and mounts into `out_dir` and write bundle.json, in a temporary folder
    beside it, renamed into place when whole. An existing `out_dir` must be empty or a previous bundle
    (replaced in one rename where the system can swap folders)."""
    document, copies = _bundled(plan)
    out = Path(os.path.abspath(out_dir))
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        os.chmod(tmp, DIR_MODE)
        files: dict[str, dict[str, Any]] = {}
        for copy in copies:
            if copy.rel not in files:
                files[copy.rel] = {"sha256": copy.sha256, "size": _copy(copy, tmp)}
        for folder in (tmp / BLOBS, tmp / MOUNTS, *(tmp / MOUNTS).glob("*")):  # not the umask's modes
            if folder.is_dir():
                os.chmod(folder, DIR_MODE)
        text = json.dumps({"bundle_version": BUNDLE_VERSION, "plan": document, "files": files},
                          sort_keys=True, indent=1, ensure_ascii=False) + "\n"
        if len(text.encode("utf-8")) > MAX_MANIFEST_BYTES:
            raise BundleError(f"the bundle's {MANIFEST} would be larger than {MAX_MANIFEST_BYTES >> 20} MiB")
        atomicfile.write(tmp / MANIFEST, text, mode=FILE_MODE)
        _put_in_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BundleInfo(path=out, app=plan.app_name, files=len(files), bytes=sum(f["size"] for f in files.values()),
                      modules=len({c.module.digest for c in plan.components.values()}),
                      mounts=len({m.digest for c in plan.components.values() for m in c.grant.mounts}))


def _bundled(plan: Plan) -> tuple[dict[str, Any], list[_Copy]]:
    """The plan as bundle.json holds it (paths relative to the bundle, no path of this machine) and the
    files to copy. Refuses what a bundle cannot carry: a folder the app grants (this machine's; maybe
    writable), a `file:` secret (a path on this machine)."""
    name = os.path.basename(plan.source) or "app.yaml"
    document = plan.to_dict()
    document["app"]["source"] = name
    copies: list[_Copy] = []
    for cname, c in plan.components.items():
        entry = document["components"][cname]
        # "<app path>:15: llm `tiny`", for messages: the app file's name, not where it was on this machine
        entry["where"] = (name + entry["where"][len(plan.source):] if entry["where"].startswith(plan.source)
                          else f"{name}: {c.kind} `{cname}`")
        hexdigest = c.module.digest.split(":", 1)[1]
        entry["module"]["path"] = f"{BLOBS}/{hexdigest}"
        copies.append(_Copy(f"{BLOBS}/{hexdigest}", Path(c.module.path), hexdigest, MAX_MODULE_BYTES))
        for secret in c.secrets:
            if not secret.source.startswith("env:"):
                raise BundleError(f"component `{cname}`: secret `{secret.name}` is read from a file of this machine "
                                  f"({secret.source.split(':', 1)[0]}:…), which a bundle cannot carry",
                                  hint="give it as `env:NAME` in app.yaml: the host running the bundle sets NAME")
        for index, mount in enumerate(c.grant.mounts):
            if mount.digest is None:
                raise BundleError(f"component `{cname}`: the folder it is granted at {mount.guest} is this "
                                  f"machine's, which a bundle cannot carry",
                                  hint="ship its files as a data package (`data:` in app.yaml) instead of "
                                       "`grant.paths`")
            hexdigest = mount.digest.split(":", 1)[1]
            entry["grant"]["mounts"][index]["host"] = f"{MOUNTS}/{hexdigest}"
            copies.append(_Copy(f"{MOUNTS}/{hexdigest}/{_mount_file(cname, Path(mount.host))}",
                                Path(mount.host), hexdigest, MAX_MOUNT_FILE_BYTES))
    mount_files: dict[str, str] = {}
    for copy in copies:  # one digest, one file name: a mount folder holds exactly one file
        if copy.rel.startswith(MOUNTS + "/"):
            known = mount_files.setdefault(copy.sha256, copy.rel)
            if known != copy.rel:
                raise BundleError(f"package sha256:{copy.sha256} is mounted as {known} and as {copy.rel}")
    try:
        plan_format.check(document)
    except plan_format.PlanInvalid as exc:  # a planner's bug, not the user's: said, not written
        raise BundleError(f"the bundle's plan does not validate: {exc}") from None
    return document, copies


def _mount_file(component: str, folder: Path) -> str:
    """The one regular file of a package's folder (cspm.models.materialize makes them so)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise BundleError(f"component `{component}`: cannot read its package folder {folder}: {exc.strerror}",
                          hint="run `cspm install` to put its packages in place again") from None
    files = [e for e in entries if not e.name.startswith(".")]
    if len(files) != 1 or not files[0].is_file(follow_symlinks=False) or not re.fullmatch(_FILE_NAME, files[0].name):
        raise BundleError(f"component `{component}`: package folder {folder} does not hold exactly one file",
                          hint="run `cspm install` to put its packages in place again")
    return files[0].name


def _copy(copy: _Copy, tmp: Path) -> int:
    """Copy one file (a package folder's only file, or a module blob), hashing as it goes; refuses bytes
    that are not the digest the plan names (a damaged store) and files over their bound."""
    source = copy.source / copy.rel.rsplit("/", 1)[1] if copy.rel.startswith(MOUNTS + "/") else copy.source
    target = tmp / copy.rel
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise BundleError(f"cannot read {source}: {exc.strerror}",
                          hint="run `cspm install` to put the app's files in place again") from None
    with os.fdopen(fd, "rb") as reader, open(target, "xb") as writer:
        if not stat.S_ISREG(os.fstat(reader.fileno()).st_mode):
            raise BundleError(f"{source} is not a regular file")
        for chunk in iter(lambda: reader.read(CHUNK), b""):
            size += len(chunk)
            if size > copy.max_bytes:
                raise BundleError(f"{source} is larger than {copy.max_bytes >> 20} MiB")
            digest.update(chunk)
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    os.chmod(target, FILE_MODE)
    if digest.hexdigest() != copy.sha256:
        raise BundleError(f"{source} is not sha256:{copy.sha256} (its bytes changed in the store)",
                          hint="run `cspm cache verify` and `cspm install` to fetch it again")
    return size


def _check_target(out: Path) -> None:
    if out.is_symlink():
        raise BundleError(f"{out} is a symbolic link; give the folder itself")
    if not out.exists():
        return
    if not out.is_dir():
        raise BundleError(f"{out} exists and is not a folder")
    if any(out.iterdir()) and not is_bundle(out):
        raise BundleError(f"{out} is a folder that is neither empty nor a bundle; not replacing it",
                          hint="give an empty or new folder to `cspm bundle APP --out DIR`")


def is_bundle(folder: Path) -> bool:
    """Only bundle.json, blobs/ and mounts/, and a bundle.json that names a bundle_version: what a
    new bundle may replace without losing anything else."""
    try:
        names = {e.name for e in os.scandir(folder)}
        manifest = folder / MANIFEST
        if not names <= {MANIFEST, BLOBS, MOUNTS} or manifest.is_symlink() or not manifest.is_file():
            return False
        if manifest.stat().st_size > MAX_MANIFEST_BYTES:
            return False
        data = bounded_json.loads(manifest.read_bytes(), max_bytes=MAX_MANIFEST_BYTES)
    except (OSError, bounded_json.JsonRejected, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "bundle_version" in data


def _put_in_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder to `out`. An old bundle there is swapped out in one step where the
    system can (Linux renameat2 RENAME_EXCHANGE), else renamed aside first; then removed."""
    if not out.exists():
        os.rename(tmp, out)
    elif _exchange(tmp, out):
        shutil.rmtree(tmp)  # now the old bundle
    else:
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.rename(out, old / "bundle")
        os.rename(tmp, out)
        shutil.rmtree(old)
    atomicfile.fsync_dir(out.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically; False where the system has no such call."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


# --- loading ------------------------------------------------------------------------------------

def load(folder: Path | str, *, approved: bool = False) -> Plan:
    """The plan of a bundle, with absolute paths into `folder`, once every file has been checked
    against bundle.json (sha256 and size, nothing missing, nothing more, no symbolic link, no path
    out of the folder). `approved`: as `plan.from_dict` (a published app's capabilities)."""
    root = Path(folder).resolve()  # the folder the user named; nothing inside it may be a link
    data = _manifest(root)
    files = _files(data["files"])
    _same_tree(root, files)
    for rel, entry in sorted(files.items()):
        _verify(root, rel, entry)
    document = data["plan"]
    try:
        plan_format.check(document)
    except plan_format.PlanInvalid as exc:
        raise BundleInvalid(f"{root / MANIFEST}: plan: {exc}") from None
    mounted = {rel.rsplit("/", 1)[0] for rel in files if rel.startswith(MOUNTS + "/")}
    for name, c in document["components"].items():
        module = c["module"]
        rel = f"{BLOBS}/{module['digest'].split(':', 1)[1]}"
        if module["path"] != rel or files.get(rel, {}).get("size") != module["size"]:
            raise BundleInvalid(f"{root / MANIFEST}: plan: components/{name}/module: its path must be {rel}, "
                                f"a file of the bundle of size {module['size']}")
        module["path"] = str(root / rel)
        for index, mount in enumerate(c["grant"]["mounts"]):
            rel = f"{MOUNTS}/{(mount['digest'] or ':').split(':', 1)[1]}"
            if mount["digest"] is None or mount["host"] != rel or rel not in mounted or mount["writable"]:
                raise BundleInvalid(f"{root / MANIFEST}: plan: components/{name}/grant/mounts/{index}: a bundle "
                                    f"mounts only its own packages, read-only, at mounts/<digest hex>")
            mount["host"] = str(root / rel)
        for secret in c["secrets"]:
            if not secret["source"].startswith("env:"):  # never a file of the host that runs it
                raise BundleInvalid(f"{root / MANIFEST}: plan: components/{name}/secrets: a bundle reads "
                                    f"secrets from env: only, not {secret['source'].split(':', 1)[0]}:")
    return plan_format.from_dict(document, approved=approved)


def asks_for_capabilities(plan: Plan) -> bool:
    """Whether a published app's bundle reaches beyond itself (hosts, secrets; it mounts only its own
    packages): then whoever runs it approves, as for `cspm run NAME` (cspm.approvals.NEEDS_APPROVAL)."""
    return any(c.grant.hosts or c.secrets for c in plan.components.values())


def _manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BundleInvalid(f"{path} is a symbolic link") from None
        raise BundleInvalid(f"{root} is not a bundle: cannot read {MANIFEST} ({exc.strerror})",
                            hint="make one with `cspm bundle APP --out DIR`") from None
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
    try:
        data = bounded_json.loads(raw, max_bytes=MAX_MANIFEST_BYTES)
    except (bounded_json.JsonRejected, UnicodeDecodeError) as exc:
        raise BundleInvalid(f"{path}: not a bundle manifest: {exc}") from None
    if not isinstance(data, dict) or "bundle_version" not in data:
        raise BundleInvalid(f"{path}: not a bundle manifest (no bundle_version)")
    if data["bundle_version"] != BUNDLE_VERSION or isinstance(data["bundle_version"], bool):
        raise BundleInvalid(f"{path}: bundle_version {data['bundle_version']!r} is not one this cspm knows "
                            f"({BUNDLE_VERSION})", hint="upgrade cspm, or bundle the app again with this one")
    if set(data) != {"bundle_version", "plan", "files"}:
        raise BundleInvalid(f"{path}: a bundle manifest has exactly bundle_version, plan and files")
    return data


def _files(files: Any) -> dict[str, dict[str, Any]]:
    """The `files` table checked: relative paths of the bundle's layout, a sha256 and a size each."""
    if not isinstance(files, dict) or len(files) > MAX_FILES:
        raise BundleInvalid(f"{MANIFEST}: files: an object of at most {MAX_FILES} entries")
    for rel, entry in files.items():
        if rel.startswith("/") or "\\" in rel or ".." in rel.split("/"):
            raise BundleInvalid(f"{MANIFEST}: files: {rel!r} leaves the bundle folder")
        if not LAYOUT.fullmatch(rel):
            raise BundleInvalid(f"{MANIFEST}: files: {rel!r} is not blobs/<sha256 hex> or "
                                f"mounts/<sha256 hex>/<file>")
        if (not isinstance(entry, dict) or set(entry) != {"sha256", "size"} or not isinstance(entry["sha256"], str)
                or not re.fullmatch(_HEX, entry["sha256"]) or type(entry["size"]) is not int
                or not 0 <= entry["size"] <= (MAX_MODULE_BYTES if rel.startswith(BLOBS) else MAX_MOUNT_FILE_BYTES)):
            raise BundleInvalid(f"{MANIFEST}: files: {rel}: must be {{\"sha256\": <hex>, \"size\": <bytes>}} "
                                f"within the bounds")
        name_hex = rel.split("/")[1]
        if entry["sha256"] != name_hex:  # a blob and a package's one file are named by their digest
            raise BundleInvalid(f"{MANIFEST}: files: {rel}: its sha256 is not the digest it is named by")
    return files


def _same_tree(root: Path, files: dict[str, dict[str, Any]]) -> None:
    """Every file bundle.json lists is there, and nothing else is (no link, no device, no stray file)."""
    found: set[str] = set()
    for top in (BLOBS, MOUNTS):
        _walk(root, top, found, depth=0)
    extra = {e.name for e in os.scandir(root)} - {MANIFEST, BLOBS, MOUNTS}
    if extra:
        raise BundleInvalid(f"{root}: {sorted(extra)[0]} is not part of the bundle")
    missing = sorted(set(files) - found)
    if missing:
        raise BundleInvalid(f"{root}: {missing[0]} is missing ({len(missing)} of the bundle's files are)")
    unlisted = sorted(found - set(files))
    if unlisted:
        raise BundleInvalid(f"{root}: {unlisted[0]} is not listed in {MANIFEST}")


def _walk(root: Path, rel: str, found: set[str], depth: int) -> None:
    path = root / rel
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise BundleInvalid(f"{path} is a symbolic link; a bundle holds only its own files")
    if stat.S_ISREG(info.st_mode):
        found.add(rel)
        if len(found) > MAX_FILES:
            raise BundleInvalid(f"{root} holds more than {MAX_FILES} files")
        return
    if not stat.S_ISDIR(info.st_mode) or depth > 2:  # blobs/<hex>, mounts/<hex>/<file>
        raise BundleInvalid(f"{path} is not part of the bundle")
    for entry in sorted(os.listdir(path)):
        _walk(root, f"{rel}/{entry}", found, depth + 1)


def _verify(root: Path, rel: str, entry: dict[str, Any]) -> None:
    path = root / rel
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise BundleInvalid(f"cannot read {path}: {exc.strerror}") from None
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise BundleInvalid(f"{path} is not a regular file")
        while chunk := handle.read(min(CHUNK, entry["size"] - size + 1)):
            size += len(chunk)
            if size > entry["size"]:
                break
            digest.update(chunk)
    if size != entry["size"]:
        raise BundleInvalid(f"{path} is not {entry['size']} bytes as {MANIFEST} says: it was changed")
    if digest.hexdigest() != entry["sha256"]:
        raise BundleInvalid(f"{path} is not sha256:{entry['sha256']} as {MANIFEST} says: it was changed")
