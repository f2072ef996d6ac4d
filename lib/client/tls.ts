/**
 * The TLS side of {@linkcode dial} for `wss://` URLs.
 *
 * ```
 *   wss://host:port
 *     │
 *     ├─ insecure ───────────────────────────▶ node:tls, no verification
 *     │
 *     └─ Deno.connectTls (rustls, caCerts) ──▶ handshake done: the stream
 *          │  no handshake after 1 s: probe the port with plain HTTP;
 *          │  an "HTTP/" answer fails the dial ("use ws://")
 *          │
 *          └─ CaUsedAsEndEntity, and caCerts holds a self-signed
 *             certificate (what `openssl req -x509` makes: CA:TRUE)
 *               ──▶ node:tls again, accepted only if the server shows
 *                   exactly that certificate, valid for the host
 * ```
 *
 * Deno 2.9's `Deno.connectTls` verifies every certificate: it can skip the
 * host name check (`unsafelyDisableHostnameVerification`) but not the chain,
 * and only the runtime flag `--unsafely-ignore-certificate-errors` turns the
 * whole check off, for the whole process. Its `node:tls`, though, honours
 * `rejectUnauthorized: false` and shows the peer's certificate, so the two
 * cases that need it go through `node:tls`, wrapped as a `Deno.Conn`
 * ({@linkcode NodeTlsConn}). Everything else keeps Deno's own TLS.
 *
 * @module
 */

import { X509Certificate } from "node:crypto";
import * as tls from "node:tls";
import { isIP } from "node:net";
import { closeConn } from "../tcp/sockopt.ts";
import { sameBytes } from "../ws/bytes.ts";
import { errorText } from "../errors.ts";
import { connDuplex } from "./duplex.ts";

/** How long a TLS handshake may take before the port is probed for plain HTTP (ms). */
export const PLAIN_PROBE_DELAY_MS = 1_000;
/** How long the plain-HTTP probe waits for the first bytes of an answer (ms). */
export const PLAIN_PROBE_WAIT_MS = 800;

/** What {@linkcode openTls} needs. */
export interface OpenTlsOptions {
  /** The host name or IP address, without brackets. */
  hostname: string;
  /** The TCP port. */
  port: number;
  /** The URL's host (`host[:port]`), for the probe's Host header. */
  host: string;
  /** PEM certificates to trust besides the system's. */
  caCerts?: string[];
  /** Accept any certificate: no chain, expiry or name check. */
  insecure?: boolean;
  /** Aborts connecting and the TLS handshake. */
  signal: AbortSignal;
  /**
   * Through a proxy: opens a fresh tunnel to `hostname:port` (`proxy.ts`),
   * and TLS runs inside it instead of over a connection of its own; the
   * plain-HTTP probe is skipped (it would bypass the proxy). A tunnel that
   * is TLS itself (an `https://` proxy) takes the `node:tls` path, checked
   * as Deno's TLS checks (system CAs and `caCerts`): `Deno.startTls` takes
   * only TCP.
   */
  tunnel?: () => Promise<Deno.TcpConn | Deno.TlsConn>;
  /** Whether the tunnel is TLS itself (see `tunnel`). */
  nested?: boolean;
}

/**
 * Connects to `hostname:port` and completes the TLS handshake (see the
 * module's diagram). Throws Deno's TLS errors as they are
 * (`Deno.errors.InvalidData`, "invalid peer certificate: UnknownIssuer", …),
 * and `Deno.errors.InvalidData` saying so when the port speaks plain HTTP or
 * a pinned certificate does not match.
 */
export async function openTls(opts: OpenTlsOptions): Promise<Deno.Conn> {
  if (opts.insecure) return await nodeTls(opts, null);
  if (opts.nested) return await nestedTls(opts);
  const conn = opts.tunnel
    ? await startTlsInTunnel(await opts.tunnel() as Deno.TcpConn, opts)
    : await Deno.connectTls({ hostname: opts.hostname, port: opts.port, caCerts: opts.caCerts });
  try {
    await untilHandshake(conn.handshake(), opts);
    return conn;
  } catch (err) {
    closeConn(conn);
    const pins = selfSigned(opts.caCerts ?? []);
    if (/CaUsedAsEndEntity/.test(String(err)) && pins.length > 0 && !opts.signal.aborted) {
      return await nodeTls(opts, pins);
    }
    throw err;
  }
}

/**
 * `Deno.startTls` on a tunnel. Deno 2.9's conn from it gives its addresses
 * without `transport: "tcp"`, so the tunnel's own are put on it: the
 * keepalive code finds the socket by them.
 */
