// Grant entries as cspm/formats/hosts.py reads them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { matchGrant, parseEntry } from "../src/grants.js";
import { parseBounded } from "../src/json.js";

test("entries: a bare host is https on 443; ports and schemes are part of the origin", () => {
  assert.deepEqual(parseEntry("api.example.com"), { scheme: "https", host: "api.example.com", port: 443 });
  assert.deepEqual(parseEntry("http://127.0.0.1:8080/v1"), { scheme: "http", host: "127.0.0.1", port: 8080 });
  assert.deepEqual(parseEntry("API.Example.COM.:8443"), { scheme: "https", host: "api.example.com", port: 8443 });
  assert.equal(parseEntry("ftp://x"), null);
  assert.equal(parseEntry("x:²"), null);
  const granted = ["api.example.com", "http://127.0.0.1:8080", "*.example.org"];
  assert.equal(matchGrant(granted, "https", "api.example.com", null), "api.example.com");
  assert.equal(matchGrant(granted, "http", "api.example.com", null), null, "https grant never covers http");
  assert.equal(matchGrant(granted, "https", "api.example.com", 8443), null, "another port is another origin");
  assert.equal(matchGrant(granted, "http", "127.0.0.1", 8080), "http://127.0.0.1:8080");
  assert.equal(matchGrant(granted, "http", "127.0.0.2", 8080), null);
  assert.equal(matchGrant(granted, "https", "a.example.org", null), "*.example.org");
  assert.equal(matchGrant(granted, "https", "example.org", null), null, "a wildcard does not cover the name itself");
  assert.equal(matchGrant(granted, "file", "", null), null);
});

test("bounded JSON: depth, number length, size and UTF-8 are refused past their limits", () => {
  assert.deepEqual(parseBounded(new TextEncoder().encode('{"a": [1, "]]]]"]}')), { a: [1, "]]]]"] });
  assert.throws(() => parseBounded("[".repeat(65) + "]".repeat(65)), /nested more than 64/);
  parseBounded("[".repeat(64) + "]".repeat(64));
  assert.throws(() => parseBounded("1" + "0".repeat(100)), /more than 100 digits/);
  assert.throws(() => parseBounded(new Uint8Array([0x22, 0xff, 0x22])), /not UTF-8/);
  assert.throws(() => parseBounded("[1, 2]", { maxBytes: 3 }), /limit/);
  assert.throws(() => parseBounded("{not json"), /not JSON/);
});
