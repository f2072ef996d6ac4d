/**
 * The echo server, built on the library's `serve()` and nothing else: it
 * upgrades `/echo` to a WebSocket that sends every message back, answers
 * `/`, `/favicon.ico`, `/info`, `/healthz` and `/metrics`, and writes one log event per thing that
 * happens (the log contract in the README).
 *
 * Its options are `serve()`'s own, by the same names, plus what the
 * program adds (faults, the logger, the workers' metrics): the command
 * line computes them once and they are handed to `serve()` as they are.
 *
 * @module
 */

import {
  type CloseInfo,
  type Connection,
  type Eviction,
  HandshakeError,
  type Refusal,
  serve,
  type ServeOptions,
  type Server,
  type ServerRequest,
  type Traffic,
} from "../../mod.ts";
import { AbnormalClosure, TLSHandshake } from "../../lib/ws/mod.ts";
import { errorText } from "../../lib/errors.ts";
import { formatAddr } from "../common/addr.ts";
import { keepAliveLogFields } from "../common/keepalive.ts";
import { closeLogFields, type LogFields, type Logger } from "../common/log.ts";
import { type Faults, injectFaults, NO_FAULTS } from "../common/faults.ts";
import { closeSummary } from "../common/summary.ts";
import { VERSION } from "../common/version.ts";
import { Metrics } from "./metrics.ts";
import { ECHO_PAGE, FAVICON } from "./page.ts";

/** The WebSocket endpoint. */
export const ECHO_PATH = "/echo";
/** The settings in force, as JSON (the page at `/` shows them). */
export const INFO_PATH = "/info";

/** `serve()`'s options that the echo server takes as they are (its callbacks are the server's own). */
export type EchoServeOptions = Omit<ServeOptions, "onListen" | "onRefused" | "onError" | "onEvict">;

/** What the echo server needs to run: `serve()`'s options, and what the program adds. */
export interface EchoOptions extends EchoServeOptions {
  /** Heartbeat ping period (ms); 0 turns pings off. Shown at `/info`. */
  pingInterval: number;
  /** Close when nothing arrives for this long (ms); 0 turns it off. Shown at `/info`. */
  pongTimeout: number;
  /** Largest message accepted (bytes). Shown at `/info`. */
  maxMessageSize: number;
  /** Bound on reading the request head (ms). Shown at `/info`. */
  handshakeTimeout: number;
  /** Faults to inject on every connection (default: none); `--no-pong` goes with `autoPong: false`. */
  faults?: Faults;
  /** Where events go. */
  logger: Logger;
  /** Extra fields on every log event (e.g. a worker's pid). */
  logFields?: LogFields;
  /**
   * The counters `/metrics` shows; by default this process's own. Workers pass
   * one that adds up every worker's.
   */
  collectMetrics?: () => Promise<Metrics>;
}

/** A running echo server. */
export interface EchoServer {
  /** The bound address, e.g. `127.0.0.1:8080`. */
  readonly addr: string;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Counters for `/metrics`. */
  readonly metrics: Metrics;
  /** Stops accepting, closes every connection with 1001, waits (bounded), resolves. */
  shutdown(): Promise<void>;
}

/** Starts listening and serving; throws what listening throws (address in use…). */
export function startServer(options: EchoOptions): EchoServer {
  const { logger, logFields, faults, collectMetrics, ...serveOptions } = options;
  const app = new EchoApp(options, logger, logFields ?? {}, faults ?? NO_FAULTS);
  const server = serve({
    ...serveOptions,
    onRefused: (refusal) => app.refused(refusal),
    onError: (err, req) => app.failed(err, req),
    onEvict: (ws, eviction) => app.evicted(ws, eviction),
  }, (req) => app.handle(req));
  app.attach(server, collectMetrics);
  const addr = formatAddr(server.addr);
  logger.info("listening", { addr, tls: Boolean(options.tls), ...app.extra });
  return {
    addr,
    port: server.addr.port,
    metrics: app.metrics,
    async shutdown() {
      await server.shutdown();
      logger.info("stopped", { addr, ...app.extra });
    },
  };
}

/** What a plain page answers: its body, type and extra headers. */
interface Page {
  text: string | Uint8Array;
  type: string;
  headers?: Record<string, string>;
}

/** The server's handlers and counters. */
class EchoApp {
  readonly metrics = new Metrics();
  readonly #options: EchoOptions;
  readonly #log: Logger;
  /** Fields on every event. */
  readonly extra: LogFields;
  readonly #faults: Faults;
  #collect: () => Promise<Metrics> = () => Promise.resolve(this.metrics);

  constructor(options: EchoOptions, log: Logger, extra: LogFields, faults: Faults) {
    this.#options = options;
    this.#log = log;
    this.extra = extra;
    this.#faults = faults;
  }

