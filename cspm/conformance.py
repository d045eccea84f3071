"""The Python host's runner of the ABI conformance cases (conformance/abi1.json, format in
conformance/README.md).

The cases are data so that every host (this one, the JavaScript host) runs the same file and keeps its
own runner small: fill the plan template's placeholders, load a fresh host from the plan for each case,
do its steps, compare what was observed with what each step expects. Nothing here knows a case.

    doc = conformance.load(Path("conformance/abi1.json"))
    values = {"module": conformance.module_of(wasm), "echo_url": base_url}
    results = conformance.run_all(doc, values, echo_seen=lambda: seen)
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cspm import atomicfile
from cspm.errors import CspmError
from cspm.formats import bounded_json
from cspm.formats.plan import MAX_MODULE_BYTES, Plan, from_dict
from cspm.store import digest_of_file

if TYPE_CHECKING:
    from cspm.runtime.engine import Runtime
    from cspm.runtime.kv import KvStore

SCHEMA_FILE = "cases.schema.json"  # next to the case file
MAX_FILE_BYTES = 4 * 1024 * 1024  # the case file (abi1.json is ~15 KB: big data is generated, `repeat`)
MAX_DATA_BYTES = 16 * 1024 * 1024  # one generated input or expected output
PLACEHOLDER = re.compile(r"\$\{([a-z][a-z0-9_]{0,63})\}")
EchoSeen = Callable[[], Sequence[Mapping[str, Any]]]


class CasesInvalid(ValueError):
    """A case file that cannot be run; `str()` says where."""


@dataclass(frozen=True)
class Result:
    case: str
    passed: bool
    reason: str  # why it failed ("" when it passed): the step, what was expected and what was seen


class StepFailed(Exception):
    pass


# ---- the file ----------------------------------------------------------------------------------

def load(path: Path, schema: Path | None = None) -> dict[str, Any]:
    """The case file, bounded, checked against its schema (by default the one next to it), with unique
    ids and every `${name}` it uses declared."""
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise CasesInvalid(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        doc = bounded_json.loads(data, max_bytes=MAX_FILE_BYTES)
    except bounded_json.JsonRejected as exc:
        raise CasesInvalid(f"{path}: {exc}") from None
    check(doc, json.loads((schema or path.with_name(SCHEMA_FILE)).read_text(encoding="utf-8")), str(path))
    return doc


def check(doc: Any, schema: dict[str, Any], name: str = "the case file") -> None:
    """CasesInvalid naming the first field that breaks the schema, a repeated id or an undeclared name.
    fastjsonschema decides; jsonschema words the error (as cspm.schemas.problem does)."""
    import fastjsonschema

    try:
        fastjsonschema.compile(schema)(doc)
    except fastjsonschema.JsonSchemaException:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import best_match

        found = best_match(Draft202012Validator(schema).iter_errors(doc))
        where = "/".join(str(p) for p in found.absolute_path) if found is not None else ""
        raise CasesInvalid(f"{name}: {where or '(top)'}: {found.message if found else 'does not match its schema'}"
                           ) from None
    ids = [case["id"] for case in doc["cases"]]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise CasesInvalid(f"{name}: case ids used more than once: {', '.join(repeated)}")
    declared = set(doc["placeholders"]) | set(doc["files"])
    used = {m for text in _strings(doc["plan"]) for m in PLACEHOLDER.findall(text)}
    used |= {m for text in _strings(doc["cases"]) for m in PLACEHOLDER.findall(text)}
    if used - declared:
        raise CasesInvalid(f"{name}: undeclared placeholders: {', '.join(sorted(used - declared))}")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def module_of(wasm: Path) -> dict[str, Any]:
    """The `${module}` value of a plug-in file: plan.json's module object."""
    size = wasm.stat().st_size
    if size > MAX_MODULE_BYTES:
        raise CasesInvalid(f"{wasm}: larger than {MAX_MODULE_BYTES // 2**20} MiB")
    return {"digest": digest_of_file(wasm), "path": str(wasm.resolve()), "size": size}


