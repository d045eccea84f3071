"""`BlobStore` on an S3-compatible service (boto3), shared by any number of `serve` replicas.

`--blobs s3://BUCKET/PREFIX`: keys are the static layout's paths under PREFIX
(`PREFIX/blobs/sha256/<hex>`, `PREFIX/bundles/sha256/<hex>.<kind>.json`), so the bucket is itself a
part of a static registry (a CDN or nginx can serve `blobs/` straight from it). The endpoint is
`--s3-endpoint` or AWS_ENDPOINT_URL (AWS itself without either); credentials and region come from
boto3's usual sources (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, an instance role).
Addressing is path-style (`ENDPOINT/BUCKET/KEY`), which every S3-compatible server accepts.

How the invariants of blobs.py hold on S3:

- `stage(data, key)` uploads to the final key at once, outside the metadata lock (the slow part),
  with `If-None-Match: *`: an object already there (412) is left as it is (same key, same bytes).
  Until a row names it, it is an orphan: not listed in any index, not served by the app.
- `put` (inside the metadata transaction) HEADs the key and uploads again only if it is missing (a
  sweep removed a staged orphan meanwhile); it says it brought the key only then, so a failing
  publish removes nothing another replica may have staged or committed.
- Nothing is overwritten: every upload is conditional (`If-None-Match: *`).
- A service that cannot be reached or answers 5xx is `Unavailable` (503 to the client); with the
  metadata transaction rolled back, no row names a blob that is not stored.

boto3 is imported only when an `s3://` URL is used (`pip install 'cspm-registry[cloud]'`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar, cast

from cspm.errors import StorageError
from cspm.protocol import layout
from cspm_registry.blobs import Staged
from cspm_registry.metadata import Unavailable

CLOUD_EXTRA = "pip install 'cspm-registry[cloud]'"
PRESIGN_S = 3600  # a presigned download URL's life (the app answers a blob route with one)
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's bucket naming rules (fullmatch)
PREFIX_RE = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")  # fullmatch; no `..` part (checked too)
T = TypeVar("T")


class S3Location:
    """`s3://bucket[/prefix]`, checked: a bucket name S3 accepts, a prefix of plain path parts."""

    def __init__(self, url: str) -> None:
        scheme, sep, rest = url.partition("://")
        if scheme != "s3" or not sep:
            raise StorageError(f"{url[:200]!r} is not an s3://BUCKET/PREFIX URL")
        bucket, _, prefix = rest.partition("/")
        prefix = prefix.strip("/")
        if not BUCKET_RE.fullmatch(bucket):
            raise StorageError(f"{url[:200]!r}: {bucket[:100]!r} is not an S3 bucket name (3-63 lowercase letters, "
                               f"digits, '.' and '-')")
        if prefix and (not PREFIX_RE.fullmatch(prefix) or ".." in prefix.split("/") or "." in prefix.split("/")):
            raise StorageError(f"{url[:200]!r}: the prefix {prefix[:100]!r} must be plain path parts (letters, "
                               f"digits, '.', '_', '-')")
        self.url, self.bucket, self.prefix = f"s3://{bucket}{'/' + prefix if prefix else ''}", bucket, prefix

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Location) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)


def s3_client(endpoint: str | None) -> Any:
    """A boto3 S3 client: path-style, short connect timeout, two attempts (a 503 should come quickly)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StorageError("--blobs/--static s3://… needs boto3, which is not installed", hint=CLOUD_EXTRA) from None
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=5, read_timeout=60, signature_version="s3v4")
    try:
        return boto3.client("s3", endpoint_url=endpoint or None, config=config)
    except Exception as exc:  # botocore's configuration errors (no region, a bad endpoint URL)
        raise StorageError(f"cannot make an S3 client{f' for {endpoint[:200]}' if endpoint else ''}: {exc}",
                           hint="give the S3 service (`cspm-registry serve --s3-endpoint URL`, or "
                                "AWS_ENDPOINT_URL), AWS_DEFAULT_REGION and the AWS credentials") from None


def status_of(exc: Exception) -> int | None:
    """The HTTP status of a botocore ClientError, None for anything else."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if isinstance(status, int) else None


def guarded(where: str, work: Callable[[], T], what: str = "the blob store") -> T:
    """Run an S3 call; the service unreachable, or failing (5xx, throttled, refusing our keys), is `Unavailable`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return work()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise Unavailable(f"{what} ({where}) refused a request: {error.get('Code', '?')} "
                          f"{str(error.get('Message', ''))[:200]}".rstrip()) from None
    except BotoCoreError as exc:
        raise Unavailable(f"{what} ({where}) is unavailable: {str(exc)[:300]}") from None


