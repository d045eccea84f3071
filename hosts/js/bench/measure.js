// The measurements of bench/hosts_bench.py, shared by the Node script and the Chromium page so both
// time the same calls in the same way as the Python side (bench/runtime_bench.py): the median of
// batches, microseconds per call. Portable: no import, the host is whatever Host the caller built.

/**
 * What this file needs of a Host (src/host.js's Host has it).
 * @typedef {{
 *   run(text: string, options?: {entry?: string}): Promise<{output: string}>,
 *   call(name: string, exportName: string, input: Uint8Array): Promise<Uint8Array>,
 * }} HostLike
 */

/** Calls per batch and batches are bounded so a page or a CLI argument cannot ask for hours. */
export const MAX_CALLS = 100_000;
export const MAX_BATCHES = 50;
export const MAX_TOKENS = 4096;
export const MAX_BUDGET_MS = 60_000;

/** @param {number[]} values */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** @param {unknown} n @param {number} max @param {string} what */
function count(n, max, what) {
  if (!Number.isInteger(n) || /** @type {number} */ (n) < 1 || /** @type {number} */ (n) > max) {
    throw new RangeError(`${what} must be an integer from 1 to ${max}, not ${JSON.stringify(n)}`);
  }
  return /** @type {number} */ (n);
}

/**
 * Median over `batches` batches of the time per call of `fn`, in microseconds (each call awaited). A
 * batch is `calls` calls, or fewer when it has run `budgetMs` (a slow host gets fewer calls, not hours).
 * @param {() => Promise<unknown>} fn @param {number} calls @param {number} batches @param {number} budgetMs
 */
export async function perCallUs(fn, calls, batches, budgetMs) {
  /** @type {number[]} */
  const times = [];
  for (let b = 0; b < batches; b++) {
    const start = performance.now();
    let done = 0;
    while (done < calls) {
      await fn();
      done++;
      if (performance.now() - start >= budgetMs) break;
    }
    times.push(((performance.now() - start) / done) * 1000);
  }
  return median(times);
}

/**
 * The routed hop of bench/runtime_bench.py on the app it writes (tool `t`, agents `with_tool` and
 * `alone`, all the conformance plug-in): a bare call of t's `call` export through the host, a run of
 * each agent, and hop = run(with_tool) − run(alone). The same inputs as the Python side.
 * @param {HostLike} host @param {{calls: number, batches: number, budgetMs: number}} options
 */
export async function measureHop(host, options) {
  const calls = count(options.calls, MAX_CALLS, "calls");
  const batches = count(options.batches, MAX_BATCHES, "batches");
  const budget = count(options.budgetMs, MAX_BUDGET_MS, "budgetMs");
  const payload = new TextEncoder().encode(JSON.stringify({ input: "hello" }));
  const first = await host.run("hello");
  if (typeof first.output !== "string") throw new Error(`with_tool answered no output: ${JSON.stringify(first)}`);
  const bare = await perCallUs(() => host.call("t", "call", payload), calls, batches, budget);
  const routed = await perCallUs(() => host.run("hello"), calls, batches, budget);
  const alone = await perCallUs(() => host.run("hello", { entry: "alone" }), calls, batches, budget);
  return {
    host_call_us: bare, run_agent_with_tool_us: routed, run_agent_alone_us: alone,
    routed_hop_us: routed - alone, hop_over_host_call: (routed - alone) / bare, first_output: first.output,
  };
}

/**
 * llm-local's `bench` export (prompt from an empty cache, then `tokens` greedy tokens, timed inside
 * the plug-in) `reps` times; the median decode and prefill rates, as bench/llm_local_bench.py reads them.
 * @param {HostLike} host @param {{component: string, prompt: string, tokens: number, reps: number}} options
 */
export async function measureDecode(host, options) {
  const tokens = count(options.tokens, MAX_TOKENS, "tokens");
  const reps = count(options.reps, MAX_BATCHES, "reps");
  const input = new TextEncoder().encode(JSON.stringify({ text: String(options.prompt), n: tokens }));
  /** @type {{n_prompt: number, n_gen: number, prefill_s: number, decode_s: number}[]} */
  const rows = [];
  for (let r = 0; r < reps; r++) rows.push(JSON.parse(new TextDecoder().decode(await host.call(options.component, "bench", input))));
  return {
    decode_tok_s: median(rows.map((row) => row.n_gen / row.decode_s)),
    prefill_tok_s: median(rows.map((row) => row.n_prompt / row.prefill_s)),
    prompt_tokens: rows[0].n_prompt, generated_tokens: rows[0].n_gen, reps,
  };
}
