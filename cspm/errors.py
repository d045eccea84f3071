"""Errors a user can act on: the one taxonomy of cspm. The CLI prints them without a traceback.

Every error a user can see is a class here (a test walks the package to check it), and each carries
two things that never change once released: `code`, a stable dotted name printed in `--json` errors
(`{"error": {"code", "message", "hint"}}`) for scripts to branch on, and `exit_code`, the status of its
category (`ExitCode`, the table of docs/cli.md). A new error picks the class that says what went
wrong; its status follows. Codes are listed in docs/cli.md ("Error codes"); a registry's own API
codes (`cspm.protocol.api_errors`) travel inside `publish.refused` as `api_code`.

    CspmError                      error                      1
    ├── InputError                 input                      2   fix the input, do not retry
    │   ├── FormatError            input.format               2   file:line: field: what is wrong
    │   ├── NameInvalid            input.name                 2
    │   ├── StaleLock              input.stale_lock           2
    │   ├── PackageNotFound        input.package_not_found    2
    │   │   └── BrokenIndex        registry.broken_index      1   the registry's fault, not the input's
    │   ├── ModelNotFound          input.model_not_found      2
    │   └── PluginFileMissing      input.plugin_file_missing  2
    ├── WriteError                 io.write                  74   the disk refused; the old file is whole
    │   └── StoreWriteError        io.store_write            74
    ├── PluginError                plugin                     1
    │   ├── RunFailed              plugin.failed              1
    │   ├── PluginFileMissing      (above)
    │   └── InterfaceError         plugin.interface           1
    ├── CapabilityError            capability                 1
    │   └── NotApproved            capability.not_approved   77
    ├── CapabilityChange           capability.change          1
    ├── SignatureError             trust.signature            1
    ├── SignerChange               trust.signer_change        1
    ├── TokenOriginError           trust.token_origin         1
    ├── ResolutionError            resolve.no_solution        1
    ├── RegistryUnavailable        registry.unavailable       1
    │   └── RegistryAuthError      registry.auth              1   credentials missing or refused
    ├── BadIndexLine               registry.bad_index_line    1
    ├── FetchError                 registry.fetch             1
    ├── StoreError                 store                      1
    │   └── DigestMismatch         store.digest_mismatch      1
    ├── PublishError               publish                    1
    │   ├── Refused                publish.refused            1   + api_code, status
    │   └── CannotCheck            publish.cannot_check       1
    ├── NotAnApp                   app.not_an_app             1
    ├── EditError                  app.edit                   1
    ├── BadAppPackage              app.bad_package            1
    ├── ModelError                 model                      1
    ├── BundleError                bundle                     1   `cspm bundle` cannot build one
    │   └── BundleInvalid          bundle.invalid             1   a bundle that does not verify
    ├── WebError                   web                        1   `cspm web` cannot build or serve a site
    ├── IndexBuildError            index.build                1
    ├── Busy                       serve.busy                 1   every instance busy, queue full (429)
    ├── DeadlineExceeded           serve.timeout              1   a served request ran out of time
    ├── KvUnavailable              kv.unavailable             1   the shared kv database cannot be used
    └── ServerError                server                     1   the registry server's own CLI
        ├── StorageError           server.storage             1
        ├── TrustTooLarge          server.trust_too_large     1
        └── ExportError            server.export              1
"""

from __future__ import annotations

import errno
from enum import IntEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from cspm.runtime.trace import Span


class ExitCode(IntEnum):
    """Every status `cspm` exits with (docs/cli.md, "Exit status")."""

    OK = 0
    FAILED = 1  # the work itself failed: a plug-in, a registry, a resolution, a signature
    USAGE = 2  # the input is wrong: the command line, a file, a name or version spec in it, a stale lock
    BUG = 70  # EX_SOFTWARE: a bug in cspm
    IO = 74  # EX_IOERR: a file could not be written (space, quota, read-only, permission)
    NOT_APPROVED = 77  # EX_NOPERM: a published app's capabilities were not approved
    INTERRUPTED = 130  # Ctrl-C


class CspmError(Exception):
    """Base of every error that carries a message meant for the user."""

    code: ClassVar[str] = "error"
    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def as_json(self) -> dict[str, object]:
        """The `error` object of a `--json` answer."""
        return {"code": self.code, "message": self.message, **({"hint": self.hint} if self.hint else {})}


