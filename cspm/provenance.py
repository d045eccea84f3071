"""Signatures at install: every locked blob against the trust policy and the signer its lock pins.

The rule for a package comes from the user config's `trust` first, then its registry's
`config.json` `policy`. The bundle is fetched beside the blob (its path is in the lock, or for an
older lock in the index line) and checked offline against the blob's digest; the verdict is cached
per blob digest and rule, so a warm install verifies nothing twice. A download is verified inside
its check, before the store keeps it (`verdict`); a stored blob that is refused is removed
(`check_plugin`): nothing unproven stays cached as good.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cspm import atomicfile
from cspm.cachedir import Bucket
from cspm.errors import CspmError
from cspm.formats import bounded_json
from cspm.formats.lock import Lock, LockedPlugin
from cspm.index.federation import Federation
from cspm.index.source import IndexSource
from cspm.store import Store
from cspm.verify.signature import (
    MAX_TRUST_CONFIG,
    TRUST_CONFIG_ENV,
    Rule,
    SignatureError,
    Signer,
    rule_for,
    verify,
)

MAX_VERDICT = 64 * 1024


@dataclass(frozen=True)
class Verdict:
    name: str
    version: str
    signer: Signer | None
    rule: str | None  # the pattern that applied
    cached: bool


def _verdict_path(digest: str) -> Path:
    return Bucket.VERDICTS.path() / f"{digest.split(':', 1)[1]}.json"


def _fingerprint(rule: Rule | None, pinned: Signer | None) -> str:
    """What a verdict was proven under: the rule, the pinned signer and the Sigstore trust it was checked
    against (a verdict proven under another trusted root is not this one's)."""
    text = json.dumps([vars(rule) if rule else None, pinned.to_dict() if pinned else None, _trust_identity()],
                      sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def _trust_identity() -> str:
    """The trust config's own identity: the sha256 of CSPM_SIGSTORE_TRUST_CONFIG's file, or "production"
    (whose root only `cspm trust refresh` changes, and that forgets every verdict)."""
    path = os.environ.get(TRUST_CONFIG_ENV)
    if not path:
        return "production"
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read(MAX_TRUST_CONFIG)).hexdigest()
    except OSError:
        return f"unreadable:{path}"  # verification will say why; no verdict cached under it is reused


def forget_verdicts() -> int:
    """Drop every cached verdict (after the trusted root changed); how many there were."""
    folder = Bucket.VERDICTS.path()
    removed = 0
    for path in folder.glob("*.json") if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


def _cached(digest: str, key: str) -> dict | None:
    """The cached verdict for this rule, or None when there is none or it is not what `_remember` writes."""
    try:
        with _verdict_path(digest).open("rb") as handle:
            data = bounded_json.loads(handle.read(MAX_VERDICT + 1), max_bytes=MAX_VERDICT)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    signer = data.get("signer")
    if signer is not None and not (isinstance(signer, dict) and set(signer) == {"issuer", "identity"}
                                   and all(isinstance(v, str) for v in signer.values())):
        return None
    return data


def _remember(digest: str, key: str, signer: Signer | None) -> None:
    """Best effort: a verdict that cannot be cached (a full disk) is checked again next time."""
    path = _verdict_path(digest)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomicfile.write(path, json.dumps({"key": key, "signer": signer.to_dict() if signer else None}),
                         durable=False)


def verdict(plugin: LockedPlugin, source: IndexSource, federation: Federation, user_trust: dict, *,
            from_lock: bool = True) -> Verdict:
    """The signature of `plugin` checked against the trust rule and the signer its lock pins (SignatureError
    when refused). Only the digest is verified, never the blob's bytes: run inside the download check
    (`fetch.Download.check`), it refuses a blob before the store keeps it. `from_lock`: where the lock
    records the signature (`LockedPlugin.located`), no index file is read for it."""
    what = f"{plugin.name} {plugin.version}"
    policy = source.config().get("policy")
    rule = rule_for(plugin.name, user_trust, policy if isinstance(policy, dict) else {})
    pinned = Signer(**plugin.signer) if plugin.signer else None
    key = _fingerprint(rule, pinned)
    cached = _cached(plugin.digest, key)
    if cached is not None:
        signer = Signer(**cached["signer"]) if cached.get("signer") else None
        return Verdict(plugin.name, str(plugin.version), signer, rule.pattern if rule else None, True)
    signature = plugin.signature if from_lock and plugin.located else _signature_of(plugin, federation, source)
    bundle = None
    if signature is not None and signature.get("bundle"):
        bundle = source.read_bundle(signature["bundle"], plugin.name)
        if bundle is None:
            raise SignatureError(f"{what}: registry {source.registry.name} lists a signature "
                                 f"({signature['bundle']}) but does not serve it")
    signer = verify(bundle, signature.get("kind") if signature else None, name=plugin.name,
                    digest=plugin.digest, what=what, rule=rule, pinned=pinned, version=str(plugin.version))
    _remember(plugin.digest, key, signer)
    return Verdict(plugin.name, str(plugin.version), signer, rule.pattern if rule else None, False)


def check_plugin(plugin: LockedPlugin, source: IndexSource, federation: Federation, store: Store,
                 user_trust: dict, *, from_lock: bool = True) -> Verdict:
    """`verdict` of a blob already in the store: a refusal removes it (fail closed: nothing unproven
    stays cached as good, e.g. after the trust policy changed)."""
    try:
        return verdict(plugin, source, federation, user_trust, from_lock=from_lock)
    except SignatureError:
        store.remove(plugin.digest)
        raise


def _signature_of(plugin: LockedPlugin, federation: Federation, source: IndexSource) -> dict | None:
    try:
        found = federation.versions(plugin.name)
    except CspmError:
        found = None
    if found is None or found.source is not source:
        if plugin.signer is None:
            return None
        raise SignatureError(f"{plugin.name} {plugin.version}: its signature cannot be found (registry "
                             f"{source.registry.name} does not list it)")
    entry = next((e for e in found.entries if e.version == plugin.version and e.digest == plugin.digest), None)
    if entry is None:
        raise SignatureError(f"{plugin.name} {plugin.version}: registry {source.registry.name} no longer lists "
                             f"this version with digest {plugin.digest}")
    return entry.signature


def check_lock(lock: Lock, federation: Federation, store: Store, user_trust: dict,
               sources: dict[str, IndexSource], only: set[str] | None = None,
               fresh: set[str] | None = None, *, from_lock: bool = True) -> list[Verdict]:
    """Verdicts for every locked plug-in already stored (or those whose digest is in `only`).

    On a refusal, the blobs just downloaded (`fresh`) that were not proven yet leave the store too
    (a download is verified before it is stored, see `verdict`: this is for blobs another process
    stored meanwhile).
    """
    todo = [p for p in lock.plugins if only is None or p.digest in only]
    verdicts: list[Verdict] = []
    try:
        for plugin in todo:
            verdicts.append(check_plugin(plugin, sources[plugin.name], federation, store, user_trust,
                                         from_lock=from_lock))
    except CspmError:
        proven = {(v.name, v.version) for v in verdicts}
        for plugin in todo:
            if plugin.digest in (fresh or set()) and (plugin.name, str(plugin.version)) not in proven:
                store.remove(plugin.digest)
        raise
    return verdicts
