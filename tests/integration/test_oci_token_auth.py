"""OCI registries behind a token service (GHCR, Docker Hub, Harbor): the Bearer flow end to end.

A real CNCF distribution registry with `auth: token` verifies every JWT our token service signs
(tests/oci_token_support.py); the cspm CLI publishes (keyed DSSE signatures), logs in, installs and
runs through it. Anonymous pulls are allowed under `public/` only, as on a public Docker Hub repo;
a private prefix needs the login, and a wrong password is refused before anything is saved or stored.
The token service records what it was asked, so the tests check the scopes cspm asks for: push only
with the login, and never more than pull when anonymous.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cspm.protocol import oci
from tests.integration.test_cli import cspm
from tests.integration.test_cli_pm import source
from tests.oci_token_support import PASSWORD, READER, READER_PASSWORD, USERNAME, Asked, TokenRegistry, token_registry

APP = """\
entry: boss
tools:
  - {name: echo, plugin: "test/echo@^1", config: {kind: tool}}
agents:
  - {name: boss, plugin: "test/boss@^1", config: {kind: agent}, tools: [echo]}
"""


def run(args: list[str], env: dict[str, str]) -> dict:
    result = cspm(*args, "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def actions(scopes: list[str] | tuple[str, ...]) -> dict[str, set[str]]:
    """{repository: actions} of `repository:NAME:A,B` scopes (distribution may order the actions either way)."""
    found: dict[str, set[str]] = {}
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, said = rest.rpartition(":")
        assert kind == "repository", scope
        found.setdefault(name, set()).update(a for a in said.split(",") if a)
    return found


def refused(args: list[str], env: dict[str, str]) -> str:
    result = cspm(*args, env=env)
    assert result.returncode != 0, result.stdout
    return result.stderr


def stored(env: dict[str, str]) -> list[Path]:
    """The blobs in a user's store."""
    return [p for p in Path(env["CSPM_CACHE_DIR"], "store", "blobs").rglob("*") if p.is_file()]


@dataclass
class World:
    registry: TokenRegistry
    root: Path
    public_key: str
    base: dict[str, str]  # no login from the environment or Docker's config.json
    published: list[Asked]  # what the token service was asked while the fixture logged in and published

    def asked_since(self, mark: int) -> list[Asked]:
        return self.registry.tokens.asked[mark:]

    def consumer(self, label: str, prefix: str, login: bool, registry: TokenRegistry | None = None
                 ) -> tuple[dict[str, str], Path]:
        """Another user: own config (registry `priv` at the prefix, keyed trust), own cache, an app of two
        plug-ins (fetched in parallel: both through the one token cache)."""
        env = {**self.base, "CSPM_CONFIG_DIR": str(self.root / f"{label}-config"),
               "CSPM_CACHE_DIR": str(self.root / f"{label}-cache")}
        if login:
            env |= {"CSPM_TOKEN_PRIV": PASSWORD, "CSPM_USERNAME_PRIV": USERNAME}
        run(["registry", "add", "priv", (registry or self.registry).url(prefix), "--namespace", "test"], env)
        config = Path(env["CSPM_CONFIG_DIR"]) / "config.yaml"
        data = yaml.safe_load(config.read_text())
        data["trust"] = {"test/*": {"keys": [self.public_key]}}
        config.write_text(yaml.safe_dump(data))
        app = self.root / label / "app.yaml"
        app.parent.mkdir()
        app.write_text(APP)
        return env, app


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """test/echo and test/boss 1.0.0 published, signed with a key, under both `private/` and `public/`; the
    publisher logged in with `cspm login` (the token flow with Basic auth to the realm)."""
    root = tmp_path_factory.mktemp("oci-token")
    (root / "no-docker").mkdir()
    base = {"DOCKER_CONFIG": str(root / "no-docker"), "CSPM_TOKEN": "", "CSPM_USERNAME": ""}
    with token_registry(root / "registry") as registry:
        publisher = {**base, "CSPM_CONFIG_DIR": str(root / "publisher"), "CSPM_CACHE_DIR": str(root / "pub-cache")}
        key = root / "publisher.pem"
        public_key = run(["keygen", str(key)], publisher)["public_key"]
        run(["registry", "add", "priv", registry.url("private"), "--namespace", "test"], publisher)
        run(["registry", "add", "pub", registry.url("public")], publisher)
        run(["login", "priv", "--username", USERNAME, "--token", PASSWORD], publisher)
        run(["login", "pub", "--username", USERNAME, "--token", PASSWORD], publisher)
        src = root / "src"
        for name, target in (("priv", "private"), ("pub", "public")):
            for package, kind, lang in (("test/echo", "tool", "c"), ("test/boss", "agent", "rust")):
                published = run(["publish", str(source(src / name, package, "1.0.0", kind, lang)), "--key", str(key),
                                 "--registry", name], publisher)
                assert published["signature"] == "dsse-ed25519"
                assert published["repository"] == f"{target}/{package}"
                assert oci.DIGEST_RE.fullmatch(published["manifest"])
        yield World(registry, root, public_key, base, list(registry.tokens.asked))


