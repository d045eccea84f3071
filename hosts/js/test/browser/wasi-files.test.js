// The browser host's WASI over in-memory mounts (src/browser/wasi-files.js) and createBrowserPlugin
// (src/browser/plugin.js), run here in Node on extism's Node build: the same code the page runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createPlugin } from '@extism/extism';
import * as wasiShim from '@bjorn3/browser_wasi_shim';
import { ROOT } from '../helpers.js';
import { buildPreopens, createWasi, WasiFilesError, MAX_LINE_CHARS } from '../../src/browser/wasi-files.js';
import { createBrowserPlugin } from '../../src/browser/plugin.js';

const KB = resolve(ROOT, 'plugins/kb/build/kb.wasm');
const bytes = (/** @type {string} */ s) => new TextEncoder().encode(s);

test('buildPreopens: one preopened folder per mount, nested file names become folders', () => {
  const [models, data] = buildPreopens(wasiShim, { '/models/x': { 'model.gguf': bytes('GGUF'), 'tok/vocab.txt': bytes('a b') }, '/data': {} });
  assert.equal(models.prestat_name, '/models/x');
  assert.equal(data.prestat_name, '/data');
  const file = /** @type {any} */ (models.dir.contents.get('model.gguf'));
  assert.equal(new TextDecoder().decode(file.data), 'GGUF');
  assert.equal(file.readonly, true);
  assert.ok(/** @type {any} */ (models.dir.contents.get('tok')).contents.has('vocab.txt'));
  const [w] = buildPreopens(wasiShim, { '/scratch': { 'a.txt': bytes('') } }, { writable: ['/scratch'] });
  assert.equal(/** @type {any} */ (w.dir.contents.get('a.txt')).readonly, false);
});

test('buildPreopens refuses bad guest paths and file names', () => {
  const cases = /** @type {[any, RegExp][]} */ ([
    [{ 'models': {} }, /absolute folder path/],
    [{ '/models/': {} }, /absolute folder path/],
    [{ '/': {} }, /absolute folder path/],
    [{ '/a/../b': {} }, /is not a file or folder name/],
    [{ '/a//b': {} }, /is not a file or folder name/],
    [{ '/a': {}, '/a/b': {} }, /is inside mount "\/a"/],
    [{ '/a': { '../etc/passwd': bytes('x') } }, /is not a file or folder name/],
    [{ '/a': { '/abs': bytes('x') } }, /is not a file or folder name/],
    [{ '/a': { 'f': 'text' } }, /is not a Uint8Array/],
    [{ '/a': { 'f': bytes('x'), 'f/g': bytes('y') } }, /is a file, not a folder/],
    [{ '/a': { 'd/g': bytes('y'), 'd': bytes('x') } }, /given twice, or also a folder/],
    [{ '/a': [] }, /must be an object/],
    [[], /must be an object/],
  ]);
  for (const [mounts, message] of cases) {
    assert.throws(() => buildPreopens(wasiShim, mounts), (/** @type {any} */ e) => e instanceof WasiFilesError && message.test(e.message),
      JSON.stringify(mounts));
  }
  assert.throws(() => buildPreopens(wasiShim, { '/a': {} }, { writable: ['/b'] }), /writable "\/b" is not one of the mounts/);
  assert.doesNotThrow(() => buildPreopens(wasiShim, { '/a': {} }));
});

test('createWasi: calls before bind throw; stdout is split in lines, each at most MAX_LINE_CHARS', () => {
  /** @type {string[]} */
  const lines = [];
  const { functions, bind } = createWasi(wasiShim, { stdout: (l) => lines.push(l) });
  const memory = new WebAssembly.Memory({ initial: 1 });
  const write = (/** @type {string} */ text) => {
    const data = bytes(text);
    new Uint8Array(memory.buffer).set(data, 1024);
    new DataView(memory.buffer).setUint32(16, 1024, true); // iovec: buf, len
    new DataView(memory.buffer).setUint32(20, data.length, true);
    return functions.fd_write(null, 1, 16, 1, 32);
  };
  assert.throws(() => write('early\n'), /called before the plug-in's memory was bound/);
  bind(/** @type {any} */ ({ exports: { memory } }));
  assert.equal(write('one\ntw'), 0);
  assert.equal(write('o\n'), 0);
  assert.equal(write('x'.repeat(MAX_LINE_CHARS + 10)), 0);
  assert.deepEqual(lines.slice(0, 2), ['one', 'two']);
  assert.equal(lines[2].length, MAX_LINE_CHARS);
  assert.ok(lines[2].endsWith('…'));
  assert.throws(() => bind(/** @type {any} */ ({ exports: {} })), /exports no memory/);
});

test('kb (a Go reactor) reads its data file from an in-memory mount', { skip: !existsSync(KB) && 'kb not built' }, async () => {
  const people = [{ name: 'Ada Lovelace', born: 1815, city: 'London' }];
  const plugin = await createBrowserPlugin(new Uint8Array(readFileSync(KB)), {
    createPlugin, wasiShim,
    config: { file: '/data/people/people.json', name_field: 'name' },
    mounts: { '/data/people': { 'people.json': bytes(JSON.stringify(people)) } },
  });
  try {
    const out = await plugin.call('call', JSON.stringify({ arguments: { query: 'When was Ada Lovelace born?' } }));
    assert.deepEqual(out?.json(), { output: 'Ada Lovelace — born: 1815', is_error: false });
  } finally {
    await plugin.close();
  }
  // the same file missing from the mount: the plug-in says so (it did look in the host's folder)
  const empty = await createBrowserPlugin(new Uint8Array(readFileSync(KB)), {
    createPlugin, wasiShim, config: { file: '/data/people/people.json' }, mounts: { '/data/people': {} },
  });
  try {
    await assert.rejects(empty.call('call', JSON.stringify({ arguments: { query: 'Ada' } })).then((o) => {
      const r = o?.json();
      if (r?.is_error) throw new Error(r.output);
      return r;
    }), /people\.json/);
  } finally {
    await empty.close();
  }
});

test('createBrowserPlugin refuses options the host sets, and mounts for a module without WASI', async () => {
  const kb = existsSync(KB) ? new Uint8Array(readFileSync(KB)) : new Uint8Array(8);
  await assert.rejects(createBrowserPlugin(kb, { createPlugin, extism: { runInWorker: true } }), /"runInWorker" is set by the host/);
  await assert.rejects(createBrowserPlugin(kb, { createPlugin, functions: { 'cspm:wasi': {} } }), /namespace "cspm:wasi" is the host's/);
  const noWasi = Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
  await assert.rejects(createBrowserPlugin(noWasi, { createPlugin, mounts: { '/data': {} } }), /does not import WASI/);
  if (existsSync(KB)) await assert.rejects(createBrowserPlugin(kb, { createPlugin }), /imports WASI: give wasiShim/);
});
