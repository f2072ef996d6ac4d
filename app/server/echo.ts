/**
 * The echo server, built on the library's `serve()` and nothing else: it
 * upgrades `/echo` to a WebSocket that sends every message back, answers
 * `/`, `/favicon.ico`, `/info`, `/healthz` and `/metrics`, and writes one log event per thing that
 * happens (the log contract in the README).
 *
 * @module
 */

import {
  type CloseInfo,
  type Connection,
  HandshakeError,
  type KeepAlivePolicy,
  type Refusal,
  serve,
  type ServerRequest,
  type SocketOptions,
  type Traffic,
} from "../../mod.ts";
import { formatAddr } from "../common/addr.ts";
import { keepAliveConfig, keepAliveLogFields } from "../common/keepalive.ts";
import { closeLogFields, type Logger } from "../common/log.ts";
import { Metrics, VERSION } from "./metrics.ts";
import { type Faults, injectFaults, NO_FAULTS } from "../common/faults.ts";
import { closeSummary } from "../common/summary.ts";
import { ECHO_PAGE, FAVICON } from "./page.ts";

/** The WebSocket endpoint. */
export const ECHO_PATH = "/echo";
/** The settings in force, as JSON (the page at `/` shows them). */
export const INFO_PATH = "/info";

/** What the echo server needs to run. */
export interface EchoOptions {
  /** Host to bind. */
  hostname: string;
  /** Port to bind; 0 picks a free one. */
  port: number;
  /** The TCP keepalive policy for accepted connections. */
  keepAlive: KeepAlivePolicy;
  /** TCP_USER_TIMEOUT for accepted connections (ms); 0 leaves the OS value. */
  userTimeoutMs: number;
  /** Upgrades past this many open connections get 503; 0 means no limit. */
  maxConnections: number;
  /** Largest message accepted (bytes). */
  maxMessageSize: number;
  /** Agree to permessage-deflate when a client offers it. */
  compression?: boolean;
  /** Bound on reading the request head (ms). */
  handshakeTimeoutMs: number;
  /** Allowed `Origin` host patterns besides the request's own host. */
  origins: string[];
  /** Subprotocols the server speaks, in preference order. */
  subprotocols: string[];
  /** Heartbeat ping period (ms); 0 turns pings off. */
  pingIntervalMs: number;
  /** Close when nothing arrives for this long (ms); 0 turns it off. */
  pongTimeoutMs: number;
  /** Close when a write makes no progress for this long (ms); 0 turns it off. */
  stallTimeoutMs?: number;
  /** Faults to inject on every connection (default: none). */
  faults?: Faults;
  /** The server-wide memory budget in bytes (default: the library's). */
  memoryBudget?: number;
  /** PEM certificate and key: serve wss:// and https://. */
  tls?: { cert: string; key: string };
  /** Share the port with other processes (SO_REUSEPORT), for workers. */
  reusePort?: boolean;
  /** Where events go. */
  logger: Logger;
  /** Extra fields on every log event (e.g. a worker's pid). */
  logFields?: Record<string, unknown>;
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
  const log = options.logger;
  const extra = options.logFields ?? {};
  const metrics = new Metrics();
  const started = new WeakMap<Connection, number>();
  const faults = options.faults ?? NO_FAULTS;

