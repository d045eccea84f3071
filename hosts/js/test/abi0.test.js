// ABI 0 (plug-ins built for Extism 0.x, src/abi0.js) on the JavaScript host, with the Python host's
// test plug-ins (tests/wat/abi0_*.wat, compiled here with wabt's wat2wasm): the import rewrite and its
// refusals, request translation both ways, the original host's "None", the 0.x handle ownership (the
// plug-ins check that nothing they lend is freed; memory stays level over 10,000 rounds and calls),
// vars, logs, secret placeholders against a loopback server, and failing calls. On both engines.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import * as abi0 from "../src/abi0.js";
import { Host, HostLoadError, PluginFailed } from "../src/host.js";
import { mountFolder } from "../src/node.js";
import { workerEngine } from "../src/worker-host.js";
import { ROOT, component, conformanceWasm, modulesOf, plan } from "./helpers.js";

const RUST = conformanceWasm("rust"); // llm "echo: <last message>", tool echoes, agent calls its first callee
const KB_PATH = resolve(ROOT, "plugins/kb/build/kb.wasm");
const KB_DATA = resolve(ROOT, "tests/data/kb");
const KEY = "sk-abi0-test-5d1e";

/** @type {Record<string, Buffer>} */
const WAT = {};
let watMissing = "";
try {
  const dir = mkdtempSync(join(tmpdir(), "abi0-wat-"));
  for (const name of ["abi0_agent", "abi0_echo", "abi0_kernel"]) {
    execFileSync("wat2wasm", [resolve(ROOT, `tests/wat/${name}.wat`), "-o", join(dir, `${name}.wasm`)]);
    WAT[name] = readFileSync(join(dir, `${name}.wasm`));
  }
  rmSync(dir, { recursive: true });
} catch (err) {
  watMissing = `wat2wasm (Debian package wabt) could not build tests/wat/abi0_*.wat: ${/** @type {Error} */ (err).message}`;
}
let KB = null;
try { KB = readFileSync(KB_PATH); } catch { /* not built */ }
const needs = { skip: watMissing || (RUST === null && "plugins/conformance-rust is not built") || false };
const needsKb = { skip: needs.skip || (KB === null && "plugins/kb is not built") || false };

/** @param {string} text */
const bytes = (text) => new TextEncoder().encode(text);
/** @param {Uint8Array} out */
const text = (out) => new TextDecoder().decode(out);

// ---- the rewrite, on its own --------------------------------------------------------------------------

/** @param {number} n */
function leb(n) {
  const out = [];
  do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n);
  return out;
}
/** @param {number} id @param {number[]} body */
const section = (id, body) => [id, ...leb(body.length), ...body];
/** @param {string} s */
const name = (s) => { const b = [...Buffer.from(s, "latin1")]; return [...leb(b.length), ...b]; };
/** @param {number[]} params @param {number[]} results */
const functype = (params, results) => [0x60, ...leb(params.length), ...params, ...leb(results.length), ...results];
/** @param {string} module @param {string} field @param {number} type */
const funcImport = (module, field, type) => [...name(module), ...name(field), 0, ...leb(type)];
const I32 = 0x7f;
const I64 = 0x7e;
// type 0: () -> i32 (`call`), 1: (i64) -> i64, 2: (i32) -> i32
const TYPES = section(1, [3, ...functype([], [I32]), ...functype([I64], [I64]), ...functype([I32], [I32])]);

/** A module importing `imports` whose `call` returns 0 (as tests/hostile/test_abi0.py builds them). @param {number[][]} imports @param {{types?: number[], importSection?: number[]}} [o] */
function module(imports, o = {}) {
  const body = o.importSection ?? [...leb(imports.length), ...imports.flat()];
  return Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...(o.types ?? TYPES), ...section(2, body), ...section(3, [1, 0]),
    ...section(7, [1, ...name("call"), 0, ...leb(imports.length)]), ...section(10, [1, 4, 0, 0x41, 0, 0x0b])]);
}
const GOOD = module([funcImport("env", "extism_alloc", 1), funcImport("env", "call_llm", 1)]);

/** (id, section) pairs of a module, read independently of src/abi0.js. @param {Uint8Array} wasm */
function sections(wasm) {
  const out = [];
  let pos = 8;
  while (pos < wasm.length) {
    const id = wasm[pos++];
    let size = 0;
    for (let shift = 0; ; shift += 7) { const b = wasm[pos++]; size += (b & 0x7f) * 2 ** shift; if (!(b & 0x80)) break; }
    out.push([id, Buffer.from(wasm.subarray(pos, pos + size)).toString("hex")]);
    pos += size;
  }
  return out;
}

