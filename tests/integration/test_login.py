"""`cspm login` and `cspm publish --dry-run` ask the registry before they claim anything.

Against a real `cspm-registry` on loopback: a wrong token is refused in the registry's words and
nothing is saved; a registry that cannot be asked (a folder, a server without `whoami`, nothing
listening) is said to be so, and the token is saved only with --no-check; a dry run of a version
the registry already has fails as the upload would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_cli import cspm
from tests.integration.test_cli_pm import source
from tests.integration.test_publish import Server, free_port, new_token, ok

pytestmark = pytest.mark.timeout(180)
pytest.importorskip("cspm_registry", reason="the registry server distribution is not installed")

WRONG = "csr_" + "W" * 43  # well-formed, unknown to the registry


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data")
    running.start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSPM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CSPM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CSPM_TOKEN", raising=False)


def saved(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "config" / "credentials.yaml"
    import yaml

    return yaml.safe_load(path.read_text()) if path.exists() else {}


def test_login_checks_the_token_with_the_registry_before_saving(tmp_path: Path, server: Server) -> None:
    ok("registry", "add", "remote", server.url, "--namespace", "test")
    refused = cspm("login", "remote", "--token", WRONG)
    assert refused.returncode == 1, refused.stderr
    assert "registry remote refused: this registry does not know that token" in refused.stderr, refused.stderr
    assert WRONG not in refused.stderr + refused.stdout and saved(tmp_path) == {}
    as_json = cspm("login", "remote", "--token", WRONG, "--json")
    assert as_json.returncode == 1 and "does not know that token" in json.loads(as_json.stdout)["error"]["message"]

    good = new_token(server.data, "test")
    # the token given is the one checked, not CSPM_TOKEN (which `publish` would use)
    assert cspm("login", "remote", "--token", WRONG, env={"CSPM_TOKEN": good}).returncode == 1
    assert saved(tmp_path) == {}
    answer = ok("login", "remote", "--token", good)
    assert answer["checked"] is True and answer["registry"] == "remote"
    assert answer["token"] == {"id": answer["token"]["id"], "namespaces": ["test"], "publish": True, "admin": False}
    assert isinstance(answer["token"]["id"], int) and saved(tmp_path) == {"remote": good}
    human = cspm("login", "remote", stdin=good + "\n")
    assert human.returncode == 0 and f"token #{answer['token']['id']} for remote (publish: test) saved in" in \
        human.stderr, human.stderr
    assert good not in human.stderr + human.stdout

    # the endpoint itself: who a token is, never the token
    whoami = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {good}"})
    assert whoami.status_code == 200 and whoami.json() == answer["token"]
    assert httpx.get(f"{server.url}/api/v1/whoami").status_code == 401


def test_login_where_the_registry_cannot_be_asked_saves_only_with_no_check(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    ok("registry", "add", "gone", f"http://127.0.0.1:{port}")
    result = cspm("login", "gone", "--token", WRONG)
    assert result.returncode == 1 and "cannot be reached" in result.stderr, result.stderr
    assert "cspm login gone --no-check" in result.stderr and saved(tmp_path) == {}

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").write_text('{"name": "folder", "dl": "blobs/sha256/{hex}", "api": null}\n')
    ok("registry", "add", "folder", folder.as_uri())
    result = cspm("login", "folder", "--token", WRONG)
    assert result.returncode == 1 and "cannot check the token with registry folder" in result.stderr, result.stderr
    assert "it is a folder" in result.stderr and "--no-check" in result.stderr and saved(tmp_path) == {}

    # a server with a write API but no `whoami` (an older cspm-registry): a static host stands in for it
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text('{"name": "old", "dl": "blobs/sha256/{hex}", "api": "api/v1"}\n')
    static_port = free_port()
    static = subprocess.Popen([sys.executable, "-m", "http.server", str(static_port), "--bind", "127.0.0.1",
                               "--directory", str(old)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{static_port}/config.json", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the static server did not start"
                time.sleep(0.05)
        ok("registry", "add", "old", f"http://127.0.0.1:{static_port}")
        result = cspm("login", "old", "--token", WRONG)
        assert result.returncode == 1 and "HTTP 404 to GET" in result.stderr and "whoami" in result.stderr, \
            result.stderr
        assert "--no-check" in result.stderr and saved(tmp_path) == {}
    finally:
        static.terminate()
        static.wait(10)

    answer = ok("login", "gone", "--token", WRONG, "--no-check")
    assert answer == {"registry": "gone", "saved": answer["saved"], "checked": False, "token": None}
    assert saved(tmp_path) == {"gone": WRONG}
    human = cspm("login", "folder", "--token", WRONG, "--no-check")
    assert human.returncode == 0 and "unchecked (--no-check)" in human.stderr


def test_dry_run_of_a_version_the_registry_has_fails_like_the_upload(tmp_path: Path, server: Server) -> None:
    src = tmp_path / "src"
    echo1 = source(src, "test/echo", "1.0.0", "tool", "c")
    echo_short = source(src, "test/echo", "1.0.0.0", "tool", "c")  # PEP 440: the same version as 1.0.0
    echo2 = source(src, "test/echo", "1.1.0", "tool", "c")
    ok("registry", "add", "remote", server.url, "--namespace", "test")
    ok("login", "remote", "--token", new_token(server.data, "test"))
    assert ok("publish", str(echo1), "--dry-run")["dry_run"] is True  # not published yet (no index file at all)
    ok("publish", str(echo1), "--no-sign")

    upload = cspm("publish", str(echo1), "--no-sign")
    for folder in (echo1, echo_short):
        dry = cspm("publish", str(folder), "--dry-run")
        assert dry.returncode == upload.returncode == 1, dry.stderr
        assert "would publish" not in dry.stderr and "is already published in registry remote" in dry.stderr
        assert "immutable" in dry.stderr and "bump `version` in plugin.yaml" in dry.stderr
    error = json.loads(cspm("publish", str(echo1), "--dry-run", "--json").stdout)["error"]
    assert "already published" in error["message"]
    dry = cspm("publish", str(echo2), "--dry-run")
    assert dry.returncode == 0 and "would publish test/echo 1.1.0" in dry.stderr, dry.stderr
