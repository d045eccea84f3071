// chainsocket/serpapi-search: Google search through SerpAPI, answered as one short text the way
// LangChain's SerpAPIWrapper does. The API key never reaches this module: the host adds it to the
// URL as the `api_key` query parameter (plugin.yaml: secrets.api_key.query).

import {
  configGet,
  handleTool,
  HttpRequest,
  HttpResponse,
  httpFetch,
  Json,
  ok,
  Result,
  ToolInput,
  ToolOutput,
} from "@chainsocket/as-sdk";
import { NO_RESULT, summarize } from "./answer";
import { cap, clean, urlEncode } from "./text";

function config(key: string, def: string): string {
  const v = configGet(key);
  return v !== null && v.trim().length > 0 ? v.trim() : def;
}

/** A positive integer from config, or `def` when missing or not a number. */
function configInt(key: string, def: i32): i32 {
  const v = configGet(key);
  if (v === null) return def;
  const n = parseInt(v.trim(), 10);
  return isNaN(n) || n < 1 || n > 1e9 ? def : <i32>n;
}

function failed(message: string): Result<ToolOutput> {
  return ok(new ToolOutput(message, true));
}

/** The query from `{"input": "…"}` or `{"arguments": {"query": "…"}}`. */
function queryOf(req: ToolInput): string {
  const args = req.arguments;
  if (args !== null) {
    const q = args.get("query");
    if (q !== null && q.isString) return q.asString().trim();
    const input = args.get("input"); // tolerated: some agents wrap plain text this way
    return input !== null && input.isString ? input.asString().trim() : "";
  }
  const text = req.input;
  return text !== null ? text.trim() : "";
}

function searchUrl(query: string): string {
  let base = config("base_url", "https://serpapi.com");
  while (base.endsWith("/")) base = base.substring(0, base.length - 1);
  let url = base + "/search.json?engine=" + urlEncode(config("engine", "google")) + "&q=" + urlEncode(query);
  const optional = ["hl", "gl", "num", "location", "google_domain"];
  const defaults = ["en", "us", "", "", ""];
  for (let i = 0; i < optional.length; i++) {
    const v = config(optional[i], defaults[i]);
    if (v.length > 0) url += "&" + optional[i] + "=" + urlEncode(v);
  }
  return url;
}

/**
 * The `grant.hosts` entry that admits `url`'s origin, as the app config takes it: the bare
 * `host[:port]` for https (a bare entry means https), `http://host[:port]` for plain http,
 * lower-cased, quoted when YAML would not read it as one plain string. `null` when `url` is not http(s).
 */
function grantEntry(url: string): string | null {
  const sep = url.indexOf("://");
  if (sep < 0) return null;
  const scheme = url.substring(0, sep).toLowerCase();
  if (scheme != "http" && scheme != "https") return null;
  let end = sep + 3;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c == 0x2f || c == 0x3f || c == 0x23) break; // / ? #
    end++;
  }
  let authority = url.substring(sep + 3, end);
  const at = authority.lastIndexOf("@"); // user:password@ is no part of the origin
  if (at >= 0) authority = authority.substring(at + 1);
  authority = authority.toLowerCase(); // as the host compares names
  if (authority.length == 0 || authority.startsWith(":")) return null;
  const entry = scheme == "http" ? "http://" + authority : authority;
  for (let i = 0; i < entry.length; i++) {
    const c = entry.charCodeAt(i);
    const plain = (c >= 0x30 && c <= 0x3a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
      c == 0x2e || c == 0x2d; // digits, ':', letters, '.', '-'
    if (!plain) return '"' + entry + '"';
  }
  return entry;
}

function header(resp: HttpResponse, name: string): string | null {
  const keys = resp.headers.keys();
  for (let i = 0; i < keys.length; i++) {
    if (keys[i].toLowerCase() == name) return resp.headers.get(keys[i]);
  }
  return null;
}

/** SerpAPI's own explanation (`{"error": "…"}`) when the body has one. */
function bodyError(body: string): string {
  const parsed = Json.parseString(body);
  const v = parsed.value;
  if (v === null || !v.isObject) return "";
  return clean(v.getString("error"));
}

/** An answer for a non-2xx status: what happened and what to do about it. */
function statusError(resp: HttpResponse): string {
  const status = resp.status;
  const said = bodyError(resp.body);
  const detail = said.length > 0 ? ": " + said : "";
  if (status == 401 || status == 403) {
    return "SerpAPI refused the request (HTTP " + status.toString() + detail +
      "). The API key is missing or invalid: set the secret `api_key` of this tool in the app " +
      "(e.g. `secrets: {api_key: env:SERPAPI_API_KEY}`) to a valid SerpAPI key.";
  }
  if (status == 429) {
    const retry = header(resp, "retry-after");
    return "SerpAPI rate limit or monthly search quota reached (HTTP 429" + detail + ")." +
      (retry !== null ? " Retry after " + retry + " s." : " Retry later or upgrade the SerpAPI plan.");
  }
  if (status >= 500) {
    return "SerpAPI is unavailable (HTTP " + status.toString() + detail + "); retry later.";
  }
  return "SerpAPI answered HTTP " + status.toString() + (said.length > 0 ? detail : ": " + cap(clean(resp.body), 200));
}

function search(req: ToolInput): Result<ToolOutput> {
  const query = queryOf(req);
  if (query.length == 0) {
    return failed('empty query: send {"input": "your search"} or {"arguments": {"query": "your search"}}');
  }
  const url = searchUrl(query);
  const fetched = httpFetch(new HttpRequest(url));
  if (!fetched.ok) {
    const e = fetched.error!;
    if (e.code == "not_granted") {
      const where = "the host refused to fetch " + url.substring(0, url.indexOf("?")) + " (" + e.message + "). ";
      const entry = grantEntry(url);
      if (entry === null) return failed(where + "Set base_url to an http:// or https:// URL.");
      return failed(where + "Grant the host of base_url in the app: `grant: {hosts: [" + entry + "]}`" +
        (entry.includes("http://") ? " (plain http must be written `http://`: a bare host means https)." : "."));
    }
    if (e.code == "timeout") {
      return failed("SerpAPI request timed out after the call's time limit: " + e.message +
        ". The app can raise that limit (`grant: {timeout_ms: N}` of the component it names).");
    }
    return failed("SerpAPI request failed (" + e.code + "): " + e.message);
  }
  const resp = fetched.value!;
  if (resp.status < 200 || resp.status > 299) return failed(statusError(resp));

  const parsed = Json.parseString(resp.body);
  const res = parsed.value;
  if (res === null || !res.isObject) {
    const why = res === null ? parsed.error : "not a JSON object";
    return failed("SerpAPI returned malformed JSON (" + why + "): " + cap(clean(resp.body), 120));
  }
  const maxChars = configInt("max_chars", 2000);
  const error = res.get("error");
  if (error !== null) {
    const message = clean(error.isString ? error.asString() : error.toString());
    // "Google hasn't returned any results for this query." is an empty result, not a failure.
    if (message.toLowerCase().includes("hasn't returned any results")) return ok(new ToolOutput(NO_RESULT));
    return failed(cap("SerpAPI error: " + message, maxChars));
  }
  return ok(new ToolOutput(cap(summarize(res, configInt("results", 1)), maxChars)));
}

export function call(): i32 {
  return handleTool(search);
}
