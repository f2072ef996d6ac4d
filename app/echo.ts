/**
 * The server: accepts TCP (or TLS) connections, applies the keepalive policy
 * to each, reads the HTTP request, and either upgrades `/echo` to a WebSocket
 * or answers `/`, `/healthz` and `/metrics` over plain HTTP/1.1.
 *
 * @module
 */

import { formatAddr } from "../lib/ws/addr.ts";
import { type CloseInfo, type Traffic, WebSocketConn } from "../lib/ws/conn.ts";
import { MemoryBudget } from "../lib/ws/budget.ts";
import { socketCauseClassifier } from "../lib/tcp/cause.ts";
import { GoingAway } from "../lib/ws/close.ts";
import { HandshakeError } from "../lib/ws/errors.ts";
import {
  buildErrorResponse,
  buildHttpResponse,
  buildUpgradeResponse,
  checkUpgradeRequest,
  DEFAULT_MAX_HEAD_SIZE,
  parseRequestHead,
  type RequestHead,
} from "../lib/ws/handshake.ts";
import { readHead, writeAll } from "../lib/ws/http.ts";
import type { KeepAlivePolicy } from "../lib/tcp/keepalive.ts";
import { closeLogFields, type Logger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { ECHO_PAGE } from "./page.ts";
import {
  applyToConn,
  type EffectiveKeepAlive,
  keepAliveLogFields,
  releaseConn,
} from "../lib/tcp/sockopt.ts";

/** Default bound on reading the upgrade request (gorilla and ws use 10 s too). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Gorilla's chat example: ping every 54 s (9/10 of the pong wait)… */
export const DEFAULT_SERVER_PING_INTERVAL_MS = 54_000;
/** …and close when nothing arrives for 60 s. */
export const DEFAULT_SERVER_PONG_TIMEOUT_MS = 60_000;

/** First and longest pause after a failed accept (Go's net/http: 5 ms doubling to 1 s). */
const ACCEPT_BACKOFF_MIN_MS = 5;
const ACCEPT_BACKOFF_MAX_MS = 1_000;

/** How long a graceful shutdown waits for clients to answer close 1001. */
export const SHUTDOWN_TIMEOUT_MS = 5_000;

/**
 * Default server-wide memory budget: bytes held in read buffers, partial
 * messages, unread messages and send queues across all connections.
 */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024;

/** The WebSocket endpoint. */
export const ECHO_PATH = "/echo";

/** What a server needs to run. */
export interface ServerOptions {
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
  /** The server-wide memory budget in bytes (default {@linkcode DEFAULT_MEMORY_BUDGET}). */
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

/** A running server. */
export interface Server {
  /** The bound address, e.g. `127.0.0.1:8080`. */
  readonly addr: string;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Counters for `/metrics`. */
  readonly metrics: Metrics;
  /** Stops accepting, closes every connection with 1001, waits (bounded), resolves. */
  shutdown(): Promise<void>;
}

/** Starts listening and serving; resolves once bound. */
export function startServer(options: ServerOptions): Server {
  const log = options.logger;
  const extra = options.logFields ?? {};
  const metrics = new Metrics();
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls(
      {
        hostname: options.hostname,
        port: options.port,
        cert: options.tls.cert,
        key: options.tls.key,
        reusePort: options.reusePort,
      } as Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem,
    )
    : Deno.listen({
      hostname: options.hostname,
      port: options.port,
      reusePort: options.reusePort,
    });
  const addr = formatAddr(listener.addr);
  const sockets = new Map<number, WebSocketConn>();
  const budget = new MemoryBudget(options.memoryBudget ?? DEFAULT_MEMORY_BUDGET);
  budget.onEvict = (_member, e) => {
    log.warn("memory-budget", {
      message: "the memory budget is exhausted: closing the connection that holds the most",
      held_bytes: e.held,
      used_bytes: e.used,
      limit_bytes: e.limit,
      ...extra,
    });
  };
  metrics.openTraffic = () => {
    const t: Traffic = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0 };
    for (const ws of sockets.values()) {
      const o = ws.traffic;
      t.messagesIn += o.messagesIn;
      t.bytesIn += o.bytesIn;
      t.messagesOut += o.messagesOut;
      t.bytesOut += o.bytesOut;
    }
    return t;
  };
  const handshaking = new Set<Deno.Conn>();
  let nextId = 1;
  let stopping = false;

  log.info("listening", { addr, tls: Boolean(options.tls), ...extra });

  async function acceptLoop() {
    let backoff = 0;
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        backoff = 0;
      } catch (err) {
        if (stopping || err instanceof Deno.errors.BadResource) return;
        // Out of file descriptors (EMFILE) and the like: retrying at once
        // would spin and flood the log. Back off as Go's net/http does.
        backoff = backoff ? Math.min(backoff * 2, ACCEPT_BACKOFF_MAX_MS) : ACCEPT_BACKOFF_MIN_MS;
        log.error("error", {
          message: `accept failed: ${errorText(err)}; retrying in ${backoff}ms`,
          ...extra,
        });
        await new Promise((resolve) => setTimeout(resolve, backoff));
        continue;
      }
      handle(conn, nextId++).catch((err) => {
        log.error("error", {
          message: `connection handler failed: ${errorText(err)}`,
          ...extra,
        });
      });
    }
  }

  async function handle(conn: Deno.Conn, id: number) {
    const started = Date.now();
    const remote = formatAddr(conn.remoteAddr);
    let keepalive: EffectiveKeepAlive;
    try {
      keepalive = applyToConn(conn, options.keepAlive, {
        userTimeoutMs: options.userTimeoutMs || undefined,
      });
    } catch (err) {
      log.error("error", {
        id,
        remote,
        message: `cannot apply socket options: ${errorText(err)}`,
        ...extra,
      });
      closeQuietly(conn);
      return;
    }
    metrics.keepalive ??= keepalive;

    handshaking.add(conn);
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new Deno.errors.TimedOut("handshake timeout")),
      options.handshakeTimeoutMs,
    );
    let head: RequestHead;
    let rest: Uint8Array;
    try {
      const got = await readHead(conn, {
        maxHeadSize: DEFAULT_MAX_HEAD_SIZE,
        signal: timeout.signal,
      });
      if (!got) {
        closeQuietly(conn);
        return;
      }
      head = parseRequestHead(got.head);
      rest = got.rest;
    } catch (err) {
      if (timeout.signal.aborted) {
        metrics.closed("handshake-timeout");
        log.info("close", {
          id,
          remote,
          code: 1006,
          reason: "",
          cause: "handshake-timeout",
          clean: false,
          duration_ms: Date.now() - started,
          ...extra,
        });
        closeQuietly(conn);
      } else if (err instanceof HandshakeError) {
        await refuse(conn, id, remote, err);
      } else {
        // A reset or a failed TLS handshake: no HTTP request to answer.
        log.warn("error", {
          id,
          remote,
          message: `reading the request failed: ${errorText(err)}`,
          ...extra,
        });
        closeQuietly(conn);
      }
      return;
    } finally {
      clearTimeout(timer);
      handshaking.delete(conn);
    }

    const path = head.target.split("?")[0];
    try {
      if (path === ECHO_PATH) {
        if (stopping) {
          throw new HandshakeError(503, "the server is shutting down");
        }
        if (
          options.maxConnections > 0 && sockets.size >= options.maxConnections
        ) {
          throw new HandshakeError(
            503,
            `the server is at its limit of ${options.maxConnections} connections`,
          );
        }
        const { key, protocol } = checkUpgradeRequest(head, {
          origins: options.origins,
          subprotocols: options.subprotocols,
        });
        await writeAll(
          conn,
          new TextEncoder().encode(buildUpgradeResponse(key, protocol)),
        );
        echo(conn, id, remote, started, keepalive, protocol, rest);
        return;
      }
      // HEAD is GET without the body (RFC 9110 §9.3.2); monitors and curl -I use it.
      const isHead = head.method === "HEAD";
      if (head.method !== "GET" && !isHead) {
        throw new HandshakeError(405, `${head.method} is not allowed here`, {
          Allow: "GET, HEAD",
        });
      }
      const body = await page(path);
      if (body === null) throw new HandshakeError(404, `no such path: ${path}`);
      const response = buildHttpResponse(200, body.text, { "Content-Type": body.type });
      await writeAll(
        conn,
        new TextEncoder().encode(
          isHead ? response.slice(0, response.indexOf("\r\n\r\n") + 4) : response,
        ),
      );
      closeQuietly(conn);
    } catch (err) {
      await refuse(conn, id, remote, err);
    }
  }

  async function page(path: string): Promise<{ text: string; type: string } | null> {
    if (path === "/") {
      return { text: ECHO_PAGE, type: "text/html; charset=utf-8" };
    }
    if (path === "/healthz") {
      return { text: "ok\n", type: "text/plain; charset=utf-8" };
    }
    if (path === "/metrics") {
      return {
        text: (options.collectMetrics ? await options.collectMetrics() : metrics).render(),
        type: "text/plain; version=0.0.4; charset=utf-8",
      };
    }
    return null;
  }

  async function refuse(
    conn: Deno.Conn,
    id: number,
    remote: string,
    err: unknown,
  ) {
    const refusal = err instanceof HandshakeError
      ? err
      : new HandshakeError(400, err instanceof Error ? err.message : String(err));
    const { status, message } = refusal;
    metrics.refused(status);
    log.info("rejected", { id, remote, status, message, ...extra });
    try {
      await writeAll(conn, new TextEncoder().encode(buildErrorResponse(refusal)));
    } catch {
      // The peer may be gone already; nothing more to tell it.
    }
    closeQuietly(conn);
  }

  function echo(
    conn: Deno.Conn,
    id: number,
    remote: string,
    started: number,
    keepalive: EffectiveKeepAlive,
    protocol: string | null,
    initial: Uint8Array,
  ) {
    const ws = new WebSocketConn(conn, {
      role: "server",
      initial,
      protocol,
      maxMessageSize: options.maxMessageSize,
      pingIntervalMs: options.pingIntervalMs,
      pongTimeoutMs: options.pongTimeoutMs,
      stallTimeoutMs: options.stallTimeoutMs,
      budget,
      classifyError: socketCauseClassifier(conn, {
        keepAlive: keepalive.enabled,
        userTimeoutMs: keepalive.user_timeout_ms,
      }),
    });
    sockets.set(id, ws);
    // An upgrade that finished while shutdown began: it goes too, with 1001.
    if (stopping) ws.close(GoingAway, "server shutting down", "shutdown");
    metrics.open++;
    metrics.accepted++;
    log.info("open", {
      id,
      remote,
      protocol,
      ...keepAliveLogFields(keepalive),
      ...extra,
    });
    // The promise send() returns is dropped on purpose: flow control is the
    // connection's own (it stops reading while its send queue is full).
    ws.onmessage = (message) => void ws.send(message);
    ws.closed.then((info: CloseInfo) => {
      sockets.delete(id);
      metrics.open--;
      metrics.addTraffic(ws.traffic);
      metrics.closed(info.cause);
      releaseConn(conn);
      log.info("close", { id, remote, ...closeLogFields(info, started), ...extra });
    });
  }

  function closeQuietly(conn: Deno.Conn) {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    releaseConn(conn);
  }

  acceptLoop();

  return {
    addr,
    port: (listener.addr as Deno.NetAddr).port,
    metrics,
    async shutdown() {
      if (stopping) return;
      stopping = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      for (const conn of handshaking) closeQuietly(conn);
      const closing = [...sockets.values()].map((ws) =>
        ws.close(GoingAway, "server shutting down", "shutdown")
      );
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(closing),
        new Promise((resolve) => timer = setTimeout(resolve, SHUTDOWN_TIMEOUT_MS)),
      ]);
      clearTimeout(timer);
      // Whoever has not answered by now is cut: the promise is 5 s.
      for (const ws of sockets.values()) ws.terminate("no answer to close 1001 during shutdown");
      log.info("stopped", { addr, ...extra });
    },
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
