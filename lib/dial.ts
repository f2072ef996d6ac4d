/**
 * The client side: open TCP (or TLS) to a `ws://` or `wss://` URL, apply
 * Go's keepalive to the socket (read back), run the opening handshake
 * (RFC 6455 §4.1), and hand back a {@linkcode Connection}.
 *
 * @module
 */

import { Connection } from "./connection.ts";
import type { ConnectionOptions } from "./ws/conn.ts";
import type { CompressionOptions } from "./ws/deflate.ts";
import { type KeepAliveConfig, type KeepAlivePolicy, resolveKeepAlive } from "./tcp/keepalive.ts";
import { applyPolicy, closeConn } from "./tcp/sockopt.ts";
import { HandshakeError } from "./ws/errors.ts";
import {
  buildUpgradeRequest,
  checkUpgradeResponse,
  DEFAULT_MAX_HEAD_SIZE,
  generateKey,
  INVALID_RESPONSE,
  parseResponseHead,
} from "./ws/handshake.ts";
import { type Reader, readHead, writeAll } from "./ws/http.ts";
import { acceptDeflateResponse, deflateOffer, PerMessageDeflate } from "./ws/deflate.ts";
import { zlibAvailable } from "./ws/zlib.ts";
import { abortable } from "./async.ts";
import { openTls } from "./tls.ts";

/** Default bound on connecting plus the opening handshake (ms). */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

/** The most of a refused upgrade's body that dial() reads into {@linkcode HandshakeError.body}. */
export const MAX_REFUSAL_BODY = 1024;

/** How long dial() waits for a refused upgrade's body once its head is in (ms). */
export const REFUSAL_BODY_WAIT_MS = 1_000;

/** Options of {@linkcode dial}. Durations are in milliseconds. */
export interface DialOptions extends ConnectionOptions {
  /**
   * permessage-deflate (RFC 7692): `true` to offer it, or options. Off by
   * default, as in ws and gorilla.
   */
  compression?: boolean | CompressionOptions;
  /**
   * TCP keepalive: Go's `KeepAliveConfig` (a zero or absent field takes
   * Go's default, a negative one leaves the OS value), `true` for Go's
   * defaults (on, 15 s / 15 s / 9; the default), `false` to turn it off, or
   * a policy `resolveKeepAlive()` made already, used as it is.
   */
  keepAlive?: boolean | KeepAliveConfig | KeepAlivePolicy;
  /** TCP_USER_TIMEOUT in ms; absent leaves the OS value. */
  userTimeout?: number;
  /** Extra request headers (not the ones the handshake sets). */
  headers?: HeadersInit;
  /** The `Origin` header to send. */
  origin?: string;
  /** Subprotocols to offer, most preferred first. */
  protocols?: string[];
  /**
   * PEM CA certificates to trust for wss://, besides the system's. A
   * self-signed server certificate may be given here too, even one marked
   * CA:TRUE as `openssl req -x509` makes them (which TLS refuses as a
   * server's own): the server must then show exactly that certificate, valid
   * for the URL's host.
   */
  caCerts?: string[];
  /**
   * wss:// only: accept any server certificate, unchecked (expired,
   * self-signed, for another host…), as `curl -k` does. Anyone on the path can
   * then read and change the traffic. Goes through `node:tls`, since Deno's
   * own TLS cannot skip the check per connection.
   */
  insecure?: boolean;
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
 * server refuses the upgrade (its HTTP status, and the start of its body in
 * `body`) or answers against RFC 6455 (status 0; also when a `ws://` URL
 * reaches a TLS server), `Deno.errors.TimedOut` past `handshakeTimeout`, and
 * Deno's network errors (ConnectionRefused, …) when TCP or TLS fails;
 * `Deno.errors.InvalidData` for a certificate refused, or, within about 2 s,
 * for a `wss://` URL on a server that speaks plain HTTP.
 */
export async function dial(url: string | URL, options: DialOptions = {}): Promise<Connection> {
  const target = webSocketUrl(url);
  const policy = resolveKeepAlive(options.keepAlive ?? true);
  const key = generateKey();
  const compression = options.compression && zlibAvailable() ? options.compression : null;
  const tuning = typeof options.compression === "object" ? options.compression : {};
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
        ? openTls({
          hostname,
          port,
          host: target.host,
          caCerts: options.caCerts,
          insecure: options.insecure,
          signal: timeout,
        })
        : Deno.connect({ hostname, port }) as Promise<Deno.Conn>,
      timeout,
    );
    const keepalive = applyPolicy(conn, policy, { userTimeout: options.userTimeout || undefined });
    await abortable(writeAll(conn, new TextEncoder().encode(request)), timeout);
    const reader = new FirstBytes(conn);
    let got;
    let response;
    try {
      got = await readHead(reader, {
        maxHeadSize: DEFAULT_MAX_HEAD_SIZE,
        signal: timeout,
        kind: "response",
      });
      if (got) response = parseResponseHead(got.head);
    } catch (err) {
      if (!secure && reader.looksLikeTls()) throw tlsOnPlainUrl(target);
      throw err;
    }
    if (!got || !response) {
      throw new HandshakeError(
        INVALID_RESPONSE,
        "the server closed the connection before answering the upgrade",
      );
    }
    const body = response.status === 101
      ? ""
      : await readRefusalBody(conn, got.rest, response.headers, timeout);
    const { protocol } = checkUpgradeResponse(response, key, {
      subprotocols: options.protocols,
      extensions: compression !== null,
    }, body);
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
        ? new PerMessageDeflate(agreed, "client", tuning.threshold, tuning.level)
        : null,
    });
  } catch (err) {
    if (conn) closeConn(conn);
    if (timeout.aborted && !(err instanceof HandshakeError)) {
      const reason = timeout.reason;
      if (reason instanceof DOMException && reason.name === "TimeoutError") {
        throw new Deno.errors.TimedOut(`no handshake within ${timeoutMs}ms`);
      }
      throw reason;
    }
    throw err;
  }
}

