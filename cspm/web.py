"""Static sites of apps (`cspm web`): the app's bundle with the JavaScript host and a chat page, in one
folder any static server can host, and a small local server for it (docs/web.md).

    DIR/index.html            the chat page           } copied from the host's browser build
    DIR/style.css                                     } (hosts/js/dist, `npm run build:web`)
    DIR/chainsocket-web.js    the host + page code    }
    DIR/app/                  the bundle (cspm.bundle, docs/formats.md#bundle)

The page verifies the bundle as every host does (bundle.json, then each file by sha256 before it is
used) and runs the app in the tab. The same app, lock and host build give the same bytes: the files
are copied with fixed modes and the bundle is reproducible. The folder is made beside DIR and renamed
into place when whole, like a bundle.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cspm import bundle
from cspm.errors import WebError

if TYPE_CHECKING:
    from collections.abc import Callable
    from http.server import ThreadingHTTPServer

    from cspm.formats.plan import Plan

SITE_FILES = ("index.html", "style.css", "chainsocket-web.js")
APP_DIR = "app"
MAX_SITE_FILE_BYTES = 32 << 20  # the esbuilt host is ~0.3 MiB
BUILD_HINT = "build the browser host: `cd hosts/js && npm ci && npm run build:web` (or set CSPM_WEB_DIST)"
# the host's browser build in a source tree: <tree>/cspm/web.py -> <tree>/hosts/js/dist
SOURCE_DIST = Path(__file__).resolve().parent.parent / "hosts" / "js" / "dist"


@dataclass(frozen=True)
class SiteInfo:
    path: Path
    app: str
    files: int  # every file of the site, bundle.json included
    bytes: int
    bundle: bundle.BundleInfo

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "app": self.app, "files": self.files, "bytes": self.bytes,
                "bundle": self.bundle.to_dict()}


def host_build() -> Path:
    """The folder of the browser build: $CSPM_WEB_DIST, else hosts/js/dist of the source tree."""
    override = os.environ.get("CSPM_WEB_DIST")
    return Path(override) if override else SOURCE_DIST


def check_app(plan: Plan) -> list[str]:
    """Refuse what cannot run in a page; the warnings for what may not. A page holds no secret (any
    page script could read it), so a component that needs one is refused here rather than in the tab.
    A fetch from a page goes only where the other host's CORS headers allow this site's origin."""
    for name, c in plan.components.items():
        if c.secrets:
            raise WebError(f"{c.kind} `{name}` needs the secret `{c.secrets[0].name}`, and a page holds no "
                           f"secret (any script of the page could read it)",
                           hint="run it where secrets stay on the machine: `cspm serve APP` (or the Node host "
                                "on a bundle) behind the page")
    return [f"{c.kind} `{name}` fetches from {', '.join(c.grant.hosts)}: from a page, only hosts whose CORS "
            f"headers allow the site's origin answer" for name, c in sorted(plan.components.items()) if c.grant.hosts]


def write(plan: Plan, out_dir: Path, dist: Path | None = None) -> SiteInfo:
    """The site of `plan` in `out_dir` (new, empty, or a previous site: replaced whole), built in a
    temporary folder beside it from the browser build in `dist` (host_build() when None)."""
    sources = site_sources(dist or host_build())
    out = Path(os.path.abspath(out_dir))
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        os.chmod(tmp, bundle.DIR_MODE)
        size = sum(_copy(source, tmp / name) for name, source in sources.items())
        info = bundle.write(plan, tmp / APP_DIR)
        bundle._put_in_place(tmp, out)  # the one swap of a finished folder (renameat2 where it exists)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest = (out / APP_DIR / bundle.MANIFEST).stat().st_size
    info = dataclasses.replace(info, path=out / APP_DIR)  # it was written where the site was built
    return SiteInfo(path=out, app=plan.app_name, files=len(sources) + info.files + 1,
                    bytes=size + info.bytes + manifest, bundle=info)


def site_sources(dist: Path) -> dict[str, Path]:
    """The build's files, each a regular file (not a link) of a sane size; refused with how to build it."""
    found: dict[str, Path] = {}
    for name in SITE_FILES:
        path = dist / name
        try:
            info = path.lstat()
        except OSError:
            raise WebError(f"the browser host is not built: {path} is missing", hint=BUILD_HINT) from None
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SITE_FILE_BYTES:
            raise WebError(f"{path} is not a regular file of at most {MAX_SITE_FILE_BYTES >> 20} MiB",
                           hint=BUILD_HINT)
        found[name] = path
    return found


