"""One client builder, one retry policy (cspm.http_client), and registry sources chosen by URL scheme."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import pytest

from cspm import __version__, http_client, publish
from cspm.fetch import Download, FetchError, fetch_all
from cspm.formats.userconfig import Registry
from cspm.http_client import GaveUp, Retryable, RetryPolicy, retry_after_seconds
from cspm.index.cache import IndexCache
from cspm.index.oci_source import OciSource
from cspm.index.source import SCHEMES, FolderSource, HttpSource, IndexSource, RegistryUnavailable, source_for
from cspm.store import Store, digest_of


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every pause the policy takes, recorded instead of slept."""
    taken: list[float] = []
    monkeypatch.setattr(http_client, "_sleep", taken.append)
    return taken


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= (retry_after_seconds(later) or 0) <= 5.0


def test_backoff_doubles_with_jitter_and_a_long_retry_after_is_not_waited_for() -> None:
    policy = RetryPolicy(backoff_s=0.25, max_retry_after_s=10)
    for attempt in range(3):
        assert 0.125 * 2 ** attempt <= (policy.wait(attempt, None) or 0) <= 0.375 * 2 ** attempt
    assert policy.wait(0, "7") == 7.0
    assert policy.wait(0, "3600") is None


def test_a_read_is_asked_again_then_given_up(waits: list[float]) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Retryable("HTTP 503", status=503, retry_after="1")
        return "ok"

    assert RetryPolicy().run(flaky) == "ok" and waits == [1.0, 1.0]

    def down() -> str:
        raise Retryable("HTTP 500", status=500)

    with pytest.raises(GaveUp, match=r"HTTP 500 \(after 4 attempts\)"):
        RetryPolicy().run(down)


def test_a_write_is_repeated_only_when_it_cannot_have_been_processed(waits: list[float]) -> None:
    calls: list[Retryable] = []
    failures = iter([Retryable("refused", sent=False), Retryable("HTTP 503", status=503), None])

    def write() -> str:
        failure = next(failures)
        if failure is not None:
            calls.append(failure)
            raise failure
        return "done"

    assert RetryPolicy().run(write, idempotent=False) == "done" and len(calls) == 2
    for failure in (Retryable("HTTP 500", status=500), Retryable("connection reset")):
        def once(failure: Retryable = failure) -> str:
            raise failure
        with pytest.raises(GaveUp, match="not repeated"):
            RetryPolicy().run(once, idempotent=False)
    assert len(waits) == 2  # the two repeats above, nothing for the refusals


def test_one_user_agent_for_downloads_and_index_files(tmp_path: Path, scripted, waits: list[float]) -> None:  # type: ignore[no-untyped-def]
    server = scripted()
    server.reply(raw="{}").reply(raw=b"blob!")
    source = IndexSource(Registry("web", server.url), cache=IndexCache("web", tmp_path / "cache"))
    assert isinstance(source, HttpSource) and source.config() == {}
    fetch_all([Download("acme/x 1.0", "web", f"{server.url}/b", digest_of(b"blob!"), 5, source=source)],
              Store(tmp_path / "store"))
    source.close()
    assert [seen.headers["user-agent"] for seen in server.seen] == [f"cspm/{__version__}"] * 2


def test_downloads_follow_the_policy_and_honour_retry_after(tmp_path: Path, scripted, waits: list[float]) -> None:  # type: ignore[no-untyped-def]
    server = scripted()
    server.reply(status=429, raw="slow down", headers={"Retry-After": "2"}).reply(raw=b"blob!")
    fetch_all([Download("acme/x 1.0", "web", f"{server.url}/b", digest_of(b"blob!"), 5)], Store(tmp_path))
    assert waits == [2.0] and len(server.seen) == 2
    # a registry asking for more patience than the policy has: no wait, a clear error
    server.reply(status=503, raw="maintenance", headers={"Retry-After": "86400"})
    with pytest.raises(FetchError, match=r"HTTP 503 \(the server asks to retry after 86400 s"):
        fetch_all([Download("acme/y 1.0", "web", f"{server.url}/c", digest_of(b"other"), 5)], Store(tmp_path))
    assert waits == [2.0] and len(server.seen) == 3