# --- the input is wrong (exit 2) ---------------------------------------------------------------

class InputError(CspmError):
    """What the user gave is wrong (a missing file, a name that does not exist, a bad version spec):
    fixing the input, not retrying, is the way out."""

    code = "input"
    exit_code = ExitCode.USAGE


class FormatError(InputError):
    """A file that does not parse or does not match its schema; names file, line and field."""

    code = "input.format"

    def __init__(self, file: str, message: str, line: int | None = None, field: str | None = None,
                 hint: str | None = None) -> None:
        where = file if line is None else f"{file}:{line}"
        text = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        super().__init__(text, hint)
        self.file = file
        self.line = line
        self.field = field


class NameInvalid(InputError):
    """A package name or requirement that is not allowed; says what is."""

    code = "input.name"


class StaleLock(InputError):
    """The lock no longer fits the app (under --frozen / --check): the input must be fixed first."""

    code = "input.stale_lock"


class PackageNotFound(InputError):
    """No registry has the name: the input is wrong (exit 2), and a hint says the closest known names."""

    code = "input.package_not_found"


class BrokenIndex(PackageNotFound):
    """A registry has the name but not one usable line of it: the registry's fault, not the input's."""

    code = "registry.broken_index"
    exit_code = ExitCode.FAILED


# --- the disk refused a write (exit 74) ----------------------------------------------------------

class WriteError(CspmError):
    """A file could not be written (no space, quota, read-only, permission); writes are atomic
    renames, so the previous file is still whole."""

    code = "io.write"
    exit_code = ExitCode.IO


# --- plug-ins and what they may do -------------------------------------------------------------

class PluginError(CspmError):
    """A plug-in that cannot be loaded or that failed while running."""

    code = "plugin"


class RunFailed(PluginError):
    """The entry itself failed (trapped, timed out, answered malformed JSON); `trace` is the call tree
    up to the failure, so `--trace` can still show what ran."""

    code = "plugin.failed"

    def __init__(self, message: str, trace: Span) -> None:
        super().__init__(message)
        self.trace = trace


class InterfaceError(PluginError):
    """A module whose imports or exports do not fit its kind and ABI."""

    code = "plugin.interface"


class PluginFileMissing(PluginError, InputError):
    """An app's `plugin_name` names a file that is not there: the app file is wrong (exit 2)."""

    code = "input.plugin_file_missing"
    exit_code = ExitCode.USAGE


class CapabilityError(CspmError):
    """A plug-in or app asks for something it was not granted."""

    code = "capability"


class NotApproved(CapabilityError):
    """A published app asks for capabilities the user has not approved."""

    code = "capability.not_approved"
    exit_code = ExitCode.NOT_APPROVED


class CapabilityChange(CspmError):
    """An upgrade that asks for more than the lock granted."""

    code = "capability.change"


# --- trust -------------------------------------------------------------------------------------

class SignatureError(CspmError):
    """A signature that does not prove what it must; the message says expected vs found."""

    code = "trust.signature"


class SignerChange(CspmError):
    """An upgrade signed by someone else than the lock pinned."""

    code = "trust.signer_change"


class TokenOriginError(CspmError):
    """A URL that is not on the origin a registry's token is bound to."""

    code = "trust.token_origin"


# --- registries, resolution, the store ---------------------------------------------------------

class ResolutionError(CspmError):
    """No set of versions satisfies the requirements; the message says which conflict."""

    code = "resolve.no_solution"


class RegistryUnavailable(CspmError):
    """A registry that cannot be reached or whose config.json is refused."""

    code = "registry.unavailable"


class RegistryAuthError(RegistryUnavailable):
    """A registry that asks for credentials cspm does not have, or refuses the ones it has."""

    code = "registry.auth"


class BadIndexLine(CspmError):
    """An index line that does not parse or match its schema (reported, then skipped)."""

    code = "registry.bad_index_line"


class FetchError(CspmError):
    """A blob or bundle that could not be downloaded or was refused on arrival."""

    code = "registry.fetch"


class StoreError(CspmError):
    """The content-addressed store refused an operation (a bad digest, a corrupted blob)."""

    code = "store"


class DigestMismatch(StoreError):
    """Bytes whose sha256 is not the digest they were fetched for."""

    code = "store.digest_mismatch"


class StoreWriteError(StoreError, WriteError):
    """The store's disk refused a write: exit 74 like any other failed write."""

    code = "io.store_write"
    exit_code = ExitCode.IO


