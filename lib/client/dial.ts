/**
 * The client side: open TCP (or TLS) to a `ws://` or `wss://` URL, apply
 * Go's keepalive to the socket (read back), run the opening handshake
 * (RFC 6455 §4.1), and hand back a {@linkcode Connection}.
 *
 * The steps of {@linkcode dial}, each below: {@linkcode connect} (TCP, or
 * TLS through `tls.ts`; through a proxy, a tunnel from `proxy.ts` first, and
 * TLS inside it), keepalive (on the socket to the proxy, if there is one), {@linkcode prepareUpgrade} (the
 * request), `readUpgradeResponse()` (the answer, and a refusal's body:
 * `response.ts`), then {@linkcode openConnection}.
 *
 * @module
 */

import { Connection, connectionSettings } from "../connection.ts";
import type { ConnectionOptions } from "../ws/conn.ts";
import { acceptDeflateResponse, type CompressionOptions, deflateOffer } from "../ws/deflate.ts";
import { PerMessageDeflate } from "../ws/compression.ts";
import { type KeepAliveConfig, type KeepAlivePolicy, resolveKeepAlive } from "../tcp/keepalive.ts";
import { applyPolicy, closeConn, type SocketOptions } from "../tcp/sockopt.ts";
import { HandshakeError } from "../ws/errors.ts";
import { buildUpgradeRequest, checkUpgradeResponse, generateKey } from "../ws/client_handshake.ts";
import { writeAll } from "../http/io.ts";
import { zlibAvailable } from "../ws/zlib.ts";
import { abortable } from "../async.ts";
import { openTls } from "./tls.ts";
import { readUpgradeResponse, type UpgradeResponse } from "./response.ts";
import { openTunnel, parseProxy, type Proxy } from "./proxy.ts";

/** Default bound on connecting plus the opening handshake (ms). */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

/** Options of {@linkcode dial}. Durations are in milliseconds. */
export interface DialOptions extends ConnectionOptions {
  /** Send a ping this often (default 0: none). */
  pingInterval?: number;
  /** Fail with `pong-timeout` when nothing arrives for this long (default 0: never). */
  pongTimeout?: number;
  /**
   * permessage-deflate (RFC 7692): `true` to offer it, or options. Off by
   * default, as in ws and gorilla.
   */
  compression?: boolean | CompressionOptions;
  /**
   * TCP keepalive: `true` for Go's defaults (on, 15 s / 15 s / 9; the
   * default), `false` to turn it off, Go's `KeepAliveConfig` (a zero or
   * absent field takes Go's default, a negative one leaves the OS value), or
   * a policy {@linkcode resolveKeepAlive} resolved already.
   */
  keepAlive?: boolean | KeepAliveConfig | KeepAlivePolicy;
  /** TCP_USER_TIMEOUT in ms; absent (or 0) leaves the OS value. */
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
  /**
   * wss:// only: a client certificate (PEM, the chain) for servers that ask
   * for one (mutual TLS), with `key`: give both or neither. Such a dial goes
   * through `node:tls`, with the same checks (chain, expiry, host name),
   * and `Connection.peerSubject` then names the server's certificate. One
   * difference: given `caCerts`, such a dial trusts only them unless the
   * process may read the system's CAs (`--allow-sys`), as a `node:tls` CA
   * list replaces its defaults.
   */
  cert?: string;
  /** The private key (PEM) of `cert`. */
  key?: string;
  /**
   * Reach the server through this proxy: `http://` (HTTP CONNECT, RFC 9110
   * §9.3.6), `https://` (the same over TLS to the proxy, checked against the
   * system's CAs and `caCerts`), `socks5://` (RFC 1928, the name resolved
   * here) or `socks5h://` (the name resolved by the proxy); a user and
   * password in the URL (`http://user:pass@host:port`) go to the proxy only
   * (`Proxy-Authorization: Basic`, or RFC 1929). Without a port: 1080, or
   * 443 for `https://`, as curl assumes. Keepalive goes on the socket to the
   * proxy; for `wss://` the TLS to the server runs inside the tunnel (inside
   * an `https://` proxy's TLS too, through `node:tls`).
   * `dial()` never reads `HTTPS_PROXY` and the like: the client program
   * does. A refusal throws a `ProxyError` (`name` "ProxyError", `status` the
   * proxy's HTTP status or SOCKS reply).
   */
  proxy?: string | URL;
  /** Bound on connecting plus the handshake (default 10 s). */
  handshakeTimeout?: number;
  /** Aborts connecting and the handshake. */
  signal?: AbortSignal;
}

/** The upgrade request of one dial, and what checking its answer needs. */
interface Upgrade {
  /** The request, ready to write. */
  request: Uint8Array;
  /** The Sec-WebSocket-Key sent. */
  key: string;
  /** Whether permessage-deflate was offered. */
  compression: boolean;
}

