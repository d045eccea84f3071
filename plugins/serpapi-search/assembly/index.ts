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
      return failed("the host refused to fetch " + url.substring(0, url.indexOf("?")) + " (" + e.message +
        "). Grant the host of base_url in the app: `grant: {hosts: [serpapi.com]}`.");
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