async function startTlsInTunnel(tcp: Deno.TcpConn, opts: OpenTlsOptions): Promise<Deno.TlsConn> {
  let conn: Deno.TlsConn;
  try {
    conn = await Deno.startTls(tcp, { hostname: opts.hostname, caCerts: opts.caCerts });
  } catch (err) {
    closeConn(tcp);
    throw err;
  }
  Object.defineProperty(conn, "localAddr", { value: tcp.localAddr });
  Object.defineProperty(conn, "remoteAddr", { value: tcp.remoteAddr });
  return conn;
}

/** The certificates among `pems` whose issuer is their subject, each as DER with its parsed form. */
export function selfSigned(pems: string[]): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const pem of pems) {
    for (
      const block of pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []
    ) {
      try {
        const cert = new X509Certificate(block);
        if (cert.subject === cert.issuer) out.push(cert);
      } catch {
        // Not a certificate Node can read: Deno's own TLS judged it already.
      }
    }
  }
  return out;
}

/**
 * Resolves when `handshake` does. If it has not after
 * {@linkcode PLAIN_PROBE_DELAY_MS}, a second connection asks the port for
 * `HEAD /` in plain HTTP: an answer starting `HTTP/` means the server does
 * not speak TLS at all, and this rejects at once rather than waiting for the
 * dial's timeout. Any other outcome leaves the handshake to finish or time out.
 */
async function untilHandshake(handshake: Promise<unknown>, opts: OpenTlsOptions): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const probe = new Promise<never>((_, reject) => {
    if (opts.tunnel) return;
    timer = setTimeout(async () => {
      if (await speaksPlainHttp(opts)) {
        reject(
          new Deno.errors.InvalidData(
            `the server at ${opts.host} speaks plain HTTP, not TLS: use ws:// instead of wss://`,
          ),
        );
      }
    }, PLAIN_PROBE_DELAY_MS);
  });
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(opts.signal.reason);
    if (opts.signal.aborted) onAbort();
    opts.signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    await Promise.race([handshake, probe, aborted]);
  } finally {
    clearTimeout(timer);
    opts.signal.removeEventListener("abort", onAbort);
  }
}