def fill(value: Any, values: Mapping[str, Any]) -> Any:
    """`value` with each `${name}` replaced: a string that is only the placeholder becomes the value
    itself (any JSON); inside other text the value must be a string."""
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value)
    if whole is not None:
        return _value(whole[1], values)

    def text(match: re.Match[str]) -> str:
        found = _value(match[1], values)
        if not isinstance(found, str):
            raise CasesInvalid(f"${{{match[1]}}} is used inside text, so its value must be a string")
        return found

    return PLACEHOLDER.sub(text, value)


def _value(name: str, values: Mapping[str, Any]) -> Any:
    if name not in values:
        raise CasesInvalid(f"no value for the placeholder ${{{name}}}")
    return values[name]


def data_bytes(data: Mapping[str, Any]) -> bytes:
    """The bytes a `data` form stands for (schema `$defs/data`)."""
    if "text" in data:
        return str(data["text"]).encode()
    if "base64" in data:
        return base64.b64decode(data["base64"], validate=True)
    if "json" in data:
        return json.dumps(data["json"], ensure_ascii=True).encode()  # non-ASCII as \u escapes, as documented
    piece = data_bytes(data["repeat"])
    if len(piece) * data["times"] > MAX_DATA_BYTES:
        raise CasesInvalid(f"a repeated piece of {len(piece) * data['times']} bytes is over {MAX_DATA_BYTES}")
    return piece * data["times"]


# ---- running -----------------------------------------------------------------------------------

def run_all(doc: dict[str, Any], values: Mapping[str, Any], *, echo_seen: EchoSeen | None = None,
            workdir: Path | None = None) -> list[Result]:
    """Every case of the file, each on a fresh host."""
    return [run_case(doc, case["id"], values, echo_seen=echo_seen, workdir=workdir) for case in doc["cases"]]


def run_case(doc: dict[str, Any], case_id: str, values: Mapping[str, Any], *, echo_seen: EchoSeen | None = None,
             workdir: Path | None = None) -> Result:
    """One case on a fresh host (its own folder for files and kv). `values`: the host's placeholders;
    `echo_seen`: the requests the echo server has received so far."""
    case = next((c for c in doc["cases"] if c["id"] == case_id), None)
    if case is None:
        raise KeyError(f"no case {case_id!r}")
    with tempfile.TemporaryDirectory(prefix="cspm-conformance-", dir=workdir) as tmp:
        folder = Path(tmp)
        filled = dict(values)
        for name, content in doc["files"].items():
            atomicfile.write(folder / name, content, durable=False)
            filled[name] = str(folder / name)
        try:
            plan = from_dict(fill(doc["plan"], filled))
            steps = fill(case["steps"], filled)
        except ValueError as exc:  # CasesInvalid (a placeholder), PlanInvalid (the filled plan)
            return Result(case_id, False, f"filling the placeholders: {exc}")
        host = _Host(plan, folder / "kv.sqlite3")
        where = "start"
        try:
            host.start(doc["session"])
            for number, step in enumerate(steps, 1):
                where = f"step {number} ({_describe(step)})"
                host.step(step, echo_seen)
        except StepFailed as exc:
            return Result(case_id, False, f"{where}: {exc}")
        except CspmError as exc:  # the host could not load the plan (at the start or a restart)
            return Result(case_id, False, f"{where}: the host refused the plan: {exc}")
        except ValueError as exc:  # data the case cannot give (CasesInvalid: a `repeat` over the limit)
            return Result(case_id, False, f"{where}: {exc}")
        finally:
            host.close()
    return Result(case_id, True, "")


def _describe(step: Mapping[str, Any]) -> str:
    if step["do"] == "call":
        return f"call {step['component']}.{step['export']}"
    if step["do"] == "run":
        return f"run {step['component']}"
    return f"restart in session {step['session']}"


