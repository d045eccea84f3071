"""Which cspm modules import which: per module, or per layer, at the working tree or any git revision.

    python scripts/module_imports.py                 # every module of cspm and cspm_registry, now
    python scripts/module_imports.py --layers        # one row per layer: the layers it reaches into
    python scripts/module_imports.py --rev 1e12b7b   # the same at an earlier commit (before/after)

Static (the `ast` of each file, nothing is imported), so it runs on any revision. An import inside a
function is lazy and marked `~`: it costs nothing until that code runs. `--check` exits 1 when a
layer imports one it must not (the rules in LAYER_RULES), which is how "where data flows back" is
answered with a command instead of a reading.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"cspm": "cspm", "cspm_registry": "registry-server/cspm_registry"}

# layer of a module: the first rule whose prefix matches (most specific first)
LAYERS = [
    ("cspm.protocol.kinds", "base"), ("cspm.protocol", "protocol"), ("cspm.formats.plan", "plan"),
    ("cspm.formats", "formats"),
    ("cspm.runtime", "runtime"), ("cspm.cli", "cli"), ("cspm.verify", "verify"),
    ("cspm.conformance", "conformance"), ("cspm_registry", "server"),
    *((m, "base") for m in ("cspm.errors", "cspm.atomicfile", "cspm.wording", "cspm.paths", "cspm.cachedir",
                            "cspm.store", "cspm.fetch", "cspm.http_client", "cspm.schemas", "cspm.pg_pool")),
    # building a registry from plug-in sources packs and locks apps: a publisher's tool above the manager
    ("cspm.index.from_sources", "manager"), ("cspm.index.check", "manager"),
    # who may read a registry: sources (OCI pulls) and publish both ask it
    ("cspm.credentials", "index"),
    ("cspm.index", "index"), ("cspm.__main__", "cli"), ("cspm", "manager"),
]
# what each layer must never import, even lazily: the directions in which data may not flow back
EVERYTHING = {"base", "plan", "formats", "protocol", "runtime", "index", "verify", "manager", "cli", "server",
              "conformance"}
LAYER_RULES = {
    "base": EVERYTHING - {"base"},
    "plan": EVERYTHING - {"base", "plan"},
    "formats": EVERYTHING - {"base", "plan", "formats"},
    "protocol": EVERYTHING - {"base", "plan", "formats", "protocol"},
    "runtime": EVERYTHING - {"base", "plan", "runtime"},
    "verify": EVERYTHING - {"base", "plan", "formats", "protocol", "verify"},
    "index": EVERYTHING - {"base", "plan", "formats", "protocol", "verify", "index"},
    "manager": {"cli", "server", "conformance"},
    "server": {"cli", "runtime", "conformance"},
}
# single modules of a forbidden layer that a layer may still use, with the reason
ALLOWED = {
    ("runtime", "cspm.formats.bounded_json"): "a bounded JSON parser, no format of its own",
    ("runtime", "cspm.formats.names"): "the one rule for component and package names",
    ("runtime", "cspm.formats.hosts"): "grant host patterns: made canonical by the planner, matched by the gateway",
    ("runtime", "cspm.verify.wasm"): "a bounded reader of a module's sections, with no policy of its own",
    ("base", "cspm"): "the package's version, for the user agent and cache keys",
}


def layer(module: str) -> str:
    return next(name for prefix, name in LAYERS if module == prefix or module.startswith(prefix + "."))


def sources(rev: str | None) -> dict[str, str]:
    """Module name -> source text, from the tree or from a commit."""
    found: dict[str, str] = {}
    for package, folder in PACKAGES.items():
        if rev is None:
            paths = [p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*.py")]
        else:
            listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, folder + "/"], cwd=ROOT,
                                     capture_output=True, text=True, check=True).stdout
            paths = [p for p in listing.splitlines() if p.endswith(".py")]
        for path in paths:
            if "/compiled/" in path or "/scaffolds/" in path or "/sdk/" in path:
                continue
            text = (ROOT / path).read_text() if rev is None else subprocess.run(
                ["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
            name = package + "." + path[len(folder) + 1:-3].replace("/", ".")
            found[name.removesuffix(".__init__")] = text
    return found


def imports(module: str, text: str, known: set[str]) -> dict[str, bool]:
    """cspm modules that `module` imports -> lazy (only inside a function)."""
    out: dict[str, bool] = {}
    is_package = False  # relative imports are not used in cspm; kept simple on purpose
    del is_package

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # types only: never imported when it runs
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = [f"{child.module}.{a.name}" for a in child.names]
            for name in names:  # `from a import b`: the module a.b, else the module a
                target = next((m for m in (name, name.rsplit(".", 1)[0]) if m in known), None)
                if target and target != module:
                    out[target] = out.get(target, True) and inner
            visit(child, inner)

    visit(ast.parse(text), False)
    return out


def graph(rev: str | None) -> dict[str, dict[str, bool]]:
    texts = sources(rev)
    known = set(texts)
    return {module: imports(module, text, known) for module, text in sorted(texts.items())}


def violations(edges: dict[str, dict[str, bool]]) -> list[str]:
    found = []
    for module, targets in edges.items():
        forbidden = LAYER_RULES.get(layer(module), set())
        for target in targets:
            if layer(target) in forbidden and (layer(module), target) not in ALLOWED and \
                    (module, target) != ("cspm", "cspm.cli.main"):
                found.append(f"{module} ({layer(module)}) imports {target} ({layer(target)})")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", help="a git revision (default: the working tree)")
    parser.add_argument("--layers", action="store_true", help="one row per layer")
    parser.add_argument("--check", action="store_true", help="exit 1 if a layer imports one it must not")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    edges = graph(args.rev)
    if args.layers:
        table: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for module, targets in edges.items():
            for target, lazy in targets.items():
                if layer(target) != layer(module):
                    table[layer(module)][layer(target)].add("~" if lazy else "")
        rows = {src: {dst: ("~" if kinds == {"~"} else "") + dst for dst, kinds in dsts.items()}
                for src, dsts in table.items()}
        if args.json:
            print(json.dumps({k: sorted(v) for k, v in sorted(rows.items())}, indent=2))
        else:
            for src in sorted(rows):
                print(f"{src:12} -> {' '.join(sorted(rows[src].values(), key=lambda s: s.lstrip('~')))}")
    elif args.json:
        print(json.dumps({m: {t: ("lazy" if lazy else "eager") for t, lazy in sorted(ts.items())}
                          for m, ts in edges.items()}, indent=2))
    else:
        for module, targets in edges.items():
            shown = " ".join(("~" if lazy else "") + t.removeprefix("cspm.") for t, lazy in sorted(targets.items()))
            print(f"{module:40} {shown}")
    problems = violations(edges)
    if args.check or problems:
        for problem in problems:
            print(f"flows back: {problem}", file=sys.stderr)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