test("the rewrite maps every import of a real ABI 0 module and changes nothing else", needs, async () => {
  const wasm = WAT.abi0_kernel;
  const before = WebAssembly.Module.imports(await WebAssembly.compile(wasm));
  assert.ok(abi0.isAbi0(before) && abi0.abi0Problems(before).length === 0);
  const out = abi0.rewrite(wasm);
  const compiled = await WebAssembly.compile(out);
  const after = WebAssembly.Module.imports(compiled);
  assert.deepEqual(after.map((i) => i.kind), before.map((i) => i.kind));
  const mapped = after.map((i) => `${i.module}.${i.name}`);
  assert.ok(mapped.includes("extism:host/env.alloc") && mapped.includes("extism:host/env.memory_bytes"));
  assert.ok(mapped.includes("extism:host/user.cs0_config_get") && mapped.includes("extism:host/user.cs0_http_request"));
  assert.ok(!abi0.isAbi0(after));
  const [was, now] = [sections(wasm), sections(out)];
  assert.deepEqual(now.map(([id]) => id), was.map(([id]) => id));
  assert.deepEqual(now.filter(([id]) => id !== 2), was.filter(([id]) => id !== 2)); // only imports change
  assert.deepEqual(new Set(Object.keys(abi0.ABI0_IMPORTS)), new Set([...Object.keys(abi0.KERNEL), ...Object.keys(abi0.HOST)]));
  assert.deepEqual(WebAssembly.Module.imports(await WebAssembly.compile(abi0.rewrite(GOOD))).map((i) => `${i.module}.${i.name}`),
    ["extism:host/env.alloc", "extism:host/user.cs0_call_llm"]);
});

// (id, module, what the rewrite says), as tests/hostile/test_abi0.py's
const REWRITE_CASES = /** @type {[string, Uint8Array, string][]} */ ([
  ["unknown-env-name", module([funcImport("env", "extism_launch", 1)]), "it imports function `env.extism_launch`, which is not an Extism 0.x function this host can link"],
  ["wrong-signature", module([funcImport("env", "extism_alloc", 2)]), "its import `env.extism_alloc` has the signature (i32) -> i32; Extism 0.x's is (i64) -> i64"],
  ["env-memory", module([funcImport("env", "extism_alloc", 1), [...name("env"), ...name("memory"), 2, 0, 1]]), "it imports memory `env.memory`"],
  ["other-module", module([funcImport("env", "call_tool", 1), funcImport("evil", "x", 1)]), "it imports `evil.x`, which no Chainsocket host provides"],
  ["import-section-past-end", GOOD.subarray(0, 8 + TYPES.length + 3), "truncated module (a section runs past the end)"],
  ["bad-leb-in-imports", module([], { importSection: [1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1] }), "malformed LEB128 integer"],
  ["fewer-imports-than-counted", module([], { importSection: [2, ...funcImport("env", "extism_alloc", 1)] }), "truncated module"],
  ["bytes-after-imports", module([], { importSection: [1, ...funcImport("env", "extism_alloc", 1), 0] }), "its import section has bytes past its last import"],
  ["type-out-of-range", module([funcImport("env", "extism_alloc", 9)]), "its import `env.extism_alloc` names type 9, which it does not define"],
  ["no-type-section", module([funcImport("env", "extism_alloc", 0)], { types: [] }), "its import `env.extism_alloc` names type 0, which it does not define"],
  ["gc-type", module([funcImport("env", "extism_alloc", 0)], { types: section(1, [1, 0x5f, 0]) }), "a type of form 0x5f"],
  ["odd-value-type", module([funcImport("env", "extism_alloc", 0)], { types: section(1, [1, ...functype([0x40], [])]) }), "a value type 0x40"],
  ["name-not-utf8", module([[...name("env"), ...name("extism_\xff"), 0, 1]]), "a name is not UTF-8"],
  ["name-length-past-end", module([], { importSection: [1, 0x7f, ...Buffer.from("env")] }), "truncated module"],
  ["two-import-sections", Uint8Array.from([...GOOD.subarray(0, 8), ...TYPES, ...section(2, [0]), ...GOOD.subarray(8 + TYPES.length)]), "it has two import sections"],
  ["no-import-section", Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...TYPES]), "it has no import section"],
  ["not-wasm", Uint8Array.from([0, 0x61, 0x73, 0x6e, 1, 0, 0, 0]), "bad magic number"],
]);

