/**
 * The client side: open TCP (or TLS) to a `ws://` or `wss://` URL, apply the
 * keepalive policy, run the opening handshake (RFC 6455 §4.1), and hand back
 * a {@linkcode WebSocketConn}.
 *
 * @module
 */

import { formatAddr } from "./addr.ts";
import { WebSocketConn } from "./conn.ts";
import { HandshakeError, UsageError } from "./errors.ts";
import {
  buildUpgradeRequest,
  checkUpgradeResponse,
  DEFAULT_MAX_HEAD_SIZE,
  generateKey,
  parseResponseHead,
} from "./handshake.ts";
import { readHead, writeAll } from "./http.ts";
import type { KeepAlivePolicy } from "../tcp/keepalive.ts";
import { applyToConn, type EffectiveKeepAlive, releaseConn } from "../tcp/sockopt.ts";
import { socketCauseClassifier } from "../tcp/cause.ts";

/** Options of {@linkcode dial}. */
export interface DialOptions {
  /** The TCP keepalive policy for the connection. */
  keepAlive: KeepAlivePolicy;
  /** TCP_USER_TIMEOUT (ms); 0 leaves the OS value. */
  userTimeoutMs?: number;
  /** Extra request headers. */
  headers?: [string, string][];
  /** The `Origin` header to send. */
  origin?: string;
  /** Subprotocols to offer. */
  subprotocols?: string[];
  /** PEM CA certificates to trust for wss://, besides the system's. */
  caCerts?: string[];
  /** Bound on connecting plus the handshake (ms). */
  handshakeTimeoutMs?: number;
  /** Largest message accepted (bytes). */
  maxMessageSize?: number;
  /** Heartbeat ping period (ms); 0 turns it off. */
  pingIntervalMs?: number;
  /** Fail when nothing arrives for this long (ms); 0 turns it off. */
  pongTimeoutMs?: number;
  /** Fail when a write makes no progress for this long (ms); 0 turns it off. */
  stallTimeoutMs?: number;
}

/** A connected client. */
export interface Dialed {
  /** The WebSocket. */
  ws: WebSocketConn;
  /** The keepalive read back from the socket. */
  keepalive: EffectiveKeepAlive;
  /** `host:port` of the server as connected. */
  remote: string;
}

/** Parses and checks a WebSocket URL; throws {@linkcode UsageError} when it is not one. */
export function parseWebSocketUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(
      `invalid URL "${text}": expected ws://HOST[:PORT]/PATH or wss://…`,
    );
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new UsageError(
      `invalid URL "${text}": the scheme must be ws:// or wss://, not ${url.protocol}//`,
    );
  }
  if (url.hash) {
    throw new UsageError(
      `invalid URL "${text}": a WebSocket URL has no #fragment`,
    );
  }
  return url;
}

/**
 * Connects to `url` and completes the opening handshake. Throws
 * {@linkcode HandshakeError} when the server refuses, and Deno's network
 * errors (ConnectionRefused, TimedOut…) when TCP or TLS fails.
 */
export async function dial(url: URL, options: DialOptions): Promise<Dialed> {
  const secure = url.protocol === "wss:";
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port ? Number(url.port) : secure ? 443 : 80;
  const timeoutMs = options.handshakeTimeoutMs ?? 10_000;
  const timeout = new AbortController();
  const timer = setTimeout(
    () =>
      timeout.abort(
        new Deno.errors.TimedOut(`no handshake within ${timeoutMs}ms`),
      ),
    timeoutMs,
  );
  let conn: Deno.Conn | null = null;
  try {
    conn = await abortable(
      secure
        ? Deno.connectTls({
          hostname,
          port,
          caCerts: options.caCerts,
        }) as Promise<Deno.Conn>
        : Deno.connect({ hostname, port }) as Promise<Deno.Conn>,
      timeout.signal,
    );
    const keepalive = applyToConn(conn, options.keepAlive, {
      userTimeoutMs: options.userTimeoutMs || undefined,
    });
    const key = generateKey();
    const request = buildUpgradeRequest(url, key, {
      headers: options.headers,
      origin: options.origin,
      subprotocols: options.subprotocols,
    });
    await writeAll(conn, new TextEncoder().encode(request));
    const got = await readHead(conn, {
      maxHeadSize: DEFAULT_MAX_HEAD_SIZE,
      signal: timeout.signal,
      kind: "response",
    });
    if (!got) {
      throw new HandshakeError(
        0,
        "the server closed the connection before answering the upgrade",
      );
    }
    const response = parseResponseHead(got.head);
    const { protocol } = checkUpgradeResponse(response, key, {
      subprotocols: options.subprotocols,
    });
    const ws = new WebSocketConn(conn, {
      role: "client",
      initial: got.rest,
      protocol,
      maxMessageSize: options.maxMessageSize,
      pingIntervalMs: options.pingIntervalMs,
      pongTimeoutMs: options.pongTimeoutMs,
      stallTimeoutMs: options.stallTimeoutMs,
      classifyError: socketCauseClassifier(conn, {
        keepAlive: keepalive.enabled,
        userTimeoutMs: keepalive.user_timeout_ms,
      }),
    });
    const c = conn;
    ws.closed.then(() => releaseConn(c));
    return { ws, keepalive, remote: formatAddr(conn.remoteAddr) };
  } catch (err) {
    if (conn) {
      releaseConn(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    throw timeout.signal.aborted ? timeout.signal.reason : err;
  } finally {
    clearTimeout(timer);
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then((value) => {
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) {
        try {
          (value as { close?: () => void }).close?.();
        } catch {
          // Already closed.
        }
      }
      resolve(value);
    }, (err) => {
      signal.removeEventListener("abort", onAbort);
      reject(err);
    });
  });
}
