// Plug-in memory (kv_get/kv_set) behind one small async interface, with the bounds of
// cspm/runtime/kv.py (docs/abi.md §7, docs/formats.md "kv memory"): a key of at most 512 characters
// of valid Unicode, a value of at most 1 MiB of JSON text, and per plug-in of one app (every session
// counted together, since callers choose sessions) at most 64 MiB and 10,000 keys.

import { parseBounded, JsonRejected } from "./json.js";
import { wellFormed } from "./http.js";

export const MAX_KEY_CHARS = 512;
export const MAX_VALUE_BYTES = 1024 * 1024;
export const QUOTA_BYTES = 64 * 1024 * 1024;
export const QUOTA_KEYS = 10_000;

/**
 * (kv scope of the app, component name, session): the plan's kv_scope, the calling component, the session.
 * @typedef {[string, string, string]} Scope
 *
 * What a host needs from plug-in memory. `get` of a key never set is null; scopes never see each
 * other's keys; a refused write (KvTooLarge, KvKeyInvalid) changes nothing.
 * @typedef {object} KvStore
 * @property {(scope: Scope, key: string) => Promise<any>} get
 * @property {(scope: Scope, key: string, value: any) => Promise<void>} set
 * @property {(scope: Scope, key: string) => Promise<boolean>} delete
 * @property {(() => Promise<void>)=} close
 */

export class KvTooLarge extends Error {}
export class KvKeyInvalid extends Error {}

const encoder = new TextEncoder();

/** The key's size in bytes, as the quota counts it; KvKeyInvalid for a key no store may hold. @param {unknown} key */
export function checkKey(key) {
  if (typeof key !== "string" || !key) throw new KvKeyInvalid("a key is a non-empty string");
  if (key.length > MAX_KEY_CHARS) {
    throw new KvKeyInvalid(`key ${JSON.stringify(key.slice(0, 40))}… is ${key.length} characters, over the ${MAX_KEY_CHARS}-character limit`);
  }
  if (!wellFormed(key)) throw new KvKeyInvalid(`key ${JSON.stringify(key.slice(0, 40))} is not valid Unicode (a lone surrogate)`);
  return encoder.encode(key).byteLength;
}

/** The JSON text stored for a value and its size; KvTooLarge over MAX_VALUE_BYTES. @param {any} value */
export function encodeValue(value) {
  const text = JSON.stringify(value === undefined ? null : value);
  const size = encoder.encode(text).byteLength;
  if (size > MAX_VALUE_BYTES) throw new KvTooLarge(`value of ${size} bytes is over the ${MAX_VALUE_BYTES}-byte limit`);
  return { text, size };
}

/** A stored value, read within the JSON limits. @param {string} text @param {string} key */
export function decodeValue(text, key) {
  try {
    return parseBounded(text);
  } catch (err) {
    if (err instanceof JsonRejected) throw new KvTooLarge(`the stored value of key ${JSON.stringify(key.slice(0, 40))} cannot be read back: ${err.message}`);
    throw err;
  }
}

/**
 * Refuse a write that takes an owner holding `keys` keys and `used` bytes past its quota.
 * @param {number} keys @param {number} used @param {boolean} newKey @param {number} grow
 */
export function checkQuota(keys, used, newKey, grow) {
  if (newKey && keys + 1 > QUOTA_KEYS) {
    throw new KvTooLarge(`kv quota: this plug-in already holds ${keys} keys in this app, the most it may (over all sessions)`);
  }
  if (grow > 0 && used + grow > QUOTA_BYTES) {
    throw new KvTooLarge(`kv quota: this plug-in holds ${used} bytes in this app; ${grow} more would pass its quota of ${QUOTA_BYTES / 2 ** 20} MiB (keys and values over all sessions)`);
  }
}

/**
 * What one plug-in of one app holds: session -> key -> JSON text.
 * @typedef {{sessions: Record<string, Record<string, string>>}} OwnerData
 */

/** @param {OwnerData} data */
export function usageOf(data) {
  let keys = 0;
  let bytes = 0;
  for (const entries of Object.values(data.sessions)) {
    for (const [key, text] of Object.entries(entries)) {
      keys++;
      bytes += encoder.encode(key).byteLength + encoder.encode(text).byteLength;
    }
  }
  return { keys, bytes };
}

/**
 * The write `set` makes to an owner's data, checked against the quota; the data is changed only when allowed.
 * @param {OwnerData} data @param {string} session @param {string} key @param {any} value
 */
export function applySet(data, session, key, value) {
  const keySize = checkKey(key);
  const { text, size } = encodeValue(value);
  const entries = data.sessions[session] ?? {};
  const old = Object.hasOwn(entries, key) ? entries[key] : null;
  const oldSize = old === null ? 0 : keySize + encoder.encode(old).byteLength;
  const grow = keySize + size - oldSize;
  if (old === null || grow > 0) {
    const { keys, bytes } = usageOf(data);
    checkQuota(keys, bytes, old === null, grow);
  }
  entries[key] = text;
  data.sessions[session] = entries;
}

/** Serializes the operations on each owner, so two writers cannot both pass the quota. */
export class OwnerLocks {
  constructor() {
    /** @type {Map<string, Promise<unknown>>} */
    this.tails = new Map();
  }

  /**
   * @template T
   * @param {string} owner @param {() => Promise<T>} work
   * @returns {Promise<T>}
   */
  run(owner, work) {
    const previous = this.tails.get(owner) ?? Promise.resolve();
    const next = previous.then(work, work);
    const tail = next.catch(() => {});
    this.tails.set(owner, tail);
    tail.then(() => { if (this.tails.get(owner) === tail) this.tails.delete(owner); });
    return next;
  }
}
