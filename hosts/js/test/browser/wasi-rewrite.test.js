// The import-section rewriter (src/browser/wasi-rewrite.js) on the real plug-ins and on hand-made
// modules: it renames exactly what it is asked to, keeps every other byte, and refuses bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ROOT } from '../helpers.js';
import { rewriteWasm, redirectWasi, WasmRewriteError, WASI_MODULE, INITIALIZE_EXPORT } from '../../src/browser/wasi-rewrite.js';

/** @param {string} name */
function plugin(name) {
  const path = resolve(ROOT, `plugins/${name}/build/${name}.wasm`);
  return existsSync(path) ? new Uint8Array(readFileSync(path)) : null;
}

/** @param {Uint8Array} bytes */
const imports = (bytes) => WebAssembly.Module.imports(new WebAssembly.Module(bytes));
/** @param {Uint8Array} bytes */
const exports = (bytes) => WebAssembly.Module.exports(new WebAssembly.Module(bytes));

// (module (type (func)) (import "wasi_snapshot_preview1" "proc_exit" (func (type 0)))
//   (import "env" "mem" (memory 1 2)) (import "env" "g" (global i32)) (import "env" "t" (table 1 funcref))
//   (export "_initialize" (func 0)) (export "mem" (memory 0)))
const name = (/** @type {string} */ s) => [s.length, ...new TextEncoder().encode(s)];
const importBody = [4,
  ...name('wasi_snapshot_preview1'), ...name('proc_exit'), 0x00, 0,
  ...name('env'), ...name('mem'), 0x02, 0x01, 1, 2,
  ...name('env'), ...name('g'), 0x03, 0x7f, 0x00,
  ...name('env'), ...name('t'), 0x01, 0x70, 0x00, 1];