/** Whether `hostname:port` answers a plain `HEAD /` with `HTTP/` within {@linkcode PLAIN_PROBE_WAIT_MS}. */
async function speaksPlainHttp(opts: OpenTlsOptions): Promise<boolean> {
  let conn: Deno.Conn | null = null;
  const timer = setTimeout(() => conn && closeConn(conn), PLAIN_PROBE_WAIT_MS);
  try {
    conn = await Deno.connect({ hostname: opts.hostname, port: opts.port });
    const request = `HEAD / HTTP/1.1\r\nHost: ${opts.host}\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    const got = new Uint8Array(5);
    let filled = 0;
    while (filled < got.length) {
      const n = await conn.read(got.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    return new TextDecoder().decode(got.subarray(0, filled)) === "HTTP/";
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    if (conn) closeConn(conn);
  }
}

/**
 * TLS inside a TLS tunnel, through `node:tls` with its own checks; a
 * certificate it refuses, when `caCerts` holds self-signed ones, is tried
 * again pinned, as on the direct path.
 */
async function nestedTls(opts: OpenTlsOptions): Promise<Deno.Conn> {
  try {
    return await nodeTls(opts, null, true);
  } catch (err) {
    const pins = selfSigned(opts.caCerts ?? []);
    if (pins.length === 0 || opts.signal.aborted || !/certificate/i.test(String(err))) throw err;
    return await nodeTls(opts, pins);
  }
}

/**
 * TLS through `node:tls`. With `verify`, Node's own checks against the
 * system's CAs and `caCerts`; without, none: `pins` null accepts any
 * certificate; otherwise the server's must be one of `pins`, byte for
 * byte, and valid for the host name or IP address.
 */
async function nodeTls(
  opts: OpenTlsOptions,
  pins: X509Certificate[] | null,
  verify = false,
): Promise<Deno.Conn> {
  const tunnel = opts.tunnel ? await opts.tunnel() : null;
  const socket = tls.connect({
    ...(tunnel ? { socket: connDuplex(tunnel) } : { host: opts.hostname, port: opts.port }),
    servername: isIP(opts.hostname) ? undefined : opts.hostname,
    rejectUnauthorized: verify,
    ...(verify && opts.caCerts ? { ca: [...tls.rootCertificates, ...opts.caCerts] } : {}),
  });
  const connected = new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", (err) => reject(denoError(err)));
  });
  try {
    await untilHandshake(connected, opts);
    if (pins) checkPinned(socket, pins, opts.hostname);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return new NodeTlsConn(socket, tunnel ?? undefined) as unknown as Deno.Conn;
}

/** Throws unless the server's certificate is one of `pins` and valid for `hostname`. */
function checkPinned(socket: tls.TLSSocket, pins: X509Certificate[], hostname: string): void {
  const raw: Uint8Array | undefined = socket.getPeerCertificate()?.raw;
  const pin = raw && pins.find((p) => sameBytes(new Uint8Array(p.raw), raw));
  if (!pin) {
    throw new Deno.errors.InvalidData(
      "invalid peer certificate: the server's certificate is a CA certificate " +
        "(CaUsedAsEndEntity), and not the self-signed one given in caCerts",
    );
  }
  const valid = isIP(hostname) ? pin.checkIP(hostname) !== undefined : pin.checkHost(hostname);
  if (!valid) {
    throw new Deno.errors.InvalidData(
      `invalid peer certificate: NotValidForName: the self-signed certificate given in caCerts ` +
        `is not valid for ${hostname} (it names ${pin.subjectAltName ?? pin.subject})`,
    );
  }
}

/** Node's socket errors as the Deno errors the connection's classifier knows. */
function denoError(err: unknown): unknown {
  const code = (err as { code?: string })?.code;
  const message = errorText(err);
  switch (code) {
    case "ECONNRESET":
      return new Deno.errors.ConnectionReset(message);
    case "ECONNREFUSED":
      return new Deno.errors.ConnectionRefused(message);
    case "ETIMEDOUT":
      return new Deno.errors.TimedOut(message);
    case "EPIPE":
      return new Deno.errors.BrokenPipe(message);
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new Deno.errors.NotFound(message);
    default:
      return err;
  }
}

/** Bytes buffered from the socket before it is paused, so a slow reader holds TCP back. */
const READ_HIGH_WATER = 64 * 1024;

/**
 * A `node:tls` socket with the part of `Deno.Conn` that a WebSocket
 * connection and the socket-option code use: read, write, closeWrite,
 * close, and the two addresses (by which the socket's file descriptor is
 * found for keepalive). Node's errors become Deno's.
 */
export class NodeTlsConn {
  /** The local address. */
  readonly localAddr: Deno.NetAddr;
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  #socket: tls.TLSSocket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: unknown = null;
  #wake: (() => void) | null = null;

  /** Wraps a connected socket whose TLS handshake is done; over a tunnel, `tunnel` gives the addresses. */
  constructor(socket: tls.TLSSocket, tunnel?: Deno.Conn) {
    this.#socket = socket;
    this.localAddr = tunnel
      ? tunnel.localAddr as Deno.NetAddr
      : addr(socket.localAddress, socket.localPort);
    this.remoteAddr = tunnel
      ? tunnel.remoteAddr as Deno.NetAddr
      : addr(socket.remoteAddress, socket.remotePort);
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered >= READ_HIGH_WATER) socket.pause();
      this.#notify();
    });
    socket.on("end", () => this.#finish());
    socket.on("close", () => this.#finish());
    socket.on("error", (err) => {
      this.#error ??= denoError(err);
      this.#notify();
    });
  }

  /** Reads into `p`; null at the end of the stream. */
  async read(p: Uint8Array): Promise<number | null> {
    while (true) {
      const chunk = this.#chunks[0];
      if (chunk) {
        const n = Math.min(chunk.length, p.length);
        p.set(chunk.subarray(0, n));
        if (n === chunk.length) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(n);
        this.#buffered -= n;
        if (this.#buffered < READ_HIGH_WATER / 2) this.#socket.resume();
        return n;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** Writes all of `p` (Node queues it); resolves with its length once handed to the socket. */
  write(p: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(this.#error);
    const copy = p.slice();
    return new Promise((resolve, reject) => {
      this.#socket.write(copy, (err) => err ? reject(denoError(err)) : resolve(copy.length));
    });
  }

  /** Sends TLS close_notify and a FIN; reading goes on. */
  closeWrite(): Promise<void> {
    this.#socket.end();
    return Promise.resolve();
  }

  /** Closes the socket at once. */
  close(): void {
    this.#socket.destroy();
    this.#finish();
  }

  /** Sets TCP_NODELAY (on unless `noDelay` is false). */
  setNoDelay(noDelay?: boolean): void {
    this.#socket.setNoDelay(noDelay ?? true);
  }

  /** Switches SO_KEEPALIVE on unless `keepAlive` is false (the values are set through the socket options code). */
  setKeepAlive(keepAlive?: boolean): void {
    this.#socket.setKeepAlive(keepAlive ?? true);
  }

  /** Keeps the process alive while the socket is open (the default). */
  ref(): void {
    this.#socket.ref();
  }

  /** Lets the process end while the socket is open. */
  unref(): void {
    this.#socket.unref();
  }

  /** Closes the socket. */
  [Symbol.dispose](): void {
    this.close();
  }

  #finish(): void {
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

function addr(hostname: string | undefined, port: number | undefined): Deno.NetAddr {
  return {
    transport: "tcp",
    hostname: (hostname ?? "").replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, ""),
    port: port ?? 0,
  };
}
