"""The run plan: the one document a host executes (schema cspm/schemas/plan.json, spec in
docs/formats.md#run-plan).

The package manager's work ends in a plan (app + lock + store → plan) and a runtime's begins with one:
per component its module by digest and where its blob is, its grant, the exact config strings it
reads, its secrets by reference (never a value), what it may call and a tool's input schema; the
entry, the kv scope, the ABI. Everything in it is resolved: absolute paths, digests, no `${VAR}`, no
registry reference, so a host in another language (hosts/js) needs nothing else. A plan is checked
against its schema once, where it is read (`from_dict`), and trusted after that.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

PLAN_VERSION = 1
ABI_VERSION = 1
SCHEMA = "plan.json"
MAX_MODULE_BYTES = 64 * 1024 * 1024  # a module a host reads whole to hash and compile

Kind = Literal["llm", "tool", "agent"]


class PlanInvalid(ValueError):
    """A plan that does not match plan.json; `str()` names the field."""


@dataclass(frozen=True)
class Module:
    digest: str  # sha256:…, checked by the host before it compiles anything
    path: str  # where the blob is on this host
    size: int


@dataclass(frozen=True)
class Mount:
    host: str  # an absolute folder
    guest: str
    writable: bool
    digest: str | None  # a model or data package's; None for a folder the app grants


@dataclass(frozen=True)
class PlanGrant:
    hosts: tuple[str, ...]
    mounts: tuple[Mount, ...]
    kv: bool
    wasi: bool | None  # None: when the module imports WASI or has mounts
    memory_pages: int
    timeout_ms: int


@dataclass(frozen=True)
class SecretRef:
    """Where a secret's value is read and how it is injected; the value itself never is in a plan."""

    name: str
    source: str  # env:NAME | file:PATH
    header: str
    format: str
    hosts: tuple[str, ...] | None
    query: str | None


@dataclass(frozen=True)
class Calls:
    llms: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()

    def of(self, kind: Kind) -> tuple[str, ...]:
        return {"llm": self.llms, "tool": self.tools, "agent": self.agents}[kind]


@dataclass(frozen=True)
class PlanComponent:
    name: str
    kind: Kind
    description: str
    where: str  # file:line, for messages
    package: str | None  # its plugin.yaml name, for messages
    features: tuple[str, ...]  # optional ABI features it declares (tool_calling)
    module: Module
    grant: PlanGrant
    config: dict[str, str]
    secrets: tuple[SecretRef, ...]
    calls: Calls
    input_schema: dict[str, Any] | None


@dataclass(frozen=True)
class Origin:
    name: str
    version: str
    registry: str
    registry_url: str


@dataclass(frozen=True)
class Plan:
    app_name: str
    source: str
    origin: Origin | None
    entry: str
    kv_scope: str
    components: dict[str, PlanComponent] = field(default_factory=dict)
    # a published app's capabilities were approved when this plan was built (cspm.planner); never read
    # from a document: a plan from elsewhere is approved again by whoever runs it
    approved: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_version": PLAN_VERSION,
            "abi": ABI_VERSION,
            "app": {"name": self.app_name, "source": self.source,
                    "origin": asdict(self.origin) if self.origin is not None else None},
            "entry": self.entry,
            "kv_scope": self.kv_scope,
            "components": {name: _component_dict(c) for name, c in self.components.items()},
        }

    def to_json(self) -> str:
        """Canonical text: sorted keys, no spaces, so the same app, lock and store give the same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _component_dict(c: PlanComponent) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "description": c.description,
        "where": c.where,
        "package": c.package,
        "features": list(c.features),
        "module": asdict(c.module),
        "grant": {"hosts": list(c.grant.hosts), "mounts": [asdict(m) for m in c.grant.mounts], "kv": c.grant.kv,
                  "wasi": c.grant.wasi, "memory_pages": c.grant.memory_pages, "timeout_ms": c.grant.timeout_ms},
        "config": dict(c.config),
        "secrets": [{**asdict(s), "hosts": list(s.hosts) if s.hosts is not None else None} for s in c.secrets],
        "calls": {"llms": list(c.calls.llms), "tools": list(c.calls.tools), "agents": list(c.calls.agents)},
        "input_schema": c.input_schema,
    }


def check(data: Any) -> None:
    """Raises PlanInvalid naming the first field that breaks plan.json, and a reference to a component
    the plan does not hold (the schema cannot say that)."""
    from cspm.schemas import problem

    found = problem(SCHEMA, data)
    if found is not None:
        where = "/".join(str(p) for p in found.absolute_path) or "(the plan)"
        raise PlanInvalid(f"{where}: {found.message}")
    names = set(data["components"])
    if data["entry"] not in names:
        raise PlanInvalid(f"entry: {data['entry']!r} is not one of the plan's components")
    for name, component in data["components"].items():
        for section, kind in (("llms", "llm"), ("tools", "tool"), ("agents", "agent")):
            for callee in component["calls"][section]:
                if callee not in names or data["components"][callee]["kind"] != kind:
                    raise PlanInvalid(f"components/{name}/calls/{section}: {callee!r} is not a {kind} of the plan")


def from_dict(data: Any, *, approved: bool = False) -> Plan:
    """A plan read from JSON (a file, another process): checked, then trusted. `approved`: its caller
    approved a published app's capabilities (cspm.approvals); a Runtime refuses one otherwise."""
    check(data)
    origin = data["app"]["origin"]
    return Plan(
        app_name=data["app"]["name"],
        source=data["app"]["source"],
        origin=Origin(**origin) if origin is not None else None,
        entry=data["entry"],
        kv_scope=data["kv_scope"],
        components={name: _component(name, c) for name, c in data["components"].items()},
        approved=approved,
    )


def _component(name: str, c: dict[str, Any]) -> PlanComponent:
    g = c["grant"]
    return PlanComponent(
        name=name,
        kind=c["kind"],
        description=c["description"],
        where=c["where"],
        package=c["package"],
        features=tuple(c["features"]),
        module=Module(**c["module"]),
        grant=PlanGrant(hosts=tuple(g["hosts"]), mounts=tuple(Mount(**m) for m in g["mounts"]), kv=g["kv"],
                        wasi=g["wasi"], memory_pages=g["memory_pages"], timeout_ms=g["timeout_ms"]),
        config=dict(c["config"]),
        secrets=tuple(SecretRef(**{**s, "hosts": tuple(s["hosts"]) if s["hosts"] is not None else None})
                      for s in c["secrets"]),
        calls=Calls(tuple(c["calls"]["llms"]), tuple(c["calls"]["tools"]), tuple(c["calls"]["agents"])),
        input_schema=c["input_schema"],
    )