/**
 * Connects to `url` and completes the opening handshake, with Go's TCP
 * keepalive on the socket unless told otherwise.
 *
 * ```ts
 * const ws = await dial("ws://localhost:8080/echo");
 * await ws.send("hi");
 * for await (const msg of ws) { console.log(msg); break; }
 * await ws.close(CloseCode.NormalClosure, "bye");
 * ```
 *
 * Throws a TypeError for a URL or option that cannot work (`cert` without
 * `key`…), a RangeError for
 * a keepalive value Linux refuses, a {@linkcode HandshakeError} when the
 * server refuses the upgrade (its HTTP status, and the start of its body in
 * `body`) or answers against RFC 6455 (status 0; also when a `ws://` URL
 * reaches a TLS server), `Deno.errors.TimedOut` past `handshakeTimeout`, and
 * Deno's network errors (ConnectionRefused, …) when TCP or TLS fails;
 * `Deno.errors.InvalidData` for a certificate refused, or, within about 2 s,
 * for a `wss://` URL on a server that speaks plain HTTP.
 */
export async function dial(url: string | URL, options?: DialOptions): Promise<Connection> {
  const opts = options ?? {};
  const target = webSocketUrl(url);
  if ((opts.cert === undefined) !== (opts.key === undefined)) {
    throw new TypeError("cert and key go together: give both or neither");
  }
  const policy = resolveKeepAlive(opts.keepAlive ?? true);
  const proxy = opts.proxy ? parseProxy(opts.proxy) : null;
  const upgrade = prepareUpgrade(target, opts);
  const timeoutMs = opts.handshakeTimeout ?? DEFAULT_DIAL_TIMEOUT_MS;
  const signal = AbortSignal.any([
    AbortSignal.timeout(timeoutMs),
    ...(opts.signal ? [opts.signal] : []),
  ]);
  let conn: Deno.Conn | null = null;
  try {
    conn = await abortable(connect(target, opts, proxy, signal), signal);
    const keepalive = applyPolicy(conn, policy, { userTimeout: opts.userTimeout || undefined });
    await abortable(writeAll(conn, upgrade.request), signal);
    const response = await readUpgradeResponse(conn, target, signal);
    return openConnection(conn, keepalive, upgrade, response, opts);
  } catch (err) {
    if (conn) closeConn(conn);
    throw dialError(err, signal, timeoutMs);
  }
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

/** The upgrade request for `url` (RFC 6455 §4.1): a fresh key, the options' headers, and permessage-deflate if asked and available. */
function prepareUpgrade(url: URL, options: DialOptions): Upgrade {
  const key = generateKey();
  const compression = Boolean(options.compression) && zlibAvailable();
  const request = buildUpgradeRequest(url, key, {
    headers: [...new Headers(options.headers)],
    origin: options.origin,
    protocols: options.protocols,
    extensions: compression ? deflateOffer() : undefined,
  });
  return { request: new TextEncoder().encode(request), key, compression };
}

/**
 * Opens TCP to the URL's host and port, or TLS for `wss://` (see `tls.ts`);
 * through `proxy`, a tunnel to them, with the TLS inside it.
 */
function connect(
  url: URL,
  options: DialOptions,
  proxy: Proxy | null,
  signal: AbortSignal,
): Promise<Deno.Conn> {
  const secure = url.protocol === "wss:";
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port ? Number(url.port) : secure ? 443 : 80;
  const tunnel = proxy
    ? () => openTunnel(proxy, { hostname, port }, { caCerts: options.caCerts, signal })
    : undefined;
  if (!secure) return tunnel ? tunnel() : Deno.connect({ hostname, port });
  return openTls({
    tunnel,
    nested: proxy?.scheme === "https:",
    hostname,
    port,
    host: url.host,
    caCerts: options.caCerts,
    insecure: options.insecure,
    cert: options.cert,
    key: options.key,
    signal,
  });
}

/**
 * Checks the server's answer against the request (a refusal throws its
 * {@linkcode HandshakeError}) and wraps the stream as a WebSocket, with the
 * options' connection settings under their own names.
 */
function openConnection(
  conn: Deno.Conn,
  keepalive: SocketOptions,
  upgrade: Upgrade,
  response: UpgradeResponse,
  options: DialOptions,
): Connection {
  const { head, rest, body } = response;
  const { protocol } = checkUpgradeResponse(head, upgrade.key, {
    protocols: options.protocols,
    extensions: upgrade.compression,
  }, body);
  const agreed = upgrade.compression
    ? acceptDeflateResponse(head.headers.get("sec-websocket-extensions"))
    : null;
  const tuning = typeof options.compression === "object" ? options.compression : {};
  return new Connection(conn, keepalive, {
    ...connectionSettings(options),
    role: "client",
    initial: rest,
    protocol,
    deflate: agreed
      ? new PerMessageDeflate(agreed, "client", tuning.threshold, tuning.level)
      : null,
  });
}

/**
 * What a failed dial throws: past the deadline, `Deno.errors.TimedOut`
 * (or the caller's abort reason) instead of whatever the cut-short step
 * threw; a refusal, or any other failure, as it is.
 */
function dialError(err: unknown, signal: AbortSignal, timeoutMs: number): unknown {
  if (!signal.aborted || err instanceof HandshakeError) return err;
  const reason = signal.reason;
  if (reason instanceof DOMException && reason.name === "TimeoutError") {
    return new Deno.errors.TimedOut(`no handshake within ${timeoutMs}ms`);
  }
  return reason;
}
