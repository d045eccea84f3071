// The conformance runner: its pattern rules, and that a wrong expectation of each kind fails a case
// (a runner that cannot fail proves nothing). The full runs over every language are
// tests/integration/test_js_host.py; here the Rust plug-in, when it is built.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { CASES_FILE, dataBytes, fill, loadCases, mismatch, moduleOf, runCase, same, startEchoServer } from "./conformance.js";
import { ROOT } from "./helpers.js";
import { existsSync } from "node:fs";
import { resolve } from "node:path";

const RUST = resolve(ROOT, "plugins/conformance-rust/build/conformance-rust.wasm");
const needsRust = { skip: !existsSync(RUST) && "plugins/conformance-rust is not built" };
/** @type {any} */
let doc;
/** @type {Awaited<ReturnType<typeof startEchoServer>>} */
let echo;

before(async () => {
  doc = await loadCases(CASES_FILE);
  echo = await startEchoServer();
});
after(async () => echo.close());

test("patterns: objects need their keys, lists their length, operators their rule", () => {
  assert.equal(mismatch({ a: 1, b: 2 }, { a: 1 }), null);
  assert.match(String(mismatch({ a: 1 }, { a: 2 })), /expected 2/);
  assert.match(String(mismatch([1, 2], [1])), /a list of 1/);
  assert.equal(mismatch("hello", { $contains: "ell" }), null);
  assert.equal(mismatch('{"x": [1]}', { $json: { x: [1] } }), null);
  assert.equal(mismatch({ "Content-Type": "a" }, { $headers: { "content-type": "a" } }), null);
  assert.match(String(mismatch({}, { $headers: { x: "a" } })), /no header/);
  assert.equal(same(true, 1), false);
  assert.equal(same({ a: [1, { b: null }] }, { a: [1.0, { b: null }] }), true);
  assert.deepEqual(fill({ a: "${x}", b: "u=${y}/z" }, { x: { n: 1 }, y: "v" }), { a: { n: 1 }, b: "u=v/z" });
  assert.throws(() => fill("a${x}", { x: 1 }), /must be a string/);
  assert.throws(() => fill("${nope}", {}), /no value/);
  assert.equal(new TextDecoder().decode(dataBytes({ json: { s: "é🦀" } })), '{"s":"\\u00e9\\ud83e\\udd80"}');
  assert.equal(dataBytes({ repeat: { text: "ab" }, times: 3 }).length, 6);
});

test("every case passes on the Rust plug-in, and a wrong expectation of each kind fails its case", needsRust, async () => {
  const values = { module: await moduleOf(RUST), echo_url: echo.url };
  for (const c of doc.cases) {
    const result = await runCase(doc, c.id, values, () => echo.seen);
    assert.ok(result.passed, `${c.id}: ${result.reason}`);
  }
  /** @param {string} id @param {(step: any) => void} change */
  const broken = async (id, change) => {
    const copy = structuredClone(doc);
    const found = copy.cases.find((/** @type {any} */ c) => c.id === id);
    change(found.steps.at(-1));
    return runCase(copy, id, values, () => echo.seen);
  };
  const wrong = [
    await broken("echo-utf8", (s) => { s.expect.output = { text: "other" }; }),
    await broken("call-llm", (s) => { s.expect.json.finish_reason = "length"; }),
    await broken("error-reporting", (s) => { s.expect.fails.message_contains = "nothing like it"; }),
    await broken("logs-are-captured-per-plugin", (s) => { s.expect.logs.sut.includes[0].level = "error"; }),
    await broken("emit", (s) => { s.expect.chunks = [{ component: "sut", text: "x" }]; }),
    await broken("http-fetch-refused-other-host", (s) => { s.expect.error.code = "bad_request"; }),
    await broken("http-fetch-injects-secret-and-redacts-it", (s) => { s.expect.echo_requests[0].method = "GET"; }),
    await broken("echo-empty", (s) => { s.expect = { fails: {} }; }),
  ];
  for (const result of wrong) assert.equal(result.passed, false, `${result.case} passed with a wrong expectation`);
  assert.match(wrong[0].reason, /^step 1 \(call sut\.echo\): output was/);
});
