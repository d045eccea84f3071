"""`cspm web` (issue 20): an app as a static site (index.html, the esbuilt JavaScript host, app/ the
bundle) that is the same bytes when made twice and replaces only a previous site; `--serve` serves it
with the cross-origin isolation headers and exact MIME types, nothing outside the folder and no folder
listing; and in headless Chromium (Debian's `chromium`, PyPI `playwright`) the page verifies the
bundle, answers messages in one session kept across reloads with kv memory on IndexedDB, and shows a
tampered file plainly. CSPM_WEB_SCREENSHOT=1 also writes docs/images/web-chat.png."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cspm import bundle, web
from tests.browser_support import CHROMIUM, chromium
from tests.conftest import PLUGINS, ROOT, conformance_wasm, echo_chat_app, plugin_wasm, write_app
from tests.integration.test_bundle import check_bundle, tree
from tests.integration.test_cli import cspm

DIST = ROOT / "hosts" / "js" / "dist"
DEMO_QUESTION = "Who was born first, Kogail Bagrol or Stolvle Thema?"  # the README's (test_selfask_demo.py)
DEMO_ANSWER = "Kogail Bagrol"


@pytest.fixture(scope="module", autouse=True)
def host_build() -> None:
    """The browser build (`npm run build:web`, which .ci/setup runs), made again here (a second) so the
    tests never run a build older than hosts/js's sources."""
    if not (ROOT / "hosts" / "js" / "node_modules" / "esbuild").is_dir():
        pytest.fail("hosts/js/node_modules is missing: .ci/setup runs `npm ci` there")
    built = subprocess.run(["npm", "run", "build:web"], cwd=ROOT / "hosts" / "js", capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    assert all((DIST / name).is_file() for name in web.SITE_FILES)


def echo_app(folder: Path) -> Path:
    """An agent that hands the message to a tool, which answers it back: both the Rust conformance plug-in."""
    wasm = conformance_wasm("rust")
    return write_app(folder, f"""name: web-echo
description: an agent that hands your message to a tool, which answers it back
entry: agent
tools:
  - name: echo
    description: returns its input unchanged
    plugin_name: {wasm}
    config: {{kind: tool}}
agents:
  - name: agent
    description: hands your message to its tool and answers with the tool's output
    plugin_name: {wasm}
    config: {{kind: agent}}
    tools: [echo]
""")


def make(app: str | Path, out: Path, *extra: str, env: dict | None = None) -> dict:
    result = cspm("web", str(app), "--out", str(out), "--json", *extra, env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def modes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mode & 0o777 for p in sorted(folder.rglob("*"))}


# --- the site ---------------------------------------------------------------------------------------

def test_the_site_is_the_host_build_and_the_bundle_and_the_same_bytes_twice(tmp_path: Path) -> None:
    app = echo_app(tmp_path)
    info = make(app, tmp_path / "site")
    site = tmp_path / "site"
    assert info["path"] == str(site) and info["app"] == "web-echo" and info["warnings"] == []
    assert info["bundle"]["path"] == str(site / "app") and info["bundle"]["modules"] == 1
    files = tree(site)
    assert {n for n in files if "/" not in n} == set(web.SITE_FILES)
    for name in web.SITE_FILES:  # copied as built
        assert files[name] == (DIST / name).read_bytes(), name
    assert info["files"] == len(files) and info["bytes"] == sum(len(b) for b in files.values())
    check_bundle(site / "app")  # the bundle as `cspm bundle` writes it: canonical, no machine path
    assert bundle.load(site / "app").app_name == "web-echo"  # and it verifies

    again = make(app, tmp_path / "again")
    assert again["bytes"] == info["bytes"]
    assert tree(tmp_path / "again") == files and modes(tmp_path / "again") == modes(site)
    make(app, site)  # a previous site is replaced whole, with the same bytes
    assert tree(site) == files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_what_cannot_be_a_site_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    app = echo_app(tmp_path)
    (tmp_path / "build").mkdir()
    result = cspm("web", str(app), "--out", str(tmp_path / "site"), "--json",
                  env={"CSPM_WEB_DIST": str(tmp_path / "build")})
    error = json.loads(result.stdout)["error"]
    assert result.returncode == 1 and error["code"] == "web", error
    assert "not built" in error["message"] and "npm run build:web" in error["hint"]
    assert not (tmp_path / "site").exists()

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    result = cspm("web", str(app), "--out", str(tmp_path / "notes"), "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["error"]["code"] == "web"
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]

    keyed = write_app(tmp_path, f"""name: keyed
entry: echo
tools:
  - name: echo
    plugin_name: {conformance_wasm("rust")}
    config: {{kind: tool}}
    secrets: {{api_key: env:WEB_TEST_KEY}}
    grant: {{hosts: ["https://api.example.com"]}}
""", name="keyed.yaml")
    result = cspm("web", str(keyed), "--out", str(tmp_path / "keyed"), "--json", env={"WEB_TEST_KEY": "s3cret"})
    error = json.loads(result.stdout)["error"]
    assert result.returncode == 1 and error["code"] == "web" and "secret `api_key`" in error["message"], error
    assert "s3cret" not in result.stdout + result.stderr and not (tmp_path / "keyed").exists()
    # a grant of hosts without a secret is a site, with a warning: from a page, CORS decides
    open_app = write_app(tmp_path, keyed.read_text().replace("    secrets: {api_key: env:WEB_TEST_KEY}\n", ""),
                         name="open.yaml")
    info = make(open_app, tmp_path / "open")
    assert len(info["warnings"]) == 1 and "https://api.example.com" in info["warnings"][0]
    assert "CORS" in info["warnings"][0]

    result = cspm("web", str(app), cwd=tmp_path)  # neither --out nor --serve
    assert result.returncode == 2 and "--out DIR" in result.stderr


# --- the server -------------------------------------------------------------------------------------

class Served:
    def __init__(self, process: subprocess.Popen[str], line: dict) -> None:
        self.process = process
        self.url: str = line["url"]
        self.path = Path(line["path"])
        self.port = int(self.url.rsplit(":", 1)[1].strip("/"))

    def request(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        """A request with the path sent exactly as given (no client-side normalisation of `..`)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


def serve(*args: str, cwd: Path) -> Served:
    process = subprocess.Popen([sys.executable, "-m", "cspm.cli.main", "web", *args, "--serve", "--port", "0",
                                "--json"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline() if process.stdout else ""
    if not line:
        process.kill()
        pytest.fail(f"cspm web --serve did not start: {process.communicate()[1]}")
    return Served(process, json.loads(line))


def stop(served: Served) -> str:
    served.process.send_signal(signal.SIGTERM)
    _, stderr = served.process.communicate(timeout=20)
    assert served.process.returncode == 0, stderr
    assert "Traceback" not in stderr
    return stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = serve(str(echo_app(tmp_path)), cwd=tmp_path)
    try:
        yield s
    finally:
        if s.process.poll() is None:
            stop(s)


def test_the_server_isolates_the_page_and_names_each_type(served: Served) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    manifest = json.loads((served.path / "app" / "bundle.json").read_text())
    blob = next(iter(manifest["files"]))
    expected = {"/": "text/html; charset=utf-8", "/index.html": "text/html; charset=utf-8",
                "/chainsocket-web.js": "text/javascript; charset=utf-8", "/style.css": "text/css; charset=utf-8",
                "/app/bundle.json": "application/json", f"/app/{blob}": "application/octet-stream"}
    for path, kind in expected.items():
        status, headers, body = served.request(path)
        assert status == 200, path
        assert headers["content-type"] == kind, path
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["cross-origin-embedder-policy"] == "require-corp"
        assert headers["x-content-type-options"] == "nosniff"
        on_disk = served.path / ("index.html" if path == "/" else path.lstrip("/"))
        assert body == on_disk.read_bytes() and int(headers["content-length"]) == len(body)
    status, headers, body = served.request("/chainsocket-web.js", "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 100_000
    status, headers, _ = served.request("/index.html", "POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", [
    "/../app.yaml", "/app/../../app.yaml", "/%2e%2e/app.yaml", "/app/%2e%2e/%2e%2e/app.yaml", "/..%2fapp.yaml",
    "/app/", "/app", "/app/blobs", "/./index.html", "/app//bundle.json", "/index.html/", "/missing.js",
    "/app\\bundle.json", "/index.html%00.js", "/%ff", "/.hidden", "/" + "a" * 3000,
])
def test_the_server_serves_only_the_sites_files(served: Served, path: str) -> None:
    (served.path / ".hidden").write_text("not served")
    status, headers, body = served.request(path)
    assert status in (404, 414), (path, status)
    assert b"web-echo" not in body and b"<" not in body  # no listing, no file
    assert headers["cross-origin-embedder-policy"] == "require-corp"


def test_the_server_follows_no_link_out_of_the_folder(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>hi</p>")
    (site / "model.wasm").write_bytes(b"\0asm\1\0\0\0")
    (tmp_path / "secret.txt").write_text("outside")
    (site / "out.txt").symlink_to(tmp_path / "secret.txt")
    (site / "inside.html").symlink_to(site / "index.html")  # a link even within the folder: a site has none
    server = web.make_server(site, "127.0.0.1", 0)
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        for path, status, kind in [("/model.wasm", 200, "application/wasm"), ("/out.txt", 404, None),
                                   ("/inside.html", 404, None)]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            connection.close()
            assert response.status == status, path
            if kind:
                assert response.getheader("Content-Type") == kind and body == b"\0asm\1\0\0\0"
            else:
                assert b"outside" not in body
    finally:
        server.shutdown()
        server.server_close()


def test_serving_without_out_builds_a_temporary_site_removed_at_the_end(tmp_path: Path) -> None:
    served = serve(str(echo_app(tmp_path)), cwd=tmp_path)
    assert served.path.is_dir() and not served.path.is_relative_to(tmp_path)
    assert served.request("/")[0] == 200
    stop(served)
    assert not served.path.exists() and not served.path.parent.exists()


def test_a_port_in_use_is_said_with_a_way_out(tmp_path: Path, served: Served) -> None:
    result = cspm("web", str(echo_app(tmp_path)), "--serve", "--port", str(served.port), "--json", cwd=tmp_path)
    error = json.loads(result.stdout)["error"]
    assert result.returncode == 2 and f":{served.port}" in error["message"] and "--port 0" in error["hint"]


# --- in the browser ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium (Debian package) is not installed")
    pytest.importorskip("playwright.sync_api", reason="playwright (PyPI) is not installed")
    with chromium() as launched:
        yield launched


class Page:
    """One browser context (its own IndexedDB and localStorage) on a served site."""

    def __init__(self, browser: Any, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 900, "height": 720})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.url = url

    def open(self, timeout_s: float = 60) -> str:
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-state=ready], body[data-state=failed]", timeout=timeout_s * 1000)
        return str(self.page.evaluate("document.body.dataset.state"))

    def ask(self, text: str, timeout_s: float = 60) -> dict[str, str]:
        done = self.page.locator(".message.assistant[data-done]").count()
        self.page.fill("#input", text)
        self.page.press("#input", "Enter")
        answer = self.page.locator(".message.assistant[data-done]").nth(done)
        answer.wait_for(timeout=timeout_s * 1000)
        self.page.wait_for_selector("body[data-state=ready]", timeout=10_000)
        return {"text": answer.locator(".text").inner_text(),
                "finish": answer.get_attribute("data-finish-reason") or ""}

    def status(self) -> str:
        return str(self.page.inner_text("#status"))

    def evaluate(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    pages: list[Page] = []

    def opener(url: str) -> Page:
        pages.append(Page(browser, url))
        return pages[-1]

    yield opener
    for p in pages:
        p.close()


def session_of(page: Page) -> dict[str, Any]:
    return page.evaluate("""() => {
        const k = Object.keys(localStorage).find((k) => k.startsWith("chainsocket-web:session:"));
        return {key: k, id: k && localStorage.getItem(k)};
    }""")


def test_the_page_answers_in_one_session_kept_across_reloads(served: Served, open_page: Any) -> None:
    page = open_page(served.url)
    assert page.open() == "ready", page.status()
    assert page.evaluate("crossOriginIsolated") is True  # the headers did their work
    assert page.page.title() == "web-echo · Chainsocket"
    assert "verifying and compiling agent `agent`" in page.status()
    assert page.ask("hello from the browser") == {"text": "hello from the browser", "finish": "final_answer"}
    assert page.ask("and a second message") == {"text": "and a second message", "finish": "final_answer"}
    session = session_of(page)
    assert session["id"].startswith("web-") and session["key"].endswith(json.loads(
        (served.path / "app" / "bundle.json").read_text())["plan"]["kv_scope"])
    assert page.open() == "ready"  # a reload continues the session
    assert session_of(page) == session and f"continuing session {session['id']}" in page.status()
    page.page.click("#new-session")
    assert session_of(page)["id"] != session["id"] and page.page.locator(".message").count() == 0
    assert page.errors == []


def test_kv_memory_lives_in_indexeddb_per_session(tmp_path: Path, open_page: Any) -> None:
    """echo-chat: the conversational agent keeps its history in kv; the page's store is IndexedDB."""
    served = serve(str(echo_chat_app(tmp_path)), cwd=tmp_path)
    try:
        page = open_page(served.url)
        assert page.open() == "ready", page.status()
        assert page.ask("first")["text"] == "echo: first"
        assert page.ask("second")["text"] == "echo: second"
        session = session_of(page)["id"]
        scope = json.loads((served.path / "app" / "bundle.json").read_text())["plan"]["kv_scope"]
        history = page.evaluate("""async ([scope, session]) => {
            const m = await import("./chainsocket-web.js");
            const kv = new m.IdbKvStore();
            try { return await kv.get([scope, "agent", session], "history"); } finally { await kv.close(); }
        }""", [scope, session])
        assert [m["content"] for m in history] == ["first", "echo: first", "second", "echo: second"]
    finally:
        stop(served)


def test_the_indexeddb_store_scopes_and_bounds_like_every_store(served: Served, open_page: Any) -> None:
    page = open_page(served.url)
    assert page.open() == "ready"
    result = page.evaluate("""async () => {
        const m = await import("./chainsocket-web.js");
        const kv = new m.IdbKvStore({name: "kv-test"});
        const out = {};
        const a = ["app", "agent", "s1"], b = ["app", "agent", "s2"];
        const c = ["app", "other", "s1"], d = ["app2", "agent", "s1"];
        await kv.set(a, "k", {n: 1});
        out.same = await kv.get(a, "k");
        out.others = [await kv.get(b, "k"), await kv.get(c, "k"), await kv.get(d, "k")];
        out.missing = await kv.get(a, "nothing");
        const refused = async (f) => {
            try { await f(); return null; } catch (e) { return e.constructor.name + ": " + e.message; }
        };
        out.bigValue = await refused(() => kv.set(a, "big", "x".repeat(m.MAX_VALUE_BYTES)));
        out.longKey = await refused(() => kv.set(a, "k".repeat(m.MAX_KEY_CHARS + 1), 1));
        out.loneSurrogate = await refused(() => kv.set(a, "\\ud800", 1));
        out.afterRefusals = await kv.usage("app", "agent");
        // the byte quota, over all sessions of one plug-in: 64 values of just under 1 MiB fit, a 65th does not
        const mib = "y".repeat(m.MAX_VALUE_BYTES - 100);
        await Promise.all(Array.from({length: 64}, (_, i) => kv.set(["app", "agent", "s" + (i % 3)], "v" + i, mib)));
        out.quota = await refused(() => kv.set(a, "v64", mib));
        out.quotaUsage = await kv.usage("app", "agent");
        out.shrinkAllowed = await refused(async () => {
            await kv.set(a, "k", {n: 2});
            await kv.set(["app", "agent", "s0"], "v0", "small");
        });
        out.deleted = [await kv.delete(["app", "agent", "s0"], "v0"), await kv.delete(["app", "agent", "s0"], "v0")];
        out.afterDelete = await kv.usage("app", "agent");
        out.otherOwner = await refused(() => kv.set(c, "v", mib));
        await kv.close();
        return out;
    }""")
    assert result["same"] == {"n": 1} and result["others"] == [None, None, None] and result["missing"] is None
    assert result["bigValue"].startswith("KvTooLarge:") and "limit" in result["bigValue"]
    assert result["longKey"].startswith("KvKeyInvalid:") and result["loneSurrogate"].startswith("KvKeyInvalid:")
    assert result["afterRefusals"] == {"keys": 1, "bytes": len("k") + len('{"n":1}')}
    assert result["quota"] is not None and "kv quota" in result["quota"], result["quota"]
    assert result["quotaUsage"]["keys"] == 65  # the refused write changed nothing
    assert result["shrinkAllowed"] is None
    assert result["deleted"] == [True, False] and result["afterDelete"]["keys"] == 64
    assert result["otherOwner"] is None  # the quota is per plug-in of one app


def test_racing_writers_cannot_both_pass_the_quota(served: Served, open_page: Any) -> None:
    """70 writes of ~1 MiB at once, in two stores of the same database (two hosts of one origin): each
    is one transaction that reads the totals and writes, so exactly the 64 that fit are kept."""
    page = open_page(served.url)
    assert page.open() == "ready"
    result = page.evaluate("""async () => {
        const m = await import("./chainsocket-web.js");
        const stores = [new m.IdbKvStore({name: "kv-race"}), new m.IdbKvStore({name: "kv-race"})];
        const mib = "z".repeat(m.MAX_VALUE_BYTES - 100);
        const writes = Array.from({length: 70}, (_, i) => stores[i % 2]
            .set(["app", "agent", "s" + (i % 5)], "k" + i, mib).then(() => "ok", (e) => e.constructor.name));
        const outcomes = await Promise.all(writes);
        const usage = await stores[0].usage("app", "agent");
        await Promise.all(stores.map((s) => s.close()));
        return {outcomes, usage, quota: m.QUOTA_BYTES};
    }""")
    outcomes = result["outcomes"]
    assert outcomes.count("ok") == 64 and outcomes.count("KvTooLarge") == 6, outcomes
    assert result["usage"]["keys"] == 64 and result["usage"]["bytes"] <= result["quota"]


def test_any_static_server_can_host_the_site(tmp_path: Path, open_page: Any) -> None:
    """Python's plain file server: no isolation headers, so every plug-in runs on the page's thread."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    make(echo_app(tmp_path), tmp_path / "site")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = open_page(f"http://127.0.0.1:{server.server_address[1]}/")
        assert page.open() == "ready", page.status()
        assert page.evaluate("crossOriginIsolated") is False
        assert page.ask("no special headers") == {"text": "no special headers", "finish": "final_answer"}
    finally:
        server.shutdown()
        server.server_close()


def test_a_failing_plug_in_is_said_in_the_transcript_and_the_page_goes_on(tmp_path: Path, open_page: Any) -> None:
    """An agent that is an llm inside (the conformance plug-in configured as one) fails on an agent's
    request: the page shows the host's message as the answer, and the next message is answered."""
    wasm = conformance_wasm("rust")
    app = write_app(tmp_path, f"""name: web-broken
entry: agent
agents:
  - name: agent
    plugin_name: {wasm}
    config: {{kind: llm}}
""")
    served = serve(str(app), cwd=tmp_path)
    try:
        page = open_page(served.url)
        assert page.open() == "ready"
        answer = page.ask("hello")
        assert answer["finish"] == "failed", answer
        assert answer["text"].startswith("agent `agent` failed: invalid input: missing field `messages`"), answer
        assert page.page.locator(".message.assistant.error").count() == 1
        assert "missing field `messages`" in page.status()
        assert page.ask("again")["finish"] == "failed"  # still answering: the instance was renewed
    finally:
        stop(served)


def test_a_changed_file_is_refused_in_the_page_and_said_plainly(tmp_path: Path, open_page: Any) -> None:
    site = tmp_path / "site"
    served = serve(str(echo_app(tmp_path)), "--out", str(site), cwd=tmp_path)
    blob = next((site / "app" / "blobs").iterdir())
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1  # one bit of the module, after the site was made
    blob.write_bytes(bytes(data))
    try:
        page = open_page(served.url)
        assert page.open() == "failed"
        shown = page.page.locator(".message.error").inner_text()
        assert "The app could not start" in shown and f"is not sha256:{blob.name}" in shown, shown
        assert page.page.locator("#input").is_disabled()
    finally:
        stop(served)


# --- the offline demo in the browser --------------------------------------------------------------

def test_answers_stream_into_the_page_as_chunks_arrive(tmp_path: Path, open_page: Any) -> None:
    """conversational asks its llm for chunks; llm-local (WASI, its model mounted in memory) emits each
    piece as it decodes: the answer grows in the page before it is done, and ends as the output."""
    app = write_app(tmp_path, f"""name: stream-chat
entry: agent
llms:
  - name: tiny
    plugin: chainsocket/llm-local@^1
    models: {{selfask: chainsocket/selfask-tiny@^1}}
    config: {{model: selfask, temperature: 0, max_tokens: 24}}
agents:
  - name: agent
    plugin_name: {PLUGINS / "conversational"}
    grant: {{kv: true}}
    llms: [tiny]
""")
    plugin_wasm("conversational")
    served = serve(str(app), cwd=tmp_path)
    try:
        page = open_page(served.url)
        assert page.open(timeout_s=120) == "ready", page.status()
        page.evaluate("""() => {
            window.partial = [];
            new MutationObserver(() => {
                const text = document.querySelector(".message.assistant.streaming .text");
                if (text && text.textContent) window.partial.push(text.textContent);
            }).observe(document.getElementById("transcript"), {subtree: true, childList: true, characterData: true});
        }""")
        answer = page.ask(DEMO_QUESTION, timeout_s=300)
        partial = page.evaluate("window.partial")
        assert answer["finish"] == "final_answer" and answer["text"].strip(), answer
        assert len(partial) >= 3, partial  # several chunks, each shown as it came
        assert all(b.startswith(a) for a, b in itertools.pairwise(partial)), partial
        assert partial[-1].strip() == answer["text"].strip()
    finally:
        stop(served)


def test_the_self_ask_demo_answers_in_the_browser(tmp_path: Path, open_page: Any) -> None:
    """The README's demo (self-ask + kb + llm-local + calculator, its model and data mounted from the
    bundle) answers the README's question in a tab, its steps shown as status lines."""
    served = serve("chainsocket/self-ask-demo", "--allow-capabilities", cwd=tmp_path)
    try:
        page = open_page(served.url)
        assert page.open(timeout_s=180) == "ready", page.status()
        answer = page.ask(DEMO_QUESTION, timeout_s=600)
        assert answer == {"text": DEMO_ANSWER, "finish": "final_answer"}, (answer, page.status())
        status = page.status()
        assert "self_ask_agent: step 1/6: follow up: When was Kogail Bagrol born?" in status, status
        assert "tiny: loaded /models/selfask/model.gguf" in status
        if os.environ.get("CSPM_WEB_SCREENSHOT") == "1":  # the picture of docs/web.md (not in CI)
            (ROOT / "docs" / "images").mkdir(exist_ok=True)
            page.page.screenshot(path=str(ROOT / "docs" / "images" / "web-chat.png"))
        assert page.errors == []
    finally:
        stop(served)