class S3Blobs:
    """`BlobStore` in an S3 bucket under a prefix; thread-safe (boto3 clients are)."""

    def __init__(self, url: str, endpoint: str | None = None) -> None:
        self.location = S3Location(url)
        self.client = s3_client(endpoint)
        self.where = self.location.url

    def _key(self, key: str) -> str:
        """Only the two layout folders, one level deep (as FolderBlobs): a key never leads elsewhere."""
        folder, _, name = key.rpartition("/")
        if folder not in (layout.BLOBS_DIR, layout.BUNDLES_DIR) or not name or name.startswith("."):
            raise ValueError(f"not a blob store key: {key[:100]!r}")
        return self.location.key(key)

    def check(self) -> None:
        """At start: the bucket is there and ours to use (a clear error instead of a 503 per publish)."""
        try:
            guarded(self.where, lambda: self.client.head_bucket(Bucket=self.location.bucket))
        except Unavailable as exc:
            raise StorageError(f"{exc}", hint="check the S3 service (`cspm-registry serve --s3-endpoint URL`, or "
                                              "AWS_ENDPOINT_URL), the bucket's name and the AWS credentials"
                               ) from None

    def _upload(self, key: str, data: bytes) -> bool:
        """Upload unless the key exists (412): True if this call created it."""
        from botocore.exceptions import ClientError

        def work() -> bool:
            try:
                self.client.put_object(Bucket=self.location.bucket, Key=self._key(key), Body=data, IfNoneMatch="*",
                                       ContentType="application/octet-stream")
                return True
            except ClientError as exc:
                if status_of(exc) in (409, 412):  # present already (409: a concurrent conditional write)
                    return False
                raise

        return guarded(self.where, work)

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        def work() -> bool:
            try:
                self.client.head_object(Bucket=self.location.bucket, Key=self._key(key))
                return True
            except ClientError as exc:
                if status_of(exc) == 404:
                    return False
                raise

        return guarded(self.where, work)

    def stage(self, data: bytes, key: str | None = None) -> Staged:
        if key is not None:
            self._upload(key, data)
        return Staged(data=data, key=key)

    def put(self, staged: Staged, key: str) -> bool:
        if self._exists(key):
            return False
        assert staged.data is not None
        return self._upload(key, staged.data)

    def discard(self, staged: Staged) -> None:
        staged.data = None

    def remove(self, key: str) -> None:
        guarded(self.where, lambda: self.client.delete_object(Bucket=self.location.bucket, Key=self._key(key)))

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        def work() -> int | None:
            try:
                head = self.client.head_object(Bucket=self.location.bucket, Key=self._key(key))
            except ClientError as exc:
                if status_of(exc) == 404:
                    return None
                raise
            return int(head["ContentLength"])

        return guarded(self.where, work)

    def open(self, key: str) -> BinaryIO | None:
        from botocore.exceptions import ClientError

        def work() -> BinaryIO | None:
            try:
                answer = self.client.get_object(Bucket=self.location.bucket, Key=self._key(key))
            except ClientError as exc:
                if status_of(exc) == 404:
                    return None
                raise
            return cast(BinaryIO, answer["Body"])  # a StreamingBody: read(n), close()

        return guarded(self.where, work)

    def keys(self, older_than: float = 0) -> list[str]:
        cutoff = time.time() - older_than
        found: list[str] = []
        strip = len(self.location.key(""))
        for folder in (layout.BLOBS_DIR, layout.BUNDLES_DIR):
            def listing(folder: str = folder) -> list[dict[str, Any]]:
                pages = self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.location.bucket, Prefix=self.location.key(folder) + "/")
                return [item for page in pages for item in page.get("Contents", [])]

            for item in guarded(self.where, listing):
                key = item["Key"][strip:]
                if key.count("/") == folder.count("/") + 1 and (not older_than or
                                                                item["LastModified"].timestamp() < cutoff):
                    found.append(key)
        return sorted(found)

    def clean_staged(self, older_than: float = 0) -> list[str]:
        return []  # staged bytes are under their final key: orphans until a row names them, swept by `keys`

    def url(self, key: str) -> str | None:
        return str(self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.location.bucket, "Key": self._key(key)}, ExpiresIn=PRESIGN_S))
