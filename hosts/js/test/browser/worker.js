// A dedicated module Worker running the same harness (createBrowserPlugin on the Worker's thread):
// how a page keeps its UI responsive while a plug-in computes. Messages: {id, fn, args} -> {id, result | error}.
import * as harness from './harness.js';

self.onmessage = async (/** @type {MessageEvent} */ ev) => {
  const { id, fn, args } = ev.data;
  try {
    const result = await /** @type {any} */ (harness)[fn](args);
    self.postMessage({ id, result });
  } catch (e) {
    self.postMessage({ id, error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) });
  }
};
self.postMessage({ ready: true });
