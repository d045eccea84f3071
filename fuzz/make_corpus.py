"""Rebuild the seed corpora under fuzz/corpus/<harness>/ from real files of this repository.

    python fuzz/make_corpus.py

Seeds are named by their sha1, as libFuzzer names what it finds. `formats` seeds start with the
byte that picks the loader (fuzz/harnesses/formats.py). `wasm` seeds are the WAT fixtures of
tests/wat/ compiled with wat2wasm (Debian package wabt) plus a few hand-made modules.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
MAX_SEED = 16 * 1024

CONFIG = b"""registries:
  - {name: corp, url: "https://registry.corp.example/cspm", namespaces: [corp]}
  - {name: chainsocket, url: ../index}
trust:
  chainsocket: {issuer: "https://token.actions.githubusercontent.com", identity: "https://github.com/x/*"}
"""
EXTRA_APPS = [
    b"entry: a\ntools:\n  - {name: a, plugin_name: ~/plugins/calc.wasm, config: {since: 2001-12-14}}\n",
    b"entry: a\nx: &x {k: v}\ntools:\n  - {name: a, plugin: 'acme/calc@^1', config: *x, "
    b"secrets: {key: 'file:~/.key'}, grant: {paths: {'~/data': /data}}}\n",
]
SPECIFIERS = ["", "*", "1", "1.2", "1.2.3", "^1", "^1.2", "^0.2.3", "^0.0.3", "~1", "~1.2", "~1.2.3", ">=1,<2",
              "~=1.0", "==1.4.*", "!=1.3.0", "^ 1.2", " >=1.0 ", "1.x", "=1.2", "latest", "^1.2.3.4",
              "chainsocket/calculator@^1", "acme/calc>=1,<2", "acme/calc", "test/echo@~1.0"]
# a module that exports `call` and imports one Extism function: magic, version, type, import, func, export
TINY = bytes.fromhex("0061736d01000000" "010401600000" "021b01" "0f65787469736d3a686f73742f656e76"
                     "05696e707574000000" "03020100" "070801" "0463616c6c0001" "0a040102000b")


def seed(harness: str, data: bytes) -> None:
    if len(data) > MAX_SEED:
        return
    folder = CORPUS / harness
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main() -> None:
    shutil.rmtree(CORPUS, ignore_errors=True)
    apps = sorted(ROOT.glob("examples/*.yaml")) + sorted(ROOT.glob("examples/*/app.yaml"))
    for path in [p for p in apps if p.name != "plugin.yaml"]:
        seed("formats", b"\x00" + path.read_bytes())
    for path in sorted(ROOT.glob("plugins/*/plugin.yaml")) + sorted(ROOT.glob("examples/*/plugin.yaml")):
        seed("formats", b"\x01" + path.read_bytes())
    for path in sorted(ROOT.glob("examples/**/*.lock")):
        seed("formats", b"\x02" + path.read_bytes())
    seed("formats", b"\x03" + CONFIG)
    for extra in EXTRA_APPS:  # shapes the docs show that the examples do not use
        seed("formats", b"\x00" + extra)
    for path in sorted((ROOT / "index" / "index").glob("*/*"))[:8]:
        for line in path.read_bytes().splitlines()[:2]:
            seed("formats", b"\x04" + line)
    for text in SPECIFIERS:
        seed("specifier", text.encode())
    for path in sorted(ROOT.glob("examples/**/*.yaml")):
        for ref in re.findall(r"plugin: *\"?([a-z0-9/@^~<>=,.* -]+)", path.read_text(encoding="utf-8")):
            seed("specifier", ref.strip().encode())
    seed("wasm", TINY)
    seed("wasm", b"\0asm\x01\0\0\0")
    with tempfile.TemporaryDirectory() as tmp:
        for source in sorted((ROOT / "tests" / "wat").glob("*.wat")):
            out = Path(tmp) / f"{source.stem}.wasm"
            subprocess.run(["wat2wasm", str(source), "-o", str(out)], check=True)
            seed("wasm", out.read_bytes())
    for harness in sorted(p.name for p in CORPUS.iterdir()):
        print(f"{harness}: {len(list((CORPUS / harness).iterdir()))} seeds")


if __name__ == "__main__":
    main()
