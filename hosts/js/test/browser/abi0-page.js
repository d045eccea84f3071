// ABI 0 (Extism 0.x plug-ins, src/abi0.js) on the browser host, in the page: the Host with every plug-in
// made by browserInstantiate on the page's thread (the cs0_* functions asynchronous through JSPI).
// tests/integration/test_js_browser_abi0.py bundles this page (build-page.js: the host imports packages
// by bare name), serves it on loopback and calls window.cspmAbi0.run(...) through playwright.

import createPlugin from "@extism/extism";
import * as wasiShim from "@bjorn3/browser_wasi_shim";
import { Host, sha256Hex } from "../../src/host.js";
import { capMemory } from "../../src/wasm.js";
import { browserInstantiate } from "../../src/browser/instantiate.js";

/** @param {string} url */
async function bytesOf(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * The original agent (abi0_agent: ToolReq to `tool_name`, then LLMReq to `llm_name`), an original tool
 * (abi0_echo) and an ABI 1 llm and agent (the Rust conformance plug-in), as one plan; each request's
 * output, or its error.
 * @param {{agentUrl: string, echoUrl: string, rustUrl: string}} args
 */
export async function run({ agentUrl, echoUrl, rustUrl }) {
  /** @type {Map<string, Uint8Array>} */
  const byPath = new Map();
  for (const url of [agentUrl, echoUrl, rustUrl]) byPath.set(url, await bytesOf(url));
  const component = async (/** @type {string} */ kind, /** @type {string} */ url, /** @type {any} */ more = {}) => {
    const bytes = /** @type {Uint8Array} */ (byPath.get(url));
    const { calls = {}, ...rest } = more;
    return {
      kind, description: `a ${kind}`, where: `page: ${kind}`, package: null, features: [],
      module: { digest: `sha256:${await sha256Hex(bytes)}`, path: url, size: bytes.length },
      grant: { hosts: [], mounts: [], kv: false, wasi: null, memory_pages: 256, timeout_ms: 30000 },
      config: { kind }, secrets: [], calls: { llms: [], tools: [], agents: [], ...calls }, input_schema: null, ...rest,
    };
  };
  const plan = {
    plan_version: 1, abi: 1, app: { name: "abi0-page", source: "page", origin: null }, entry: "old", kv_scope: "abi0-page",
    components: {
      llm: await component("llm", rustUrl),
      old_tool: await component("tool", echoUrl),
      old: await component("agent", agentUrl, { config: { llm_name: "llm", tool_name: "old_tool", prompt: "be terse" }, calls: { llms: ["llm"], tools: ["old_tool"] } }),
      lost: await component("agent", agentUrl, { config: { llm_name: "llm", tool_name: "nosuch" }, calls: { llms: ["llm"] } }),
      modern: await component("agent", rustUrl, { config: { kind: "agent" }, calls: { tools: ["old_tool"] } }),
    },
  };
  /** @type {string[]} */
  const logs = [];
  const host = await Host.load(plan, {
    modules: async (c) => /** @type {Uint8Array} */ (byPath.get(c.module.path)),
    instantiate: browserInstantiate({
      createPlugin, wasiShim,
      moduleBytes: async (spec) => capMemory(/** @type {Uint8Array} */ (byPath.get(spec.component.module.path)), spec.memoryPages).bytes,
      mountFiles: async () => { throw new Error("this page mounts nothing"); },
    }),
    onLog: (name, level, message) => logs.push(`${name} ${level}: ${message}`),
  });
  /** @param {Promise<any>} pending */
  const settle = async (pending) => {
    try { return (await pending).output; } catch (e) { return `failed: ${/** @type {Error} */ (e).message}`; }
  };
  try {
    return {
      old: await settle(host.run("q \"quoted\" é")),
      lost: await settle(host.run("x", { entry: "lost" })),
      modern: await settle(host.run("hi", { entry: "modern" })),
      fail: await settle(host.run("fail", { entry: "old_tool" })),
      logs,
    };
  } finally {
    await host.close();
  }
}
