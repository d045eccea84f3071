// A Host whose plug-ins all run in ONE worker thread (src/worker-entry.js), for Node. Why: Node 20 has
// no JSPI, so a guest can wait on an asynchronous host function only from a worker; the default Host
// gives every instance its own Extism-JS worker, and each host function call then crosses threads with
// the guest's block list (~0.2–0.5 ms a call, a routed hop ~1 ms). Here the instances are foreground
// instances of one worker with synchronous host functions: a routed call is a nested call in that
// thread, and only I/O (http_*, kv) comes to this thread, answered on a port while the worker waits on
// a shared flag. Same API and messages as Host (src/host.js, which still checks the plan, the modules'
// digests, secrets and mounts at load: this class reuses Host.load for that).
//
// Deadlines: a host function answers `timeout` once the call's deadline (its own or its caller's) has
// passed. A nested call with a deadline of its own, earlier than its caller's, runs under a node:vm
// watchdog in the worker, which stops just that call, so its caller goes on. Any other guest computing
// past the top-level call's deadline (past the grace a guest waiting on I/O gets, as in host.js) is
// stopped by ending the worker: the request fails as timed out (a callee sharing its caller's deadline
// thus takes its caller down with it, where host.js would let the caller answer), and a fresh worker
// with fresh instances of every component replaces it (the vars of every component are lost).

import { MessageChannel, Worker } from "node:worker_threads";
import { HttpGateway, READ_BYTES, Streams } from "./http.js";
import { Host, HostLoadError } from "./host.js";
import { MemoryKvStore } from "./kv-memory.js";
import {
  HostRefusal, LogBook, PluginFailed, checkArguments, errorDocument, internalDocument, kvRefusal, refusalDocument, runResult,
  timedOutMessage, timeoutMessage,
} from "./rules.js";

const GRACE_MS = 250;
const MAX_GRACE_MS = 2000;

/**
 * @typedef {import("./host.js").HostOptions} HostOptions
 * @typedef {import("./host.js").RunResult} RunResult
 * @typedef {import("./plan.js").Plan} Plan
 * @typedef {import("./plan.js").Component} Component
 * @typedef {import("./http.js").Secret} Secret
 */

export class WorkerHost extends Host {
  /** @param {Host} checked @param {any[]} specs @param {HostOptions} options */
  constructor(checked, specs, options) {
    super(checked.plan, options);
    this.kv = checked.kv;
    this.session = checked.session;
    this.nodes = checked.nodes;
    /** @type {Map<string, {component: Component, secrets: Secret[], placeholders: import("./abi0.js").Placeholders}>} */
    this.components = checked.nodes;
    this.specs = specs.map((spec) => ({ name: spec.name, component: spec.component, module: spec.module, wasi: spec.wasi,
      allowedPaths: spec.allowedPaths, config: spec.config, memoryPages: spec.memoryPages, abi0: spec.abi0 ?? null }));
    /** @type {Map<string, LogBook>} */
    this.logLines = new Map([...this.nodes.keys()].map((n) => [n, new LogBook()]));
    /** @type {Map<number, Streams>} open streams by the worker's frame id */
    this.streams = new Map();
    /** @type {Promise<unknown>} */
    this.jobs = Promise.resolve();
    /** @type {Worker | null} */
    this.worker = null;
    /** @type {Promise<void> | null} */
    this.starting = null;
    this.nextId = 1;
    /** @type {{id: number, resolve: (v: any) => void, reject: (e: Error) => void} | null} */
    this.current = null;
    this.asking = 0; // requests of the worker being answered
    this.lastAnswer = -Infinity;
    /** @type {Int32Array | null} */
    this.flag = null;
    /** @type {import("node:worker_threads").MessagePort | null} */
    this.answers = null;
  }

  /**
   * A host for the plan, every instance in one worker (Host.load with this engine).
   * @param {unknown} planData @param {HostOptions} [options]
   * @returns {Promise<Host>}
   */
  static load(planData, options = {}) {
    return Host.load(planData, { ...options, engine: workerEngine });
  }