class _Host:
    """A Runtime on the plan, with what it emitted and logged during the current step."""

    def __init__(self, plan: Plan, kv_path: Path) -> None:
        self.plan, self.kv_path = plan, kv_path
        self.chunks: list[dict[str, str]] = []
        self.logs: list[tuple[str, str, str]] = []
        self.runtime: Runtime | None = None
        self.kv: KvStore | None = None

    def start(self, session: str) -> None:
        from cspm.runtime.engine import Runtime
        from cspm.runtime.kv import SqliteKvStore

        self.kv = SqliteKvStore(self.kv_path)  # the runner's, so the runner closes it
        self.runtime = Runtime(self.plan, session=session, kv=self.kv,
                               on_chunk=lambda name, text: self.chunks.append({"component": name, "text": text}),
                               on_log=lambda line: self.logs.append((line.plugin, line.level, line.message)))

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        if self.kv is not None:
            self.kv.close()
            self.kv = None

    def step(self, step: Mapping[str, Any], echo_seen: EchoSeen | None) -> None:
        if step["do"] == "restart":
            self.close()
            self.start(step["session"])
            return
        runtime = self.runtime
        assert runtime is not None, "start() first"
        self.chunks.clear()
        self.logs.clear()
        before = len(echo_seen()) if echo_seen is not None else 0
        expect = step["expect"]
        if step["component"] not in runtime.nodes:
            raise StepFailed(f"the plan has no component {step['component']!r}")
        try:
            if step["do"] == "call":
                output = runtime.call_export(step["component"], step["export"], data_bytes(step["input"]))
            else:
                output = json.dumps(runtime.run(step["input"], entry=step["component"]).response).encode()
        except CspmError as exc:  # the plug-in failed (PluginError, RunFailed): an observation like any other
            runtime.drain_logs()
            if "fails" not in expect:
                raise StepFailed(f"the call failed: {type(exc).__name__}: {exc}") from None
            wanted = expect["fails"].get("message_contains")
            if wanted is not None and wanted not in str(exc):
                raise StepFailed(f"the call failed with {str(exc)!r}, which does not contain {wanted!r}") from None
        else:
            runtime.drain_logs()
            if "fails" in expect:
                raise StepFailed(f"the call succeeded (output {_show(output)}), expected it to fail")
            check_output(expect, output)
        self.check_observed(expect, echo_seen, before)

    def check_observed(self, expect: Mapping[str, Any], echo_seen: EchoSeen | None, before: int) -> None:
        if "chunks" in expect and self.chunks != expect["chunks"]:
            raise StepFailed(f"chunks emitted were {self.chunks}, expected {expect['chunks']}")
        for component, rule in expect.get("logs", {}).items():
            lines = [{"level": level, "message": message} for name, level, message in self.logs if name == component]
            if "equals" in rule and lines != rule["equals"]:
                raise StepFailed(f"{component} logged {lines}, expected exactly {rule['equals']}")
            missing = [line for line in rule.get("includes", []) if line not in lines]
            if missing:
                raise StepFailed(f"{component} logged {lines}, which lacks {missing}")
        if "echo_requests" in expect:
            if echo_seen is None:
                raise StepFailed("the step expects echo server requests, but the runner was given no echo server")
            seen = list(echo_seen())[before:]
            if len(seen) != len(expect["echo_requests"]):
                raise StepFailed(f"the echo server got {len(seen)} requests, expected {len(expect['echo_requests'])}")
            for got, pattern in zip(seen, expect["echo_requests"], strict=True):
                problem = mismatch(got, pattern)
                if problem is not None:
                    raise StepFailed(f"the echo server got a request whose {problem}")


