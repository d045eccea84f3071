// The http gateway: grants, refused headers, secret injection and redaction in every form (whole
// answers and streams split anywhere), size and time bounds, redirects not followed.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { FetchRefused, HttpGateway, Redactor, Streams, quote, utf8Prefix } from "../src/http.js";

const SECRET = "s3cr3t k/e+y é";
/** @type {import("node:http").Server} */
let server;
let base = "";
/** @type {any[]} */
const seen = [];

before(async () => {
  server = createServer((req, res) => {
    const pieces = /** @type {Buffer[]} */ ([]);
    req.on("data", (p) => pieces.push(p));
    req.on("end", () => {
      const doc = { url: req.url, headers: req.headers, body: Buffer.concat(pieces).toString() };
      seen.push(doc);
      const path = (req.url ?? "").split("?")[0];
      if (path === "/big") {
        res.writeHead(200, { "content-type": "text/plain" });
        const piece = Buffer.alloc(1024 * 1024, 0x61);
        for (let i = 0; i < 9; i++) res.write(piece);
        res.end();
      } else if (path === "/slow") {
        res.writeHead(200);
        res.write("partial"); // then nothing
      } else if (path === "/redirect") {
        res.writeHead(302, { location: "http://elsewhere.example/" });
        res.end();
      } else if (path === "/split") {
        // the secret in every form, each split over two network writes
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "x-leak": quote(SECRET, "") });
        const text = `a ${SECRET} b ${quote(SECRET, "")} c ${quote(SECRET, "/", true)} d ${JSON.stringify(SECRET)} end`;
        const bytes = Buffer.from(text);
        let at = 0;
        const step = () => {
          if (at >= bytes.length) return res.end();
          res.write(bytes.subarray(at, at + 3));
          at += 3;
          setTimeout(step, 1);
        };
        step();
      } else if (path === "/latin1") {
        res.writeHead(200, { "content-type": "text/plain; charset=iso-8859-1" });
        res.end(Buffer.concat([Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20]), Buffer.from(SECRET, "latin1")]));
      } else {
        res.writeHead(200, { "content-type": "application/json", "x-auth": String(req.headers.authorization ?? ""), "set-cookie": ["a=1", "b=2"] });
        res.end(JSON.stringify(doc));
      }
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(null)));
  base = `http://127.0.0.1:${/** @type {import("node:net").AddressInfo} */ (server.address()).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((ok) => server.close(() => ok(null)));
});

const gateway = new HttpGateway(fetch);
const soon = () => performance.now() + 5000;
/** @param {Partial<import("../src/http.js").SecretRef>} spec @returns {import("../src/http.js").Secret} */
const secret = (spec = {}) => ({ spec: { name: "k", source: "env:K", header: "Authorization", format: "Bearer {}", hosts: null, query: null, ...spec }, value: SECRET });

/** @param {Promise<unknown>} promise @param {string} code @param {RegExp} [message] */
async function refused(promise, code, message) {
  await assert.rejects(promise, (err) => err instanceof FetchRefused && err.code === code && (!message || message.test(err.message)));
}

test("a secret is injected for its origin, replaces the plug-in's header, and is redacted from the answer", async () => {
  const answer = await gateway.fetch({ method: "POST", url: `${base}/x?q=1`, headers: { Authorization: "forged", "X-Test": "yes" }, body: "B" },
    [base], [secret()], soon());
  const got = seen.at(-1);
  assert.equal(got.headers.authorization, `Bearer ${SECRET}`);
  assert.equal(got.headers["x-test"], "yes");
  assert.equal(got.body, "B");
  assert.equal(answer.status, 200);
  assert.ok(!JSON.stringify(answer).includes("s3cr3t"), JSON.stringify(answer));
  assert.equal(answer.headers["x-auth"], "Bearer [redacted]");
  assert.equal(answer.headers["set-cookie"], "a=1, b=2");
  assert.equal(JSON.parse(answer.body).headers.authorization, "Bearer [redacted]");
});

test("a query secret goes in the URL and every spelling of it is redacted", async () => {
  const answer = await gateway.fetch({ url: `${base}/q?x=1` }, [base], [secret({ query: "api_key" })], soon());
  const url = new URL(seen.at(-1).url, base);
  assert.equal(url.searchParams.get("api_key"), SECRET);
  assert.equal(url.searchParams.get("x"), "1");
  assert.equal(seen.at(-1).headers.authorization, undefined);
  assert.ok(!answer.body.includes("s3cr3t"), answer.body);
  assert.match(answer.body, /api_key=\[redacted\]/);
});

test("a secret bound to other hosts is not sent", async () => {
  await gateway.fetch({ url: `${base}/n` }, [base], [secret({ hosts: ["api.example.com"] })], soon());
  assert.equal(seen.at(-1).headers.authorization, undefined);
});

test("origins not granted, non-http URLs and routing headers are refused before anything is sent", async () => {
  const count = seen.length;
  await refused(gateway.fetch({ url: `${base}/` }, ["127.0.0.1"], [], soon()), "not_granted", /over http/);
  await refused(gateway.fetch({ url: "http://127.0.0.2:1/" }, [base], [], soon()), "not_granted");
  await refused(gateway.fetch({ url: "file:///etc/passwd" }, [base], [], soon()), "not_granted");
  await refused(gateway.fetch({ url: "not a url" }, [base], [], soon()), "bad_request");
  for (const name of ["Host", "X-Forwarded-For", "Proxy-Authorization", "Content-Length", "Transfer-Encoding"]) {
    await refused(gateway.fetch({ url: `${base}/`, headers: { [name]: "x" } }, [base], [], soon()), "bad_request", /may not set/);
  }
  await refused(gateway.fetch({ url: `${base}/`, headers: { "X-A": "a\r\nb" } }, [base], [], soon()), "bad_request", /printable ASCII/);
  await refused(gateway.fetch({ url: `${base}/`, headers: { "bad name": "a" } }, [base], [], soon()), "bad_request", /token/);
  assert.equal(seen.length, count);
});

test("redirects reach the plug-in; answers past 8 MiB are refused; a silent server ends at the deadline", async () => {
  const redirect = await gateway.fetch({ url: `${base}/redirect` }, [base], [], soon());
  assert.equal(redirect.status, 302);
  assert.equal(redirect.headers.location, "http://elsewhere.example/");
  await refused(gateway.fetch({ url: `${base}/big` }, [base], [], soon()), "http_error", /larger than 8388608 bytes/);
  const start = performance.now();
  await refused(gateway.fetch({ url: `${base}/slow` }, [base], [], performance.now() + 300), "timeout");
  assert.ok(performance.now() - start < 2000);
  await refused(gateway.fetch({ url: `${base}/` }, [base], [], performance.now() - 1), "timeout");
});

test("a body in another charset is decoded, and the secret's bytes are redacted before decoding", async () => {
  const answer = await gateway.fetch({ url: `${base}/latin1` }, [base], [{ ...secret(), value: "s3cr3t" }], soon());
  assert.equal(answer.body, "café [redacted] k/e+y é");
});

test("a stream is redacted even when the server splits a secret over network reads", async () => {
  const stream = await gateway.open({ url: `${base}/split` }, [base], [secret()], soon());
  assert.equal(stream.headers["x-leak"], "[redacted]");
  let text = "";
  for (;;) {
    const piece = await stream.read(5);
    assert.ok(new TextEncoder().encode(piece.data).length <= 5 || [...piece.data].length === 1);
    text += piece.data;
    if (piece.done) break;
    assert.ok(piece.data.length > 0, "a piece is non-empty unless done");
  }
  assert.equal(text, "a [redacted] b [redacted] c [redacted] d \"[redacted]\" end");
  const whole = await gateway.fetch({ url: `${base}/split` }, [base], [secret()], soon());
  assert.equal(whole.body, text);
});

test("streams: at most 4 open per call; reading one not open is bad_request; a stream past 8 MiB is too_large", async () => {
  const streams = new Streams();
  for (let i = 1; i <= 4; i++) assert.equal(streams.add(await gateway.open({ url: `${base}/s` }, [base], [], soon())), i);
  assert.equal(streams.room(), false);
  assert.throws(() => streams.add(/** @type {any} */ ({ close() {} })), (err) => err instanceof FetchRefused && err.code === "too_large");
  streams.close(2);
  await refused(streams.read(2, 10), "bad_request", /stream 2 is not open/);
  streams.closeAll();
  const big = new Streams();
  const n = big.add(await gateway.open({ url: `${base}/big` }, [base], [], soon()));
  await assert.rejects(async () => { for (;;) if ((await big.read(n, 1024 * 1024)).done) break; },
    (err) => err instanceof FetchRefused && err.code === "too_large");
  await refused(big.read(n, 10), "bad_request"); // closed after the error
});

test("pieces are cut on character boundaries", () => {
  assert.equal(utf8Prefix("héllo", 2), "h");
  assert.equal(utf8Prefix("héllo", 3), "hé");
  assert.equal(utf8Prefix("🦀x", 1), "🦀");
  assert.equal(utf8Prefix("", 4), "");
});

test("the redactor knows the raw, percent-encoded (either case, %20 or +) and JSON forms", () => {
  const redactor = new Redactor([secret()]);
  for (const form of [SECRET, quote(SECRET, ""), quote(SECRET, "").toLowerCase().replace(/s3cr3t/, "s3cr3t"), quote(SECRET, "/", true), "s3cr3t k/e+y \\u00e9"]) {
    assert.equal(redactor.redact(`<${form}>`), "<[redacted]>", form);
  }
});