def _copy(source: Path, target: Path) -> int:
    """Copy one file of the build with the site's fixed mode; its size."""
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as reader:
        data = reader.read(MAX_SITE_FILE_BYTES + 1)
    if len(data) > MAX_SITE_FILE_BYTES:
        raise WebError(f"{source} is larger than {MAX_SITE_FILE_BYTES >> 20} MiB", hint=BUILD_HINT)
    with open(target, "xb") as writer:
        writer.write(data)
        writer.flush()
        os.fsync(writer.fileno())
    os.chmod(target, bundle.FILE_MODE)
    return len(data)


def _check_target(out: Path) -> None:
    if out.is_symlink():
        raise WebError(f"{out} is a symbolic link; give the folder itself")
    if not out.exists():
        return
    if not out.is_dir():
        raise WebError(f"{out} exists and is not a folder")
    if any(out.iterdir()) and not is_site(out):
        raise WebError(f"{out} is a folder that is neither empty nor a site of `cspm web`; not replacing it",
                       hint="give an empty or new folder to `cspm web APP --out DIR`")


def is_site(folder: Path) -> bool:
    """Only the site's files and app/, which is a bundle: what a new site may replace without losing
    anything else."""
    try:
        names = {e.name for e in os.scandir(folder)}
    except OSError:
        return False
    if not names <= {*SITE_FILES, APP_DIR} or "index.html" not in names or APP_DIR not in names:
        return False
    app = folder / APP_DIR
    return not app.is_symlink() and app.is_dir() and bundle.is_bundle(app)


# --- serving ------------------------------------------------------------------------------------

# the only types the site has; anything else is served as bytes the browser will not sniff
MIME_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
              ".css": "text/css; charset=utf-8", ".json": "application/json", ".wasm": "application/wasm"}
# cross-origin isolation (SharedArrayBuffer, so the host can run plug-ins in workers), and no sniffing
HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
           "Cross-Origin-Resource-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
           "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"}
MAX_PATH_CHARS = 2048
CHUNK = 1 << 20


def site_file(root: Path, url_path: str) -> Path | None:
    """The file of the site a request path names, or None: `/` is index.html; no folder is listed; no
    `..`, `.`, hidden name, backslash, NUL or symbolic link; nothing outside `root`."""
    from urllib.parse import unquote, urlsplit

    path = urlsplit(url_path).path
    if not path.startswith("/") or len(path) > MAX_PATH_CHARS:
        return None
    try:
        path = unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if path == "/":
        path = "/index.html"
    parts = path[1:].split("/")
    if any(not p or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
        return None  # covers "..", ".", "//", a trailing "/" (a folder) and dotfiles
    current = root
    for part in parts:
        current = current / part
        try:
            info = current.lstat()
        except (OSError, ValueError):
            return None
        if stat.S_ISLNK(info.st_mode):
            return None
    if not stat.S_ISREG(info.st_mode):
        return None
    resolved = current.resolve()
    return resolved if resolved.is_relative_to(root.resolve()) else None


def make_server(root: Path, host: str, port: int) -> ThreadingHTTPServer:
    """A threading HTTP server of the site in `root`, bound (port 0: a free one) but not yet serving."""
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    site = root.resolve()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return "cspm-web"

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _refuse(self, status: int, text: str, allow: str | None = None) -> None:
            payload = (text + "\n").encode()
            self.send_response(status)
            self._headers("text/plain; charset=utf-8", len(payload))
            if allow:
                self.send_header("Allow", allow)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _headers(self, content_type: str, length: int) -> None:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            for name, value in HEADERS.items():
                self.send_header(name, value)

        def _answer(self, body: bool) -> None:
            if len(self.path) > MAX_PATH_CHARS:
                self._refuse(414, "the path is too long")
                return
            found = site_file(site, self.path)
            if found is None:
                self._refuse(404, "not found")
                return
            try:
                handle = open(found, "rb")  # noqa: SIM115  # closed below, after the headers
            except OSError:
                self._refuse(404, "not found")
                return
            with handle:
                length = os.fstat(handle.fileno()).st_size
                self.send_response(200)
                self._headers(MIME_TYPES.get(found.suffix, "application/octet-stream"), length)
                self.end_headers()
                if body:
                    try:
                        shutil.copyfileobj(handle, self.wfile, CHUNK)
                    except (BrokenPipeError, ConnectionResetError):
                        self.close_connection = True

        def _not_allowed(self) -> None:
            self._refuse(405, "only GET and HEAD", allow="GET, HEAD")

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the URL line is the output
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return Server((host, port), Handler)


def serve(root: Path, host: str, port: int, on_listening: Callable[[str], None]) -> None:
    """Serve the site in `root` until interrupted (Ctrl-C, SIGTERM): `on_listening(url)` once bound."""
    import signal
    import threading

    server = make_server(root, host, port)
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    previous = None
    if threading.current_thread() is threading.main_thread():
        def stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt
        previous = signal.signal(signal.SIGTERM, stop)
    try:
        on_listening(f"http://{shown}:{bound}/")
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
