// The Node side of bench/hosts_bench.py: loads a run plan (`cspm plan APP --json`) in the Node host
// (src/host.js with src/node.js's options: plug-ins in extism workers, mounts as real folders) and
// prints one JSON object of measurements on stdout.
//
//   node hosts/js/bench/node_bench.js hop PLAN.json --calls N --batches B --budget-ms MS
//   node hosts/js/bench/node_bench.js decode PLAN.json --component NAME --tokens N --reps R [--prompt TEXT]

import createPlugin from "@extism/extism";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { HOST_FUNCTIONS, Host } from "../src/host.js";
import { nodeOptions } from "../src/node.js";
import { measureDecode, measureHop, perCallUs } from "./measure.js";

/** A plan file is a few KiB; anything near this is not one. */
const MAX_PLAN_BYTES = 4 * 1024 * 1024;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    calls: { type: "string", default: "300" },
    batches: { type: "string", default: "5" },
    "budget-ms": { type: "string", default: "1000" },
    component: { type: "string", default: "tiny" },
    tokens: { type: "string", default: "32" },
    reps: { type: "string", default: "3" },
    prompt: { type: "string", default: "Once upon a time" },
  },
});
const [mode, planPath] = positionals;

/**
 * The same call of t's `call` export on a bare extism-js plug-in in a worker (as the host makes its
 * instances, without the host): what the Node host adds over extism-js's own worker round trip.
 * Host functions are stubs, since the tool calls none. @param {any} plan @param {{calls: number, batches: number, budgetMs: number}} options
 */
async function extismWorkerCallUs(plan, options) {
  const component = plan.components.t;
  const module = await WebAssembly.compile(await readFile(component.module.path));
  const stub = () => 0n;
  const plugin = await createPlugin({ wasm: [{ module }] }, {
    runInWorker: true, useWasi: false, config: component.config,
    functions: { "extism:host/user": Object.fromEntries(HOST_FUNCTIONS.map((n) => [n, stub])) },
  });
  try {
    const input = new TextEncoder().encode(JSON.stringify({ input: "hello" }));
    for (let i = 0; i < 10; i++) await plugin.call("call", input); // warm, as measureHop's first run warms the host
    return await perCallUs(() => plugin.call("call", input), options.calls, options.batches, options.budgetMs);
  } finally {
    await plugin.close();
  }
}
if (positionals.length !== 2 || (mode !== "hop" && mode !== "decode")) {
  console.error("usage: node_bench.js hop|decode PLAN.json [--calls N --batches B | --component C --tokens N --reps R]");
  process.exit(2);
}
const text = await readFile(planPath, "utf8");
if (text.length > MAX_PLAN_BYTES) throw new Error(`${planPath} is larger than ${MAX_PLAN_BYTES} bytes`);
const started = performance.now();
const host = await Host.load(JSON.parse(text), nodeOptions());
const loadMs = performance.now() - started;
try {
  const hopOptions = { calls: Number(values.calls), batches: Number(values.batches), budgetMs: Number(values["budget-ms"]) };
  const result = mode === "hop"
    ? { ...await measureHop(host, hopOptions), extism_worker_call_us: await extismWorkerCallUs(JSON.parse(text), hopOptions) }
    : await measureDecode(host, { component: values.component, prompt: values.prompt, tokens: Number(values.tokens), reps: Number(values.reps) });
  process.stdout.write(JSON.stringify({ ...result, load_ms: loadMs, node: process.version }) + "\n");
} finally {
  await host.close();
}