  /** Reads the budget and the open connections' traffic from `server` when `/metrics` asks. */
  attach(server: Server, collect?: () => Promise<Metrics>): void {
    if (collect) this.#collect = collect;
    this.metrics.budget = server.budget;
    this.metrics.openTraffic = () => {
      const t: Traffic = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0 };
      for (const ws of server.connections) {
        const o = ws.traffic;
        t.messagesIn += o.messagesIn;
        t.bytesIn += o.bytesIn;
        t.messagesOut += o.messagesOut;
        t.bytesOut += o.bytesOut;
      }
      return t;
    };
  }

  /** A request the library refused before it reached us: a bad head, or one that never came. */
  refused(r: Refusal): void {
    const remote = formatAddr(r.remoteAddr);
    if (r.cause !== null) {
      // Never a WebSocket: a dropped request, not a closed connection (open = accepted − closed).
      const tls = r.cause === "tls-handshake";
      this.metrics.dropped(r.cause);
      this.#log.info("close", {
        id: r.id,
        remote,
        code: tls ? TLSHandshake : AbnormalClosure,
        reason: tls ? r.message : "",
        cause: r.cause,
        clean: false,
        ...this.extra,
      });
    } else if (r.status === 0) {
      this.metrics.dropped("read-error");
      this.#log.warn("error", { id: r.id, remote, message: r.message, ...this.extra });
    } else {
      this.#rejected(r.id, remote, r.status, r.message);
    }
  }

  /** An error the handler threw, or any other unexpected failure. */
  failed(err: unknown, req: ServerRequest | null): void {
    this.#log.error("error", {
      ...(req ? { id: req.id, remote: formatAddr(req.remoteAddr) } : {}),
      message: errorText(err),
      ...this.extra,
    });
  }

  /** The memory budget closed the connection that held the most. */
  evicted(ws: Connection, e: Eviction): void {
    this.#log.warn("memory-budget", {
      message: "the memory budget is exhausted: closing the connection that holds the most",
      remote: formatAddr(ws.remoteAddr),
      held_bytes: e.held,
      used_bytes: e.used,
      limit_bytes: e.limit,
      ...this.extra,
    });
  }

  /** Every request: `/echo` upgrades, the rest are pages. */
  async handle(req: ServerRequest): Promise<void> {
    this.metrics.keepalive ??= req.keepalive;
    const path = req.path;
    if (path === ECHO_PATH) return await this.#echo(req);
    // HEAD is GET without the body (RFC 9110 §9.3.2); monitors and curl -I use it.
    if (req.method !== "GET" && req.method !== "HEAD") {
      return await this.#reject(req, 405, `${req.method} is not allowed here`, {
        Allow: "GET, HEAD",
      });
    }
    const body = await this.#page(path, req);
    if (body === null) return await this.#reject(req, 404, `no such path: ${path}`);
    await req.respond(200, body.text, { "Content-Type": body.type, ...body.headers });
  }

  #rejected(id: number, remote: string, status: number, message: string): void {
    this.metrics.refused(status);
    this.#log.info("rejected", { id, remote, status, message, ...this.extra });
  }

  async #reject(
    req: ServerRequest,
    status: number,
    message: string,
    headers?: Record<string, string>,
  ): Promise<void> {
    this.#rejected(req.id, formatAddr(req.remoteAddr), status, message);
    await req.reject(status, message, headers);
  }

  async #echo(req: ServerRequest): Promise<void> {
    const remote = formatAddr(req.remoteAddr);
    let ws: Connection;
    try {
      ws = await req.upgrade();
    } catch (err) {
      if (!(err instanceof HandshakeError)) throw err;
      this.#rejected(req.id, remote, err.status, err.message);
      return;
    }
    const started = Date.now();
    const metrics = this.metrics;
    metrics.opened();
    const log = this.#log;
    const extra = this.extra;
    log.info("open", {
      id: req.id,
      remote,
      protocol: ws.protocol,
      extensions: ws.extensions || null,
      ...(ws.peerSubject !== null ? { peer_subject: ws.peerSubject } : {}),
      ...keepAliveLogFields(ws.keepalive),
      ...extra,
    });
    // The promise send() returns is dropped on purpose: flow control is the
    // connection's own (it stops reading while its send queue is full).
    ws.onmessage = (message) => void ws.send(message);
    ws.onpong = (rttMs) => {
      if (rttMs !== null) metrics.pingAnswered(rttMs);
    };
    const id = req.id;
    injectFaults(ws, this.#faults, log, { id, remote, ...extra });
    // Not awaited: the handler returns, so the request (its head, its
    // headers) is freed while the connection lives (~3.6 KB each, measured).
    ws.closed.then((info: CloseInfo) => {
      metrics.addTraffic(ws.traffic);
      metrics.closed(info.cause, (Date.now() - started) / 1000);
      log.info("close", {
        id,
        remote,
        ...closeLogFields(info, started),
        ...closeSummary(ws),
        ...extra,
      });
    });
  }

  async #page(path: string, req: ServerRequest): Promise<Page | null> {
    switch (path) {
      case "/":
        return { text: ECHO_PAGE, type: "text/html; charset=utf-8" };
      case "/favicon.ico":
        return {
          text: FAVICON,
          type: "image/x-icon",
          headers: { "Cache-Control": "max-age=86400" },
        };
      case INFO_PATH:
        return {
          text: JSON.stringify(this.#info(req)) + "\n",
          type: "application/json",
          headers: { "Cache-Control": "no-store" },
        };
      case "/healthz":
        return { text: "ok\n", type: "text/plain; charset=utf-8" };
      case "/metrics":
        return {
          text: (await this.#collect()).render(),
          type: "text/plain; version=0.0.4; charset=utf-8",
        };
    }
    return null;
  }

  /**
   * What `/info` says: the settings in force, the keepalive read back from
   * the request's socket, and (with `--tls-client-ca`) the subject of its
   * client certificate.
   */
  #info(req: ServerRequest): Record<string, unknown> {
    const o = this.#options;
    return {
      version: VERSION,
      ...(req.peerSubject !== null ? { peer_subject: req.peerSubject } : {}),
      ...keepAliveLogFields(req.keepalive),
      ping_interval_ms: o.pingInterval,
      pong_timeout_ms: o.pongTimeout,
      max_message_size: o.maxMessageSize,
      handshake_timeout_ms: o.handshakeTimeout,
    };
  }
}