  const server = serve({
    hostname: options.hostname,
    port: options.port,
    tls: options.tls,
    reusePort: options.reusePort,
    keepAlive: keepAliveConfig(options.keepAlive),
    userTimeout: options.userTimeoutMs || undefined,
    handshakeTimeout: options.handshakeTimeoutMs,
    maxMessageSize: options.maxMessageSize,
    compression: options.compression ?? false,
    pingInterval: options.pingIntervalMs,
    pongTimeout: options.pongTimeoutMs,
    stallTimeout: options.stallTimeoutMs,
    autoPong: !faults.noPong,
    memoryBudget: options.memoryBudget,
    maxConnections: options.maxConnections,
    origins: options.origins,
    protocols: options.subprotocols,
    onRefused: refused,
    onError: (err, req) => {
      log.error("error", {
        ...(req ? { id: req.id, remote: formatAddr(req.remoteAddr) } : {}),
        message: err instanceof Error ? err.message : String(err),
        ...extra,
      });
    },
    onEvict: (ws, e) => {
      log.warn("memory-budget", {
        message: "the memory budget is exhausted: closing the connection that holds the most",
        remote: formatAddr(ws.remoteAddr),
        held_bytes: e.held,
        used_bytes: e.used,
        limit_bytes: e.limit,
        ...extra,
      });
    },
  }, handle);
  const addr = formatAddr(server.addr);
  metrics.budget = server.budget;
  metrics.openTraffic = () => {
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
  log.info("listening", { addr, tls: Boolean(options.tls), ...extra });

  /** A request the library refused before it reached us: a bad head, or one that never came. */
  function refused(r: Refusal) {
    const remote = formatAddr(r.remoteAddr);
    if (r.timedOut) {
      // Never a WebSocket: a dropped request, not a closed connection (open = accepted − closed).
      metrics.dropped("handshake-timeout");
      log.info("close", {
        id: r.id,
        remote,
        code: 1006,
        reason: "",
        cause: "handshake-timeout",
        clean: false,
        ...extra,
      });
    } else if (r.status === 0) {
      metrics.dropped("read-error");
      log.warn("error", { id: r.id, remote, message: r.message, ...extra });
    } else {
      metrics.refused(r.status);
      log.info("rejected", { id: r.id, remote, status: r.status, message: r.message, ...extra });
    }
  }

  async function handle(req: ServerRequest) {
    metrics.keepalive ??= req.keepalive;
    const path = req.url.pathname;
    if (path === ECHO_PATH) return await echo(req);
    // HEAD is GET without the body (RFC 9110 §9.3.2); monitors and curl -I use it.
    if (req.method !== "GET" && req.method !== "HEAD") {
      return await reject(req, 405, `${req.method} is not allowed here`, { Allow: "GET, HEAD" });
    }
    const body = await page(path, req);
    if (body === null) return await reject(req, 404, `no such path: ${path}`);
    await req.respond(200, body.text, { "Content-Type": body.type, ...body.headers });
  }

  async function reject(
    req: ServerRequest,
    status: number,
    message: string,
    headers?: Record<string, string>,
  ) {
    metrics.refused(status);
    log.info("rejected", {
      id: req.id,
      remote: formatAddr(req.remoteAddr),
      status,
      message,
      ...extra,
    });
    await req.reject(status, message, headers);
  }

  async function echo(req: ServerRequest) {
    const remote = formatAddr(req.remoteAddr);
    let ws: Connection;
    try {
      ws = await req.upgrade();
    } catch (err) {
      if (!(err instanceof HandshakeError)) throw err;
      metrics.refused(err.status);
      log.info("rejected", {
        id: req.id,
        remote,
        status: err.status,
        message: err.message,
        ...extra,
      });
      return;
    }
    started.set(ws, Date.now());
    metrics.opened();
    log.info("open", {
      id: req.id,
      remote,
      protocol: ws.protocol,
      extensions: ws.extensions || null,
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
    injectFaults(ws, faults, log, { id, remote, ...extra });
    // Not awaited: the handler returns, so the request (its head, its
    // headers) is freed while the connection lives (~3.6 KB each, measured).
    ws.closed.then((info: CloseInfo) => {
      metrics.addTraffic(ws.traffic);
      metrics.closed(info.cause, (Date.now() - started.get(ws)!) / 1000);
      log.info("close", {
        id,
        remote,
        ...closeLogFields(info, started.get(ws)!),
        ...closeSummary(ws),
        ...extra,
      });
    });
  }

  async function page(
    path: string,
    req: ServerRequest,
  ): Promise<{ text: string | Uint8Array; type: string; headers?: Record<string, string> } | null> {
    if (path === "/") return { text: ECHO_PAGE, type: "text/html; charset=utf-8" };
    if (path === "/favicon.ico") {
      return { text: FAVICON, type: "image/x-icon", headers: { "Cache-Control": "max-age=86400" } };
    }
    if (path === INFO_PATH) {
      return {
        text: JSON.stringify(serverInfo(req.keepalive)) + "\n",
        type: "application/json",
        headers: { "Cache-Control": "no-store" },
      };
    }
    if (path === "/healthz") return { text: "ok\n", type: "text/plain; charset=utf-8" };
    if (path === "/metrics") {
      return {
        text: (options.collectMetrics ? await options.collectMetrics() : metrics).render(),
        type: "text/plain; version=0.0.4; charset=utf-8",
      };
    }
    return null;
  }

  /** What `/info` says: the settings in force, the keepalive read back from `keepalive`'s socket. */
  function serverInfo(keepalive: SocketOptions): Record<string, unknown> {
    return {
      version: VERSION,
      ...keepAliveLogFields(keepalive),
      ping_interval_ms: options.pingIntervalMs,
      pong_timeout_ms: options.pongTimeoutMs,
      max_message_size: options.maxMessageSize,
      handshake_timeout_ms: options.handshakeTimeoutMs,
    };
  }

  return {
    addr,
    port: server.addr.port,
    metrics,
    async shutdown() {
      await server.shutdown();
      log.info("stopped", { addr, ...extra });
    },
  };
}
