// The portable part of the JavaScript host's conformance runner (conformance/README.md): checking the
// case file, filling placeholders, data bytes, patterns, expectations and the steps of a case. It
// imports no node: module, so the Node runner (test/conformance.js) and the browser page
// (test/browser/conformance-page.js) run the same code; each injects what its platform does
// differently: where the `files` live and who reads them, the kv store, how a host is made, and how
// the echo server's requests are seen.

import Ajv2020Module from "ajv/dist/2020.js";

export const MAX_FILE_BYTES = 4 * 1024 * 1024;
export const MAX_DATA_BYTES = 16 * 1024 * 1024;
const PLACEHOLDER = /\$\{([a-z][a-z0-9_]{0,63})\}/g;
const WHOLE = /^\$\{([a-z][a-z0-9_]{0,63})\}$/;

export class CasesInvalid extends Error {}
export class StepFailed extends Error {}

/**
 * What a runner needs of a host: Host (src/host.js) is one.
 * @typedef {{
 *   nodes: {has(name: string): boolean},
 *   call(name: string, exportName: string, input: Uint8Array): Promise<Uint8Array>,
 *   run(text: string, options: {entry: string}): Promise<{response: any}>,
 *   close(): Promise<void>
 * }} HostLike
 *
 * What the runner observes of a host: give these to Host.load as they are.
 * @typedef {{
 *   session: string,
 *   onChunk: (component: string, text: string) => void,
 *   onLog: (component: string, level: string, message: string) => void
 * }} Observers
 *
 * One case's surroundings, made fresh for it by the platform (Runner.openCase).
 * @typedef {{
 *   files: Record<string, string>,
 *   makeHost: (plan: any, observers: Observers) => Promise<HostLike>,
 *   close?: () => Promise<void>
 * }} CaseEnv
 *
 * What a platform gives the runner. `openCase` receives the file's `files` (name -> content), puts
 * them where its host's secrets are read from, and answers each one's placeholder value (its path)
 * and a `makeHost` whose hosts share one kv store, empty at the start (a `restart` step keeps it).
 * `echoSeen` answers every request the echo server has recorded so far, in order.
 * @typedef {{
 *   openCase: (files: Record<string, string>) => Promise<CaseEnv>,
 *   echoSeen: () => any[] | Promise<any[]>
 * }} Runner
 *
 * @typedef {{case: string, passed: boolean, reason: string}} CaseResult
 */

// ---- the file ----------------------------------------------------------------------------------

/** @param {any} value @returns {Generator<string>} */
function* strings(value) {
  if (typeof value === "string") yield value;
  else if (Array.isArray(value)) for (const v of value) yield* strings(v);
  else if (value && typeof value === "object") for (const v of Object.values(value)) yield* strings(v);
}

/**
 * The case file's document, checked: against its schema (cases.schema.json, parsed), unique ids,
 * every placeholder declared. `label` names the file in messages.
 * @param {any} doc @param {any} schema @param {string} label
 */
export function loadCases(doc, schema, label) {
  const Ajv2020 = /** @type {any} */ (Ajv2020Module).default ?? Ajv2020Module;
  const check = new Ajv2020({ strict: false }).compile(schema);
  if (!check(doc)) {
    const e = check.errors[0];
    throw new CasesInvalid(`${label}: ${e.instancePath || "(top)"}: ${e.message}`);
  }
  const ids = doc.cases.map((/** @type {any} */ c) => c.id);
  const repeated = [...new Set(ids.filter((/** @type {string} */ id, /** @type {number} */ i) => ids.indexOf(id) !== i))];
  if (repeated.length) throw new CasesInvalid(`${label}: case ids used more than once: ${repeated.join(", ")}`);
  const declared = new Set([...Object.keys(doc.placeholders), ...Object.keys(doc.files)]);
  const used = new Set();
  for (const text of [...strings(doc.plan), ...strings(doc.cases)]) for (const m of text.matchAll(PLACEHOLDER)) used.add(m[1]);
  const undeclared = [...used].filter((n) => !declared.has(n)).sort();
  if (undeclared.length) throw new CasesInvalid(`${label}: undeclared placeholders: ${undeclared.join(", ")}`);
  return doc;
}

/**
 * The text of a case file, refused past MAX_FILE_BYTES before it is parsed.
 * @param {string} text @param {string} label
 */
