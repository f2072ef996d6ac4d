/**
 * The client side: open TCP (or TLS) to a `ws://` or `wss://` URL, apply
 * Go's keepalive to the socket (read back), run the opening handshake
 * (RFC 6455 §4.1), and hand back a {@linkcode Connection}.
 *
 * @module
 */

import { Connection, type ConnectionOptions } from "./connection.ts";
import { type KeepAliveConfig, resolveKeepAlive } from "./tcp/keepalive.ts";
import { applyPolicy, releaseConn } from "./tcp/sockopt.ts";
import { HandshakeError } from "./ws/errors.ts";
import {
  buildUpgradeRequest,
  checkUpgradeResponse,
  DEFAULT_MAX_HEAD_SIZE,
  generateKey,
  INVALID_RESPONSE,
  parseResponseHead,
} from "./ws/handshake.ts";
import { readHead, writeAll } from "./ws/http.ts";
import { acceptDeflateResponse, deflateOffer, PerMessageDeflate } from "./ws/deflate.ts";
import { zlibAvailable } from "./ws/zlib.ts";

/** Default bound on connecting plus the opening handshake (ms). */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

/** Options of {@linkcode dial}. Durations are in milliseconds. */
export interface DialOptions extends ConnectionOptions {
  /**
   * TCP keepalive: Go's `KeepAliveConfig` (a zero or absent field takes
   * Go's default, a negative one leaves the OS value), `true` for Go's
   * defaults (on, 15 s / 15 s / 9; the default), `false` to turn it off.
   */
  keepAlive?: boolean | KeepAliveConfig;
  /** TCP_USER_TIMEOUT in ms; absent leaves the OS value. */
  userTimeout?: number;
  /** Extra request headers (not the ones the handshake sets). */
  headers?: HeadersInit;
  /** The `Origin` header to send. */
  origin?: string;
  /** Subprotocols to offer, most preferred first. */
  protocols?: string[];
  /** PEM CA certificates to trust for wss://, besides the system's. */
  caCerts?: string[];
  /** Bound on connecting plus the handshake (default 10 s). */
  handshakeTimeout?: number;
  /** Aborts connecting and the handshake. */
  signal?: AbortSignal;
}

/** Reads a `ws:`/`wss:` URL; a TypeError says what is wrong with it. */
function webSocketUrl(url: string | URL): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`invalid URL ${JSON.stringify(String(url))}`);
  }
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new TypeError(`${u.href} is not a ws:// or wss:// URL`);
  }
  return u;
}

/** Resolves like `p`, or rejects with `signal.reason` first; a value that comes late is closed. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    p.then((value) => {
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

/**
 * Connects to `url` and completes the opening handshake, with Go's TCP
 * keepalive on the socket unless told otherwise.
 *
 * ```ts
 * const ws = await dial("ws://localhost:8080/echo");
 * await ws.send("hi");
 * for await (const msg of ws) { console.log(msg); break; }
 * await ws.close(1000, "bye");
 * ```
 *
 * Throws a TypeError for a URL or option that cannot work, a RangeError for
 * a keepalive value Linux refuses, a {@linkcode HandshakeError} when the
 * server refuses the upgrade (its HTTP status) or answers against RFC 6455
 * (status 0), `Deno.errors.TimedOut` past `handshakeTimeout`, and Deno's
 * network errors (ConnectionRefused, …) when TCP or TLS fails.
 */
export async function dial(url: string | URL, options: DialOptions = {}): Promise<Connection> {
  const target = webSocketUrl(url);
  const policy = resolveKeepAlive(options.keepAlive ?? true);
  const key = generateKey();
  const compression = options.compression && zlibAvailable() ? options.compression : null;
  const request = buildUpgradeRequest(target, key, {
    headers: [...new Headers(options.headers)],
    origin: options.origin,
    subprotocols: options.protocols,
    extensions: compression ? deflateOffer() : undefined,
  });
  const secure = target.protocol === "wss:";
  const hostname = target.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = target.port ? Number(target.port) : secure ? 443 : 80;
  const timeoutMs = options.handshakeTimeout ?? DEFAULT_DIAL_TIMEOUT_MS;
  const timeout = AbortSignal.any([
    AbortSignal.timeout(timeoutMs),
    ...(options.signal ? [options.signal] : []),
  ]);
  let conn: Deno.Conn | null = null;
  try {
    conn = await abortable(
      secure
        ? Deno.connectTls({ hostname, port, caCerts: options.caCerts }) as Promise<Deno.Conn>
        : Deno.connect({ hostname, port }) as Promise<Deno.Conn>,
      timeout,
    );
    const keepalive = applyPolicy(conn, policy, { userTimeout: options.userTimeout || undefined });
    await abortable(writeAll(conn, new TextEncoder().encode(request)), timeout);
    const got = await readHead(conn, {
      maxHeadSize: DEFAULT_MAX_HEAD_SIZE,
      signal: timeout,
      kind: "response",
    });
    if (!got) {
      throw new HandshakeError(
        INVALID_RESPONSE,
        "the server closed the connection before answering the upgrade",
      );
    }
    const response = parseResponseHead(got.head);
    const { protocol } = checkUpgradeResponse(response, key, {
      subprotocols: options.protocols,
      extensions: compression !== null,
    });
    const agreed = compression
      ? acceptDeflateResponse(response.headers.get("sec-websocket-extensions"))
      : null;
    return new Connection(conn, keepalive, {
      role: "client",
      initial: got.rest,
      protocol,
      maxMessageSize: options.maxMessageSize,
      maxFragments: options.maxFragments,
      pingInterval: options.pingInterval,
      pongTimeout: options.pongTimeout,
      stallTimeout: options.stallTimeout,
      closeTimeout: options.closeTimeout,
      sendHighWater: options.sendHighWater,
      autoPong: options.autoPong,
      deflate: agreed
        ? new PerMessageDeflate(
          agreed,
          "client",
          typeof compression === "object" && compression ? compression.threshold : undefined,
          typeof compression === "object" && compression ? compression.level : undefined,
        )
        : null,
    });
  } catch (err) {
    if (conn) {
      releaseConn(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    if (timeout.aborted) {
      const reason = timeout.reason;
      if (reason instanceof DOMException && reason.name === "TimeoutError") {
        throw new Deno.errors.TimedOut(`no handshake within ${timeoutMs}ms`);
      }
      throw reason;
    }
    throw err;
  }
}