def test_index_files_are_asked_again_only_without_a_cached_copy(tmp_path: Path, scripted,  # type: ignore[no-untyped-def]
                                                                waits: list[float]) -> None:
    server = scripted()
    server.reply(status=502, raw="blip").reply(raw="line\n", headers={"ETag": '"1"'})
    cache = IndexCache("web", tmp_path / "cache")
    registry = Registry("web", server.url)
    assert IndexSource(registry, cache=cache).read("index/acme/calc").body == b"line\n"
    assert len(waits) == 1
    server.reply(status=500, raw="down")
    stale = IndexSource(registry, cache=cache).read("index/acme/calc")
    assert stale.stale and stale.body == b"line\n" and len(waits) == 1 and len(server.seen) == 3


def test_a_publish_is_not_repeated_after_a_500_but_is_after_a_503(scripted, waits: list[float]) -> None:  # type: ignore[no-untyped-def]
    server = scripted()
    registry = Registry("web", server.url)
    server.reply(status=500, body={"error": {"code": "internal", "message": "boom"}})
    with pytest.raises(publish.Refused, match="boom"):
        publish._send(registry, "PUT", f"{server.url}/api/v1/publish", token="cspm-test-token", content=b"x")
    assert len(server.seen) == 1
    server.reply(status=503, raw="busy").reply(body={"ok": True})
    answer = publish._send(registry, "PUT", f"{server.url}/api/v1/publish", token="cspm-test-token", content=b"x")
    assert answer == {"ok": True}
    assert len(server.seen) == 3 and server.seen[2].body == b"x" and len(waits) == 1
    assert server.seen[2].headers["user-agent"] == f"cspm/{__version__}"


def test_sources_are_chosen_by_scheme_through_one_table(tmp_path: Path) -> None:
    assert isinstance(source_for(Registry("a", tmp_path.as_uri())), FolderSource)
    assert isinstance(source_for(Registry("b", str(tmp_path))), FolderSource)  # a bare path is a folder
    assert isinstance(source_for(Registry("c", "https://example.test")), HttpSource)
    assert isinstance(IndexSource(Registry("d", "http://example.test")), HttpSource)
    with pytest.raises(RegistryUnavailable, match=r"ftp://") as info:
        source_for(Registry("e", "ftp://example.test/reg"))
    assert "file://, http://, https://" in (info.value.hint or "")
    assert isinstance(source_for(Registry("f", "oci://127.0.0.1:5000/cspm")), OciSource)  # registered on first use
    assert set(SCHEMES) == {"", "file", "http", "https", "oci", "oci+http", "oci+https"}


def test_a_bare_path_folder_registry_serves_blobs(tmp_path: Path) -> None:
    (tmp_path / "reg" / "blobs" / "sha256").mkdir(parents=True)
    data = b"folder blob"
    (tmp_path / "reg" / "blobs" / "sha256" / digest_of(data)[7:]).write_bytes(data)
    source = source_for(Registry("local", str(tmp_path / "reg")))
    url = source.blob_url(digest_of(data))
    assert url.startswith("file://")
    store = Store(tmp_path / "store")
    assert fetch_all([Download("acme/x 1.0", "local", url, digest_of(data), len(data), source=source)], store) == 1
    assert store.read(digest_of(data)) == data


def test_a_lock_location_never_leaves_the_registry(tmp_path: Path) -> None:
    source = IndexSource(Registry("web", "https://registry.test"))
    source._config = {}
    digest = "sha256:" + "ab" * 32
    assert source.blob_url(digest, f"mirror/{'ab' * 32}") == f"https://registry.test/mirror/{'ab' * 32}"
    assert source.blob_url(digest, "mirror/other") == f"https://registry.test/blobs/sha256/{'ab' * 32}"
    for hostile in ("https://evil.test/x", "../../x", "%2e%2e/x", "/etc/passwd", "a\\..\\b"):
        assert source.blob_url(digest, hostile) == f"https://registry.test/blobs/sha256/{'ab' * 32}"
