// Bounded JSON: every document a plug-in hands the host is parsed within fixed limits (docs/abi.md §7),
// so a hostile plug-in cannot make the host recurse, allocate or compute without bound.

export const MAX_JSON_BYTES = 16 * 1024 * 1024;
export const MAX_DEPTH = 64;
export const MAX_NUMBER_DIGITS = 100;

export class JsonRejected extends Error {}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parse UTF-8 bytes or text as JSON within the limits; JsonRejected says why not.
 * @param {Uint8Array | string} data
 * @param {{maxBytes?: number, maxDepth?: number}} [limits]
 * @returns {any}
 */
export function parseBounded(data, limits = {}) {
  const maxBytes = limits.maxBytes ?? MAX_JSON_BYTES;
  const maxDepth = limits.maxDepth ?? MAX_DEPTH;
  let text;
  if (typeof data === "string") {
    text = data;
    if (text.length > maxBytes) throw new JsonRejected(`${text.length} characters is more than the ${maxBytes}-byte limit`);
  } else {
    if (data.byteLength > maxBytes) throw new JsonRejected(`${data.byteLength} bytes is more than the ${maxBytes}-byte limit`);
    try {
      text = utf8.decode(data);
    } catch {
      throw new JsonRejected("not UTF-8");
    }
  }
  scan(text, maxDepth);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new JsonRejected(`not JSON: ${/** @type {Error} */ (err).message}`);
  }
}

/**
 * One pass over the text outside strings: nesting depth and number lengths. JSON.parse checks the rest.
 * @param {string} text
 * @param {number} maxDepth
 */
function scan(text, maxDepth) {
  let depth = 0;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) { // a string: skip to its closing quote
      digits = 0;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 34) break;
      }
      continue;
    }
    if ((c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69) {
      if (++digits > MAX_NUMBER_DIGITS) throw new JsonRejected(`a number has more than ${MAX_NUMBER_DIGITS} digits`);
      continue;
    }
    digits = 0;
    if (c === 91 || c === 123) {
      if (++depth > maxDepth) throw new JsonRejected(`nested more than ${maxDepth} levels deep`);
    } else if (c === 93 || c === 125) {
      depth--;
    }
  }
}