def test_publish_and_yank_go_through_tokens_with_the_login(world: World) -> None:
    asked = world.published
    assert asked and all(a.service == "cspm-test-registry" for a in asked)
    # the publish asked for (and, with the login, got) push on its repository; nobody asked anonymously
    assert {a.user for a in asked} == {USERNAME}
    granted = actions([s for a in asked for s in a.granted])
    assert {name: granted[name] for name in granted if "test/" in name} == {
        f"{prefix}/test/{package}": {"pull", "push"} for prefix in ("private", "public")
        for package in ("echo", "boss")}
    # what `cspm login` checks: the push scope of the prefix, granted
    assert any(a.scopes == ("repository:private:pull,push",) and a.granted == a.scopes for a in asked)

    # yank and unyank: the undo DELETEs a manifest, which distribution grants only for the `delete` action
    publisher = {**world.base, "CSPM_CONFIG_DIR": str(world.root / "publisher"),
                 "CSPM_CACHE_DIR": str(world.root / "pub-cache")}
    mark = len(world.registry.tokens.asked)
    run(["yank", "test/echo@1.0.0", "--registry", "priv", "--reason", "token test"], publisher)
    info = run(["info", "test/echo"], publisher)
    assert info["versions"][0]["yanked"] == "token test"
    run(["yank", "test/echo@1.0.0", "--registry", "priv", "--undo"], publisher)
    assert actions([s for a in world.asked_since(mark) for s in a.granted])["private/test/echo"] == {
        "pull", "push", "delete"}
    assert not run(["info", "test/echo"], publisher)["versions"][0]["yanked"]


def test_install_and_run_with_the_login(world: World) -> None:
    env, app = world.consumer("alice", "private", login=True)
    mark = len(world.registry.tokens.asked)
    installed = run(["install", str(app)], env)
    assert {s["signer"]["issuer"] for s in installed["signatures"]} == {"key:ed25519"}
    pinned = {p["name"]: p["blob"].partition("@") for p in yaml.safe_load(app.with_suffix(".lock").read_text())[
        "plugins"]}
    assert {name: repo for name, (repo, _, _) in pinned.items()} == {"test/echo": "private/test/echo",
                                                                     "test/boss": "private/test/boss"}
    assert all(oci.DIGEST_RE.fullmatch(manifest) for _, _, manifest in pinned.values())
    assert run(["run", str(app), "-i", "through a token"], env)["output"] == "through a token"
    asked = world.asked_since(mark)
    assert asked and {a.user for a in asked} == {USERNAME}
    # a reader asks for no more than pull
    assert actions([s for a in asked for s in a.scopes]) == {"private/test/echo": {"pull"},
                                                             "private/test/boss": {"pull"}}


def test_a_docker_login_goes_through_tokens(world: World) -> None:
    """`docker login` leaves `auths` in $DOCKER_CONFIG/config.json; cspm uses it for the token service."""
    env, app = world.consumer("docker-user", "private", login=False)
    docker = world.root / "docker-user-docker"
    docker.mkdir()
    login = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {world.registry.host: {"auth": login}}}))
    env["DOCKER_CONFIG"] = str(docker)
    mark = len(world.registry.tokens.asked)
    run(["install", str(app)], env)
    assert len(stored(env)) == 2
    assert {a.user for a in world.asked_since(mark)} == {USERNAME}


def test_anonymous_install_from_a_public_prefix(world: World) -> None:
    env, app = world.consumer("anonymous", "public", login=False)
    mark = len(world.registry.tokens.asked)
    run(["install", str(app)], env)
    assert run(["run", str(app), "-i", "anonymous"], env)["output"] == "anonymous"
    assert {p["blob"].split("@")[0] for p in yaml.safe_load(app.with_suffix(".lock").read_text())["plugins"]} == {
        "public/test/echo", "public/test/boss"}
    asked = world.asked_since(mark)
    assert asked and {a.user for a in asked} == {None}
    assert {s for a in asked for s in a.scopes} == {"repository:public/test/echo:pull",
                                                    "repository:public/test/boss:pull"}
    assert all(a.granted == a.scopes for a in asked)


