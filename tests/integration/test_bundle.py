"""`cspm bundle` (issue 20): a self-contained folder (bundle.json, blobs/, mounts/) that is the same bytes
when made twice, holds no path of the machine that made it and no secret's value, replaces only a
previous bundle, and that `cspm.bundle.load` (and so `cspm run DIR`) refuses unless every file is
exactly what bundle.json says."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from cspm import bundle, planner
from cspm.errors import BundleError, BundleInvalid
from cspm.formats import app as app_format
from cspm.formats import plan as plan_format
from cspm.formats.plan import Origin
from tests.conftest import ROOT, conformance_wasm, write_app
from tests.integration.test_cli import cspm

HELLO = ROOT / "examples" / "hello-conformance.yaml"
DEMO_QUESTION = "Who was born first, Kogail Bagrol or Stolvle Thema?"  # the README's (test_selfask_demo.py)
DEMO_ANSWER = "Kogail Bagrol"


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    for lang in ("rust", "c", "zig"):
        conformance_wasm(lang)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes); a link or anything else fails the test."""
    out = {}
    for path in sorted(folder.rglob("*")):
        assert not path.is_symlink(), path
        if path.is_file():
            out[path.relative_to(folder).as_posix()] = path.read_bytes()
        else:
            assert path.is_dir(), path
    return out


