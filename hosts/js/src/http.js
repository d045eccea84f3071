// http_fetch and the streaming extension (http_open/http_read/http_close): the only way out of the
// sandbox, as cspm/runtime/http.py does it (docs/abi.md "http_fetch in detail"): origins checked against
// the grants, redirects not followed, routing headers refused, secrets injected for their origins and
// every form of them redacted from what comes back, all bounded in size and by the call's deadline.

import { DEFAULT_PORTS, matchGrant } from "./grants.js";

export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
export const MAX_STREAM_BYTES = 8 * 1024 * 1024;
export const MAX_OPEN_STREAMS = 4;
export const READ_BYTES = 64 * 1024;
export const MAX_READ_BYTES = 1024 * 1024;
export const MAX_TIMEOUT_MS = 3600 * 1000;
export const MAX_MESSAGE_CHARS = 300;
export const MAX_HEADERS = 100;
export const REDACTED = "[redacted]";

const REFUSED_HEADERS = new Set([
  "host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
  "expect", "forwarded", "via", "x-real-ip", "x-host", "x-original-url", "x-rewrite-url", "x-http-host-override",
  "alt-used", "http2-settings",
]);
const REFUSED_PREFIXES = ["proxy-", "x-forwarded-"];
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
const VALUE = /^[\t\x20-\x7e]{0,16384}$/;

/**
 * @typedef {{name: string, source: string, header: string, format: string, hosts: string[] | null, query: string | null}} SecretRef
 * @typedef {{spec: SecretRef, value: string}} Secret
 * @typedef {{method?: string, url: string, headers?: Record<string, string>, body?: string}} FetchRequest
 * @typedef {[string, Secret][]} Placeholders (placeholder, its secret): an ABI 0 plug-in's (src/abi0.js)
 */

export class FetchRefused extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** @param {string} message */
export function short(message) {
  return message.length <= MAX_MESSAGE_CHARS ? message : message.slice(0, MAX_MESSAGE_CHARS - 1) + "…";
}

/**
 * Python's urllib.parse.quote: UTF-8 bytes, unreserved characters and `safe` kept, the rest %XX.
 * @param {string} value @param {string} safe @param {boolean} plus spaces as `+` (quote_plus)
 */