const exportBody = [2, ...name('_initialize'), 0x00, 0, ...name('mem'), 0x02, 0];
const HEADER = [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
const SMALL = Uint8Array.from([...HEADER, 1, 4, 1, 0x60, 0, 0,
  2, importBody.length, ...importBody, 7, exportBody.length, ...exportBody]);

for (const name of ['llm-local', 'kb', 'conformance-rust']) {
  test(`${name}: WASI imports move to ${WASI_MODULE}, everything else stays`, { skip: plugin(name) === null && 'not built' }, () => {
    const bytes = /** @type {Uint8Array} */ (plugin(name));
    const before = imports(bytes);
    const { bytes: out, wasi } = redirectWasi(bytes);
    const after = imports(out);
    assert.equal(wasi, before.some((i) => i.module === 'wasi_snapshot_preview1'));
    assert.deepEqual(after, before.map((i) => (i.module === 'wasi_snapshot_preview1' ? { ...i, module: WASI_MODULE } : i)));
    const rename = (/** @type {string} */ n) => (wasi && n === '_initialize' ? INITIALIZE_EXPORT : n);
    assert.deepEqual(exports(out), exports(bytes).map((e) => ({ ...e, name: rename(e.name) })));
    if (!wasi) assert.equal(out, bytes); // untouched: the same array
    // no renames at all: the same bytes
    assert.deepEqual(rewriteWasm(bytes, {}).bytes, bytes);
  });
}

test('a hand-made module: every import kind is kept, only the module name changes', () => {
  const { bytes, importsRenamed, exportsRenamed } = rewriteWasm(SMALL, {
    importModules: { wasi_snapshot_preview1: 'cspm:wasi', env: 'environment' }, exports: { _initialize: 'init' },
  });
  assert.equal(importsRenamed, 4);
  assert.equal(exportsRenamed, 1);
  assert.deepEqual(imports(bytes), [
    { module: 'cspm:wasi', name: 'proc_exit', kind: 'function' },
    { module: 'environment', name: 'mem', kind: 'memory' },
    { module: 'environment', name: 'g', kind: 'global' },
    { module: 'environment', name: 't', kind: 'table' },
  ]);
  assert.deepEqual(exports(bytes).map((e) => e.name), ['init', 'mem']);
  // a longer name that needs a two-byte length still gives a valid module
  const long = rewriteWasm(SMALL, { importModules: { env: 'x'.repeat(300) } }).bytes;
  assert.equal(imports(long)[1].module, 'x'.repeat(300));
});

test('refuses what is not a version 1 module', () => {
  assert.throws(() => rewriteWasm(new Uint8Array([1, 2, 3]), {}), /magic bytes/);
  assert.throws(() => rewriteWasm(Uint8Array.from([...HEADER.slice(0, 4), 0x0d, 0, 1, 0]), {}), /not a version 1 module/);
});

test('refuses every truncation of the import and export sections', () => {
  const importStart = 8 + 6;
  const exportStart = importStart + 2 + importBody.length; // a cut here leaves a whole, shorter module
  for (let cut = importStart + 1; cut < SMALL.length; cut++) {
    if (cut === exportStart) continue;
    assert.throws(() => rewriteWasm(SMALL.subarray(0, cut), { importModules: { env: 'e' }, exports: { mem: 'm' } }),
      WasmRewriteError, `cut at ${cut}`);
  }
});

test('refuses malformed sections with a clear message', () => {
  const withImports = (/** @type {number[]} */ body) => Uint8Array.from([...HEADER, 2, body.length, ...body]);
  const opts = { importModules: { a: 'b' } };
  assert.throws(() => rewriteWasm(withImports([1, 0xff, 0xff, 0xff, 0xff, 0x7f]), opts), /longer than a 32-bit LEB128|out of range/);
  assert.throws(() => rewriteWasm(withImports([100, 0]), opts), /import count 100 exceeds/);
  assert.throws(() => rewriteWasm(withImports([1, 2, 0xc3, 0x28, 1, 0x61, 0, 0]), opts), /not UTF-8/);
  assert.throws(() => rewriteWasm(withImports([1, ...name('a'), ...name('f'), 0x09, 0]), opts), /import kind 0x9 is not known/);
  assert.throws(() => rewriteWasm(withImports([1, ...name('a'), ...name('f'), 0x00, 0, 0x00]), opts), /1 bytes after its last import/);
  assert.throws(() => rewriteWasm(withImports([1, ...name('a'), ...name('t'), 0x01, 0x64, 0x70, 0x00, 1]), opts), /not a type this rewriter knows/);
  assert.throws(() => rewriteWasm(Uint8Array.from([...HEADER, 2, 50, 0]), opts), /truncated: section 2/);
  const twice = Uint8Array.from([...HEADER, 2, 1, 0, 2, 1, 0]);
  assert.throws(() => rewriteWasm(twice, opts), /two import sections/);
});

test('redirectWasi refuses a WASI command module (extism would run its _start before the WASI is bound)', () => {
  const command = Uint8Array.from([...HEADER, 1, 4, 1, 0x60, 0, 0,
    2, 1 + 1 + 22 + 1 + 9 + 2, 1, ...name('wasi_snapshot_preview1'), ...name('proc_exit'), 0x00, 0,
    7, 1 + 1 + 6 + 2, 1, ...name('_start'), 0x00, 0]);
  assert.equal(imports(command)[0].name, 'proc_exit');
  assert.throws(() => redirectWasi(command), /WASI command module/);
  const { exportNames } = rewriteWasm(SMALL, { exports: { _initialize: 'init' } });
  assert.deepEqual(exportNames, ['init', 'mem']);
});

test('refuses renames that would merge two modules or two exports', () => {
  assert.throws(() => rewriteWasm(SMALL, { importModules: { wasi_snapshot_preview1: 'env' } }), /already imports from "env"/);
  assert.throws(() => rewriteWasm(SMALL, { exports: { _initialize: 'mem' } }), /already exports "mem"/);
  assert.throws(() => rewriteWasm(SMALL, { exports: { _initialize: '' } }), /non-empty string/);
});