export function parseCasesText(text, label) {
  if (new TextEncoder().encode(text).byteLength > MAX_FILE_BYTES) throw new CasesInvalid(`${label}: larger than ${MAX_FILE_BYTES / 2 ** 20} MiB`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CasesInvalid(`${label}: not JSON: ${/** @type {Error} */ (err).message}`);
  }
}

/**
 * The `${module}` value of a plug-in: plan.json's module object, `path` where this host reads it.
 * @param {Uint8Array} bytes @param {string} path
 */
export async function moduleValue(bytes, path) {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", /** @type {any} */ (bytes));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return { digest: `sha256:${hex}`, path, size: bytes.byteLength };
}

/** `value` with each `${name}` replaced (a whole-string placeholder by the value itself). @param {any} value @param {Record<string, any>} values @returns {any} */
export function fill(value, values) {
  if (Array.isArray(value)) return value.map((v) => fill(v, values));
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fill(v, values)]));
  if (typeof value !== "string") return value;
  const whole = WHOLE.exec(value);
  if (whole) return valueOf(whole[1], values);
  return value.replace(PLACEHOLDER, (_, name) => {
    const found = valueOf(name, values);
    if (typeof found !== "string") throw new CasesInvalid(`\${${name}} is used inside text, so its value must be a string`);
    return found;
  });
}

/** @param {string} name @param {Record<string, any>} values */
function valueOf(name, values) {
  if (!Object.hasOwn(values, name)) throw new CasesInvalid(`no value for the placeholder \${${name}}`);
  return values[name];
}