test("the rewrite refuses each malformed or unmappable module with its reason", () => {
  for (const [id, wasm, expect] of REWRITE_CASES) {
    assert.throws(() => abi0.rewrite(wasm), (err) => err instanceof abi0.WasmFormatError && err.message.includes(expect), id);
  }
});

test("5,000 random corruptions of a real ABI 0 module are rewritten or refused, never anything else", needs, () => {
  const base = WAT.abi0_kernel;
  const grow = abi0.rewrite(base).length - base.length;
  let seed = 23;
  const rand = (/** @type {number} */ n) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  let refused = 0;
  for (let round = 0; round < 5000; round++) {
    const data = [...base];
    for (let k = 0, edits = 1 + rand(4); k < edits; k++) {
      const at = 8 + rand(data.length - 8);
      const action = rand(10);
      if (action < 6) data[at] = rand(256);
      else if (action < 8) data.splice(at, 1 + rand(64));
      else data.splice(at, 0, ...Array.from({ length: 1 + rand(8) }, () => rand(256)));
    }
    try {
      assert.ok(abi0.rewrite(Uint8Array.from(data)).length <= data.length + grow + 16);
    } catch (err) {
      if (!(err instanceof abi0.WasmFormatError)) throw err;
      refused++;
    }
  }
  assert.ok(refused > 100, `only ${refused} refused`);
});

test("the translations: LLMReq to messages and back, tool arguments, Python's JSON spacing", () => {
  assert.deepEqual(abi0.toAbi1("llm", { name: "l", systemprompt: "S", inputprompt: "u", stop: ["\nObs:"] }),
    { name: "l", messages: [{ role: "system", content: "S" }, { role: "user", content: "u" }], stop: ["\nObs:"] });
  assert.deepEqual(abi0.toAbi1("llm", { name: "l", systemprompt: "", inputprompt: "u", stop: [] }),
    { name: "l", messages: [{ role: "user", content: "u" }] });
  assert.throws(() => abi0.toAbi1("tool", { name: "t" }), /a ToolReq needs `input`/);
  assert.throws(() => abi0.toAbi1("agent", ["x"]), /not a JSON object with a `name`/);
  assert.equal(text(abi0.originalInput("llm", "o", { messages: [{ role: "system", content: "S" }, { role: "user", content: "u1" },
    { role: "assistant", content: "a1" }, { role: "user", content: "u2" }] })),
  '{"name": "o", "systemprompt": "S\\n\\nUser: u1\\nAssistant: a1", "inputprompt": "u2", "stop": []}');
  assert.equal(text(abi0.originalInput("tool", "t", { arguments: { q: 1, r: [true, null] } })),
    '{"name": "t", "input": "{\\"q\\": 1, \\"r\\": [true, null]}"}');
  assert.throws(() => abi0.fromAbi1("tool", { error: { code: "not_declared", message: "no" } }), /^Error: not_declared: no$|not_declared: no/);
});

// ---- on the host ------------------------------------------------------------------------------------

/** @type {{url: string, seen: any[], close: () => Promise<void>}} */
let echo;
before(async () => {
  /** @type {any[]} */
  const seen = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      const record = { method: req.method, path: req.url, headers: req.headers, body };
      seen.push(record);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(record));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", () => r(undefined)));
  const port = /** @type {import("node:net").AddressInfo} */ (server.address()).port;
  echo = { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => server.close(() => r(undefined))) };
});
after(async () => { await echo?.close(); });

/** @type {[string, import("../src/host.js").Engine | undefined][]} */
const ENGINES = [["a worker per instance", undefined], ["one worker", workerEngine]];