def test_anonymous_install_from_a_private_prefix_needs_a_login(world: World) -> None:
    env, app = world.consumer("stranger", "private", login=False)
    mark = len(world.registry.tokens.asked)
    stderr = refused(["install", str(app)], env)
    assert "registry priv needs a login" in stderr and "cspm login priv --username" in stderr
    result = cspm("install", str(app), "--json", env=env)
    error = json.loads(result.stdout)["error"]
    assert result.returncode != 0 and error["code"] == "registry.auth" and "cspm login priv" in error["hint"]
    assert stored(env) == []
    # the token service gave an anonymous token with no access; the registry refused it (insufficient scope)
    asked = world.asked_since(mark)
    assert asked and all(a.user is None for a in asked)
    assert {g for a in asked for g in a.granted} <= {"repository:private/test/echo:", "repository:private/test/boss:"}


def test_a_wrong_password_is_refused_and_cspm_login_saves_nothing(world: World) -> None:
    env, app = world.consumer("mallory", "private", login=True)
    wrong = dict(env, CSPM_TOKEN_PRIV="not-the-password")
    stderr = refused(["install", str(app)], wrong)
    assert "token service refused the login" in stderr and "cspm login priv" in stderr
    assert stored(env) == []

    # `cspm login` checks the login with the registry (through its token service) before saving it
    saved = dict(env)
    del saved["CSPM_TOKEN_PRIV"], saved["CSPM_USERNAME_PRIV"]
    credentials = Path(saved["CSPM_CONFIG_DIR"]) / "credentials.yaml"
    assert "refused" in refused(["login", "priv", "--username", USERNAME, "--token", "not-the-password"], saved)
    assert not credentials.exists()
    run(["login", "priv", "--username", USERNAME, "--token", PASSWORD], saved)
    assert yaml.safe_load(credentials.read_text())["priv"] == {"username": USERNAME, "password": PASSWORD}
    run(["install", str(app)], saved)  # the saved login, through the token flow
    assert run(["run", str(app), "-i", "saved login"], saved)["output"] == "saved login"
    assert len(stored(saved)) == 2


def test_a_login_that_may_only_pull_cannot_publish(world: World) -> None:
    """As a GHCR token without write:packages: the token service grants pull only, the registry says 401."""
    env = {**world.base, "CSPM_CONFIG_DIR": str(world.root / "publisher"), "CSPM_CACHE_DIR": str(world.root / "reader"),
           "CSPM_TOKEN_PRIV": READER_PASSWORD, "CSPM_USERNAME_PRIV": READER}
    mark = len(world.registry.tokens.asked)
    stderr = refused(["publish", str(source(world.root / "reader-src", "test/echo", "1.1.0", "tool", "c")), "--no-sign",
                      "--registry", "priv"], env)
    assert "registry priv refused the login from $CSPM_TOKEN_PRIV for POST /v2/private/test/echo/blobs/uploads" in \
        stderr and "check that this login may push to it" in stderr
    asked = world.asked_since(mark)
    assert {a.user for a in asked} == {READER}
    assert actions([s for a in asked for s in a.scopes])["private/test/echo"] == {"pull", "push"}
    assert actions([s for a in asked for s in a.granted])["private/test/echo"] == {"pull"}
    versions = run(["info", "test/echo"], {**env, "CSPM_CACHE_DIR": str(world.root / "reader-info")})["versions"]
    assert [v["version"] for v in versions] == ["1.0.0"]


def test_hostile_token_answers_are_refused(world: World) -> None:
    """What the realm answers is untrusted: a huge body, a token that would inject a header, not JSON."""
    env, app = world.consumer("hostile", "private", login=True)
    tokens = world.registry.tokens
    for answer in (b'{"token": "' + b"a" * (4 << 20) + b'"}', json.dumps({"token": "x\r\nX-Injected: 1"}).encode(),
                   b"<html>not a token</html>"):
        tokens.answer = answer
        try:
            stderr = refused(["install", str(app)], env)
        finally:
            tokens.answer = None
        assert "registry priv: its token service answered HTTP 200 without a usable token" in stderr
    assert stored(env) == []


def test_a_token_service_cspm_does_not_trust_never_sees_the_login(world: World) -> None:
    """A registry may name any realm in its challenge; the login goes only to https or loopback (or the
    registry's own host). `0.0.0.0` is neither by name, though connecting to it reaches this machine:
    so a regression would show here as a request the token service recorded, never as traffic off it."""
    tokens = world.registry.tokens
    rogue = TokenRegistry(world.root / "rogue-registry", tokens, realm=f"http://0.0.0.0:{tokens.port}/token")
    rogue.start()
    try:
        env, app = world.consumer("rogue", "private", login=True, registry=rogue)
        mark = len(tokens.asked)
        stderr = refused(["install", str(app)], env)
    finally:
        rogue.stop()
    assert "registry priv names a token service cspm does not trust: 'http://0.0.0.0:" in stderr
    assert world.asked_since(mark) == []