def make(app: str | Path, out: Path, *extra: str, env: dict | None = None) -> dict:
    result = cspm("bundle", str(app), "--out", str(out), "--json", *extra, env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def machine_paths() -> list[str]:
    """Where the builder's files are (the apps' folders are under /tmp): none may appear in bundle.json."""
    return [str(ROOT), os.environ["CSPM_CACHE_DIR"], os.environ["CSPM_DATA_DIR"], str(Path.home()), "/tmp/"]


def check_bundle(folder: Path) -> dict:
    """bundle.json as the format says: canonical text, every other file listed with its sha256 and
    size, module and mount paths relative to the folder, no machine path anywhere."""
    text = (folder / "bundle.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    assert data["bundle_version"] == 1 and set(data) == {"bundle_version", "plan", "files"}
    files = tree(folder)
    assert set(files) - {"bundle.json"} == set(data["files"])
    for rel, entry in data["files"].items():
        assert entry == {"sha256": hashlib.sha256(files[rel]).hexdigest(), "size": len(files[rel])}, rel
    plan_format.check(data["plan"])
    for component in data["plan"]["components"].values():
        assert component["module"]["path"] == "blobs/" + component["module"]["digest"].removeprefix("sha256:")
        for mount in component["grant"]["mounts"]:
            assert mount["host"] == "mounts/" + mount["digest"].removeprefix("sha256:")
    # a published app keeps its identity (kv scope, origin), which for a folder registry is its file: URL
    origin = data["plan"]["app"]["origin"]
    identity = text.replace(origin["registry_url"], "<registry>") if origin else text
    for place in machine_paths():
        assert place not in identity, place
    return data


def test_a_local_app_bundles_to_the_same_bytes_twice_and_runs_from_the_folder(tmp_path: Path) -> None:
    info = make(HELLO, tmp_path / "one")
    assert info["app"] == "hello-conformance" and info["modules"] == 3 and info["mounts"] == 0
    make(HELLO, tmp_path / "two", "--offline")
    assert tree(tmp_path / "one") == tree(tmp_path / "two")
    for a, b in zip(sorted((tmp_path / "one").rglob("*")), sorted((tmp_path / "two").rglob("*")), strict=True):
        assert a.stat().st_mode == b.stat().st_mode, a  # the same folder, not just the same bytes
    data = check_bundle(tmp_path / "one")
    assert data["plan"]["app"]["source"] == "hello-conformance.yaml"
    assert data["plan"]["components"]["echo_agent"]["where"].startswith("hello-conformance.yaml:")
    assert len(data["files"]) == 3 and all(rel.startswith("blobs/") for rel in data["files"])

    made = bundle.load(tmp_path / "one")  # absolute paths into the folder, each module checked
    for component in made.components.values():
        assert Path(component.module.path).parent == (tmp_path / "one" / "blobs").resolve()
    planned = planner.build(app_format.load(HELLO))
    assert {n: c.module.digest for n, c in made.components.items()} == {
        n: c.module.digest for n, c in planned.components.items()}
    ran = cspm("run", str(tmp_path / "one"), "--input", "hi", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["output"] == "hi"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_the_self_ask_demo_bundles_with_its_model_and_data_and_answers_from_the_bundle(tmp_path: Path) -> None:
    info = make("chainsocket/self-ask-demo", tmp_path / "demo", "--allow-capabilities")
    assert info["modules"] == 4 and info["mounts"] == 2
    data = check_bundle(tmp_path / "demo")
    assert data["plan"]["app"]["origin"]["name"] == "chainsocket/self-ask-demo"
    mounted = {m["guest"]: m["host"] for c in data["plan"]["components"].values() for m in c["grant"]["mounts"]}
    assert set(mounted) == {"/models/selfask", "/data/people"}
    assert (tmp_path / "demo" / mounted["/models/selfask"] / "model.gguf").read_bytes()[:4] == b"GGUF"
    assert (tmp_path / "demo" / mounted["/data/people"] / "people.json").is_file()
    make("chainsocket/self-ask-demo", tmp_path / "again", "--allow-capabilities")
    assert tree(tmp_path / "demo") == tree(tmp_path / "again")
    # a published app that asks for no host and no secret runs from its bundle without a question
    ran = cspm("run", str(tmp_path / "demo"), "--input", DEMO_QUESTION, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == DEMO_ANSWER


def test_a_secret_is_bundled_by_reference_never_its_value(tmp_path: Path) -> None:
    app = write_app(tmp_path, f"""
entry: echo
tools:
  - name: echo
    description: echoes
    plugin_name: {conformance_wasm("c")}
    config: {{kind: tool}}
    secrets: {{api_key: env:BUNDLE_TEST_KEY}}
    grant: {{hosts: ["https://api.example.com"]}}
""")
    make(app, tmp_path / "out", env={"BUNDLE_TEST_KEY": "sk-never-in-a-bundle-789"})
    data = check_bundle(tmp_path / "out")
    assert data["plan"]["components"]["echo"]["secrets"][0]["source"] == "env:BUNDLE_TEST_KEY"
    assert b"sk-never-in-a-bundle" not in b"".join(tree(tmp_path / "out").values())


@pytest.mark.parametrize("extra, expect", [
    ("secrets: {api_key: 'file:key.txt'}", "secret `api_key` is read from a file of this machine"),
    ("grant: {paths: {'.': /work}}", "the folder it is granted at /work is this machine's"),
])
def test_what_a_bundle_cannot_carry_is_refused_before_anything_is_written(tmp_path: Path, extra: str,
                                                                          expect: str) -> None:
    (tmp_path / "key.txt").write_text("secret-value\n")
    app = write_app(tmp_path, f"""
entry: echo
tools:
  - name: echo
    description: echoes
    plugin_name: {conformance_wasm("c")}
    {extra}
""")
    result = cspm("bundle", str(app), "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "bundle" and expect in error["message"] and error["hint"]
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_the_out_folder_is_new_empty_or_a_previous_bundle(tmp_path: Path) -> None:
    other = tmp_path / "not-a-bundle"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    result = cspm("bundle", str(HELLO), "--out", str(other), "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["error"]["code"] == "bundle"
    assert [p.name for p in other.iterdir()] == ["notes.txt"]

    (tmp_path / "empty").mkdir()
    make(HELLO, tmp_path / "empty")
    check_bundle(tmp_path / "empty")

    # a previous bundle is replaced whole: a stale blob does not survive
    out = tmp_path / "b"
    make(HELLO, out)
    stale = out / "blobs" / ("0" * 64)
    stale.write_bytes(b"\0asm stale")
    make(HELLO, out)
    assert not stale.exists()
    check_bundle(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "empty", "not-a-bundle"]

    (tmp_path / "link").symlink_to(tmp_path / "empty")
    result = cspm("bundle", str(HELLO), "--out", str(tmp_path / "link"))
    assert result.returncode == 1 and "symbolic link" in result.stderr
    (tmp_path / "file").write_text("x")
    result = cspm("bundle", str(HELLO), "--out", str(tmp_path / "file"))
    assert result.returncode == 1 and "not a folder" in result.stderr


def _tamper_blob(folder: Path) -> None:
    blob = next((folder / "blobs").iterdir())
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))


def _edit_manifest(change):  # type: ignore[no-untyped-def]
    def edit(folder: Path) -> None:
        data = json.loads((folder / "bundle.json").read_text())
        change(data)
        (folder / "bundle.json").write_text(json.dumps(data))
    return edit


def _first(data: dict) -> dict:
    return next(iter(data["plan"]["components"].values()))


TAMPERING = {
    "a changed byte": (_tamper_blob, "was changed"),
    "a longer file": (lambda f: next((f / "blobs").iterdir()).open("ab").write(b"x"), "was changed"),
    "a missing file": (lambda f: next((f / "blobs").iterdir()).unlink(), "is missing"),
    "an extra file": (lambda f: (f / "blobs" / ("1" * 64)).write_bytes(b"\0asm"), "is not listed"),
    "an extra folder": (lambda f: (f / "extra").mkdir(), "extra is not part of the bundle"),
    "a linked file": (lambda f: (lambda b: (b.unlink(), b.symlink_to(ROOT / "README.md")))(
        next((f / "blobs").iterdir())), "symbolic link"),
    "a linked folder": (lambda f: (shutil.move(f / "blobs", f.parent / "elsewhere"),
                                   (f / "blobs").symlink_to(f.parent / "elsewhere")), "symbolic link"),
    "an unknown version": (_edit_manifest(lambda d: d.update(bundle_version=2)), "bundle_version 2"),
    "a path out of the folder": (_edit_manifest(lambda d: d["files"].update(
        {"blobs/../../etc/passwd": {"sha256": "0" * 64, "size": 1}})), "leaves the bundle folder"),
    "an absolute module path": (_edit_manifest(lambda d: _first(d)["module"].update(path="/etc/passwd")),
                                "its path must be blobs/"),
    "an invalid plan": (_edit_manifest(lambda d: d["plan"].update(entry="ghost")), "'ghost' is not one of"),
    "a file secret": (_edit_manifest(lambda d: _first(d)["secrets"].append(
        {"name": "k", "source": "file:/etc/shadow", "header": "Authorization", "format": "Bearer {}",
         "hosts": None, "query": None})), "env: only"),
    "not JSON": (lambda f: (f / "bundle.json").write_text("[" * 1000), "not a bundle manifest"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_tampered_bundle_is_refused_before_anything_runs(tmp_path: Path, case: str) -> None:
    make(HELLO, tmp_path / "b")
    bundle.load(tmp_path / "b")
    change, expect = TAMPERING[case]
    change(tmp_path / "b")
    with pytest.raises(BundleInvalid) as caught:
        bundle.load(tmp_path / "b")
    assert expect in caught.value.message, caught.value.message
    ran = cspm("run", str(tmp_path / "b"), "--input", "hi", "--json", cwd=tmp_path)
    assert ran.returncode == 1
    assert json.loads(ran.stdout)["error"]["code"] == "bundle.invalid"


def test_a_published_apps_bundle_that_reaches_out_runs_only_approved(tmp_path: Path) -> None:
    app = write_app(tmp_path, f"""
entry: echo
tools:
  - name: echo
    description: echoes
    plugin_name: {conformance_wasm("zig")}
    config: {{kind: tool}}
    grant: {{hosts: ["https://api.example.com"]}}
""")
    made = dataclasses.replace(planner.build(app_format.load(app)),
                               origin=Origin("someone/echo", "1.0.0", "elsewhere", "https://registry.example"))
    bundle.write(made, tmp_path / "b")
    assert bundle.load(tmp_path / "b").approved is False
    refused = cspm("run", str(tmp_path / "b"), "--input", "hi", "--json", cwd=tmp_path)
    assert refused.returncode == 77 and json.loads(refused.stdout)["error"]["code"] == "capability.not_approved"
    ran = cspm("run", str(tmp_path / "b"), "--input", "hi", "--json", "--allow-capabilities", cwd=tmp_path)
    assert ran.returncode == 0 and json.loads(ran.stdout)["output"] == "hi", ran.stderr


def test_a_damaged_store_blob_is_not_bundled(tmp_path: Path) -> None:
    wasm = tmp_path / "echo.wasm"
    shutil.copyfile(conformance_wasm("zig"), wasm)
    app = write_app(tmp_path, f"entry: echo\ntools:\n  - {{name: echo, description: e, plugin_name: {wasm}}}\n")
    made = planner.build(app_format.load(app))
    wasm.write_bytes(wasm.read_bytes() + b"\0")  # changed after it was planned
    with pytest.raises(BundleError, match="is not sha256:"):
        bundle.write(made, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.yaml", "echo.wasm"]  # no temporary folder left


def test_a_previous_bundle_is_replaced_where_folders_cannot_be_swapped(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    made = planner.build(app_format.load(HELLO))
    bundle.write(made, tmp_path / "b")
    first = tree(tmp_path / "b")
    (tmp_path / "b" / "blobs" / ("0" * 64)).write_bytes(b"stale")
    monkeypatch.setattr(bundle, "_exchange", lambda a, b: False)  # no renameat2: renamed aside, then removed
    info = bundle.write(made, tmp_path / "b")
    assert tree(tmp_path / "b") == first and info.files == 3
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_cspm_serve_serves_a_bundle_folder(tmp_path: Path) -> None:
    """`cspm serve DIR` takes a bundle as `cspm run DIR` does: verified, then served."""
    from tests.conftest import echo_chat_app
    from tests.integration.test_serve_openai import Served

    folder = tmp_path / "bundle"
    make(echo_chat_app(tmp_path), folder)
    served = Served(folder, env={"CSPM_DATA_DIR": str(tmp_path / "data")})
    try:
        answer = served.client().chat.completions.create(model="echo-chat",
                                                          messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "echo: hi"
    finally:
        assert served.stop() == 0
    blob = next((folder / "blobs").iterdir())
    blob.write_bytes(blob.read_bytes() + b"\0")
    refused = cspm("serve", str(folder), "--port", "0", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["code"] == "bundle.invalid"