/** A reader that keeps the first bytes it reads, to tell a TLS server's answer from HTTP. */
class FirstBytes implements Reader {
  #conn: Reader;
  #first: number[] = [];

  constructor(conn: Reader) {
    this.#conn = conn;
  }

  async read(p: Uint8Array): Promise<number | null> {
    const n = await this.#conn.read(p);
    if (n !== null) {
      for (let i = 0; i < n && this.#first.length < 2; i++) this.#first.push(p[i]);
    }
    return n;
  }

  /** Whether the answer began as a TLS record does: a handshake (22) or an alert (21), version 3.x. */
  looksLikeTls(): boolean {
    const [type, major] = this.#first;
    return (type === 21 || type === 22) && major === 3;
  }
}

/** The error for a `ws://` URL whose server answered in TLS. */
function tlsOnPlainUrl(url: URL): HandshakeError {
  return new HandshakeError(
    INVALID_RESPONSE,
    `the server at ${url.host} speaks TLS, not plain HTTP: use wss:// instead of ws://`,
  );
}

/**
 * Reads the start of a refused upgrade's body: up to its Content-Length, or
 * to the end of the stream, at most {@linkcode MAX_REFUSAL_BODY} bytes and
 * {@linkcode REFUSAL_BODY_WAIT_MS}; a chunked body is unchunked as far as it
 * came. Decoded as UTF-8; "" when nothing came in time.
 */
async function readRefusalBody(
  conn: Reader,
  rest: Uint8Array,
  headers: Headers,
  signal: AbortSignal,
): Promise<string> {
  const length = Number(headers.get("content-length") ?? NaN);
  const want = Number.isSafeInteger(length) && length >= 0
    ? Math.min(length, MAX_REFUSAL_BODY)
    : MAX_REFUSAL_BODY;
  const buf = new Uint8Array(MAX_REFUSAL_BODY);
  let filled = Math.min(rest.length, want);
  buf.set(rest.subarray(0, filled));
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(REFUSAL_BODY_WAIT_MS)]);
  try {
    while (filled < want) {
      const n = await abortable(conn.read(buf.subarray(filled, want)), deadline);
      if (n === null) break;
      filled += n;
    }
  } catch {
    // Too slow, or the stream failed: what came is enough.
  }
  let body: Uint8Array = buf.subarray(0, filled);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) body = unchunk(body);
  return new TextDecoder().decode(body);
}

/** The data of a chunked body (RFC 9112 §7.1), as far as `bytes` holds it. */
function unchunk(bytes: Uint8Array): Uint8Array {
  const out: number[] = [];
  let i = 0;
  while (i < bytes.length) {
    let end = i;
    while (end < bytes.length && bytes[end] !== 0x0a) end++;
    const size = parseInt(new TextDecoder().decode(bytes.subarray(i, end)), 16);
    if (!(size > 0)) break;
    const start = end + 1;
    out.push(...bytes.subarray(start, Math.min(start + size, bytes.length)));
    i = start + size + 2;
  }
  return Uint8Array.from(out);
}
