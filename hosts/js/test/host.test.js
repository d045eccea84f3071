// The host's own behaviour beyond the conformance cases: what it refuses before running anything,
// its limits (time, memory, depth), routing refusals, and tool arguments. Each test runs on both ways of
// running plug-ins: a worker per instance (Host's default) and one worker for all (src/worker-host.js,
// the engine src/node.js gives).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Host, HostLoadError, PluginFailed } from "../src/host.js";
import { PlanInvalid } from "../src/plan.js";
import { capMemory } from "../src/wasm.js";
import { workerEngine } from "../src/worker-host.js";
import { WASM, component, conformanceWasm, modulesOf, moduleRef, plan } from "./helpers.js";

const RUST = conformanceWasm("rust");
const needsRust = { skip: RUST === null && "plugins/conformance-rust is not built" };

/** @type {[string, import("../src/host.js").Engine | undefined][]} */
const ENGINES = [["a worker per instance", undefined], ["one worker", workerEngine]];

/** @param {string} text */
const bytes = (text) => new TextEncoder().encode(text);
/** @param {Uint8Array} out */
const json = (out) => JSON.parse(new TextDecoder().decode(out));

test("a module whose bytes are not the plan's digest is refused before anything is instantiated", async () => {
  const p = plan({ t: component("tool", WASM.spin) }, "t");
  let made = 0;
  await assert.rejects(
    Host.load(p, { modules: async () => new Uint8Array(WASM.hog), instantiate: async () => { made++; throw new Error("no"); } }),
    (err) => err instanceof HostLoadError && /are not sha256:[0-9a-f]{64} as the plan says/.test(err.message) && /refusing/.test(err.message));
  assert.equal(made, 0);
});