  /** A fresh worker with fresh instances of every component (at load, and after one was ended). */
  start() {
    this.answers?.close();
    const flag = new SharedArrayBuffer(8); // [0]: an answer is posted; [1]: watched nested calls running
    const channel = new MessageChannel();
    const worker = new Worker(new URL("./worker-entry.js", import.meta.url), {
      workerData: { flag, answers: channel.port1, specs: this.specs },
      transferList: [/** @type {any} */ (channel.port1)],
      execArgv: [...process.execArgv, "--disable-warning=ExperimentalWarning"], // Node's WASI warns once per thread, as Extism's workers are told not to
    });
    worker.unref();
    this.worker = worker;
    const shared = new Int32Array(flag);
    this.flag = shared;
    this.answers = channel.port2;
    this.starting = new Promise((resolve, reject) => {
      worker.on("message", (/** @type {any} */ m) => {
        if (m.type === "ready") resolve();
        else if (m.type === "load-failed") reject(new HostLoadError(m.message));
        else this.#onMessage(m, channel.port2, shared);
      });
      worker.on("error", (err) => {
        reject(new HostLoadError(`the plug-in worker failed: ${err.message}`));
        if (this.worker === worker) this.#lost(`the plug-in worker failed: ${err.message}`);
      });
      worker.on("exit", () => { reject(new HostLoadError("the plug-in worker ended")); if (this.worker === worker) this.#lost("the plug-in worker ended"); });
    });
    return this.starting;
  }

  /** The worker is gone (crashed): the call in progress fails, the next one gets a fresh worker. @param {string} why */
  #lost(why) {
    this.worker = null;
    const current = this.current;
    this.current = null;
    current?.reject(new PluginFailed(why));
  }

  /** A message of the worker; `answers` and `flag` are that worker's. @param {any} m @param {import("node:worker_threads").MessagePort} answers @param {Int32Array} flag */
  #onMessage(m, answers, flag) {
    switch (m.type) {
      case "done": {
        const current = this.current;
        if (!current || current.id !== m.id) return;
        this.current = null;
        if (m.failed) current.reject(new PluginFailed(m.message));
        else if ("message" in m) current.reject(new Error(m.message));
        else current.resolve(m);
        return;
      }
      case "log":
        return this.#log(m.name, m.level, m.message);
      case "chunk":
        return this.options.onChunk?.(m.name, m.text);
      case "frame-end":
        this.streams.get(m.frame)?.closeAll();
        this.streams.delete(m.frame);
        return;
      case "ask":
        this.#answer(m, answers, flag);
    }
  }