/** The JSON text of the `json` data form: every non-ASCII character as a \u escape. @param {any} value */
function asciiJson(value) {
  return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/** Standard base64 (the schema checks its alphabet) to bytes. @param {string} text */
function fromBase64(text) {
  let binary;
  try {
    binary = atob(text);
  } catch {
    throw new CasesInvalid(`not base64: ${JSON.stringify(text.slice(0, 40))}`);
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** The bytes a data form stands for. @param {any} data @returns {Uint8Array} */
export function dataBytes(data) {
  if ("text" in data) return new TextEncoder().encode(data.text);
  if ("base64" in data) return fromBase64(data.base64);
  if ("json" in data) return new TextEncoder().encode(asciiJson(data.json));
  const piece = dataBytes(data.repeat);
  if (piece.length * data.times > MAX_DATA_BYTES) throw new CasesInvalid(`a repeated piece of ${piece.length * data.times} bytes is over ${MAX_DATA_BYTES}`);
  const out = new Uint8Array(piece.length * data.times);
  for (let i = 0; i < data.times; i++) out.set(piece, i * piece.length);
  return out;
}

// ---- patterns ----------------------------------------------------------------------------------

/** JSON equality: key order aside, numbers by value, a boolean never a number. @param {any} a @param {any} b @returns {boolean} */
export function same(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same(a[k], b[k]));
  }
  return a === b;
}

/** @param {any} v */
const show = (v) => (JSON.stringify(v) ?? String(v)).slice(0, 200);

/** null when `actual` matches `pattern` (conformance/README.md#patterns), else where and why not. @param {any} actual @param {any} pattern @param {string} [path] @returns {string | null} */
export function mismatch(actual, pattern, path = "") {
  const at = path || "the value";
  if (pattern && typeof pattern === "object" && !Array.isArray(pattern)) {
    const keys = Object.keys(pattern);
    if (keys.length === 1 && keys[0].startsWith("$")) {
      const [op, operand] = [keys[0], pattern[keys[0]]];
      if (op === "$contains") return typeof actual === "string" && actual.includes(operand) ? null : `${at} is ${show(actual)}, not containing ${show(operand)}`;
      if (op === "$json") {
        if (typeof actual !== "string") return `${at} is not a string of JSON`;
        let parsed;
        try { parsed = JSON.parse(actual); } catch { return `${at} is not JSON: ${show(actual)}`; }
        return mismatch(parsed, operand, path);
      }
      if (op === "$headers") {
        if (!actual || typeof actual !== "object") return `${at} is not an object of headers`;
        const lowered = Object.fromEntries(Object.entries(actual).map(([k, v]) => [k.toLowerCase(), v]));
        for (const [name, inner] of Object.entries(operand)) {
          if (!Object.hasOwn(lowered, name.toLowerCase())) return `${at} has no header ${show(name)}`;
          const problem = mismatch(lowered[name.toLowerCase()], inner, `${path}/${name.toLowerCase()}`);
          if (problem !== null) return problem;
        }
        return null;
      }
      return `unknown pattern operator ${show(op)}`;
    }
    if (!actual || typeof actual !== "object" || Array.isArray(actual)) return `${at} is ${show(actual)}, expected an object`;
    for (const [key, inner] of Object.entries(pattern)) {
      if (!Object.hasOwn(actual, key)) return `${at} has no ${show(key)}`;
      const problem = mismatch(actual[key], inner, `${path}/${key}`);
      if (problem !== null) return problem;
    }
    return null;
  }
  if (Array.isArray(pattern)) {
    if (!Array.isArray(actual) || actual.length !== pattern.length) return `${at} is ${show(actual)}, expected a list of ${pattern.length}`;
    for (let i = 0; i < pattern.length; i++) {
      const problem = mismatch(actual[i], pattern[i], `${path}/${i}`);
      if (problem !== null) return problem;
    }
    return null;
  }
  return same(actual, pattern) ? null : `${at} is ${show(actual)}, expected ${show(pattern)}`;
}

/** @param {Uint8Array} bytes */
const utf8 = (bytes) => new TextDecoder().decode(bytes);

/** @param {Uint8Array} output */
function showBytes(output) {
  const text = JSON.stringify(utf8(output.subarray(0, 300)));
  return output.length > 300 ? `${text}… (${output.length} bytes)` : text;
}

/** @param {Uint8Array} a @param {Uint8Array} b */
function equalBytes(a, b) {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** StepFailed unless `output` meets the step's output expectations. @param {any} expect @param {Uint8Array} output */
export function checkOutput(expect, output) {
  if ("output" in expect) {
    const wanted = dataBytes(expect.output);
    if (!equalBytes(output, wanted)) throw new StepFailed(`output was ${showBytes(output)}, expected ${showBytes(wanted)}`);
  }
  const text = utf8(output);
  for (const excluded of expect.output_excludes ?? []) {
    if (text.includes(excluded)) throw new StepFailed(`output contains ${show(excluded)}: ${showBytes(output)}`);
  }
  if (!("json" in expect || "json_contains" in expect || "error" in expect)) return;
  let value;
  try { value = JSON.parse(text); } catch (err) { throw new StepFailed(`output is not JSON (${/** @type {Error} */ (err).message}): ${showBytes(output)}`); }
  if ("json" in expect && !same(value, expect.json)) throw new StepFailed(`output was ${showBytes(output)}, expected ${JSON.stringify(expect.json)}`);
  if ("json_contains" in expect) {
    const problem = mismatch(value, expect.json_contains);
    if (problem !== null) throw new StepFailed(`output ${showBytes(output)}: ${problem}`);
  }
  if ("error" in expect) {
    /** @type {any} */
    const pattern = { code: expect.error.code };
    if ("message_contains" in expect.error) pattern.message = { $contains: expect.error.message_contains };
    const problem = mismatch(value, { error: pattern });
    if (problem !== null) throw new StepFailed(`expected an error document with code ${show(expect.error.code)}; output ${showBytes(output)}: ${problem}`);
  }
}

// ---- running -----------------------------------------------------------------------------------

/** @param {any} step */
function describe(step) {
  if (step.do === "call") return `call ${step.component}.${step.export}`;
  if (step.do === "run") return `run ${step.component}`;
  return `restart in session ${step.session}`;
}

/**
 * One case on a fresh host, with its own files and kv store (runner.openCase).
 * @param {any} doc a document loadCases accepted @param {string} caseId
 * @param {Record<string, any>} values the placeholders' values but the files' (`module`, `echo_url`)
 * @param {Runner} runner
 * @returns {Promise<CaseResult>}
 */
export async function runCase(doc, caseId, values, runner) {
  const found = doc.cases.find((/** @type {any} */ c) => c.id === caseId);
  if (!found) throw new Error(`no case ${JSON.stringify(caseId)}`);
  /** @type {{component: string, text: string}[]} */
  const chunks = [];
  /** @type {[string, string, string][]} */
  const logs = [];
  /** @type {HostLike | null} */
  let host = null;
  /** @type {CaseEnv | null} */
  let env = null;
  let where = "start";
  try {
    env = await runner.openCase({ ...doc.files });
    const filled = { ...values, ...env.files };
    let plan, steps;
    try {
      plan = fill(doc.plan, filled);
      steps = fill(found.steps, filled);
    } catch (err) {
      return { case: caseId, passed: false, reason: `filling the placeholders: ${/** @type {Error} */ (err).message}` };
    }
    const makeHost = env.makeHost;
    const start = async (/** @type {string} */ session) => makeHost(plan, {
      session,
      onChunk: (component, text) => chunks.push({ component, text }),
      onLog: (component, level, message) => logs.push([component, level, message]),
    });
    try {
      host = await start(doc.session);
    } catch (err) {
      return { case: caseId, passed: false, reason: `start: the host refused the plan: ${/** @type {Error} */ (err).message}` };
    }
    for (const [index, step] of steps.entries()) {
      where = `step ${index + 1} (${describe(step)})`;
      if (step.do === "restart") {
        await host.close();
        host = null;
        try {
          host = await start(step.session);
        } catch (err) {
          throw new StepFailed(`the host refused the plan: ${/** @type {Error} */ (err).message}`);
        }
        continue;
      }
      chunks.length = 0;
      logs.length = 0;
      const before = (await runner.echoSeen()).length;
      const expect = step.expect;
      if (!host.nodes.has(step.component)) throw new StepFailed(`the plan has no component ${JSON.stringify(step.component)}`);
      /** @type {Uint8Array | null} */
      let output = null;
      /** @type {string | null} */
      let failure = null;
      try {
        if (step.do === "call") output = await host.call(step.component, step.export, dataBytes(step.input));
        else output = new TextEncoder().encode(JSON.stringify((await host.run(step.input, { entry: step.component })).response));
      } catch (err) {
        failure = `${/** @type {Error} */ (err).name}: ${/** @type {Error} */ (err).message}`;
      }
      if (failure !== null) {
        if (!("fails" in expect)) throw new StepFailed(`the call failed: ${failure}`);
        const wanted = expect.fails.message_contains;
        if (wanted !== undefined && !failure.includes(wanted)) throw new StepFailed(`the call failed with ${show(failure)}, which does not contain ${show(wanted)}`);
      } else {
        if ("fails" in expect) throw new StepFailed(`the call succeeded (output ${showBytes(/** @type {Uint8Array} */ (output))}), expected it to fail`);
        checkOutput(expect, /** @type {Uint8Array} */ (output));
      }
      if ("chunks" in expect && !same(chunks, expect.chunks)) throw new StepFailed(`chunks emitted were ${show(chunks)}, expected ${show(expect.chunks)}`);
      for (const [component, rule] of Object.entries(expect.logs ?? {})) {
        const lines = logs.filter(([name]) => name === component).map(([, level, message]) => ({ level, message }));
        if ("equals" in rule && !same(lines, rule.equals)) throw new StepFailed(`${component} logged ${show(lines)}, expected exactly ${show(rule.equals)}`);
        const missing = (rule.includes ?? []).filter((/** @type {any} */ line) => !lines.some((l) => same(l, line)));
        if (missing.length) throw new StepFailed(`${component} logged ${show(lines)}, which lacks ${show(missing)}`);
      }
      if ("echo_requests" in expect) {
        const got = (await runner.echoSeen()).slice(before);
        if (got.length !== expect.echo_requests.length) throw new StepFailed(`the echo server got ${got.length} requests, expected ${expect.echo_requests.length}`);
        for (let i = 0; i < got.length; i++) {
          const problem = mismatch(got[i], expect.echo_requests[i]);
          if (problem !== null) throw new StepFailed(`the echo server got a request whose ${problem}`);
        }
      }
    }
    return { case: caseId, passed: true, reason: "" };
  } catch (err) {
    if (err instanceof StepFailed || err instanceof CasesInvalid) return { case: caseId, passed: false, reason: `${where}: ${err.message}` };
    return { case: caseId, passed: false, reason: `${where}: the runner failed: ${/** @type {Error} */ (err).stack}` };
  } finally {
    if (host) await host.close();
    await env?.close?.();
  }
}

/**
 * Every case of the document (or those in `only`), in order, one after the other.
 * @param {any} doc @param {Record<string, any>} values @param {Runner} runner @param {string[]} [only]
 * @returns {Promise<CaseResult[]>}
 */
export async function runAll(doc, values, runner, only = []) {
  const results = [];
  for (const c of doc.cases) {
    if (only.length && !only.includes(c.id)) continue;
    results.push(await runCase(doc, c.id, values, runner));
  }
  return results;
}