for (const [label, engine] of ENGINES) {
  const one = engine !== undefined;
  /** @param {any} p */
  const load = (p) => Host.load(p, {
    modules: modulesOf(...Object.values(WAT), ...(RUST ? [RUST] : []), ...(KB ? [KB] : [])), engine,
    secrets: async (source) => source === "env:ABI0_KEY" ? KEY : null,
    mountPath: (mount) => mountFolder(mount.host, mount.writable),
  });
  /** @param {any} host @param {string} name @param {string} [level] */
  const logs = (host, name, level = "warn") => host.logs(name).lines.filter((/** @type {any} */ l) => l.level === level).map((/** @type {any} */ l) => l.message);

  /** The original agent with an ABI 1 llm (`llm`), the kb tool when built, and what else is given. @param {Record<string, string>} config @param {Record<string, any>} [more] @param {Record<string, string[]>} [calls] */
  const agentPlan = (config, more = {}, calls = {}) => plan({
    llm: component("llm", RUST ?? new Uint8Array()),
    ...(KB ? { kb: component("tool", KB, { config: { file: "/kb/list/people.json" }, grant: { mounts: [{ host: KB_DATA, guest: "/kb", writable: false, digest: null }] } }) } : {}),
    old: component("agent", WAT.abi0_agent ?? new Uint8Array(), { config: { prompt: 'You are "terse".', ...config }, calls }),
    ...more,
  }, "old");

  test(`${label}: an ABI 0 agent calls an ABI 1 tool (kb, Go, WASI) and llm (Rust) in the original shapes`, needsKb, async () => {
    const host = await load(agentPlan({ llm_name: "llm", tool_name: "kb" }, {}, { llms: ["llm"], tools: ["kb"] }));
    try {
      const result = await host.run("Alan Turing born");
      assert.equal(result.output, "echo: Alan Turing — born: 1912");
      assert.equal(result.finishReason, "final_answer");
    } finally {
      await host.close();
    }
  });

  test(`${label}: ABI 0 calls ABI 0 (tool and agent); quotes, escapes, control characters and UTF-8 survive every hop`, needs, async () => {
    const host = await load(agentPlan({ llm_name: "llm", tool_name: "old_tool", agent_name: "old_agent" }, {
      old_tool: component("tool", WAT.abi0_echo), old_agent: component("agent", WAT.abi0_echo),
    }, { llms: ["llm"], tools: ["old_tool"], agents: ["old_agent"] }));
    try {
      assert.equal((await host.run("q")).output, "old_agent heard: echo: old_tool heard: q");
      const tricky = 'say "hi"\\ \n\ttab \x01 é 💡';
      assert.equal((await host.run(tricky)).output, `old_agent heard: echo: old_tool heard: ${tricky}`);
    } finally {
      await host.close();
    }
  });

  test(`${label}: an ABI 1 agent calls ABI 0 tools, llms and agents, which answer raw text`, needs, async () => {
    const e = WAT.abi0_echo;
    const host = await load(plan({
      old_tool: component("tool", e), old_llm: component("llm", e), old_agent: component("agent", e),
      a_tool: component("agent", RUST, { calls: { tools: ["old_tool"] } }),
      a_llm: component("agent", RUST, { config: { kind: "agent", prompt: "be brief" }, calls: { llms: ["old_llm"] } }),
      a_agent: component("agent", RUST, { calls: { agents: ["old_agent"] } }),
    }, "a_tool"));
    try {
      assert.equal((await host.run("hi", { entry: "a_tool" })).output, "old_tool heard: hi");
      assert.equal((await host.run("hi", { entry: "a_llm" })).output, "old_llm heard: hi | system: be brief");
      assert.equal((await host.run("hi", { entry: "a_agent" })).output, "old_agent heard: hi");
      const llm = await host.runMessage("old_llm", { messages: [{ role: "system", content: "S" }, { role: "user", content: "u1" },
        { role: "assistant", content: "a1" }, { role: "user", content: "u2" }] });
      assert.equal(llm.output, "old_llm heard: u2 | system: S\n\nUser: u1\nAssistant: a1");
      assert.equal(llm.response.finish_reason, "stop");
      assert.deepEqual((await host.runMessage("old_tool", { arguments: { q: 1 } })).response, { output: 'old_tool heard: {"q": 1}', is_error: false });
      // a failing ABI 0 callee is the ABI 1 caller's callee_failed
      const failed = await host.run("fail", { entry: "a_tool" });
      assert.equal(failed.finishReason, "error");
      assert.equal(failed.output, "error: tool `old_tool` failed: the echo failed on purpose");
    } finally {
      await host.close();
    }
  });

  test(`${label}: an unknown or undeclared name, and a cycle, answer {"output": "None"} and say why in the log`, needs, async () => {
    for (const tool of ["nosuch", "llm"]) { // llm exists, but is no tool the agent declared
      const host = await load(agentPlan({ llm_name: "llm", tool_name: tool }, {}, { llms: ["llm"] }));
      try {
        assert.equal((await host.run("x")).output, "echo: None");
        const warned = logs(host, "old");
        assert.equal(warned.length, 1);
        assert.ok(warned[0].startsWith("call_tool: not_declared: ") && warned[0].includes(`did not declare tool \`${tool}\``), warned[0]);
      } finally {
        await host.close();
      }
    }
    const host = await load(agentPlan({ llm_name: "llm", agent_name: "old" }, {}, { llms: ["llm"], agents: ["old"] }));
    try {
      assert.equal((await host.run("x")).output, "None");
      assert.deepEqual(logs(host, "old"), ['call_agent: cycle: call cycle: old -> old (answered {"output": "None"}, as the original host did)']);
    } finally {
      await host.close();
    }
  });

  /** @param {Record<string, any>} [grant] @param {string[] | null} [bound] */
  const kernelPlan = (grant = {}, bound = null) => plan({
    k: component("tool", WAT.abi0_kernel ?? new Uint8Array(), {
      config: { color: "blue" }, grant,
      secrets: [{ name: "apikey", source: "env:ABI0_KEY", header: "X-Not-Used", format: "{}", hosts: bound, query: null }],
    }),
  }, "k");

  test(`${label}: config_get answers config, the component's name and a placeholder, never the key`, needs, async () => {
    const host = await load(kernelPlan());
    try {
      assert.equal(text(await host.call("k", "config", bytes("color"))), "blue");
      assert.equal(text(await host.call("k", "config", bytes("name"))), "k");
      assert.equal(text(await host.call("k", "config", bytes("nothing"))), "<none>");
      const placeholder = text(await host.call("k", "config", bytes("apikey")));
      assert.match(placeholder, /^cspm-secret-apikey-[0-9a-f]{24}$/);
    } finally {
      await host.close();
    }
  });

  test(`${label}: vars persist per instance and start over after a trap; logs at each level but debug`, needs, async () => {
    const host = await load(kernelPlan());
    try {
      assert.deepEqual([await host.call("k", "count", new Uint8Array()), await host.call("k", "count", new Uint8Array()),
        await host.call("k", "count", new Uint8Array())].map(text), ["1", "2", "3"]);
      await assert.rejects(host.call("k", "trap", new Uint8Array()), (err) => err instanceof PluginFailed && /tool `k` crashed \(wasm trap\)/.test(err.message));
      assert.equal(text(await host.call("k", "count", new Uint8Array())), "1");
      assert.equal(text(await host.call("k", "log", new Uint8Array())), "logged"); // it fails if the host freed a lent handle
      assert.deepEqual(host.logs("k").lines, [{ level: "info", message: "an info line" }, { level: "warn", message: "a warn line!" },
        { level: "error", message: "error line!!" }]);
    } finally {
      await host.close();
    }
  });

  test(`${label}: memory stays level: thousands of rounds of config, vars and logs in one call, and 10,000 calls`, needs, async () => {
    const host = await load(kernelPlan());
    try {
      // Extism-JS numbers a call's blocks in 15 bits and never reuses one within a call, so a call can
      // make ~32,000 (the Python host's test runs 10,000 rounds of 4); its worker mode also sends its
      // whole block list on every host function call, so that engine runs 300 rounds. The plug-in checks
      // every handle it lends; memory_bytes counts the bytes of live blocks: the same input length, the
      // same bytes however many rounds, unless the host leaks what it hands over.
      const rounds = one ? "5000" : "0300";
      const small = text(await host.call("k", "loop", bytes("0100")));
      assert.ok(Number(small) > 0);
      assert.equal(text(await host.call("k", "loop", bytes(rounds))), small);
      await host.call("k", "count", new Uint8Array());
      for (let i = 0; i < 10_000; i++) await host.call("k", "count", new Uint8Array());
      assert.equal(text(await host.call("k", "count", new Uint8Array())), "10002");
      assert.equal(text(await host.call("k", "loop", bytes("0001"))), small);
    } finally {
      await host.close();
    }
  });

  test(`${label}: a placeholder is swapped for the bound host only, and redacted from the answer`, needs, async () => {
    const host = await load(kernelPlan({ hosts: [echo.url] }, [echo.url]));
    try {
      const placeholder = text(await host.call("k", "config", bytes("apikey")));
      echo.seen.length = 0;
      const answer = text(await host.call("k", "http", bytes(`${echo.url}/v1/chat`)));
      const sent = echo.seen[0];
      assert.equal(sent.method, "POST");
      assert.equal(sent.path, "/v1/chat");
      assert.equal(sent.headers.authorization, `Bearer ${KEY}`); // the plug-in built it with the placeholder
      assert.deepEqual(JSON.parse(sent.body), { key: KEY });
      assert.ok(!JSON.stringify(sent).includes(placeholder));
      const [status, ...rest] = answer.split(" ");
      assert.equal(status, "200");
      assert.ok(!answer.includes(KEY) && !answer.includes(placeholder), answer);
      const echoed = JSON.parse(rest.join(" "));
      assert.equal(echoed.headers.authorization, "Bearer [redacted]");
      assert.deepEqual(JSON.parse(echoed.body), { key: "[redacted]" });
    } finally {
      await host.close();
    }
  });

  test(`${label}: a placeholder for another (granted) host, an ungranted host and a transport failure answer 0`, needs, async () => {
    const other = echo.url.replace("127.0.0.1", "localhost");
    const closed = await new Promise((r) => { const s = createServer(); s.listen(0, "127.0.0.1", () => { const p = /** @type {any} */ (s.address()).port; s.close(() => r(`http://127.0.0.1:${p}`)); }); });
    const host = await load(kernelPlan({ hosts: [echo.url, other, closed] }, [echo.url, closed]));
    try {
      echo.seen.length = 0;
      assert.equal(text(await host.call("k", "http", bytes(`${other}/steal`))), "failed 0");
      assert.equal(echo.seen.length, 0); // nothing sent
      assert.equal(text(await host.call("k", "http", bytes(`${closed}/x`))), "failed 0");
      assert.equal(text(await host.call("k", "http", bytes("http://127.0.0.2:9/x"))), "failed 0");
      const warned = logs(host, "k");
      assert.equal(warned.length, 3, warned.join("\n"));
      assert.ok(warned[0].startsWith("extism_http_request: not_granted: ") && warned[0].includes("secret `apikey` is not bound to localhost"), warned[0]);
      assert.ok(warned[1].includes("http_error") && warned[2].includes("not_granted"), warned.join("\n"));
      assert.ok(!warned.join("").includes(KEY));
      // a plug-in that fails on the empty body it gets after a refusal: the error names the refusal
      assert.equal(JSON.parse(text(await host.call("k", "get", bytes(`${echo.url}/ok`)))).method, "GET");
      await assert.rejects(host.call("k", "get", bytes("https://example.com/")), (err) => err instanceof PluginFailed
        && err.message.startsWith("tool `k` crashed (wasm trap): ")
        && err.message.endsWith(`(after a refused host request: extism_http_request: not_granted: host example.com is not granted to this plug-in over https (granted: ${echo.url}, ${other}, ${closed}))`));
    } finally {
      await host.close();
    }
  });

  test(`${label}: error_set (whose block the plug-in frees at once) fails the call with its message`, needs, async () => {
    const host = await load(plan({ t: component("tool", WAT.abi0_echo) }, "t"));
    try {
      await assert.rejects(host.run("trap"), /tool `t` crashed \(wasm trap\)/);
      await assert.rejects(host.run("fail"), (err) => err instanceof PluginFailed && err.message === "tool `t` failed: the echo failed on purpose");
      assert.equal((await host.run("fine")).output, "t heard: fine");
    } finally {
      await host.close();
    }
  });

  test(`${label}: an ABI 0 module the host cannot link is refused at load, naming why`, needs, async () => {
    const cases = /** @type {[Uint8Array, RegExp][]} */ ([
      [module([funcImport("env", "extism_alloc", 2)]), /built for Extism 0\.x \(Chainsocket ABI 0\) and this host cannot link it: its import `env\.extism_alloc` has the signature \(i32\) -> i32/],
      [module([funcImport("env", "extism_launch", 1)]), /it imports `env\.extism_launch`, which is not an Extism 0\.x function/],
      [module([funcImport("env", "extism_alloc", 1), funcImport("extism:host/env", "alloc", 1)]), /`extism:host\/env\.alloc` \(Extism 1\.x\) next to Extism 0\.x imports/],
    ]);
    for (const [wasm, expect] of cases) {
      const p = plan({ t: component("tool", wasm) }, "t");
      await assert.rejects(Host.load(p, { modules: modulesOf(wasm), engine }), (err) => err instanceof HostLoadError && /^test: tool: /.test(err.message) && expect.test(err.message));
    }
    const good = await Host.load(plan({ t: component("tool", GOOD) }, "t"), { modules: modulesOf(GOOD), engine });
    await good.close();
  });
}
