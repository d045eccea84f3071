"""What a verification imports: the signer-only cloud backends stay out, and nothing else is disturbed.

Each case runs in a fresh interpreter: whether boto3 is imported depends on what the process imported
before, which a test process shared with others cannot control.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fresh(code: str) -> dict:
    """Run `code` in a new interpreter on this tree; it prints one JSON object."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("importer", ["_import_verifier", "_import_sslib"])
def test_boto3_is_hidden_only_while_the_libraries_load(importer: str) -> None:
    pytest.importorskip("boto3")  # without it there is nothing to hide
    found = fresh(f"""
import json, sys
from cspm.verify import signature
signature.{importer}()
loaded = "boto3" in sys.modules
import securesystemslib.signer._aws_signer as aws
unavailable = aws.AWS_IMPORT_ERROR is not None
import boto3  # the registry's S3 store imports it later: it must still work
print(json.dumps({{"loaded": loaded, "aws_unavailable": unavailable, "later": boto3.__name__,
                  "left": [m for m, v in sys.modules.items() if v is None and m.startswith("boto3")]}}))
""")
    assert found == {"loaded": False, "aws_unavailable": True, "later": "boto3", "left": []}


def test_boto3_imported_before_is_left_alone() -> None:
    pytest.importorskip("boto3")
    found = fresh("""
import json, sys
import boto3
from cspm.verify import signature
signature._import_verifier()
import securesystemslib.signer._aws_signer as aws
print(json.dumps({"same": sys.modules["boto3"] is boto3, "aws_available": aws.AWS_IMPORT_ERROR is None}))
""")
    assert found == {"same": True, "aws_available": True}


def test_a_verification_still_verifies_after_the_guarded_import(tmp_path: Path) -> None:
    """The keyed round trip in a fresh process, where the guard is what loads securesystemslib."""
    found = fresh(f"""
import json
from pathlib import Path
from cspm.verify import signature
public = signature.keygen(Path({str(tmp_path / 'k.pem')!r}))
envelope, _ = signature.sign_keyed(Path({str(tmp_path / 'k.pem')!r}).read_bytes(), "acme/calc", "1.0.0",
                                   "sha256:" + "ab" * 32)
rule = signature.Rule("acme/*", keys=(public,))
signer = signature.verify(envelope, "dsse-ed25519", name="acme/calc", digest="sha256:" + "ab" * 32, what="x",
                          rule=rule)
try:
    signature.verify(envelope, "dsse-ed25519", name="acme/calc", digest="sha256:" + "cd" * 32, what="x", rule=rule)
    refused = False
except signature.SignatureError:
    refused = True
print(json.dumps({{"signer": signer.identity == signature.key_id(public), "refused": refused}}))
""")
    assert found == {"signer": True, "refused": True}


def test_the_verify_command_module_imports_no_index() -> None:
    """`cspm verify FILE --bundle SIG` with an explicit signer imports neither the index nor the config."""
    found = fresh("""
import json, sys
from cspm.cli import trust
print(json.dumps(sorted(m for m in ("cspm.index.federation", "cspm.index.query", "cspm.formats.userconfig")
                        if m in sys.modules)))
""")
    assert found == []