def check_output(expect: Mapping[str, Any], output: bytes) -> None:
    """StepFailed unless `output` meets the step's output expectations."""
    if "output" in expect and output != data_bytes(expect["output"]):
        raise StepFailed(f"output was {_show(output)}, expected {_show(data_bytes(expect['output']))}")
    text = output.decode("utf-8", errors="replace")
    for excluded in expect.get("output_excludes", []):
        if excluded in text:
            raise StepFailed(f"output contains {excluded!r}: {_show(output)}")
    if not any(key in expect for key in ("json", "json_contains", "error")):
        return
    try:
        value = bounded_json.loads(output)
    except bounded_json.JsonRejected as exc:
        raise StepFailed(f"output is not JSON ({exc}): {_show(output)}") from None
    if "json" in expect and not same(value, expect["json"]):
        raise StepFailed(f"output was {_show(output)}, expected {json.dumps(expect['json'], ensure_ascii=False)}")
    if "json_contains" in expect:
        problem = mismatch(value, expect["json_contains"])
        if problem is not None:
            raise StepFailed(f"output {_show(output)}: {problem}")
    if "error" in expect:
        wanted = expect["error"]
        pattern: dict[str, Any] = {"code": wanted["code"]}
        if "message_contains" in wanted:
            pattern["message"] = {"$contains": wanted["message_contains"]}
        problem = mismatch(value, {"error": pattern})
        if problem is not None:
            raise StepFailed(f"expected an error document with code {wanted['code']!r}; output {_show(output)}: "
                             f"{problem}")


def _show(output: bytes, limit: int = 300) -> str:
    text = repr(output[:limit])
    return text + (f"… ({len(output)} bytes)" if len(output) > limit else "")


# ---- patterns ----------------------------------------------------------------------------------

def same(a: Any, b: Any) -> bool:
    """JSON equality: key order aside, numbers by value, but a boolean is never a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def mismatch(actual: Any, pattern: Any, path: str = "") -> str | None:
    """None when `actual` matches `pattern` (conformance/README.md#patterns), else where and why not.

    An object pattern needs its keys (others may be present); `{"$contains": s}` a string holding s;
    `{"$json": p}` a string of JSON matching p; `{"$headers": {name: p}}` an object with each name
    (compared case-insensitively) matching p; anything else is compared with `same`.
    """
    at = path or "the value"
    if isinstance(pattern, dict) and len(pattern) == 1 and next(iter(pattern)).startswith("$"):
        op, operand = next(iter(pattern.items()))
        if op == "$contains":
            found = isinstance(actual, str) and operand in actual
            return None if found else f"{at} is {actual!r}, not containing {operand!r}"
        if op == "$json":
            if not isinstance(actual, str):
                return f"{at} is not a string of JSON"
            try:
                parsed = bounded_json.loads(actual)
            except bounded_json.JsonRejected:
                return f"{at} is not JSON: {actual[:200]!r}"
            return mismatch(parsed, operand, path)
        if op == "$headers":
            if not isinstance(actual, dict):
                return f"{at} is not an object of headers"
            lowered = {str(k).lower(): v for k, v in actual.items()}
            for name, inner in operand.items():
                if name.lower() not in lowered:
                    return f"{at} has no header {name!r}"
                problem = mismatch(lowered[name.lower()], inner, f"{path}/{name.lower()}")
                if problem is not None:
                    return problem
            return None
        return f"unknown pattern operator {op!r}"
    if isinstance(pattern, dict):
        if not isinstance(actual, dict):
            return f"{at} is {json.dumps(actual)[:200]}, expected an object"
        for key, inner in pattern.items():
            if key not in actual:
                return f"{at} has no {key!r}"
            problem = mismatch(actual[key], inner, f"{path}/{key}")
            if problem is not None:
                return problem
        return None
    if isinstance(pattern, list):
        if not isinstance(actual, list) or len(actual) != len(pattern):
            return f"{at} is {json.dumps(actual)[:200]}, expected a list of {len(pattern)}"
        for index, (got, inner) in enumerate(zip(actual, pattern, strict=True)):
            problem = mismatch(got, inner, f"{path}/{index}")
            if problem is not None:
                return problem
        return None
    return None if same(actual, pattern) else f"{at} is {json.dumps(actual)[:200]}, expected {json.dumps(pattern)}"
