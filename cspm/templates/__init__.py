"""`cspm init`: the app.yaml templates shipped with cspm, and writing one as a new app.

Each template is a `<name>.yaml` here whose first line is `# <name>: <summary>` (what `--list`
shows). A template uses only packages of the bundled registry, so `init` can lock and install it
offline; `offline` (the default) also runs offline, on a model inside Wasm.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cspm.errors import InputError
from cspm.wording import did_you_mean

if TYPE_CHECKING:
    from cspm.fetch import Progress

FOLDER = Path(__file__).resolve().parent
DEFAULT = "offline"


@dataclass(frozen=True)
class Template:
    name: str
    summary: str
    path: Path


def templates() -> dict[str, Template]:
    found = {}
    for path in sorted(FOLDER.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").partition("\n")[0]
        summary = first.removeprefix(f"# {path.stem}:").strip()
        found[path.stem] = Template(path.stem, summary, path)
    return found


def render(template: str, name: str) -> str:
    """The template's text, its `name:` set to `name` (an app name scopes the app's kv memory)."""
    known = templates()
    if template not in known:
        raise InputError(f"there is no template {template!r}{did_you_mean(template, known)}",
                         hint=f"the templates: {', '.join(known)} (`cspm init --list`)")
    text = known[template].path.read_text(encoding="utf-8")
    return text.replace("\nname: app\n", f"\nname: {name}\n", 1)


def app_name(folder: Path) -> str:
    """The app's name from its folder, as the app schema allows it (an ident)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", folder.resolve().name).lstrip(".-")[:64]
    return cleaned or "app"


@dataclass
class Initialized:
    path: Path
    template: str
    name: str
    plugins: int  # locked packages (plug-ins, models, data)
    downloaded: int


def app_path(target: Path) -> Path:
    """`cspm init [PATH]`: a `.yaml`/`.yml` file, or a folder that gets an `app.yaml`."""
    return target if target.suffix in (".yaml", ".yml") else target / "app.yaml"


def init(target: Path, template: str = DEFAULT, *, name: str | None = None, install: bool = True,
         offline: bool = False, warn: Callable[[str], None] | None = None,
         progress: Progress | None = None) -> Initialized:
    """Write the template as a new app, then lock and install it; all or nothing, and never over an
    existing file (the user's app is theirs: `cspm add` edits it)."""
    from cspm.formats import app_edit
    from cspm.formats import lock as lock_format
    from cspm.project import Project

    path = app_path(target)
    if path.exists() or path.is_symlink():
        raise InputError(f"{path} already exists; `cspm init` never overwrites an app",
                         hint=f"add to it with `cspm add NAMESPACE/NAME --app {path}`, or init another path")
    text = render(template, name or app_name(path.parent))
    created_folder = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = lock_format.lock_path(path)
    had_lock = lock_file.exists()
    try:
        app_edit.write_checked(path, text)
        plugins = downloaded = 0
        if install:
            with Project(path, offline=offline, warn=warn) as project:
                locked, installed = project.install(progress=progress)
            plugins, downloaded = len(locked.lock.plugins), installed.downloaded
    except BaseException:
        path.unlink(missing_ok=True)
        if not had_lock:
            lock_file.unlink(missing_ok=True)
        if created_folder:
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        raise
    return Initialized(path, template, name or app_name(path.parent), plugins, downloaded)