  /** @param {string} name @param {string} level @param {string} message */
  #log(name, level, message) {
    const kept = this.logLines.get(name);
    const line = kept?.add(level, message) ?? null;
    if (line !== null) this.options.onLog?.(name, level, line);
  }

  /**
   * One I/O request of the worker, answered on its answers port; the worker waits on the flag.
   * @param {any} m @param {import("node:worker_threads").MessagePort} answers @param {Int32Array} flag
   */
  async #answer(m, answers, flag) {
    this.asking++;
    const deadline = performance.now() + m.remainingMs;
    /** @type {string} */
    let text;
    /** @type {any} */
    let timer = null;
    try {
      const late = new Promise((resolve) => {
        timer = setTimeout(() => resolve(errorDocument("timeout", timeoutMessage(m.fn, m.limit))), Math.max(m.remainingMs, 0));
      });
      text = /** @type {string} */ (await Promise.race([this.#io(m, deadline), late]));
    } catch (err) {
      text = refusalDocument(err, m.limit) ?? internalDocument(m.fn, err);
    } finally {
      clearTimeout(timer);
      this.asking--;
      this.lastAnswer = performance.now();
    }
    answers.postMessage({ seq: m.seq, text });
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  }

  /** @param {any} m @param {number} deadline @returns {Promise<string>} */
  async #io(m, deadline) {
    const entry = /** @type {{component: Component, secrets: Secret[], placeholders: import("./abi0.js").Placeholders}} */ (this.components.get(m.name));
    const grant = entry.component.grant;
    const message = m.message;
    switch (m.fn) {
      case "http_fetch":
        return JSON.stringify(await this.http.fetch(message, grant.hosts, entry.secrets, deadline, entry.placeholders));
      case "http_open": {
        let streams = this.streams.get(m.frame);
        if (!streams) this.streams.set(m.frame, streams = new Streams());
        if (!streams.room()) throw Streams.refused();
        const stream = await this.http.open(message, grant.hosts, entry.secrets, deadline);
        if (this.streams.get(m.frame) !== streams) { stream.close(); throw new HostRefusal("timeout", "http_open: the call ended"); }
        const number = streams.add(stream);
        return JSON.stringify({ status: stream.status, headers: stream.headers, stream: number });
      }
      case "http_read":
        return JSON.stringify(await (this.streams.get(m.frame) ?? new Streams()).read(message.stream, message.max_bytes ?? READ_BYTES));
      case "http_close":
        this.streams.get(m.frame)?.close(message.stream);
        return "{}";
      case "kv_get":
      case "kv_set": {
        /** @type {import("./kv.js").Scope} */
        const scope = [this.plan.kv_scope, m.name, m.session];
        try {
          if (m.fn === "kv_get") return JSON.stringify({ value: await this.kv.get(scope, message.key) });
          await this.kv.set(scope, message.key, message.value);
          return "{}";
        } catch (err) {
          throw kvRefusal(m.fn, err);
        }
      }
      default:
        throw new HostRefusal("internal", `${m.fn}: not a host function`);
    }
  }

  /**
   * One request to the worker, held to the top component's deadline: past it (and the grace a guest
   * waiting on I/O gets), the worker is ended and a fresh one made.
   * @param {string} name @param {Record<string, any>} request
   */
  async #send(name, request) {
    if (this.worker === null) await this.start();
    else await this.starting;
    const worker = /** @type {Worker} */ (this.worker);
    const component = /** @type {{component: Component}} */ (this.components.get(name)).component;
    const timeout = component.grant.timeout_ms;
    const deadline = performance.now() + timeout;
    const id = this.nextId++;
    /** @type {any} */
    let timer = null;
    try {
      return await new Promise((resolve, reject) => {
        this.current = { id, resolve, reject };
        const check = () => {
          const now = performance.now();
          if (now < deadline) return void (timer = setTimeout(check, deadline - now));
          // a guest waiting on I/O is answered `timeout` and gets a grace period; a nested call with a
          // deadline of its own is left to the worker's watchdog, so its caller can still answer
          const nested = this.flag !== null && Atomics.load(this.flag, 1) > 0;
          const answering = nested || this.asking > 0 || now - this.lastAnswer < GRACE_MS;
          if (answering && now < deadline + MAX_GRACE_MS) return void (timer = setTimeout(check, GRACE_MS));
          this.current = null;
          this.worker = null;
          worker.terminate().catch(() => {});
          reject(new PluginFailed(timedOutMessage(`${component.kind} \`${name}\``, timeout)));
        };
        timer = setTimeout(check, timeout);
        worker.postMessage({ id, name, ...request });
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * @template T
   * @param {() => Promise<T>} work
   * @returns {Promise<T>}
   */
  #serial(work) {
    if (this.closed) return Promise.reject(new Error("the host is closed"));
    const next = this.jobs.then(work, work);
    this.jobs = next.catch(() => {});
    return next;
  }

  /** @param {string} name */
  #component(name) {
    const entry = this.components.get(name);
    if (!entry) throw new Error(`the plan has no component ${JSON.stringify(name)}`);
    return entry.component;
  }

  /** As Host.run. @param {string} text @param {{entry?: string, session?: string}} [options] @returns {Promise<RunResult>} */
  run(text, options = {}) {
    return this.#serial(async () => {
      const name = options.entry ?? this.plan.entry;
      const component = this.#component(name);
      const session = options.session ?? this.session;
      const kind = component.kind;
      const request = kind === "agent" ? { kind: "invoke", payload: {}, agentText: text, session }
        : { kind: "invoke", payload: kind === "tool" ? { input: text } : { messages: [{ role: "user", content: text }] }, session };
      const { response } = await this.#send(name, request);
      return runResult(component, response, session);
    });
  }

  /** As Host.runMessage. @param {string} name @param {Record<string, any>} payload @param {{session?: string}} [options] @returns {Promise<RunResult>} */
  runMessage(name, payload, options = {}) {
    return this.#serial(async () => {
      const component = this.#component(name);
      const session = options.session ?? this.session;
      checkArguments(name, component, payload);
      const request = component.kind === "agent" ? { kind: "invoke", payload, agentText: String(payload.input ?? ""), session }
        : { kind: "invoke", payload, session };
      const { response } = await this.#send(name, request);
      return runResult(component, response, session);
    });
  }

  /** As Host.call. @param {string} name @param {string} exportName @param {Uint8Array} input @param {{session?: string}} [options] @returns {Promise<Uint8Array>} */
  call(name, exportName, input, options = {}) {
    return this.#serial(async () => {
      this.#component(name);
      const { bytes } = await this.#send(name, { kind: "call", exportName, input, session: options.session ?? this.session });
      return bytes;
    });
  }

  /** @param {string} name */
  logs(name) {
    this.#component(name);
    return /** @type {LogBook} */ (this.logLines.get(name)).snapshot();
  }

  /** Ends the worker; the kv store is closed as Host.close closes it. */
  async close() {
    this.closed = true;
    const worker = this.worker;
    this.#lost("the host is closed");
    for (const streams of this.streams.values()) streams.closeAll();
    this.streams.clear();
    await worker?.terminate().catch(() => {});
    this.answers?.close();
    await this.kv.close?.();
  }
}

/**
 * The engine src/node.js gives Host.load: every instance in one worker.
 * @type {import("./host.js").Engine}
 */
export async function workerEngine(checked, specs, options) {
  const host = new WorkerHost(checked, specs, options);
  try {
    await host.start();
  } catch (err) {
    const worker = host.worker;
    host.worker = null;
    await worker?.terminate().catch(() => {});
    throw err;
  }
  return host;
}
