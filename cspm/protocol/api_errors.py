"""The registry API's error codes: one table for the server that sends them and the client that reads them.

Every refusal of the write API (and a 404 of a read) is `{"error": {"code": CODE, "message": TEXT}}`
with the HTTP status of its code here. The message is the server's words for this case; the code is
what a program branches on, and what `cspm publish`/`yank`/`login` turn into a hint (`hint`), so
a client never has to parse a message. A code is never renamed or reused; docs/registry.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    BAD_REQUEST = "bad_request"
    CLIENT_LIMIT = "client_limit"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TIMEOUT = "timeout"
    EXISTS = "exists"
    TOO_LARGE = "too_large"
    INVALID = "invalid"
    SIGNATURE = "signature"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Spec:
    status: int  # the HTTP status the code is sent with
    meaning: str  # one line: when the server sends it
    hint: str | None = None  # what a client suggests (`{registry}`: the registry's name), None: the message says it


CODES: dict[Code, Spec] = {
    Code.BAD_REQUEST: Spec(400, "malformed framing, JSON or request"),
    Code.CLIENT_LIMIT: Spec(400, "what would be published is more than cspm clients read"),
    Code.UNAUTHORIZED: Spec(401, "no token, or one the registry does not know",
                            hint="log in with `cspm login {registry}` (or set CSPM_TOKEN)"),
    Code.FORBIDDEN: Spec(403, "the token may not write in the package's namespace",
                         hint="use a token of this namespace (ask the namespace's owner for one)"),
    Code.NOT_FOUND: Spec(404, "no such file, package, version or route"),
    Code.METHOD_NOT_ALLOWED: Spec(405, "the path exists but not with this method"),
    Code.TIMEOUT: Spec(408, "the request (head or body) did not arrive in time"),
    Code.EXISTS: Spec(409, "the version is already published (versions are immutable)",
                      hint="versions are immutable: bump `version` in plugin.yaml and publish again"),
    Code.TOO_LARGE: Spec(413, "the upload, a part of it, or the request head (431) is over its limit",
                         hint="the registry refuses uploads this large; ask its operator for the limit"),
    Code.INVALID: Spec(422, "the manifest, name, version, module or package is wrong"),
    Code.SIGNATURE: Spec(422, "the signature is missing, does not verify, or is by a signer not trusted"),
    Code.RATE_LIMITED: Spec(429, "too many failed authentications from this address (Retry-After)",
                            hint="too many failed logins from here; wait and check your token"),
    Code.INTERNAL: Spec(500, "a bug or a broken data dir; the server's log says which"),
    Code.UNAVAILABLE: Spec(503, "the database or the S3 service of a replica failed (Retry-After); nothing was "
                                "committed, so the request may be sent again",
                           hint="the registry's storage is failing: try again later"),
}


def status(code: Code) -> int:
    return CODES[code].status


def body(code: Code, message: str) -> dict[str, dict[str, str]]:
    """The JSON of an error answer."""
    return {"error": {"code": code.value, "message": message}}


def known(code: object) -> Code | None:
    """The code of an answer, if this table has it (an unknown one, from a newer server, is None)."""
    try:
        return Code(code) if isinstance(code, str) else None
    except ValueError:
        return None


def hint(code: object, registry: str) -> str | None:
    """The client's hint for a code of an answer from registry `registry` (None: none, or an unknown code)."""
    found = known(code)
    text = CODES[found].hint if found is not None else None
    return text.format(registry=registry) if text else None
