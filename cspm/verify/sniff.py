"""Which kind of signature a file holds, from its content: `cspm verify FILE --bundle SIG` is not told.

An index line names its signature's kind; a signature file on disk does not, so it is read: a DSSE
envelope (`payloadType`, `payload`, `signatures` at the top level) is a keyed `dsse-ed25519`
signature, an object whose `mediaType` is a Sigstore bundle's is `sigstore`. Only the top level
counts: a Sigstore bundle may carry a DSSE envelope inside it and is still a Sigstore bundle. The
file is untrusted input, read within the bundle size limit and the JSON limits.
"""

from __future__ import annotations

from cspm.formats import bounded_json
from cspm.verify.signature import MAX_BUNDLE, SignatureError

DSSE = "dsse-ed25519"
SIGSTORE = "sigstore"
SIGSTORE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle"  # then "+json;version=0.2" or ".v0.3+json"
DSSE_FIELDS = ("payloadType", "payload", "signatures")


def signature_kind(data: bytes, what: str = "the signature") -> str:
    """`dsse-ed25519` or `sigstore`; SignatureError for anything else, saying what it found."""
    if len(data) > MAX_BUNDLE:
        raise SignatureError(f"{what} is larger than {MAX_BUNDLE} bytes")
    try:
        document = bounded_json.loads(data, max_bytes=MAX_BUNDLE)
    except bounded_json.JsonRejected as exc:
        raise SignatureError(f"{what} is not a signature: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise SignatureError(f"{what} is not a signature: JSON {type(document).__name__}, not an object")
    if all(field in document for field in DSSE_FIELDS):
        return DSSE
    media_type = document.get("mediaType")
    if isinstance(media_type, str) and media_type.startswith(SIGSTORE_MEDIA_TYPE):
        return SIGSTORE
    raise SignatureError(f"{what} is neither a Sigstore bundle (mediaType {SIGSTORE_MEDIA_TYPE}…) nor a DSSE "
                         f"envelope (fields {', '.join(DSSE_FIELDS)})")