# --- publishing --------------------------------------------------------------------------------

class PublishError(CspmError):
    """A package that cannot be published (before any request is sent)."""

    code = "publish"


class Refused(PublishError):
    """The registry's error answer (its words), with the HTTP status and its API error code
    (`cspm.protocol.api_errors`), which `--json` shows as `api_code`."""

    code = "publish.refused"

    def __init__(self, message: str, hint: str | None, status: int, api_code: str | None) -> None:
        super().__init__(message, hint)
        self.status, self.api_code = status, api_code

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "status": self.status, **({"api_code": self.api_code} if self.api_code else {})}


class CannotCheck(PublishError):
    """`cspm login` could not ask the registry about a token (no write API, unreachable, an old server)."""

    code = "publish.cannot_check"


# --- apps, models, index builds ----------------------------------------------------------------

class NotAnApp(CspmError):
    """A published package that was asked to run but is not an app."""

    code = "app.not_an_app"


class EditError(CspmError):
    """app.yaml could not be edited in place (`cspm add`, `cspm remove`)."""

    code = "app.edit"


class BadAppPackage(CspmError):
    """An app package (bundle) that cannot be built or that is refused on arrival."""

    code = "app.bad_package"


class ModelError(CspmError):
    """A model or data file that is not what it claims (not GGUF, too large, unknown)."""

    code = "model"


class ModelNotFound(ModelError, InputError):
    """A name or version that the registry does not have: the input is wrong (exit 2)."""

    code = "input.model_not_found"
    exit_code = ExitCode.USAGE


class BundleError(CspmError):
    """`cspm bundle` cannot make a self-contained folder of this app (a machine-bound secret or folder)
    or will not write where it was told (a non-empty folder that is not a bundle)."""

    code = "bundle"


class BundleInvalid(BundleError):
    """A bundle folder that does not verify against its bundle.json: a missing, extra or changed file,
    a path that leaves the folder, an unknown bundle_version, a plan that does not validate."""

    code = "bundle.invalid"


class WebError(CspmError):
    """`cspm web` cannot make the static site of an app: the JavaScript host is not built, the app
    needs what a page cannot have (a secret), or the `--out` folder is neither empty nor a site."""

    code = "web"


class IndexBuildError(CspmError):
    """`cspm index build` refused its sources or its output folder."""

    code = "index.build"


# --- serving (`cspm serve`) ----------------------------------------------------------------------

class Busy(CspmError):
    """Every instance is in use and the queue is full: try again after `retry_after` seconds."""

    code = "serve.busy"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, hint=f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class DeadlineExceeded(CspmError):
    """A served request ran past its wall-clock deadline and was cancelled."""

    code = "serve.timeout"


class KvUnavailable(CspmError):
    """The kv database (PostgreSQL, `--kv`/`CSPM_KV_URL`) cannot be reached or refused a request; a write
    that failed was rolled back, and the request may be retried once the database is back."""

    code = "kv.unavailable"


# --- the registry server's own command line ----------------------------------------------------

class ServerError(CspmError):
    """An error of `cspm-registry` (its data dir, its trust policy, an export)."""

    code = "server"


class StorageError(ServerError):
    """A data dir this version cannot use."""

    code = "server.storage"


class TrustTooLarge(ServerError):
    """A trust policy that would make config.json larger than cspm reads."""

    code = "server.trust_too_large"


class ExportError(ServerError):
    """`cspm-registry export` cannot write where it was asked to."""

    code = "server.export"


_OS_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free some space (or `cspm cache clean`) and run it again"),
    errno.EDQUOT: ("disk quota exceeded", "free some space (or `cspm cache clean`) and run it again"),
    errno.EROFS: ("the file system is read-only", "run it where the files can be written"),
    errno.EACCES: ("permission denied", "check the owner and mode of that path"),
    errno.EPERM: ("operation not permitted", "check the owner and mode of that path"),
}


def write_error(exc: OSError, where: str | None = None) -> WriteError | None:
    """A failed write said the same way wherever it happens (a lock, the store, a cache), or None for
    an OSError that is not about the disk."""
    if exc.errno not in _OS_ERRORS:
        return None
    what, hint = _OS_ERRORS[exc.errno]
    place = where or exc.filename
    return WriteError(what + (f" ({place})" if place else ""), hint)