for (const [label, engine] of ENGINES) {
/** @param {any} p @param {any} [options] */
async function load(p, options = {}) {
  return Host.load(p, { modules: modulesOf(WASM.spin, WASM.hog, WASM.badimport, WASM.nocall, ...(RUST ? [RUST] : [])), engine, ...options });
}

test(`${label}: ` + "a plan that breaks its schema or names a missing component is refused with where", async () => {
  const p = plan({ t: component("tool", WASM.spin) }, "t");
  await assert.rejects(load({ ...p, plan_version: 2 }), (err) => err instanceof PlanInvalid && /plan_version/.test(err.message));
  await assert.rejects(load({ ...p, entry: "nope" }), (err) => err instanceof PlanInvalid && /entry: "nope"/.test(err.message));
  const calls = plan({ a: component("agent", WASM.spin, { calls: { tools: ["a"] } }) }, "a");
  await assert.rejects(load(calls), (err) => err instanceof PlanInvalid && /calls\/tools: "a" is not a tool/.test(err.message));
});

test(`${label}: ` + "a module that imports an unknown host function, or exports no call, is not a plug-in", async () => {
  await assert.rejects(load(plan({ t: component("tool", WASM.badimport) }, "t")),
    (err) => err instanceof HostLoadError && /launch_missiles/.test(err.message));
  await assert.rejects(load(plan({ t: component("tool", WASM.nocall) }, "t")),
    (err) => err instanceof HostLoadError && /does not export a function `call`/.test(err.message));
});

test(`${label}: ` + "capMemory writes the grant into the module: memory.grow fails past it", async () => {
  const { bytes: capped, minPages } = capMemory(WASM.hog, 4);
  assert.equal(minPages, 1);
  const { instance } = /** @type {any} */ (await WebAssembly.instantiate(capped));
  assert.throws(() => instance.exports.call(), WebAssembly.RuntimeError);
  assert.equal(instance.exports.memory.buffer.byteLength, 1 * 65536); // 1 + 16 > 4: every grow failed
  const { bytes: roomy } = capMemory(WASM.hog, 40);
  const grown = /** @type {any} */ (await WebAssembly.instantiate(roomy)).instance;
  assert.throws(() => grown.exports.call(), WebAssembly.RuntimeError);
  assert.equal(grown.exports.memory.buffer.byteLength, 33 * 65536);
});

test(`${label}: ` + "a plug-in that grows its memory past its grant traps, and the next call gets a fresh instance", async () => {
  const host = await load(plan({ t: component("tool", WASM.hog, { grant: { memory_pages: 4 } }) }, "t"));
  try {
    for (let i = 0; i < 2; i++) {
      await assert.rejects(host.run("x"), (err) => err instanceof PluginFailed && /tool `t` crashed \(wasm trap\)/.test(err.message));
    }
  } finally {
    await host.close();
  }
});

test(`${label}: ` + "a plug-in that never returns is stopped at its timeout_ms, every time", async () => {
  const host = await load(plan({ t: component("tool", WASM.spin, { grant: { timeout_ms: 300 } }) }, "t"));
  try {
    for (let i = 0; i < 2; i++) {
      const start = performance.now();
      await assert.rejects(host.run("x"), (err) => err instanceof PluginFailed && /tool `t` timed out after 300 ms/.test(err.message));
      assert.ok(performance.now() - start < 3000, "stopped near its deadline");
    }
  } finally {
    await host.close();
  }
});

test(`${label}: ` + "a nested call never outlives its caller's deadline", needsRust, async () => {
  const rust = /** @type {Uint8Array} */ (RUST);
  const host = await load(plan({
    a: component("agent", rust, { grant: { timeout_ms: 500 }, calls: { tools: ["spin"] } }),
    spin: component("tool", WASM.spin),
  }, "a"));
  try {
    const start = performance.now();
    if (engine === undefined) {
      const result = await host.run("q");
      assert.match(result.output, /time limit \(500 ms of agent `a`\) ran out/);
    } else {
      // one thread runs both: a callee that shares its caller's deadline is stopped with the whole request
      await assert.rejects(host.run("q"), (err) => err instanceof PluginFailed && /agent `a` timed out after 500 ms/.test(err.message));
      assert.equal((await host.call("a", "count", new Uint8Array(0))).length, 1, "a fresh worker answers the next call");
    }
    assert.ok(performance.now() - start < 4000);
  } finally {
    await host.close();
  }
});

test(`${label}: ` + "an agent that calls itself gets `cycle`; a chain deeper than 8 gets `depth`", needsRust, async () => {
  const rust = /** @type {Uint8Array} */ (RUST);
  const components = Object.fromEntries(Array.from({ length: 10 }, (_, i) =>
    [`a${i}`, component("agent", rust, { calls: { agents: i < 9 ? [`a${i + 1}`] : [] } })]));
  components.self = component("agent", rust, { calls: { agents: ["self"] } });
  const host = await load(plan(components, "a0"));
  try {
    const cycle = json(await host.call("self", "host", bytes(JSON.stringify({ fn: "call_agent", request: { name: "self", input: "x" } }))));
    assert.deepEqual(cycle, { error: { code: "cycle", message: "call cycle: self -> self" } });
    const deep = await host.run("x");
    assert.equal(deep.finishReason, "error");
    assert.match(deep.output, /call depth over 8: a0 -> a1 -> a2 -> a3 -> a4 -> a5 -> a6 -> a7 -> a8/);
  } finally {
    await host.close();
  }
});

test(`${label}: ` + "limits of host requests: an emit chunk over 64 Ki characters, a kv value over 1 MiB, a kv key over 512", needsRust, async () => {
  const rust = /** @type {Uint8Array} */ (RUST);
  const chunks = [];
  const host = await load(plan({ a: component("agent", rust, { grant: { kv: true } }) }, "a"), { onChunk: (/** @type {string} */ c, /** @type {string} */ t) => chunks.push([c, t]) });
  const hostCall = async (/** @type {string} */ fn, /** @type {any} */ request) => json(await host.call("a", "host", bytes(JSON.stringify({ fn, request }))));
  try {
    assert.equal((await hostCall("emit", { type: "chunk", text: "x".repeat(65537) })).error.code, "bad_request");
    assert.equal(chunks.length, 0);
    assert.equal((await hostCall("kv_set", { key: "k", value: "v".repeat(1024 * 1024) })).error.code, "too_large");
    assert.equal((await hostCall("kv_set", { key: "k".repeat(513), value: 1 })).error.code, "bad_request");
    assert.deepEqual(await hostCall("kv_get", { key: "k" }), { value: null });
  } finally {
    await host.close();
  }
});

test(`${label}: ` + "a tool's arguments are checked against its input_schema before it runs", needsRust, async () => {
  const rust = /** @type {Uint8Array} */ (RUST);
  const schema = { type: "object", properties: { q: { type: "string" } }, required: ["q"] };
  const host = await load(plan({
    t: component("tool", rust, { input_schema: schema }),
    a: component("agent", rust, { calls: { tools: ["t"] } }),
  }, "a"));
  try {
    await assert.rejects(host.runMessage("t", { arguments: { q: 3 } }), /bad_request: tool `t`: arguments\.q: must be string/);
    const ok = await host.runMessage("t", { arguments: { q: "yes" } });
    assert.equal(ok.response.is_error, false);
    const refused = json(await host.call("a", "raw", bytes(`call_tool\n${JSON.stringify({ name: "t", arguments: {} })}`)));
    assert.equal(refused.error.code, "bad_request");
    assert.match(refused.error.message, /call_tool: tool `t`: arguments: must have required property 'q'/);
  } finally {
    await host.close();
  }
});

test(`${label}: ` + "a secret the host cannot read stops the load, naming the secret and the component", async () => {
  const secret = { name: "token", source: "env:CSPM_JS_TEST_UNSET", header: "Authorization", format: "Bearer {}", hosts: null, query: null };
  const p = plan({ t: component("tool", WASM.spin, { secrets: [secret] }) }, "t");
  await assert.rejects(load(p, { secrets: async () => null }), /secret `token` of tool `t`: env:CSPM_JS_TEST_UNSET is not available/);
  await assert.rejects(load(p), /secret `token` of tool `t`: this host has no secrets/);
  await assert.rejects(load(p, { secrets: async () => "two\nlines" }), /spans several lines/);
});

test(`${label}: ` + "modules are read once per digest, whatever the number of components", async () => {
  let reads = 0;
  const modules = modulesOf(WASM.spin);
  const host = await Host.load(plan({ a: component("tool", WASM.spin), b: component("tool", WASM.spin) }, "a"),
    { modules: async (c) => { reads++; return modules(c); }, engine });
  await host.close();
  assert.equal(reads, 1);
  assert.equal(moduleRef(WASM.spin).size, WASM.spin.length);
});

test(`${label}: ` + "vars persist across many calls (the host resets Extism-JS's block list between calls, not the vars)", needsRust, async () => {
  const rust = /** @type {Uint8Array} */ (RUST);
  const host = await load(plan({ a: component("agent", rust, { grant: { kv: true } }) }, "a"));
  try {
    let last = "";
    for (let i = 0; i < 40; i++) {
      last = new TextDecoder().decode(await host.call("a", "count", new Uint8Array(0)));
      await host.call("a", "host", bytes(JSON.stringify({ fn: "kv_set", request: { key: "k", value: i } })));
    }
    assert.equal(last, "40");
    assert.deepEqual(json(await host.call("a", "host", bytes(JSON.stringify({ fn: "kv_get", request: { key: "k" } })))), { value: 39 });
  } finally {
    await host.close();
  }
});

test(`${label}: ` + "a callee that runs past its own timeout_ms fails, and its caller goes on", needsRust, async () => {
  const rust = /** @type {Uint8Array} */ (RUST);
  const host = await load(plan({
    a: component("agent", rust, { grant: { timeout_ms: 20000 }, calls: { tools: ["spin"] } }),
    spin: component("tool", WASM.spin, { grant: { timeout_ms: 300 } }),
  }, "a"));
  try {
    for (let i = 0; i < 2; i++) {
      const start = performance.now();
      const result = await host.run("q");
      assert.match(result.output, /tool `spin` timed out after 300 ms/);
      assert.ok(performance.now() - start < 3000, "stopped near the callee's deadline");
    }
    assert.equal(new TextDecoder().decode(await host.call("a", "count", new Uint8Array(0))), "1", "the caller's instance was kept");
  } finally {
    await host.close();
  }
});
}