export function quote(value, safe, plus = false) {
  let out = "";
  for (const byte of new TextEncoder().encode(value)) {
    const ch = String.fromCharCode(byte);
    if (/[A-Za-z0-9_.~-]/.test(ch) || (byte < 128 && safe.includes(ch))) out += ch;
    else if (plus && byte === 32) out += "+";
    else out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** JSON escape as Python's json.dumps(value)[1:-1] (non-ASCII as lower-case \u escapes). @param {string} value */
function jsonAscii(value) {
  return JSON.stringify(value).slice(1, -1).replace(/[\u007f-\uffff]/g,
    (c) => c === "\u007f" ? c : "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/** Whether a string has no lone surrogate (String.prototype.isWellFormed is ES2024). @param {string} s */
export function wellFormed(s) {
  return !/[\ud800-\udfff]/.test(s.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ""));
}

/** @param {string} s */
function escapeRegex(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Every form in which the host could have sent a secret; finds them in text (and in binary strings). */
export class Redactor {
  /** @param {readonly Secret[]} secrets */
  constructor(secrets) {
    /** @type {Set<string>} */
    this.forms = new Set();
    for (const { value } of secrets) {
      for (const form of [value, quote(value, ""), quote(value, "/"), quote(value, "", true), quote(value, "/", true),
        jsonAscii(value), JSON.stringify(value).slice(1, -1)]) this.forms.add(form);
    }
    /** @type {RegExp | null} */
    this.text = null;
    /** @type {RegExp | null} */
    this.binary = null;
    this.longestChars = 0;
    this.longestBytes = 0;
    this.compile();
  }

  /** @param {Iterable<string>} forms */
  add(forms) {
    let grew = false;
    for (const form of forms) if (form && !this.forms.has(form)) { this.forms.add(form); grew = true; }
    if (grew) this.compile();
  }

  compile() {
    const forms = [...this.forms].filter(Boolean).sort((a, b) => b.length - a.length);
    const pattern = (/** @type {string} */ f) => escapeRegex(f).replace(/%([0-9A-Fa-f])([0-9A-Fa-f])/g,
      (_, h, l) => `%[${h.toUpperCase()}${h.toLowerCase()}][${l.toUpperCase()}${l.toLowerCase()}]`);
    this.text = forms.length ? new RegExp(forms.map(pattern).join("|"), "g") : null;
    this.binary = forms.length ? new RegExp(forms.map((f) => pattern(toBinary(new TextEncoder().encode(f)))).join("|"), "g") : null;
    this.longestChars = Math.max(0, ...forms.map((f) => f.length));
    this.longestBytes = Math.max(0, ...forms.map((f) => new TextEncoder().encode(f).length));
  }

  /** @param {string} text */
  redact(text) {
    return this.text ? text.replace(this.text, REDACTED) : text;
  }

  /** Before decoding a body in another charset: its bytes must not hand back the secret. @param {Uint8Array} data */
  redactBytes(data) {
    if (!this.binary) return data;
    const binary = toBinary(data);
    this.binary.lastIndex = 0;
    if (!this.binary.test(binary)) return data;
    return fromBinary(binary.replace(this.binary, REDACTED));
  }
}

/** @param {Uint8Array} bytes one character per byte (latin-1), so regexes can work on bytes */
function toBinary(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return out;
}

/** @param {string} text */
function fromBinary(text) {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** Redaction of a stream: a form is recognised only whole, so the last `longest - 1` characters wait. */
export class Holdback {
  /** @param {RegExp | null} pattern @param {number} longest */
  constructor(pattern, longest) {
    this.pattern = pattern;
    this.keep = Math.max(longest - 1, 0);
    this.pending = "";
  }

  /** @param {string} data @param {boolean} final @param {string} replacement */
  feed(data, final, replacement = REDACTED) {
    const buffer = this.pending + data;
    if (!this.pattern) { this.pending = ""; return buffer; }
    let cut = final ? buffer.length : Math.max(buffer.length - this.keep, 0);
    let out = "";
    let position = 0;
    this.pattern.lastIndex = 0;
    for (const match of buffer.matchAll(this.pattern)) {
      const start = /** @type {number} */ (match.index);
      if (start >= cut) break;
      out += buffer.slice(position, start) + replacement;
      position = start + match[0].length;
    }
    cut = Math.max(cut, position);
    out += buffer.slice(position, cut);
    this.pending = buffer.slice(cut);
    return out;
  }
}

/** @param {string | null} contentType */
function charsetOf(contentType) {
  const found = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? "");
  if (!found) return "utf-8";
  try {
    return new TextDecoder(found[1]).encoding;
  } catch {
    return "utf-8";
  }
}

/** @param {Headers} headers @param {Redactor} redactor */
function shownHeaders(headers, redactor) {
  /** @type {Record<string, string>} */
  const out = {};
  headers.forEach((value, name) => {
    const key = redactor.redact(name.toLowerCase());
    const shown = redactor.redact(value);
    out[key] = key in out ? `${out[key]}, ${shown}` : shown;
  });
  return out;
}

/** @param {readonly string[]} granted */
function listed(granted) {
  const shown = granted.slice(0, 3).join(", ");
  return (granted.length > 3 ? `${shown} and ${granted.length - 3} more` : shown) || "none";
}

/** @param {unknown} err */
function describe(err) {
  const e = /** @type {any} */ (err);
  const cause = e?.cause;
  if (cause) return `${cause.code ?? cause.name ?? "Error"}: ${cause.message ?? cause}`;
  return `${e?.name ?? "Error"}: ${e?.message ?? e}`;
}

/**
 * A request checked against the grants, with the secrets bound to its origin injected: what fetch and
 * open send. The query forms of injected secrets join the redactor. `placeholders`: what an ABI 0
 * plug-in was given in config instead of its secrets (src/abi0.js), swapped back here (swapPlaceholders).
 * @param {FetchRequest} request @param {readonly string[]} granted @param {readonly Secret[]} secrets
 * @param {Redactor} redactor @param {string} fn @param {Placeholders} [placeholders]
 */
function prepare(request, granted, secrets, redactor, fn, placeholders = []) {
  /** @type {URL} */
  let url;
  try {
    url = new URL(request.url);
  } catch (err) {
    throw new FetchRefused("bad_request", `${fn}: invalid URL: ${/** @type {Error} */ (err).message}`);
  }
  const scheme = url.protocol.replace(/:$/, "");
  if (!(scheme in DEFAULT_PORTS) || !url.hostname) {
    throw new FetchRefused("not_granted", `only http and https URLs can be fetched, not ${JSON.stringify(request.url)}`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = url.port ? Number(url.port) : null;
  if (matchGrant(granted, scheme, host, port) === null) {
    const shown = port === null ? host : `${host}:${port}`;
    throw new FetchRefused("not_granted", `host ${shown} is not granted to this plug-in over ${scheme} (granted: ${listed(granted)})`);
  }
  const given = request.headers ?? {};
  const names = Object.keys(given);
  if (names.length > MAX_HEADERS) throw new FetchRefused("bad_request", `${fn}: more than ${MAX_HEADERS} headers`);
  /** @type {[string, string][]} */
  let headers = [];
  for (const name of names) {
    const value = given[name];
    if (!TOKEN.test(name)) throw new FetchRefused("bad_request", `${fn}: header name ${JSON.stringify(name.slice(0, 40))} is not an ASCII token`);
    const lower = name.toLowerCase();
    if (REFUSED_HEADERS.has(lower) || REFUSED_PREFIXES.some((p) => lower.startsWith(p))) {
      throw new FetchRefused("bad_request", `${fn}: a plug-in may not set the \`${name}\` header (the host sets routing and connection headers)`);
    }
    if (typeof value !== "string" || !VALUE.test(value)) {
      throw new FetchRefused("bad_request", `${fn}: the value of header \`${name}\` must be printable ASCII without CR, LF or NUL, at most 16384 characters`);
    }
    headers.push([name, value]);
  }
  /** @type {string | undefined | null} */
  let rawBody = request.body;
  if (placeholders.length) ({ url, headers, body: rawBody } = swapPlaceholders(placeholders, granted, url, headers, rawBody));
  for (const secret of secrets) {
    const bound = secret.spec.hosts ?? granted;
    if (matchGrant(bound, scheme, host, port) === null) continue;
    if (secret.spec.query) {
      url.searchParams.set(secret.spec.query, secret.value);
      const prefix = quote(secret.spec.query, "", true) + "=";
      redactor.add(url.search.slice(1).split("&").filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length)));
    } else {
      const header = secret.spec.header.toLowerCase();
      headers = headers.filter(([k]) => k.toLowerCase() !== header);
      headers.push([secret.spec.header, secret.spec.format.replaceAll("{}", secret.value)]);
    }
  }
  const method = request.method ?? "GET";
  /** @type {string | undefined} */
  let body;
  if (rawBody !== undefined && rawBody !== null) {
    if (!wellFormed(rawBody)) throw new FetchRefused("bad_request", `${fn}: the body is not valid Unicode text`);
    body = rawBody; // fetch sends it as UTF-8
  }
  return { method, url, headers, body };
}

/**
 * Each placeholder the request carries (in the URL's path or query, a header value or the body) is
 * replaced by its secret's value when the secret is bound to the request's origin (its `hosts`, else the
 * grant that admitted it); otherwise the request is refused and nothing is sent. A placeholder in the
 * URL's host or in a header name is refused: the value would go on the wire as a name. As
 * cspm/runtime/http.py's _swap_placeholders.
 * @param {Placeholders} placeholders @param {readonly string[]} granted @param {URL} url
 * @param {[string, string][]} headers @param {string | undefined | null} body
 */
function swapPlaceholders(placeholders, granted, url, headers, body) {
  const scheme = url.protocol.replace(/:$/, "");
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = url.port ? Number(url.port) : null;
  for (const [placeholder, secret] of placeholders) {
    const lower = placeholder.toLowerCase();
    if (headers.some(([name]) => name.toLowerCase().includes(lower)) || host.toLowerCase().includes(lower)) {
      throw new FetchRefused("bad_request", `http_fetch: the placeholder of secret \`${secret.spec.name}\` may only be in the URL's path or query, a header value or the body`);
    }
    const inUrl = url.href.includes(placeholder);
    const inHeaders = headers.some(([, value]) => value.includes(placeholder));
    const inBody = typeof body === "string" && body.includes(placeholder);
    if (!(inUrl || inHeaders || inBody)) continue;
    if (matchGrant(secret.spec.hosts ?? granted, scheme, host, port) === null) {
      const shown = port === null ? host : `${host}:${port}`;
      throw new FetchRefused("not_granted", `http_fetch: secret \`${secret.spec.name}\` is not bound to ${shown} over ${scheme}; its placeholder is not replaced there, and the request was not sent`);
    }
    if (inUrl) {
      const swapped = new URL(url.href.replaceAll(placeholder, quote(secret.value, "")));
      if (swapped.protocol !== url.protocol || swapped.hostname !== url.hostname || swapped.port !== url.port) {
        throw new FetchRefused("bad_request", "http_fetch: a secret placeholder changed the URL's origin");
      }
      url = swapped;
    }
    if (inHeaders) {
      headers = headers.map(([name, value]) => [name, value.replaceAll(placeholder, secret.value)]);
      if (!headers.every(([, value]) => VALUE.test(value))) {
        throw new FetchRefused("bad_request", `http_fetch: secret \`${secret.spec.name}\` is not printable ASCII, so it cannot go into a header`);
      }
    }
    if (inBody) body = /** @type {string} */ (body).replaceAll(placeholder, secret.value);
  }
  return { url, headers, body };
}

/** Sends requests for one host (its fetch); each exchange ends by the calling plug-in's deadline. */
export class HttpGateway {
  /** @param {typeof fetch} fetchFn */
  constructor(fetchFn) {
    this.fetchFn = fetchFn;
  }

  /**
   * @param {FetchRequest} request @param {readonly string[]} granted @param {readonly Secret[]} secrets
   * @param {number} deadline performance.now() when the call's time is up
   * @param {string} fn
   * @param {Placeholders} [placeholders] an ABI 0 plug-in's secret placeholders: swapped in for their
   *   secrets' origins only, and redacted with the secrets from what comes back
   * @returns {Promise<{response: Response, redactor: Redactor, signal: AbortController, timer: any}>}
   */
  async send(request, granted, secrets, deadline, fn, placeholders = []) {
    const redactor = new Redactor(secrets);
    if (placeholders.length) redactor.add(placeholders.map(([text]) => text));
    try {
      if (performance.now() >= deadline) throw new FetchRefused("timeout", `${fn}: the call's time limit ran out before the request`);
      const { method, url, headers, body } = prepare(request, granted, secrets, redactor, fn, placeholders);
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(new FetchRefused("timeout", `${fn}: the call's time limit ran out waiting for the server`)),
        Math.min(Math.max(deadline - performance.now(), 1), MAX_TIMEOUT_MS));
      /** @type {Response} */
      let response;
      try {
        response = await this.fetchFn(url, {
          method, headers, body, redirect: "manual", signal: abort.signal, credentials: "omit", cache: "no-store",
        });
      } catch (err) {
        clearTimeout(timer);
        throw refusal(err, abort, deadline, fn, "");
      }
      return { response, redactor, signal: abort, timer };
    } catch (err) {
      if (err instanceof FetchRefused) throw new FetchRefused(err.code, short(redactor.redact(err.message)));
      throw err;
    }
  }

  /**
   * http_fetch: the whole answer, at most MAX_RESPONSE_BYTES, decoded in its charset, redacted.
   * @param {FetchRequest} request @param {readonly string[]} granted @param {readonly Secret[]} secrets @param {number} deadline
   * @param {Placeholders} [placeholders] an ABI 0 plug-in's (send)
   */
  async fetch(request, granted, secrets, deadline, placeholders = []) {
    const { response, redactor, signal, timer } = await this.send(request, granted, secrets, deadline, "http_fetch", placeholders);
    try {
      /** @type {Uint8Array[]} */
      const pieces = [];
      let size = 0;
      if (response.body) {
        const reader = response.body.getReader();
        for (;;) {
          /** @type {ReadableStreamReadResult<Uint8Array>} */
          let got;
          try {
            got = await reader.read();
          } catch (err) {
            throw refusal(err, signal, deadline, "http_fetch", "");
          }
          if (got.done) break;
          size += got.value.byteLength;
          if (size > MAX_RESPONSE_BYTES) {
            reader.cancel().catch(() => {});
            throw new FetchRefused("http_error", `response larger than ${MAX_RESPONSE_BYTES} bytes`);
          }
          pieces.push(got.value);
        }
      }
      const data = new Uint8Array(size);
      let at = 0;
      for (const piece of pieces) { data.set(piece, at); at += piece.byteLength; }
      const charset = charsetOf(response.headers.get("content-type"));
      const text = new TextDecoder(charset).decode(charset === "utf-8" ? data : redactor.redactBytes(data));
      return { status: response.status, headers: shownHeaders(response.headers, redactor), body: redactor.redact(text) };
    } catch (err) {
      if (err instanceof FetchRefused) throw new FetchRefused(err.code, short(redactor.redact(err.message)));
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * http_open: status and headers now, the body later through HttpStream.read.
   * @param {FetchRequest} request @param {readonly string[]} granted @param {readonly Secret[]} secrets @param {number} deadline
   */
  async open(request, granted, secrets, deadline) {
    const { response, redactor, signal, timer } = await this.send(request, granted, secrets, deadline, "http_open");
    return new HttpStream(response, redactor, signal, timer, deadline);
  }
}

/**
 * @param {unknown} err @param {AbortController} abort @param {number} deadline @param {string} fn @param {string} context
 */
function refusal(err, abort, deadline, fn, context) {
  if (err instanceof FetchRefused) return err;
  if (abort.signal.aborted && abort.signal.reason instanceof FetchRefused) return abort.signal.reason;
  if (performance.now() >= deadline) return new FetchRefused("timeout", `${fn}: the call's time limit ran out waiting for the server`);
  return new FetchRefused("http_error", `${fn === "http_read" ? `${fn}: ` : ""}${context}${describe(err)}`);
}

/** One open answer body, read in pieces of redacted text. */
export class HttpStream {
  /**
   * @param {Response} response @param {Redactor} redactor @param {AbortController} abort @param {any} timer @param {number} deadline
   */
  constructor(response, redactor, abort, timer, deadline) {
    this.status = response.status;
    this.headers = shownHeaders(response.headers, redactor);
    this.redactor = redactor;
    this.abort = abort;
    this.timer = timer;
    this.deadline = deadline;
    this.reader = response.body ? response.body.getReader() : null;
    this.charset = charsetOf(response.headers.get("content-type"));
    this.decoder = new TextDecoder(this.charset);
    // bytes are redacted first only when another charset could hide a secret's bytes in its text
    this.raw = this.charset === "utf-8" ? null : new Holdback(redactor.binary, redactor.longestBytes);
    this.text = new Holdback(redactor.text, redactor.longestChars);
    this.ready = "";
    this.size = 0;
    this.ended = false;
  }

  /** @param {number} maxBytes */
  async read(maxBytes) {
    try {
      while (!this.ready && !this.ended) await this.pull();
    } catch (err) {
      this.close();
      if (err instanceof FetchRefused) throw new FetchRefused(err.code, short(this.redactor.redact(err.message)));
      throw err;
    }
    const data = utf8Prefix(this.ready, maxBytes);
    this.ready = this.ready.slice(data.length);
    return { data, done: this.ended && !this.ready };
  }

  async pull() {
    if (performance.now() >= this.deadline) throw new FetchRefused("timeout", "http_read: the call's time limit ran out while the answer was arriving");
    /** @type {Uint8Array | null} */
    let piece = null;
    if (this.reader) {
      try {
        const got = await this.reader.read();
        piece = got.done ? null : got.value;
      } catch (err) {
        throw refusal(err, this.abort, this.deadline, "http_read", "the answer broke off: ");
      }
    }
    const final = piece === null;
    if (piece !== null) {
      this.size += piece.byteLength;
      if (this.size > MAX_STREAM_BYTES) throw new FetchRefused("too_large", `http_read: the answer is larger than ${MAX_STREAM_BYTES} bytes`);
    }
    let bytes = piece ?? new Uint8Array(0);
    if (this.raw) bytes = fromBinary(this.raw.feed(toBinary(bytes), final, REDACTED));
    const text = this.decoder.decode(bytes, { stream: !final });
    this.ready += this.text.feed(text, final);
    if (final) this.close();
  }

  close() {
    if (!this.ended) {
      this.ended = true;
      clearTimeout(this.timer);
      if (this.reader) this.reader.cancel().catch(() => {});
    }
  }
}

/** The longest start of `text` whose UTF-8 is at most maxBytes, never a character cut, at least one. @param {string} text @param {number} maxBytes */
export function utf8Prefix(text, maxBytes) {
  let bytes = 0;
  let i = 0;
  while (i < text.length) {
    const code = text.codePointAt(i) ?? 0;
    const size = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    if (bytes + size > maxBytes) break;
    bytes += size;
    i += code >= 0x10000 ? 2 : 1;
  }
  if (i === 0 && text.length) i = (text.codePointAt(0) ?? 0) >= 0x10000 ? 2 : 1;
  return text.slice(0, i);
}

/** The streams one call into a plug-in has open; all closed when that call ends. */
export class Streams {
  constructor() {
    /** @type {Map<number, HttpStream>} */
    this.open = new Map();
    this.next = 1;
  }

  room() {
    return this.open.size < MAX_OPEN_STREAMS;
  }

  static refused() {
    return new FetchRefused("too_large", `http_open: ${MAX_OPEN_STREAMS} streams are already open in this call (close one with http_close)`);
  }

  /** @param {HttpStream} stream */
  add(stream) {
    if (!this.room()) { stream.close(); throw Streams.refused(); }
    const number = this.next++;
    this.open.set(number, stream);
    return number;
  }

  /** @param {number} number @param {number} maxBytes */
  async read(number, maxBytes) {
    const stream = this.open.get(number);
    if (!stream) throw new FetchRefused("bad_request", `http_read: stream ${number} is not open in this call`);
    try {
      const answer = await stream.read(maxBytes);
      if (answer.done) this.open.delete(number);
      return answer;
    } catch (err) {
      this.open.delete(number);
      throw err;
    }
  }

  /** @param {number} number */
  close(number) {
    const stream = this.open.get(number);
    if (stream) { this.open.delete(number); stream.close(); }
  }

  closeAll() {
    for (const stream of this.open.values()) stream.close();
    this.open.clear();
  }
}
